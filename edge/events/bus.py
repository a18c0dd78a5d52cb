"""The building's bus: every event the journal admits, handed at once to the live parts.

The journal is the record; it is not a way to hear what just happened. While the disk
refuses writes the journal's head stops, yet doors still decide and the tenant's card must
still disarm her zone. So the journal hands each event it admits (numbered, before it is
written, also when it is only buffered in memory) to this bus, and the live consumers
(intrusion arming, the inactivity watch, the status page's overlay) take it from here.
Parts that must not miss anything across a restart read the journal instead (see
`edge.journal.follower`): the bus is for now, the journal for always.

Each subscriber has a bounded queue. The producer is the journal's append, on the access
path, so it never waits: when a subscriber's queue is full its oldest notice is dropped (the
newest tap matters most) and the drop is counted (`Subscriber.dropped`) and logged once per
overflow. A subscriber that must know what it missed reads the journal for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from edge.events import Event

log = structlog.get_logger("edge.events.bus")

QUEUE = 256  # notices a subscriber may hold before its oldest is dropped


@dataclass(frozen=True, slots=True)
class Notice:
    """An admitted event and its seq (None only while the journal cannot tell its seq yet).
    The event is the one the journal holds: read it, never change its body."""

    seq: int | None
    event: Event

    @property
    def kind(self) -> str:
        return self.event.kind

    @property
    def body(self) -> dict[str, Any]:
        return self.event.body


class Subscriber:
    """One live consumer's bounded queue; iterate it (`async for notice in subscriber`) until cancelled."""

    def __init__(self, bus: Bus, name: str, kinds: frozenset[str], size: int) -> None:
        self.bus = bus
        self.name = name
        self.kinds = kinds  # empty: every kind
        self._queue: deque[Notice] = deque(maxlen=size)
        self._ready = asyncio.Event()
        self.dropped = 0
        self._overflowing = False

    def offer(self, notice: Notice) -> None:
        """From the journal's admit path: never waits; a full queue loses its oldest notice."""
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                log.error("bus subscriber behind; its oldest notices are dropped", subscriber=self.name, size=queue.maxlen)
        queue.append(notice)
        self._ready.set()

    async def get(self) -> Notice:
        """The next notice, waiting for one."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        self._overflowing = False
        return self._queue.popleft()

    def pending(self) -> list[Notice]:
        """Take every notice held now, without waiting."""
        taken = list(self._queue)
        self._queue.clear()
        self._overflowing = False
        return taken

    def __aiter__(self) -> AsyncIterator[Notice]:
        return self

    async def __anext__(self) -> Notice:
        return await self.get()

    def close(self) -> None:
        self.bus.leave(self)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Bus:
    """Admitted events to live subscribers, on the loop, in admission order."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, name: str, kinds: Iterable[str] = (), size: int = QUEUE) -> Subscriber:
        """A bounded subscription to these kinds (all when empty); use it `with`, so it ends with its user."""
        subscriber = Subscriber(self, name, frozenset(str(k) for k in kinds), size)
        self._subscribers = (*self._subscribers, subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

    def admit(self, seq: int | None, event: Event) -> None:
        """Called by the journal as it admits an event: costs nothing without subscribers."""
        if not self._subscribers:
            return
        notice = None
        for subscriber in self._subscribers:
            if not subscriber.kinds or event.kind in subscriber.kinds:
                notice = notice or Notice(seq, event)
                subscriber.offer(notice)
