"""Store-and-forward: journal -> batches -> QoS 1 -> cursor, on one MQTT session.

Events are read only from the journal, in seq order, and published in batches of up to
N events, T ms or B bytes. A batch counts as delivered only when its PUBACK arrives;
then the cursor moves and is saved. Two lanes share the session: alarms are read and
sent the moment they are journaled, ahead of any telemetry backlog and never paced;
the backlog is paced by the bandwidth cap and keeps a bounded window of batches in
flight. When the session ends, nothing in flight is trusted: the next session starts
again from the cursor at once (no timer), and the cloud drops any duplicate by id.

Brokers limit message size, and not all of them say so: an MQTT 5 broker may advertise a
Maximum Packet Size (the batch cap is lowered to fit it), but mosquitto's
`message_size_limit` just drops the connection. So a session that ends with its oldest
batch never acknowledged, and nothing acknowledged at all, halves the batch cap for the
next one; resending the same oversized batch forever is the failure this prevents. A
single event that still gets no acknowledgement is reported (`undeliverable`), not
skipped: the worker keeps backing off and retrying, and the log says which seq and size.

The lanes read the journal through two followers (`edge.journal.follower`, one for alarms,
one for the backlog; their positions start at the cursor's watermark each session, and the
cursor, not the followers, keeps what survives a restart). The push loop sleeps until there is
something to do: the journal committed past what it has read (the follower rings, from a small
task), a PUBACK came, or a batch that is filling or held back by the bandwidth cap is due. It
never polls the file.

One exception to "read only from the journal": while the disk refuses writes the journal holds
its events in memory and its head stops, so an alarm (the journal's own `journal_unavailable`
first) would wait for the disk to reach the cloud. Those alarms, numbered and held, are taken
from the bus (`edge.events.bus`) and sent on the alarm lane at once; acknowledged, they are skipped
when the journal writes them later, and the cloud drops a duplicate by id anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edge.events import kinds
from edge.events.bus import Notice
from edge.events import Priority, StoredEvent
from edge.journal import Journal
from edge.journal.follower import Follower
from edge.uplink.cursor import Progress, SyncCursor
from edge.uplink.mqtt import Connection, ConnectionLost, PublishRefused
from edge.uplink.pacing import Pacer
from edge.uplink import wire
from edge.runtime.tasks import cancel_within
from edge.uplink.topics import WIRE_VERSION, Topics

FOLLOW_S = 60.0  # one wait on the journal's commits; renewed, so it is a deadline, not a poll
MIN_IDLE_S = 0.005  # the shortest sleep while a batch fills (batch_ms may be 0)
STOP_WITHIN_S = 0.5  # for the journal follower to end (within the session's deadline)
ALARM_READ = 256
PACKET_OVERHEAD = 64  # MQTT fixed header, message id and properties, beside the topic
MIN_BATCH_BYTES = 1024
HELD_ALARMS = 256  # alarms held by a degraded journal, queued for the direct lane (the oldest go past it)
ALARM_KINDS = kinds.ALARMS

log = structlog.get_logger("edge.uplink")


class PushLane(StrEnum):
    """Which of the session's two lanes a batch went on: its `lane` on the wire."""

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
    lane: PushLane
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
    batch_cap_cuts: int = 0  # sessions that ended with the oldest batch unacknowledged: the cap was halved
    undeliverable: int = 0  # sessions that ended with a single event unacknowledged (it is retried, not skipped)


def encode_batch(building: str, lane: PushLane, events: list[StoredEvent] | list[wire.Encoded], max_bytes: int) -> tuple[bytes, int]:
    """The wire form of a batch, as many events as fit in `max_bytes` (at least one); returns (payload, count)."""
    header = {"v": WIRE_VERSION, "building": building, "lane": lane}
    parts = wire.fit(events, max_bytes - len(wire.message(header, [])))
    return wire.message(header, parts), len(parts)


