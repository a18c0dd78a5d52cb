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

`Journal` admits each event (a seq and a place in the writer's queue, then the bus) and
composes two state machines, each in a module of its own: the group-commit writer (writer.py: batches, commits, flush, wait_beyond,
maintenance) and the outage buffer (outage.py: degrade and recover, the retry schedule, what is
held, the seq lease, losses, the spill at stop and its replay at start).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from edge.events.bus import Bus
from edge.events import Event
from edge.journal import spill
from edge.journal.outage import OutageBuffer
from edge.journal.store import JournalLimits, Store
from edge.journal.writer import Entry, JournalError, Writer

CLOSE_WITHIN_S = 3.0


class Journal:
    """The gateway's outbox. Use `await Journal.open(...)`, then `await journal.append(event)`."""

    def __init__(self, path: Path, limits: JournalLimits, store: Store | None = None, spill_places: Sequence[Path] = ()) -> None:
        self.path = Path(path)
        self.limits = limits
        self.spill_places = [Path(p) for p in spill_places]  # where a stop on a refusing disk leaves what it holds
        self._store = store if store is not None else Store(self.path, limits)
        self._writer = Writer(self._store, limits, self._admit)  # group commit
        self._outage = OutageBuffer(self.path, limits, self.spill_places, self._writer, self._admit)  # the disk refusing
        self._writer.outage = self._outage  # the writer hands it every refusal and asks it when to retry
        self._loop = asyncio.get_running_loop()
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
        store, writer, outage = self._store, self._writer, self._outage
        spills = await writer.run(spill.read, outage.places(), self.path)
        try:
            notes = await writer.run(store.open, None)
        except (sqlite3.Error, OSError) as fault:
            # Not damage (that is handled inside open): keep the file, say so, keep going.
            writer.next_seq = await writer.run(store.peek_next_seq)
            writer.head = writer.settled_through = (writer.next_seq or 1) - 1
            outage.replay(spills)
            await outage.refused(fault, writing=False)
        else:
            writer.next_seq = store.next_seq
            writer.head = writer.settled_through = (store.skipped[0] if store.skipped else store.next_seq) - 1
            writer.note_skipped()
            outage.replay(spills)
            for note in notes:
                self._admit(note, None)
        writer.start()

    @property
    def head_seq(self) -> int:
        """The seq the last committed event got (0 for an empty journal)."""
        return self._writer.head

    @property
    def commits(self) -> int:
        """Transactions committed since open: events per commit is the group-commit factor."""
        return self._store.commits

    @property
    def degraded(self) -> bool:
        """True while the disk refuses writes and events are held in memory."""
        return self._outage.refusal is not None

    @property
    def fault(self) -> dict[str, Any] | None:
        """While degraded: why the disk refuses (fault, code, error) and how much is held; else None."""
        return self._outage.fault

    async def append(self, event: Event) -> int | None:
        """Queue an event and wait until it is durable; returns its seq.

        While the journal is degraded nobody waits for a disk: the event is held in memory
        with its seq and append returns at once (the seq is final; the event is written when
        the disk allows, or its loss is journaled). The seq is None only if the journal could
        read neither its file nor the seq mark (the state directory unreadable): the event
        then gets its seq when it is written."""
        writer, outage = self._writer, self._outage
        while outage.refusal is None and len(writer.pending) >= self.limits.max_pending and not writer.closing:
            writer.space.clear()
            await writer.space.wait()
        if writer.closing:
            raise JournalError("journal is closed")
        if outage.refusal is not None:
            return self._admit(event, None).seq
        entry = self._admit(event, self._loop.create_future())
        return await entry.waiter  # type: ignore[misc]

    def _admit(self, event: Event, waiter: asyncio.Future[int | None] | None) -> Entry:
        """Number the event and queue it for the writer, hand it to the bus; while degraded the
        outage buffer keeps the seq lease ahead and the held events within their bound."""
        writer, outage = self._writer, self._outage
        entry = writer.queue(event, waiter)
        held = outage.refusal is not None
        if held:
            outage.lease_ahead(entry.seq)
        self.bus.admit(entry.seq, event)
        if held and len(writer.pending) > self.limits.buffer_events:
            outage.shed()
        writer.work.set()
        return entry

    # --- waiting on the journal ---------------------------------------------------------

    async def wait_beyond(self, seq: int, timeout_s: float) -> bool:
        """Wait until an event above `seq` is committed, or `timeout_s` passes; True if one was.

        Readers of the journal (the uplink's push) wake on this instead of polling the file."""
        return await self._writer.wait_beyond(seq, timeout_s)

    async def maintain_now(self) -> None:
        """Apply retention and the cap now (the writer also does it every few seconds)."""
        await self.flush()
        await self._writer.maintain()
        await self.flush()

    async def flush(self) -> bool:
        """Wait until everything appended so far is written (or reported lost); True when it is.

        False at once while the journal is degraded: what it holds is written when the disk
        allows. A flush waits on its own future, never among the producers of a batch."""
        if self._outage.refusal is not None:
            return False
        return await self._writer.flush()

    async def close(self, timeout_s: float = CLOSE_WITHIN_S) -> None:
        """Write what is queued, settle every producer, stop the writer, checkpoint the WAL.

        A batch in the middle of its write is never abandoned: close waits for the writer to
        finish. A degraded journal gets one last attempt; whatever it still holds goes to a spill
        file (replayed at the next start), or, where no place takes one, is logged as lost.
        `timeout_s` bounds it all, so a disk that hangs cannot hold up systemd's stop."""
        writer, outage = self._writer, self._outage
        if writer.closing:
            return
        deadline = self._loop.time() + timeout_s
        finished = await writer.finish(timeout_s)
        left, spilled = await outage.hand_over(deadline)
        writer.pending.clear()
        writer.release_flushes()
        clean = finished and not left and not outage.losses.count and outage.refusal is None \
            and writer.next_seq is not None and writer.next_seq == self._store.next_seq
        await outage.end(lease_needless=spilled is not None or clean)
        await writer.close(finished, clean)
        outage.stop()
