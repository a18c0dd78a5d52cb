"""The access path's hand-over to the journal: a bounded queue and one task that drains it.

A decision, an unlock and a door alarm must never wait on the SD card, so the access path
only queues its events (`record`, which never blocks); one task per access path hands them
to the journal in order, up to CONCURRENT at a time so they share the journal's group
commit. Nothing is fire-and-forget: the task is awaited by the access path, and what it
could not journal is counted, logged with the events' ids, and journaled as one
`access.unjournaled` (protected from eviction, like the decisions it stands for) with
the next events that do go through.

Full queue (the journal is stuck for longer than `size` events take to arrive): the newest
event is dropped, counted and logged with its id; the door still acts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque

import structlog

from edge.events import Event, Priority
from edge.doors.kinds import DoorKind
from edge.journal import Journal

log = structlog.get_logger("edge.doors")

QUEUE_SIZE = 1024
CONCURRENT = 64  # appends awaited at once (each is a task while it waits for its commit)
DRAIN_S = 1.5  # at stop (the supervisor allows 2 s), how long the queue may take to reach the journal


class Recorder:
    """Queues the access path's events and hands them to the journal from one task."""

    def __init__(self, journal: Journal, size: int = QUEUE_SIZE) -> None:
        self.journal = journal
        self.size = size
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped = 0  # events never handed to the journal (queue full), since start
        self.failed = 0  # events the journal refused (JournalError), since start
        self._unreported: Counter[str] = Counter()  # dropped/failed not yet in a fault event
        self._last_error = ""
        self._overflowing = False

    def record(self, event: Event) -> None:
        """Queue `event` for the journal and return at once."""
        if len(self._queue) >= self.size:
            self.dropped += 1
            self._unreported["dropped"] += 1
            if not self._overflowing:  # once per overflow, not once per event
                log.error("access journal queue full, dropping events", first_event_id=event.id, kind=str(event.kind), queued=self.size)
            self._overflowing = True
            return
        self._overflowing = False
        self._queue.append(event)
        self._idle.clear()
        self._ready.set()

    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        """Hand queued events to the journal until cancelled."""
        while True:
            await self._ready.wait()
            batch = list(self._queue)
            self._queue.clear()
            self._ready.clear()
            if self._unreported:
                batch.append(self._fault())
            await self._journal(batch)
            if not self._queue:
                self._idle.set()

    async def drain(self, timeout_s: float = DRAIN_S) -> bool:
        """Wait until everything queued so far reached the journal (with `run` still running)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
                return True
        log.error("access journal did not drain at stop", queued=len(self._queue), within_s=timeout_s)
        return False

    async def _journal(self, batch: list[Event]) -> None:
        results: list[object] = []
        for start in range(0, len(batch), CONCURRENT):  # appends in flight share one group commit
            chunk = batch[start : start + CONCURRENT]
            results += await asyncio.gather(*(self.journal.append(event) for event in chunk), return_exceptions=True)
        lost: list[str] = []
        for event, result in zip(batch, results):
            if isinstance(result, Exception):
                self._last_error = f"{type(result).__name__}: {result}"[:300]
                if event.kind != DoorKind.ACCESS_UNJOURNALED:  # a lost report is sent again with the next batch
                    lost.append(event.id)
            elif event.kind == DoorKind.ACCESS_UNJOURNALED:
                self._unreported.subtract(event.body["counts"])
                self._unreported = +self._unreported  # forget zeros
        if lost:
            self.failed += len(lost)
            self._unreported["failed"] += len(lost)
            log.error("access events not journaled", count=len(lost), event_ids=lost[:20], error=self._last_error)

    def _fault(self) -> Event:
        counts = dict(self._unreported)
        return Event(DoorKind.ACCESS_UNJOURNALED, Priority.ACCESS, "doors", {"counts": counts, "error": self._last_error})
