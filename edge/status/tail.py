"""Following the journal for the status page: one reader, however many browsers watch.

One task follows the journal (`edge.journal.follower`: woken by its commits, reading what is
new through a read-only connection in the status reader thread), folds it into the
BuildingView and hands each listener the same pre-encoded server-sent-event bytes. Reads are coalesced (at
most a few a second), so the cost to the loop is one fold per batch and one queue put per
listener per batch, whatever the event rate; the access path never waits for a browser.
A listener's queue is bounded: a browser that cannot keep up is told to reload its state
(`lagged`) instead of growing the daemon's memory.

While the disk refuses writes the journal's head stands still, and a page folded only from the
journal would show the building as it was when the disk stopped (doors released by a fire shown
locked). So the tail also listens on the bus (`edge.events.bus`): while the journal is degraded, events
it has admitted but not written are folded in as an overlay, after everything committed; once
they are written the follower passes over the ones already shown.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from edge.events.bus import Notice, Subscriber
from edge.events import Kind, Priority, StoredEvent
from edge.journal import EventQuery, Journal, read_events
from edge.journal.follower import Follower
from edge.status.view import BuildingView, is_news

log = structlog.get_logger("edge.status")

READ_BATCH = 2000
COALESCE_S = 0.25  # at most four journal reads a second for the page, however busy the building
STATE_EVERY_S = 1.0  # a state message at least this often (doors relock without an event)
LISTENER_QUEUE = 64
MAX_LISTENERS = 16
RECENT_TELEMETRY_S = 2 * 3600
UNWRITTEN = 4096  # admitted events not yet written, held for the overlay (the oldest go first)
OVERLAID = 16384  # overlay seqs remembered so the follower does not fold them twice (the journal's own buffer)


def dumps(data: object) -> str:
    """JSON as the page's stream and endpoints send it: compact, UTF-8, anything else as its str."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


def sse(name: str, data: object) -> bytes:
    """One server-sent event, encoded once for every listener."""
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()


@dataclass(eq=False)
class Listener:
    """One browser's stream: a bounded queue of encoded messages."""

    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(LISTENER_QUEUE))
    lagged: bool = False

    def offer(self, message: bytes | None) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.lagged = True  # the handler drops the backlog and sends the whole state again
            while not self.queue.empty():
                self.queue.get_nowait()
            if message is None:
                self.queue.put_nowait(None)


class TooManyListeners(RuntimeError):
    pass


