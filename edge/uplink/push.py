"""Store-and-forward: journal -> batches -> QoS 1 -> cursor, on one MQTT session.

Events are read only from the journal, in seq order, and published in batches of up to
N events, T ms or B bytes. A batch counts as delivered only when its PUBACK arrives;
then the cursor moves and is saved. Two lanes share the session: alarms are read and
sent the moment they are journaled, ahead of any telemetry backlog and never paced;
the backlog is paced by the bandwidth cap and keeps a bounded window of batches in
flight. When the session ends, nothing in flight is trusted: the next session starts
again from the cursor at once (no timer), and the cloud drops any duplicate by id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from edge.events import Priority, StoredEvent
from edge.journal import Journal, events_after
from edge.uplink.cursor import Progress, SyncCursor
from edge.uplink.mqtt import Connection, ConnectionLost
from edge.uplink.pacing import Pacer
from edge.uplink.topics import WIRE_VERSION, Topics

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
IDLE_POLL_S = 0.005
ALARM_READ = 256


class Lane:
    BACKLOG = "backlog"
    ALARM = "alarm"


@dataclass(frozen=True, slots=True)
class Batching:
    events: int = 500
    window_s: float = 0.02
    max_bytes: int = 128 * 1024
    bandwidth_bytes_per_s: int | None = None
    in_flight: int = 16  # backlog batches awaiting PUBACK


@dataclass(slots=True)
class _Batch:
    lane: str
    seqs: list[int]
    through: int  # the backlog has read (sent or skipped) every seq up to here
    payload: bytes
    acked: bool = False


@dataclass(slots=True)
class PushStats:
    batches_acked: int = 0
    events_acked: int = 0
    bytes_sent: int = 0
    sessions: int = 0


def encode_batch(building: str, lane: str, events: list[StoredEvent], max_bytes: int) -> tuple[bytes, int]:
    """The wire form of a batch, as many events as fit in `max_bytes` (at least one); returns (payload, count)."""
    head = _encode({"v": WIRE_VERSION, "building": building, "lane": lane})[:-1].encode() + b',"events":['
    parts: list[bytes] = []
    size = len(head) + 2
    for event in events:
        part = _encode(event.as_dict()).encode()
        if parts and size + len(part) + 1 > max_bytes:
            break
        parts.append(part)
        size += len(part) + 1
    return head + b",".join(parts) + b"]}", len(parts)


class Pusher:
    """Hands the journal to the broker; one `run(connection)` per session."""

    def __init__(self, journal: Journal, cursor: SyncCursor, topics: Topics, batching: Batching) -> None:
        self.journal = journal
        self.path: Path = journal.path
        self.cursor = cursor
        self.topics = topics
        self.batching = batching
        self.progress: Progress = cursor.load()
        self.stats = PushStats()
        rate = batching.bandwidth_bytes_per_s
        self._pacer = Pacer(rate, max(rate, batching.max_bytes)) if rate else None
        self._wake = asyncio.Event()
        self._dirty = False

    @property
    def synced_seq(self) -> int:
        """Every event at or below this seq is acknowledged by the broker."""
        return self.progress.watermark

    async def run(self, connection: Connection) -> None:
        """Push until the session is lost (raises ConnectionLost); resumes from the cursor."""
        progress = self.progress
        progress.restart()
        self.stats.sessions += 1
        backlog_pos = alarm_pos = progress.watermark
        backlog: deque[_Batch] = deque()
        waiting: _Batch | None = None  # built, held back by the bandwidth cap
        while not connection.lost.is_set():
            self._wake.clear()
            head = self.journal.head_seq
            if head > max(alarm_pos, backlog_pos):
                alarm_pos = await self._send_alarms(connection, max(alarm_pos, backlog_pos), head)
            if waiting is None and len(backlog) < self.batching.in_flight and head > backlog_pos:
                waiting, backlog_pos = await self._next_backlog(backlog_pos)
            if waiting is not None and self._may_send(waiting):
                backlog.append(waiting)
                self._publish(connection, waiting, backlog)
                waiting = None
                continue
            if self._dirty:
                self._dirty = False
                await asyncio.to_thread(self.cursor.save, progress)
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
            except TimeoutError:
                pass
        raise ConnectionLost("session lost")

    async def _send_alarms(self, connection: Connection, after: int, head: int) -> int:
        """Publish every alarm journaled after `after` (up to `head`) at once; returns the read position."""
        events = await asyncio.to_thread(events_after, self.path, after, ALARM_READ, Priority.ALARM)
        fresh = [e for e in events if not self.progress.skip(e.seq)]
        while fresh:
            payload, count = encode_batch(self.topics.building, Lane.ALARM, fresh, self.batching.max_bytes)
            batch = _Batch(Lane.ALARM, [e.seq for e in fresh[:count]], fresh[count - 1].seq, payload)
            self.progress.alarms_in_flight.update(batch.seqs)
            self._publish(connection, batch, None)
            fresh = fresh[count:]
        return events[-1].seq if len(events) == ALARM_READ else max(head, after)

    async def _next_backlog(self, after: int) -> tuple[_Batch | None, int]:
        """The next backlog batch after `after` (None while a small batch is still filling)."""
        limit = self.batching.events
        events = await asyncio.to_thread(events_after, self.path, after, limit)
        if not events:
            return None, after
        if len(events) < limit:
            age_s = (time.monotonic_ns() - events[0].mono_ns) / 1e9
            if 0 <= age_s < self.batching.window_s:
                return None, after  # let it fill for up to T ms
        sendable = [e for e in events if not self.progress.skip(e.seq)]
        if not sendable:
            self.progress.ack_backlog(events[-1].seq)  # all already acknowledged as alarms
            self._dirty = True
            return None, events[-1].seq
        payload, count = encode_batch(self.topics.building, Lane.BACKLOG, sendable, self.batching.max_bytes)
        last = sendable[count - 1].seq if count < len(sendable) else events[-1].seq
        return _Batch(Lane.BACKLOG, [e.seq for e in sendable[:count]], last, payload), last

    def _may_send(self, batch: _Batch) -> bool:
        if self._pacer is None:
            return True
        now = time.monotonic()
        if self._pacer.wait_s(now, len(batch.payload)) > 0:
            return False
        self._pacer.spend(now, len(batch.payload))
        return True

    def _publish(self, connection: Connection, batch: _Batch, backlog: deque[_Batch] | None) -> None:
        self.stats.bytes_sent += len(batch.payload)
        done = connection.publish(self.topics.events, batch.payload)
        done.add_done_callback(lambda f: self._acked(f, batch, backlog))

    def _acked(self, done: asyncio.Future[None], batch: _Batch, backlog: deque[_Batch] | None) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # the session is gone; the next one resends from the cursor
        self.stats.batches_acked += 1
        if backlog is None:
            self.progress.ack_alarms(batch.seqs)
        else:
            batch.acked = True
            while backlog and backlog[0].acked:
                self.progress.ack_backlog(backlog.popleft().through)
        self.stats.events_acked += len(batch.seqs)
        self._dirty = True
        self._wake.set()
