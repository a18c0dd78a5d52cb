"""The journal: every event, durable before anything else sees it.

SQLite in WAL mode with synchronous=FULL, because gateways lose power (a fire, a
tripped breaker) and a committed event must survive that, not only a crash. One writer
owns the connection and runs in its own thread; producers hand it events and await the
commit of the batch their event is in (group commit: whatever arrived while the previous
commit was syncing goes into the next one). The queue in front of it is bounded: when it
is full, producers wait (back-pressure), nothing is dropped.

Seq is given when an event is appended, from a counter that starts where the file (or,
for a new file, the seq mark beside it) says, so it never repeats for a gateway; batches
are written strictly in seq order, so everything up to `head_seq` is on disk or was
reported lost.

A disk that refuses writes (full, read-only, locked) must never stop the building: the
journal then degrades. It raises `alarm.journal_unavailable`, settles every waiting
producer with its seq at once, and from then on `append` returns as soon as the event is
held in a bounded memory buffer; doors, fire release and the supervisor never wait on a
disk. The writer retries with jittered exponential backoff and writes the buffer, in
order, when the disk allows, then journals `alarm.journal_recovered`. A full buffer drops
the oldest of its least important events (alarms last); the loss is counted and journaled
(`alarm.journal_events_lost`, with the seq range) once the disk is back.

A stop while the disk still refuses writes what is held to a spill file elsewhere (`spill.py`:
/run, a second configured dir) and the next start writes it into the journal first; only what
no place takes is lost, and the next start records its seq range as a gap. No seq is given
twice: the seq mark wins over the file's head unless the last close was clean (see seqmark.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import structlog

from edge.bus import Bus
from edge.events import Event, Kind, Priority
from edge.journal import spill
from edge.journal.faults import describe, is_damage, is_rejected
from edge.journal.outage import LEASE_BLOCK, REOPEN_AFTER, Losses, Refusal, retry_delays
from edge.journal.reading import Gap
from edge.journal.store import JournalLimits, Store
from edge.journal.writer import Entry, JournalError

log = structlog.get_logger("edge.journal")

T = TypeVar("T")

CLOSE_WITHIN_S = 3.0


class Journal:
    """The gateway's outbox. Use `await Journal.open(...)`, then `await journal.append(event)`."""

    def __init__(self, path: Path, limits: JournalLimits, store: Store | None = None, spill_places: Sequence[Path] = ()) -> None:
        self.path = Path(path)
        self.limits = limits
        self.spill_places = [Path(p) for p in spill_places]  # where a stop on a refusing disk leaves what it holds
        self._spill_files: list[Path] = []  # replayed at start; removed once their events are written
        self._replaying = 0  # replayed events not yet written
        self._given_floor: int | None = None  # the highest seq an earlier run handed out, as its spills say
        self._leased = 0  # while degraded: a lease in a spill place covers every seq up to here
        self._lease_at: Path | None = None  # where the lease is
        self._lease_jobs: set[asyncio.Task[None]] = set()  # lease writes and removals (awaited at close)
        self._lease_refused: float | None = None  # when no place took the last lease (tried again a while after)
        self._store = store if store is not None else Store(self.path, limits)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        # Spills and leases go to another disk on a thread of their own: never behind a writer stuck on
        # the refusing disk, nor behind state-file writes stuck on it.
        self._spiller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-spill")
        self._loop = asyncio.get_running_loop()
        self._pending: deque[Entry] = deque()
        self._in_flight: list[Entry] = []  # the batch the writer thread is committing
        self._again = False  # the next batch follows a failed write, which may have reached the disk
        self._next_seq: int | None = None
        self._head = 0  # the last committed seq
        self._settled_through = 0  # every seq up to here is committed, or failed and reported
        self._flushes: list[tuple[int, asyncio.Future[bool]]] = []
        self._outage: Refusal | None = None
        self._skipped: tuple[int, int] | None = None
        self._losses = Losses()
        self._gaps: list[Gap] = []  # seq ranges that will never be written, recorded with the next batch
        self._work = asyncio.Event()
        self._space = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._committed = asyncio.Event()  # set and replaced after each commit (see wait_beyond)
        self.bus = Bus()  # every admitted event, at once, for the live parts (also while the disk refuses)

    @classmethod
    async def open(cls, path: Path, limits: JournalLimits = JournalLimits(), *, store: Store | None = None,
                   spill_places: Sequence[Path] = ()) -> "Journal":
        """Open the journal. A refusing disk does not stop the gateway: the journal starts degraded.

        `spill_places`: where a stop on a refusing disk writes what it holds, in order of preference
        (and where this start looks for what an earlier stop left there)."""
        journal = cls(path, limits, store, spill_places)
        await journal._start()
        return journal

    async def _start(self) -> None:
        store = self._store
        spills = await self._run(spill.read, self._places(), self.path)
        try:
            notes = await self._run(store.open, None)
        except (sqlite3.Error, OSError) as fault:
            # Not damage (that is handled inside open): keep the file, say so, keep going.
            self._next_seq = await self._run(store.peek_next_seq)
            self._head = self._settled_through = (self._next_seq or 1) - 1
            self._replay(spills)
            await self._fault(fault, writing=False)
        else:
            self._next_seq = store.next_seq
            self._head = self._settled_through = (store.skipped[0] if store.skipped else store.next_seq) - 1
            self._note_skipped()
            self._replay(spills)
            for note in notes:
                self._admit(note, None)
        self._writer = asyncio.create_task(self._write_forever(), name="journal-writer")
        self._writer.add_done_callback(self._writer_ended)

    def _places(self) -> list[Path]:
        """The spill places, then the journal's own dir (a disk may refuse SQLite and still take a small file)."""
        places = [p for p in self.spill_places if p != self.path.parent]
        return places + [self.path.parent]

    def _replay(self, spills: list[spill.Spill]) -> None:
        """Queue what earlier stops spilled, before anything new: seq never goes past them again,
        their losses are counted, and their files go once the events are written."""
        if not spills:
            return
        given = max((s.given_through for s in spills if s.given_through is not None), default=None)
        self._given_floor = given  # where numbering starts at the latest, once the file can say where it stands
        if given is not None and self._next_seq is not None and given >= self._next_seq:
            self._gaps.append(Gap(self._next_seq, given, "unclean_stop", 0))
            self._next_seq = given + 1
        numbered = sorted(((seq, e) for s in spills for seq, e in s.events if seq is not None), key=lambda pair: pair[0])
        unnumbered = [e for s in spills for seq, e in s.events if seq is None]
        for seq, event in numbered:  # one written after all (a spill not removed last time) is skipped by id
            self._pending.append(Entry(event, seq, None, replayed=True))
        for event in unnumbered:
            self._admit(event, None).replayed = True
        self._replaying = sum(1 for entry in self._pending if entry.replayed)
        self._again = True  # a spill read twice must not write an event twice
        self._spill_files = [s.path for s in spills if s.path is not None]
        log.warning("journal replays events spilled at an earlier stop", events=self._replaying,
                    files=[str(p) for p in self._spill_files], given_through=given)
        for s in spills:
            if s.lost:
                self._losses.merge(s.lost)
        self._report_losses("closed")
        self._work.set()

    def _note_skipped(self) -> None:
        """The file's head was below the seq mark: the range was maybe handed out, never written
        (the store recorded it as a gap when it opened)."""
        skipped, self._store.skipped = self._store.skipped, None
        if skipped is not None:
            log.warning("journal continues above its seq mark: the last stop was not clean",
                        skipped_first_seq=skipped[0], skipped_last_seq=skipped[1])

    @property
    def head_seq(self) -> int:
        """The seq the last committed event got (0 for an empty journal)."""
        return self._head

    @property
    def commits(self) -> int:
        """Transactions committed since open: events per commit is the group-commit factor."""
        return self._store.commits

    @property
    def degraded(self) -> bool:
        """True while the disk refuses writes and events are held in memory."""
        return self._outage is not None

    @property
    def fault(self) -> dict[str, Any] | None:
        """While degraded: why the disk refuses (fault, code, error) and how much is held; else None."""
        outage = self._outage
        if outage is None:
            return None
        return {**outage.fault, "held": len(self._pending), "since_s": round(time.monotonic() - outage.since, 1)}

    async def append(self, event: Event) -> int | None:
        """Queue an event and wait until it is durable; returns its seq.

        While the journal is degraded nobody waits for a disk: the event is held in memory
        with its seq and append returns at once (the seq is final; the event is written when
        the disk allows, or its loss is journaled). The seq is None only if the journal could
        read neither its file nor the seq mark (the state directory unreadable): the event
        then gets its seq when it is written."""
        while self._outage is None and len(self._pending) >= self.limits.max_pending and not self._closing:
            self._space.clear()
            await self._space.wait()
        if self._closing:
            raise JournalError("journal is closed")
        if self._outage is not None:
            return self._admit(event, None).seq
        entry = self._admit(event, self._loop.create_future())
        return await entry.waiter  # type: ignore[misc]

    def _admit(self, event: Event, waiter: asyncio.Future[int | None] | None) -> Entry:
        seq = self._next_seq
        if seq is not None:
            self._next_seq = seq + 1
        entry = Entry(event, seq, waiter)
        self._pending.append(entry)
        if self._outage is not None and seq is not None and seq > self._leased - LEASE_BLOCK // 2:
            self._lease()
        self.bus.admit(seq, event)
        if self._outage is not None and len(self._pending) > self.limits.buffer_events:
            self._shed()
        self._work.set()
        return entry

    def _shed(self) -> None:
        """The buffer is full: drop the oldest of the least important events (alarms only if nothing else is held).

        A 64th of the buffer goes at once, so a long outage costs one pass per 64th, not per event."""
        limit = self.limits.buffer_events
        quota = len(self._pending) - limit + max(0, limit // 64 - 1)
        held = Counter(entry.event.priority for entry in self._pending)
        while quota > 0:
            lowest = min(p for p, n in held.items() if n)
            take = min(quota, held[lowest])
            quota -= take
            held[lowest] -= take
            kept: deque[Entry] = deque()
            for entry in self._pending:
                if take and entry.event.priority is lowest:
                    take -= 1
                    self._lose(entry)
                else:
                    kept.append(entry)
            self._pending = kept

    def _lose(self, entry: Entry, failure: Exception | None = None) -> None:
        self._losses.add(entry)
        if entry.replayed:
            self._replaying -= 1
        if failure is not None:
            entry.settle(failure)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Run in the writer thread: nothing that touches the disk runs on the loop."""
        return await self._loop.run_in_executor(self._thread, function, *args)

    # --- the writer -------------------------------------------------------------------

    async def _write_forever(self) -> None:
        """Write batches in seq order until closed; while the disk refuses, retry with backoff."""
        while True:
            outage = self._outage
            if outage is not None and not self._closing:
                delay = outage.retry_at - self._loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stop.wait()
                    continue
            if not self._pending:
                if self._closing:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            await self._write_next()
            if self._closing and self._outage is not None:
                return  # the last attempt failed too; close() reports what is left
            if self._outage is None and time.monotonic() - self._store.last_maintenance >= self.limits.maintenance_every_s:
                await self._maintain()

    async def _write_next(self) -> None:
        store = self._store
        if not store.is_open:
            try:
                notes = await self._run(store.open, self._floor())
            except Exception as fault:  # noqa: BLE001 - damage is handled inside open; the rest is the disk's
                await self._fault(fault, writing=False)
                return
            self._opened(notes)
        count = min(len(self._pending), self.limits.max_batch)
        batch = self._in_flight = [self._pending.popleft() for _ in range(count)]
        self._space.set()
        gaps = list(self._gaps)
        try:
            await self._committing(self._run(store.write, [(e.seq, e.event) for e in batch], self._again, gaps))
        except Exception as fault:  # noqa: BLE001 - every failure is sorted below, none is lost silently
            if is_rejected(fault):
                await self._write_singly(batch, fault)
            else:
                self._pending.extendleft(reversed(batch))  # they keep their seqs and their place
                await self._fault(fault, writing=True)
            return
        finally:
            self._in_flight = []
        self._again = False
        del self._gaps[: len(gaps)]
        self._written(batch)
        await self._replayed(batch)

    async def _replayed(self, batch: list[Entry]) -> None:
        """Once every replayed event is written, the spill files they came from go."""
        if not self._spill_files:
            return
        self._replaying -= sum(1 for entry in batch if entry.replayed)
        if self._replaying <= 0:
            files, self._spill_files = self._spill_files, []
            await self._run(spill.remove, files)

    async def _committing(self, write: Awaitable[None]) -> None:
        """Await a commit; one that takes longer than `stall_s` degrades the journal meanwhile, so
        nobody waits on a disk that hangs (its producers get their seqs, new events are buffered)."""
        commit = asyncio.ensure_future(write)
        done, _ = await asyncio.wait({commit}, timeout=self.limits.stall_s)
        if not done and self._outage is None:
            stalled = {"fault": "stalled", "code": "", "error": f"a commit took longer than {self.limits.stall_s} s"}
            self._degrade(stalled)
        await commit

    def _floor(self) -> int | None:
        """The lowest seq handed out and not yet written: where a new file must start."""
        for entry in self._pending:
            if entry.seq is not None:
                return entry.seq
        return self._next_seq

    def _opened(self, notes: list[Event]) -> None:
        """The file is open again: number what was held unnumbered, note a skipped range, queue the notes."""
        store = self._store
        self._note_skipped()
        if self._next_seq is None:
            # Above the file and above anything replayed from a spill with its seq.
            self._next_seq = max(store.next_seq, 1 + max((e.seq for e in self._pending if e.seq is not None), default=0),
                                 1 + (self._given_floor or 0))
            self._head = self._settled_through = store.next_seq - 1
            for entry in self._pending:
                if entry.seq is None:
                    entry.seq, self._next_seq = self._next_seq, self._next_seq + 1
        floor = self._floor()
        if floor is not None and store.next_seq < floor:
            # The seq was taken from the mark while the file could not be read: these were never used.
            self._skipped = (store.next_seq, floor - 1)
            self._gaps.append(Gap(store.next_seq, floor - 1, "never_used", 0))
        for note in notes:
            self._admit(note, None)

    def _written(self, batch: list[Entry]) -> None:
        # max: replayed events may sit below a head the seq mark already moved past
        self._head = self._settled_through = max(self._head, batch[-1].seq)  # type: ignore[type-var]
        for entry in batch:
            entry.settle()
        self._committed.set()
        self._committed = asyncio.Event()
        self._resolve_flushes()
        if self._outage is not None:
            self._recovered()

    async def _write_singly(self, batch: list[Entry], fault: Exception) -> None:
        """The database refused the batch whatever the disk does (an event appended twice, a bug): write
        its events one by one, so only the event at fault is lost; its producer learns it, the loss is journaled."""
        written: list[Entry] = []
        for index, entry in enumerate(batch):
            try:
                await self._run(self._store.write, [(entry.seq, entry.event)], True)
            except Exception as refusal:  # noqa: BLE001 - this one event is refused; the rest still go
                if not is_rejected(refusal):  # the disk now refuses too: hold the rest, as for any batch
                    rest = batch[index:]
                    self._pending.extendleft(reversed(rest))
                    if written:
                        self._written(written)
                    await self._fault(refusal, writing=True)
                    return
                log.error("journal refused an event", event_id=entry.event.id, kind=str(entry.event.kind),
                          error=f"{type(refusal).__name__}: {refusal}")
                self._lose(entry, JournalError(str(refusal)))
            else:
                written.append(entry)
        log.warning("journal wrote a refused batch event by event", error=f"{type(fault).__name__}: {fault}",
                    events=len(batch), written=len(written))
        if written:
            self._written(written)
        self._settled_through = max(self._settled_through, batch[-1].seq or 0)
        self._resolve_flushes()
        self._report_losses("write_refused")

    async def _fault(self, fault: BaseException, writing: bool) -> None:
        """The disk refused: enter (or stay in) degraded mode, and schedule the next attempt."""
        described = describe(fault)
        if writing:
            self._again = True
        if is_damage(fault) or described["fault"] in REOPEN_AFTER:
            await self._run(self._store.disconnect)
        outage = self._outage or self._degrade(described)
        outage.attempts += 1
        delay = next(outage.delays)
        outage.retry_at = self._loop.time() + delay
        if outage.attempts > 1:
            log.warning("journal still unavailable", retry_in_s=round(delay, 2), held=len(self._pending), **described)

    def _degrade(self, described: dict[str, Any]) -> Refusal:
        """Enter degraded mode: raise the alarm and let every waiting producer go with its seq."""
        outage = self._outage = Refusal(described, time.monotonic(), retry_delays(self.limits))
        log.error("journal unavailable; events are held in memory", path=str(self.path), held=len(self._pending), **described)
        for entry in [*self._in_flight, *self._pending]:
            entry.settle()  # nobody waits on a disk that refuses: each producer gets its seq now
        for _, done in self._flushes:
            if not done.done():
                done.set_result(False)
        self._flushes.clear()
        self._space.set()
        body = {**described, "path": str(self.path), "buffer_events": self.limits.buffer_events}
        self._admit(Event(Kind.JOURNAL_UNAVAILABLE, Priority.ALARM, "journal", body), None)
        self._lease()  # the seqs just given (and those to come) are covered before a crash can forget them
        return outage

    def _recovered(self) -> None:
        outage, self._outage = self._outage, None
        assert outage is not None
        body: dict[str, Any] = {"fault": outage.fault["fault"], "unavailable_s": round(time.monotonic() - outage.since, 1),
                                "attempts": outage.attempts, "held": len(self._pending)}
        if self._skipped:
            body |= {"skipped_first_seq": self._skipped[0], "skipped_last_seq": self._skipped[1]}
            self._skipped = None
        log.warning("journal writable again", **body)
        self._admit(Event(Kind.JOURNAL_RECOVERED, Priority.ALARM, "journal", body), None)
        self._report_losses("buffer_full")
        if self._lease_at is not None:
            self._job(self._drop_lease())

    def _lease(self) -> None:
        """Lease seqs ahead in a spill place (the state disk refuses the seq mark): a daemon killed
        while degraded leaves no spill, and the next start must still continue above what it gave."""
        if self._next_seq is None or any(not job.done() for job in self._lease_jobs):
            return
        if self._lease_refused is not None and self._loop.time() - self._lease_refused < self.limits.retry_max_s:
            return
        through = self._next_seq - 1 + LEASE_BLOCK
        self._job(self._write_lease(through))

    def _job(self, work: Awaitable[None]) -> None:
        job = asyncio.ensure_future(work)
        self._lease_jobs.add(job)
        job.add_done_callback(self._lease_jobs.discard)

    async def _write_lease(self, through: int) -> None:
        lease = spill.Spill(str(self.path), through)
        where = await self._loop.run_in_executor(self._spiller, spill.write, self._places(), lease, spill.lease_name(self.path))
        if where is None:
            if self._lease_refused is None:
                log.error("journal seq lease taken by no place: a crash now could give a seq twice", through=through)
            self._lease_refused = self._loop.time()
            return
        self._leased, self._lease_at, self._lease_refused = through, where, None
        if self._outage is None:  # recovered meanwhile: the lease is no longer needed
            await self._drop_lease()

    async def _drop_lease(self) -> None:
        """Every seq handed out is written now (or recorded lost): the lease goes."""
        where, self._lease_at, self._leased = self._lease_at, None, 0
        if where is not None:
            await self._loop.run_in_executor(self._spiller, spill.remove, [where])

    def _report_losses(self, reason: str) -> None:
        losses = self._losses
        if losses.count:
            body = losses.body(reason)
            log.error("journal lost events", **body)
            if losses.first_seq is not None and losses.last_seq is not None:
                self._gaps.append(Gap(losses.first_seq, losses.last_seq, reason, losses.count))
            self._losses = Losses()
            self._admit(Event(Kind.JOURNAL_EVENTS_LOST, Priority.ALARM, "journal", body), None)

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """A writer that dies of a bug must not leave producers waiting forever."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("journal writer failed", error=repr(task.exception()))
        failure = JournalError(f"journal writer failed: {task.exception()!r}")
        for entry in [*self._in_flight, *self._pending]:
            entry.settle(failure)
        for _, done in self._flushes:
            if not done.done():
                done.set_result(False)

    async def _maintain(self) -> None:
        self._store.last_maintenance = time.monotonic()
        if not self._store.is_open:
            return
        try:
            notes = await self._run(self._store.maintain, time.time_ns())
        except (sqlite3.Error, OSError) as failure:
            log.error("journal maintenance failed", error=str(failure))
            return
        for note in notes:
            log.warning("journal maintenance", event_id=note.id, kind=str(note.kind), **note.body)
            self._admit(note, None)

    # --- waiting on the journal ---------------------------------------------------------

    async def wait_beyond(self, seq: int, timeout_s: float) -> bool:
        """Wait until an event above `seq` is committed, or `timeout_s` passes; True if one was.

        Readers of the journal (the uplink's push) wake on this instead of polling the file."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.head_seq <= seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            committed = self._committed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await committed.wait()
        return True

    async def maintain_now(self) -> None:
        """Apply retention and the cap now (the writer also does it every few seconds)."""
        await self.flush()
        await self._maintain()
        await self.flush()

    async def flush(self) -> bool:
        """Wait until everything appended so far is written (or reported lost); True when it is.

        False at once while the journal is degraded: what it holds is written when the disk
        allows. A flush waits on its own future, never among the producers of a batch."""
        if self._outage is not None:
            return False
        target = (self._next_seq or 1) - 1
        if self._settled_through >= target or not (self._pending or self._in_flight):
            return True
        done: asyncio.Future[bool] = self._loop.create_future()
        self._flushes.append((target, done))
        return await done

    def _resolve_flushes(self) -> None:
        waiting = []
        for target, done in self._flushes:
            if self._settled_through >= target:
                if not done.done():
                    done.set_result(True)
            else:
                waiting.append((target, done))
        self._flushes = waiting

    async def close(self, timeout_s: float = CLOSE_WITHIN_S) -> None:
        """Write what is queued, settle every producer, stop the writer, checkpoint the WAL.

        A batch in the middle of its write is never abandoned: close waits for the writer to
        finish. A degraded journal gets one last attempt; whatever it still holds goes to a spill
        file (replayed at the next start), or, where no place takes one, is logged as lost.
        `timeout_s` bounds it all, so a disk that hangs cannot hold up systemd's stop."""
        if self._closing:
            return
        deadline = self._loop.time() + timeout_s
        self._closing = True
        self._stop.set()
        self._work.set()
        self._space.set()  # producers waiting for room learn that the journal is closed
        writer = self._writer
        finished = True
        if writer is not None:
            done, _ = await asyncio.wait({writer}, timeout=timeout_s)
            finished = writer in done
            if not finished:
                log.error("journal writer did not finish in time; closing without it", timeout_s=timeout_s,
                          in_flight=len(self._in_flight), pending=len(self._pending))
                writer.cancel()
        if self._lease_jobs:
            await asyncio.wait(set(self._lease_jobs), timeout=max(0.0, deadline - self._loop.time()))
        left = [*self._in_flight, *self._pending]
        given = None if self._next_seq is None else self._next_seq - 1
        spilled = None
        if left or self._losses.count or (given is not None and given > self._head):
            spilled = await self._spill(left, given, deadline)
        if spilled is not None:
            for entry in left:
                entry.settle()  # held elsewhere with its seq; written at the next start
            log.error("journal closed with events never written; spilled for the next start", path=str(self.path),
                      spill=str(spilled), events=len(left), given_through=given, **self._losses.body("closed"))
        else:
            failure = JournalError("journal closed before the event was written")
            for entry in left:
                self._lose(entry, failure)
            if self._losses.count:
                log.error("journal closed with events never written", path=str(self.path), **self._losses.body("closed"))
        self._pending.clear()
        for _, done in self._flushes:
            if not done.done():
                done.set_result(False)
        clean = finished and not left and not self._losses.count and self._outage is None \
            and self._next_seq is not None and self._next_seq == self._store.next_seq
        if (spilled is not None or clean) and self._lease_at is not None:
            with contextlib.suppress(OSError):
                await self._loop.run_in_executor(self._spiller, spill.remove, [self._lease_at])  # the spill (or the file) says it now
        if finished:
            try:
                await self._run(self._store.close, clean)
            except (sqlite3.Error, OSError) as fault:
                log.error("journal close failed", **describe(fault))
        self._thread.shutdown(wait=finished)
        self._spiller.shutdown(wait=False)

    async def _spill(self, left: list[Entry], given: int | None, deadline: float) -> Path | None:
        """Write what is held to the first spill place that takes it (its own thread: the writer's may hang)."""
        held = spill.Spill(str(self.path), given, [(entry.seq, entry.event) for entry in left],
                           self._losses.body("closed") if self._losses.count else None)
        try:
            async with asyncio.timeout(max(0.0, deadline - self._loop.time())):
                where = await self._loop.run_in_executor(self._spiller, spill.write, self._places(), held)
                if where is not None and self._spill_files:
                    await self._loop.run_in_executor(self._spiller, spill.remove, self._spill_files)  # in the new spill now
        except TimeoutError:
            log.error("journal spill did not finish in time", events=len(left))
            return None
        return where
