"""The journal's outage buffer: what the journal does while the disk refuses writes.

A full, read-only or hanging disk must never stop a door, a fire release or a trip, and must
never cost a seq. So while the disk refuses, nobody waits on it: every waiting producer gets its
seq at once, `alarm.journal_unavailable` is raised, events are held in memory with their seqs (a
bounded buffer: the oldest of the least important go first, alarms last), the writer retries on
a jittered backoff, and seqs are leased ahead in a spill place so that a kill meanwhile cannot
give one twice. Whatever is lost is counted, journaled (`alarm.journal_events_lost`) and
recorded as a gap. A stop spills what is held (spill.py) and the next start replays it first.
It is a state machine of its own (writable, refusing, recovered), kept apart from the
group-commit writer (writer.py), whose queue it holds while the disk refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Sequence

import backoff
import structlog

from edge.events import Event, Kind, Priority
from edge.journal import spill
from edge.journal.faults import describe, is_damage
from edge.journal.reading import Gap
from edge.journal.store import JournalLimits
from edge.journal.writer import Entry, JournalError, Writer

log = structlog.get_logger("edge.journal")

LEASE_BLOCK = 65_536  # seqs a degraded journal leases ahead in a spill place; renewed at half-way
# After these the connection is dropped and the file opened again (a remount, a replaced disk);
# a full disk or a lock keeps the connection and simply tries again.
REOPEN_AFTER = {"read_only", "cannot_open", "io_error", "no_access"}


@dataclass(slots=True)
class Losses:
    """Events that never reached the disk: how many, of which priority, over which seqs."""

    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    by_priority: Counter[str] = field(default_factory=Counter)

    def add(self, entry: Entry) -> None:
        self.count += 1
        self.by_priority[entry.event.priority.name.lower()] += 1
        if entry.seq is not None:
            self.first_seq = entry.seq if self.first_seq is None else min(self.first_seq, entry.seq)
            self.last_seq = entry.seq if self.last_seq is None else max(self.last_seq, entry.seq)

    def body(self, reason: str) -> dict[str, Any]:
        return {"reason": reason, "lost": self.count, "first_seq": self.first_seq, "last_seq": self.last_seq,
                "by_priority": dict(self.by_priority)}

    def merge(self, body: dict[str, Any]) -> None:
        """Losses a previous run counted (from its spill file)."""
        self.count += int(body.get("lost") or 0)
        for name, count in (body.get("by_priority") or {}).items():
            self.by_priority[name] += int(count)
        for seq in (body.get("first_seq"), body.get("last_seq")):
            if isinstance(seq, int):
                self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)
                self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)


@dataclass(slots=True)
class Refusal:
    """Why the disk refuses writes, since when, and when to try again."""

    fault: dict[str, Any]
    since: float
    delays: Iterator[float]
    retry_at: float = 0.0
    attempts: int = 0


def retry_delays(limits: JournalLimits) -> Iterator[float]:
    """Exponential backoff, capped, each delay jittered to between half and all of it (as the supervisor)."""
    wait = backoff.expo(factor=limits.retry_initial_s, max_value=limits.retry_max_s)
    next(wait)  # the generator's first yield only primes it
    for delay in wait:
        yield delay / 2 + random.uniform(0, delay / 2)


class OutageBuffer:
    """Degraded mode: holds the writer's queue while the disk refuses, and answers for every seq given."""

    def __init__(self, path: Path, limits: JournalLimits, spill_places: Sequence[Path], writer: Writer,
                 admit: Callable[[Event, None], Entry]) -> None:
        self.path = path
        self.limits = limits
        self.spill_places = spill_places  # where a stop on a refusing disk leaves what it holds
        self._writer = writer
        self._admit = admit  # the journal's admission: its alarms get a seq and reach the bus like any event
        self._loop = asyncio.get_running_loop()
        self.refusal: Refusal | None = None  # None while the disk takes writes
        self.skipped: tuple[int, int] | None = None  # seqs taken from the mark and never used (told at recovery)
        self.losses = Losses()
        self._spill_files: list[Path] = []  # replayed at start; removed once their events are written
        self._replaying = 0  # replayed events not yet written
        self._given_floor: int | None = None  # the highest seq an earlier run handed out, as its spills say
        self._leased = 0  # while degraded: a lease in a spill place covers every seq up to here
        self._lease_at: Path | None = None  # where the lease is
        self._lease_jobs: set[asyncio.Task[None]] = set()  # lease writes and removals (awaited at close)
        self._lease_refused: float | None = None  # when no place took the last lease (tried again a while after)
        # Spills and leases go to another disk on a thread of their own: never behind a writer stuck on
        # the refusing disk, nor behind state-file writes stuck on it.
        self._spiller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-spill")

    @property
    def fault(self) -> dict[str, Any] | None:
        """While degraded: why the disk refuses (fault, code, error) and how much is held; else None."""
        refusal = self.refusal
        if refusal is None:
            return None
        return {**refusal.fault, "held": len(self._writer.pending), "since_s": round(time.monotonic() - refusal.since, 1)}

    def places(self) -> list[Path]:
        """The spill places, then the journal's own dir (a disk may refuse SQLite and still take a small file)."""
        places = [p for p in self.spill_places if p != self.path.parent]
        return places + [self.path.parent]

    # --- while the disk refuses -----------------------------------------------------------

    def lease_ahead(self, seq: int | None) -> None:
        """An event was admitted while degraded: renew the seq lease once half of it is used."""
        if seq is not None and seq > self._leased - LEASE_BLOCK // 2:
            self._lease()

    def shed(self) -> None:
        """The buffer is full: drop the oldest of the least important events (alarms only if nothing else is held).

        A 64th of the buffer goes at once, so a long outage costs one pass per 64th, not per event."""
        writer = self._writer
        limit = self.limits.buffer_events
        quota = len(writer.pending) - limit + max(0, limit // 64 - 1)
        held = Counter(entry.event.priority for entry in writer.pending)
        while quota > 0:
            lowest = min(p for p, n in held.items() if n)
            take = min(quota, held[lowest])
            quota -= take
            held[lowest] -= take
            kept: deque[Entry] = deque()
            for entry in writer.pending:
                if take and entry.event.priority is lowest:
                    take -= 1
                    self.lose(entry)
                else:
                    kept.append(entry)
            writer.pending = kept

    def lose(self, entry: Entry, failure: Exception | None = None) -> None:
        self.losses.add(entry)
        if entry.replayed:
            self._replaying -= 1
        if failure is not None:
            entry.settle(failure)

    async def refused(self, fault: BaseException, writing: bool) -> None:
        """The disk refused: enter (or stay in) degraded mode, and schedule the next attempt."""
        writer = self._writer
        described = describe(fault)
        if writing:
            writer.again = True
        if is_damage(fault) or described["fault"] in REOPEN_AFTER:
            await writer.run(writer.store.disconnect)
        refusal = self.refusal or self.degrade(described)
        refusal.attempts += 1
        delay = next(refusal.delays)
        refusal.retry_at = self._loop.time() + delay
        if refusal.attempts > 1:
            log.warning("journal still unavailable", retry_in_s=round(delay, 2), held=len(writer.pending), **described)

    def degrade(self, described: dict[str, Any]) -> Refusal:
        """Enter degraded mode: raise the alarm and let every waiting producer go with its seq."""
        writer = self._writer
        refusal = self.refusal = Refusal(described, time.monotonic(), retry_delays(self.limits))
        log.error("journal unavailable; events are held in memory", path=str(self.path), held=len(writer.pending), **described)
        for entry in [*writer.in_flight, *writer.pending]:
            entry.settle()  # nobody waits on a disk that refuses: each producer gets its seq now
        writer.release_flushes()
        writer.space.set()
        body = {**described, "path": str(self.path), "buffer_events": self.limits.buffer_events}
        self._admit(Event(Kind.JOURNAL_UNAVAILABLE, Priority.ALARM, "journal", body), None)
        self._lease()  # the seqs just given (and those to come) are covered before a crash can forget them
        return refusal

    def reopened(self, notes: list[Event]) -> None:
        """The file is open again: number what was held unnumbered, note a skipped range, queue the notes."""
        writer = self._writer
        store = writer.store
        writer.note_skipped()
        if writer.next_seq is None:
            # Above the file and above anything replayed from a spill with its seq.
            writer.next_seq = max(store.next_seq, 1 + max((e.seq for e in writer.pending if e.seq is not None), default=0),
                                  1 + (self._given_floor or 0))
            writer.head = writer.settled_through = store.next_seq - 1
            for entry in writer.pending:
                if entry.seq is None:
                    entry.seq, writer.next_seq = writer.next_seq, writer.next_seq + 1
        floor = writer.floor()
        if floor is not None and store.next_seq < floor:
            # The seq was taken from the mark while the file could not be read: these were never used.
            self.skipped = (store.next_seq, floor - 1)
            writer.gaps.append(Gap(store.next_seq, floor - 1, "never_used", 0))
        for note in notes:
            self._admit(note, None)

    def recovered(self) -> None:
        """A batch reached the disk: leave degraded mode, say so, and journal what was lost meanwhile."""
        refusal, self.refusal = self.refusal, None
        assert refusal is not None
        body: dict[str, Any] = {"fault": refusal.fault["fault"], "unavailable_s": round(time.monotonic() - refusal.since, 1),
                                "attempts": refusal.attempts, "held": len(self._writer.pending)}
        if self.skipped:
            body |= {"skipped_first_seq": self.skipped[0], "skipped_last_seq": self.skipped[1]}
            self.skipped = None
        log.warning("journal writable again", **body)
        self._admit(Event(Kind.JOURNAL_RECOVERED, Priority.ALARM, "journal", body), None)
        self.report_losses("buffer_full")
        if self._lease_at is not None:
            self._job(self._drop_lease())

    def report_losses(self, reason: str) -> None:
        losses = self.losses
        if losses.count:
            body = losses.body(reason)
            log.error("journal lost events", **body)
            if losses.first_seq is not None and losses.last_seq is not None:
                self._writer.gaps.append(Gap(losses.first_seq, losses.last_seq, reason, losses.count))
            self.losses = Losses()
            self._admit(Event(Kind.JOURNAL_EVENTS_LOST, Priority.ALARM, "journal", body), None)

    # --- the seq lease ----------------------------------------------------------------------

    def _lease(self) -> None:
        """Lease seqs ahead in a spill place (the state disk refuses the seq mark): a daemon killed
        while degraded leaves no spill, and the next start must still continue above what it gave."""
        next_seq = self._writer.next_seq
        if next_seq is None or any(not job.done() for job in self._lease_jobs):
            return
        if self._lease_refused is not None and self._loop.time() - self._lease_refused < self.limits.retry_max_s:
            return
        through = next_seq - 1 + LEASE_BLOCK
        self._job(self._write_lease(through))

    def _job(self, work: Awaitable[None]) -> None:
        job = asyncio.ensure_future(work)
        self._lease_jobs.add(job)
        job.add_done_callback(self._lease_jobs.discard)

    async def _write_lease(self, through: int) -> None:
        lease = spill.Spill(str(self.path), through)
        where = await self._loop.run_in_executor(self._spiller, spill.write, self.places(), lease, spill.lease_name(self.path))
        if where is None:
            if self._lease_refused is None:
                log.error("journal seq lease taken by no place: a crash now could give a seq twice", through=through)
            self._lease_refused = self._loop.time()
            return
        self._leased, self._lease_at, self._lease_refused = through, where, None
        if self.refusal is None:  # recovered meanwhile: the lease is no longer needed
            await self._drop_lease()

    async def _drop_lease(self) -> None:
        """Every seq handed out is written now (or recorded lost): the lease goes."""
        where, self._lease_at, self._leased = self._lease_at, None, 0
        if where is not None:
            await self._loop.run_in_executor(self._spiller, spill.remove, [where])

    # --- the spill: replayed at start, written at stop -----------------------------------------

    def replay(self, spills: list[spill.Spill]) -> None:
        """Queue what earlier stops spilled, before anything new: seq never goes past them again,
        their losses are counted, and their files go once the events are written."""
        if not spills:
            return
        writer = self._writer
        given = max((s.given_through for s in spills if s.given_through is not None), default=None)
        self._given_floor = given  # where numbering starts at the latest, once the file can say where it stands
        if given is not None and writer.next_seq is not None and given >= writer.next_seq:
            writer.gaps.append(Gap(writer.next_seq, given, "unclean_stop", 0))
            writer.next_seq = given + 1
        numbered = sorted(((seq, e) for s in spills for seq, e in s.events if seq is not None), key=lambda pair: pair[0])
        unnumbered = [e for s in spills for seq, e in s.events if seq is None]
        for seq, event in numbered:  # one written after all (a spill not removed last time) is skipped by id
            writer.pending.append(Entry(event, seq, None, replayed=True))
        for event in unnumbered:
            self._admit(event, None).replayed = True
        self._replaying = sum(1 for entry in writer.pending if entry.replayed)
        writer.again = True  # a spill read twice must not write an event twice
        self._spill_files = [s.path for s in spills if s.path is not None]
        log.warning("journal replays events spilled at an earlier stop", events=self._replaying,
                    files=[str(p) for p in self._spill_files], given_through=given)
        for s in spills:
            if s.lost:
                self.losses.merge(s.lost)
        self.report_losses("closed")
        writer.work.set()

    async def replayed(self, batch: list[Entry]) -> None:
        """Once every replayed event is written, the spill files they came from go."""
        if not self._spill_files:
            return
        self._replaying -= sum(1 for entry in batch if entry.replayed)
        if self._replaying <= 0:
            files, self._spill_files = self._spill_files, []
            await self._writer.run(spill.remove, files)

    async def hand_over(self, deadline: float) -> tuple[list[Entry], Path | None]:
        """At close, once the writer stopped: spill what is still held (and the seq high-water) for the
        next start, or count it lost where no place takes it. Returns what was left and where it went."""
        writer = self._writer
        if self._lease_jobs:
            await asyncio.wait(set(self._lease_jobs), timeout=max(0.0, deadline - self._loop.time()))
        left = [*writer.in_flight, *writer.pending]
        given = None if writer.next_seq is None else writer.next_seq - 1
        spilled = None
        if left or self.losses.count or (given is not None and given > writer.head):
            spilled = await self._spill(left, given, deadline)
        if spilled is not None:
            for entry in left:
                entry.settle()  # held elsewhere with its seq; written at the next start
            log.error("journal closed with events never written; spilled for the next start", path=str(self.path),
                      spill=str(spilled), events=len(left), given_through=given, **self.losses.body("closed"))
        else:
            failure = JournalError("journal closed before the event was written")
            for entry in left:
                self.lose(entry, failure)
            if self.losses.count:
                log.error("journal closed with events never written", path=str(self.path), **self.losses.body("closed"))
        return left, spilled

    async def _spill(self, left: list[Entry], given: int | None, deadline: float) -> Path | None:
        """Write what is held to the first spill place that takes it (its own thread: the writer's may hang)."""
        held = spill.Spill(str(self.path), given, [(entry.seq, entry.event) for entry in left],
                           self.losses.body("closed") if self.losses.count else None)
        try:
            async with asyncio.timeout(max(0.0, deadline - self._loop.time())):
                where = await self._loop.run_in_executor(self._spiller, spill.write, self.places(), held)
                if where is not None and self._spill_files:
                    await self._loop.run_in_executor(self._spiller, spill.remove, self._spill_files)  # in the new spill now
        except TimeoutError:
            log.error("journal spill did not finish in time", events=len(left))
            return None
        return where

    async def end(self, lease_needless: bool) -> None:
        """Last step of a close: the lease goes once a spill or a clean file says how far seq went."""
        if lease_needless and self._lease_at is not None:
            with contextlib.suppress(OSError):
                await self._loop.run_in_executor(self._spiller, spill.remove, [self._lease_at])  # the spill (or the file) says it now

    def stop(self) -> None:
        self._spiller.shutdown(wait=False)
