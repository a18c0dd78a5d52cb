"""Refused and dropped downlink messages: counted each, journaled once per topic and reason per window.

Anyone who can reach the broker can publish to the gateway's downlink topics, as fast as
they like. Each refused message (unsigned, malformed, too large...) or dropped one (the
incoming queue was full) costs a counter here; the journal gets the first of a burst at
once and then one event per (topic, reason) per window saying how many it stands for
(`edge.runtime.throttle.Throttle`). They are FAULT priority, which the disk cap may evict: a flood
must not grow the protected part of the journal. Counts still held back are journaled when
their window ends (`run`) and when the uplink stops (`close`). The handler of a message only
counts; `run` does the journaling, so a refusal never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from typing import Hashable

import structlog

from edge.events import Event, Kind, Priority
from edge.uplink.kinds import UplinkKind
from edge.journal import Journal, JournalError
from edge.runtime.throttle import Throttle

log = structlog.get_logger("edge.uplink")

WINDOW_S = 60.0
FLUSHES_PER_WINDOW = 4  # a held count is journaled at most a quarter window after its window ends


class Refusals:
    def __init__(self, journal: Journal, window_s: float = WINDOW_S) -> None:
        self.journal = journal
        self.throttle = Throttle(window_s)
        # releases waiting for `run`; at most one per key per window, so bounded by the throttle's keys
        self._ready: deque[Event] = deque()
        self._wake = asyncio.Event()

    def note(self, kind: Kind, topic: str, reason: str, detail: str = "") -> bool:
        """Count one refused (DOWNLINK_REFUSED) or dropped (DOWNLINK_DROPPED) message; True when
        it is journaled now (the first of its window), so a caller may log more about it."""
        count = self.throttle.offer((kind, topic, str(reason)), time.monotonic())
        if count is not None:
            self._release((kind, topic, str(reason)), count, detail)
        return count is not None

    def _release(self, key: Hashable, count: int, detail: str) -> None:
        kind, topic, reason = key if isinstance(key, tuple) else (UplinkKind.DOWNLINK_REFUSED, str(key), str(key))
        body = {"topic": topic, "reason": reason, "count": count, "window_s": self.throttle.window_s}
        if detail:
            body["detail"] = detail[:300]
        event = Event(kind=kind, priority=Priority.FAULT, source="uplink", body=body)
        log.warning("downlink refused" if kind == UplinkKind.DOWNLINK_REFUSED else "downlink dropped",
                    event_id=event.id, topic=topic, reason=reason, count=count)
        self._ready.append(event)
        self._wake.set()

    async def run(self) -> None:
        """Journal releases as they come, and held counts whose window has ended; until cancelled."""
        loop = asyncio.get_running_loop()
        flushed_at = loop.time()
        while True:
            self._wake.clear()
            await self._journal_ready()
            next_flush = flushed_at + self.throttle.window_s / FLUSHES_PER_WINDOW
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_flush):
                    await self._wake.wait()
            if loop.time() >= next_flush:
                flushed_at = loop.time()
                for key, count in self.throttle.flush(time.monotonic()):
                    self._release(key, count, "")

    async def close(self) -> None:
        """Journal every count still held back (the uplink is stopping); the next run starts afresh."""
        for key, count in self.throttle.flush(math.inf):
            self._release(key, count, "")
        self.throttle = Throttle(self.throttle.window_s, self.throttle.max_keys)
        await self._journal_ready()

    async def _journal_ready(self) -> None:
        while self._ready:
            event = self._ready.popleft()  # once handed over, a cancelled wait still commits it
            try:
                await self.journal.append(event)
            except JournalError as error:
                log.error("refusal not journaled", event_id=event.id, error=str(error))