class Pusher:
    """Hands the journal to the broker; one `run(connection)` per session."""

    def __init__(self, journal: Journal, cursor: SyncCursor, topics: Topics, batching: Batching) -> None:
        self.journal = journal
        self.path: Path = journal.path
        self.cursor = cursor
        self.topics = topics
        self.batching = batching
        self.progress = Progress()  # the saved progress is loaded by `resume`, off the loop, before the first session
        self.stats = PushStats()
        self.batch_cap = batching.max_bytes  # lowered, for the life of the process, when the broker refuses size
        self._refused: PublishRefused | None = None
        rate = batching.bandwidth_bytes_per_s
        self._pacer = Pacer(rate, max(rate, batching.max_bytes)) if rate else None
        self._wake = asyncio.Event()
        self._dirty = False
        self.acked = asyncio.Event()  # set whenever the watermark may have moved: the snapshots lane waits on it
        # Alarms as the journal admits them, for the direct lane while its disk refuses (see the module's note).
        self.held = journal.bus.subscribe("uplink-held-alarms", ALARM_KINDS, HELD_ALARMS)

    async def resume(self) -> None:
        """Take up the saved progress (read on the cursor's thread), once, before the first session."""
        self.progress = await self.cursor.load()

    @property
    def synced_seq(self) -> int:
        """Every event at or below this seq is acknowledged by the broker."""
        return self.progress.watermark

    async def run(self, connection: Connection) -> None:
        """Push until the session is lost (raises ConnectionLost); resumes from the cursor."""
        progress = self.progress
        progress.restart()
        self.stats.sessions += 1
        self._refused = None
        if connection.max_packet_bytes:
            room = connection.max_packet_bytes - len(self.topics.events) - PACKET_OVERHEAD
            self.batch_cap = max(MIN_BATCH_BYTES, min(self.batch_cap, room))
        started_at = progress.watermark
        backlog: deque[_Batch] = deque()
        alarms = Follower(self.journal, "uplink-alarms", started_at, min_priority=Priority.ALARM)
        events = Follower(self.journal, "uplink-backlog", started_at)
        follower = asyncio.create_task(events.ring(self.wake, FOLLOW_S), name="uplink-push-follow")
        held = asyncio.create_task(self._send_held(connection), name="uplink-push-held")
        try:
            await self._push(connection, backlog, events, alarms)
        finally:  # also when cancelled because another task saw the loss; not on a clean stop
            ended = connection.lost.is_set() or self._refused is not None
            if ended and backlog and progress.watermark == started_at:
                self._refuse_size(backlog[0])
            # last: the session may cancel this task while it waits here, skipping what follows
            await cancel_within([follower, held], STOP_WITHIN_S)
        raise self._refused or ConnectionLost("session lost")

    def wake(self) -> None:
        """Something changed (a commit, a PUBACK): the push loop looks again."""
        self._wake.set()

    async def _push(self, connection: Connection, backlog: deque[_Batch], events: Follower, alarms: Follower) -> None:
        """`events` is where the backlog has read to, `alarms` where the alarm lane has (never below the backlog)."""
        progress = self.progress
        waiting: _Batch | None = None  # built, held back by the bandwidth cap
        while not connection.lost.is_set() and self._refused is None:
            self._wake.clear()
            head = self.journal.head_seq
            if head > max(alarms.seq, events.seq):
                alarms.skip(await self._send_alarms(connection, alarms, max(alarms.seq, events.seq), head))
            if waiting is None and len(backlog) < self.batching.in_flight and head > events.seq:
                waiting, through = await self._next_backlog(events, alarms.seq)
                events.skip(through)
            if waiting is not None and self._may_send(waiting):
                backlog.append(waiting)
                self._publish(connection, waiting, backlog)
                waiting = None
                continue
            if self._dirty:
                self._dirty = False
                await self.cursor.save(progress)
            if waiting is not None:  # held back by the bandwidth cap
                due_s = self._pacer.wait_s(time.monotonic(), len(waiting.payload))
            elif len(backlog) < self.batching.in_flight and events.behind:
                due_s = self.batching.window_s  # a small batch filling up
            else:
                due_s = None  # only a commit or a PUBACK gives work
            await self._idle(None if due_s is None else max(due_s, MIN_IDLE_S))

    async def _idle(self, timeout_s: float | None) -> None:
        """Sleep until woken (`wake`) or for `timeout_s`. asyncio.timeout, not wait_for: on 3.11
        wait_for swallows a cancellation that lands as the wait completes, and this loop then
        never ends (a shutdown hung on it)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()

    def _refuse_size(self, head: _Batch) -> None:
        """The session ended before the oldest batch was acknowledged and nothing else was: assume its size."""
        size = len(head.payload)
        if len(head.seqs) > 1:
            self.batch_cap = max(MIN_BATCH_BYTES, min(self.batch_cap, size // 2))
            self.stats.batch_cap_cuts += 1
            log.warning("uplink batch not acknowledged; batch cap lowered", batch_bytes=size, events=len(head.seqs),
                        first_seq=head.seqs[0], cap_bytes=self.batch_cap)
        else:
            self.stats.undeliverable += 1
            log.error("uplink event not acknowledged even alone; the broker may limit message size below it",
                      seq=head.seqs[0], batch_bytes=size)

    async def _send_alarms(self, connection: Connection, alarms: Follower, after: int, head: int) -> int:
        """Publish every alarm journaled after `after` (up to `head`) at once; returns the read position."""
        events = await alarms.read(ALARM_READ, after=after, shape=wire.encoded)
        fresh = [e for e in events if not self.progress.skip(e.seq)]
        while fresh:
            payload, count = encode_batch(self.topics.building, PushLane.ALARM, fresh, self.batch_cap)
            batch = _Batch(PushLane.ALARM, [e.seq for e in fresh[:count]], fresh[count - 1].seq, payload)
            self.progress.alarms_in_flight.update(batch.seqs)
            self._publish(connection, batch, None)
            fresh = fresh[count:]
        return events[-1].seq if len(events) == ALARM_READ else max(head, after)

    async def _send_held(self, connection: Connection) -> None:
        """Send alarms the degraded journal holds in memory, as they are admitted (until cancelled)."""
        while True:
            notices = [await self.held.get(), *self.held.pending()]
            fresh = [_held_event(n) for n in notices if self._undelivered(n)]
            while fresh:
                payload, count = encode_batch(self.topics.building, PushLane.ALARM, fresh, self.batch_cap)
                batch = _Batch(PushLane.ALARM, [e.seq for e in fresh[:count]], fresh[count - 1].seq, payload)
                self.progress.alarms_in_flight.update(batch.seqs)
                log.warning("uplink sends alarms the journal holds in memory", seqs=batch.seqs,
                            kinds=sorted({e.kind for e in fresh[:count]}))
                self._publish(connection, batch, None)
                fresh = fresh[count:]

    def _undelivered(self, notice: Notice) -> bool:
        """Only while the journal is degraded, and only an alarm it has not written (the alarm lane
        reads what it wrote): nothing leaves ahead of a journal that is taking writes."""
        seq = notice.seq
        return (self.journal.degraded and seq is not None and seq > self.journal.head_seq
                and notice.event.priority is Priority.ALARM and not self.progress.skip(seq))

    async def _next_backlog(self, follower: Follower, alarms_read: int) -> tuple[_Batch | None, int]:
        """The next backlog batch after the follower's position (None while a small batch is still
        filling), and the position read through. It reads no further than the alarm lane has
        (`alarms_read`): an alarm committed after the alarm lane looked must go out on the alarm
        lane, not in a backlog batch (power.trip_confirmed once went out on "backlog" that way)."""
        after = follower.seq
        limit = self.batching.events
        events = await follower.read(limit, through=alarms_read, shape=wire.encoded)
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
            self.acked.set()
            return None, events[-1].seq
        payload, count = encode_batch(self.topics.building, PushLane.BACKLOG, sendable, self.batch_cap)
        last = sendable[count - 1].seq if count < len(sendable) else events[-1].seq
        return _Batch(PushLane.BACKLOG, [e.seq for e in sendable[:count]], last, payload), last

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
            if isinstance(done.exception(), PublishRefused):
                self._refused = done.exception()  # end the session: waiting on it would stall the window
                self.wake()
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
        self.acked.set()
        self.wake()


def _held_event(notice: Notice) -> StoredEvent:
    event = notice.event
    assert notice.seq is not None
    return StoredEvent(notice.seq, event.id, event.wall_ns, event.mono_ns, str(event.kind), event.priority, event.source, event.body)