def fold_journal(path: Path, view: BuildingView, through_seq: int | None = None, now_ns: int | None = None) -> None:
    """Rebuild the view from the journal: every event above telemetry since the last start,
    and the recent telemetry (a month of readings is for `edge events`, not for a glance).
    Blocking: run it in a thread."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    started = read_events(path, EventQuery(kinds=(str(Kind.GATEWAY_STARTED),), limit=1, newest_first=True))
    after = started[0].seq - 1 if started else 0
    news = read_events(path, EventQuery(after_seq=after, min_priority=Priority.FAULT, limit=None))
    telemetry = read_events(path, EventQuery(after_seq=after, since_ns=now_ns - RECENT_TELEMETRY_S * 10**9,
                                             kinds=(str(Kind.POINT_READING),), limit=None))
    for event in sorted([*news, *telemetry], key=lambda e: e.seq):
        if through_seq is None or event.seq <= through_seq:
            view.apply(event)
    if started:
        view.started_at = started[0].wall_ns / 1e9


class JournalTail:
    """Keeps a BuildingView current and streams what is new to listeners."""

    def __init__(self, journal: Journal, view: BuildingView, reader: Executor,
                 live: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.journal = journal
        self.view = view
        self.reader = reader
        self.live = live  # adds what only the running daemon knows (devices online now, uplink backlog)
        self.listeners: set[Listener] = set()
        self.follower = Follower(journal, "status-tail", 0, reader=reader)
        self.admitted: Subscriber | None = None  # from catch_up on: a tail that never runs holds nothing
        self._unwritten: deque[Notice] = deque(maxlen=UNWRITTEN)
        self._overlaid: set[int] = set()
        self._overlaid_order: deque[int] = deque()

    @property
    def seq(self) -> int:
        """Everything up to here is folded into the view."""
        return self.follower.seq

    async def catch_up(self) -> None:
        loop = asyncio.get_running_loop()
        if self.admitted is None:
            self.admitted = self.journal.bus.subscribe("status-overlay", size=UNWRITTEN)
        through = self.journal.head_seq  # what is committed later is read by run(), not twice
        try:
            await loop.run_in_executor(self.reader, fold_journal, self.journal.path, self.view, through)
        except (OSError, sqlite3.Error) as unreadable:
            # A state disk that refused the journal's file (none, or no tables yet): the page starts
            # from what is admitted now; restarting the server would not make the file readable.
            log.warning("status view starts without the journal's history", error=f"{type(unreadable).__name__}: {unreadable}")
        self.follower.skip(through)

    def listen(self) -> Listener:
        if len(self.listeners) >= MAX_LISTENERS:
            raise TooManyListeners(f"{MAX_LISTENERS} status page streams are open already")
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def close(self) -> None:
        """Tell every stream to end (the server is stopping), and stop listening on the bus."""
        if self.admitted is not None:
            self.admitted.close()
        for listener in self.listeners:
            listener.offer(None)

    def state_message(self) -> bytes:
        snapshot = self.view.snapshot(time.time())
        for point in snapshot["points"]:
            point.pop("history")  # the page keeps its own series; the stream carries readings
        if self.live is not None:
            self.live(snapshot)
        return sse("state", snapshot)

    async def run(self) -> None:
        """Follow the journal until cancelled."""
        loop = asyncio.get_running_loop()
        last_state = 0.0
        follower = self.follower
        while True:
            await follower.committed(STATE_EVERY_S)
            messages: list[bytes] = []
            if follower.behind:
                messages = self._fold(await follower.read(READ_BATCH))
            messages += self._overlay()
            if messages or loop.time() - last_state >= STATE_EVERY_S:
                messages.append(self.state_message())
                last_state = loop.time()
            for listener in list(self.listeners):
                for message in messages:
                    listener.offer(message)
            await asyncio.sleep(COALESCE_S)

    def _overlay(self) -> list[bytes]:
        """Fold what the journal admitted and has not written, while it cannot write (after all that is committed)."""
        head = self.journal.head_seq
        unwritten = self._unwritten
        if self.admitted is not None:
            unwritten.extend(n for n in self.admitted.pending() if n.seq is not None and n.seq > head)
        while unwritten and unwritten[0].seq <= head:  # type: ignore[operator]
            unwritten.popleft()
        if not self.journal.degraded or self.follower.behind:
            return []
        fresh = [_stored(n) for n in unwritten if n.seq not in self._overlaid]
        for event in fresh:
            self._overlaid.add(event.seq)
            self._overlaid_order.append(event.seq)
        while len(self._overlaid_order) > OVERLAID:
            self._overlaid.discard(self._overlaid_order.popleft())
        return self._fold(fresh, overlay=True)

    def _fold(self, events: Iterable[StoredEvent], overlay: bool = False) -> list[bytes]:
        messages = []
        for event in events:
            if not overlay:
                self.follower.skip(event.seq)
                if event.seq in self._overlaid:  # shown from the bus while the disk refused
                    self._overlaid.discard(event.seq)
                    continue
            self.view.apply(event)
            if is_news(event):
                messages.append(sse("journal", event.as_dict()))
            elif event.kind == Kind.POINT_READING:
                body = event.body
                messages.append(sse("reading", {"owner": event.source, "point": body.get("point"), "at": round(event.wall_ns / 1e9, 1),
                                                "value": body.get("value")}))
        return messages


def _stored(notice: Notice) -> StoredEvent:
    """An admitted event as the view folds it (its seq is final: the journal gave it)."""
    event = notice.event
    return StoredEvent(notice.seq, event.id, event.wall_ns, event.mono_ns, str(event.kind), event.priority,  # type: ignore[arg-type]
                       event.source, event.body)
