"""Snapshots upstream: the JPEG a hold or observation names, on its own topic, after its event.

A hold's event says `"snapshot": "vision/snapshots/CAM/STEM.jpg"` (relative to the state dir);
the camera's worker writes that file a moment later. The cloud must never see a snapshot
before the event it belongs to, and a JPEG must never hold up the event batches, so snapshots
are a lane of their own, driven by the journal like the events: the lane's follower
(`edge.journal.follower`) reads the journaled events that name a snapshot up to what the broker
has acknowledged (the push cursor's watermark), and publishes each file, in seq order, to PREFIX/BUILDING/snapshots/EVENT_ID as a
small JSON envelope (event id, seq, sha256, base64 JPEG) at QoS 1. Its own position is saved
only after the broker's PUBACK, so a lost session sends it again (the cloud keeps one per
event id).

A file that is not there yet is waited for (the worker may be grabbing the main stream) up to
WAIT_FOR_FILE_S after the event; one that never came, is too large, lies outside the snapshots
folder or is refused by the broker is journaled once (`fault.snapshot_unsent`) and passed over,
never retried forever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from edge.runtime import pools
from edge.events import Event, Priority, StoredEvent
from edge.uplink.kinds import UplinkKind
from edge.journal import Journal
from edge.journal.follower import Follower
from edge.runtime.pools import Pool
from edge.uplink.cursor import SyncCursor
from edge.uplink.mqtt import Connection, ConnectionLost, PublishRefused
from edge.uplink import wire
from edge.uplink.topics import WIRE_VERSION, Topics

log = structlog.get_logger("edge.uplink")

MARK = "snapshots_through"  # every snapshot of an event at or below this seq is sent or journaled unsent
FIELD = "snapshot"
FOLDER = Path("vision") / "snapshots"  # the only place a snapshot may be read from
MAX_BYTES = 384 * 1024  # the camera caps its JPEGs at 300 KiB; base64 adds a third
WAIT_FOR_FILE_S = 180.0  # the worker may take a camera's stall_s (up to 120 s) to grab the main stream
FILE_RETRY_S = 1.0
ACK_WITHIN_S = 60.0  # a PUBACK slower than this ends the session; the next one sends again
FOLLOW_S = 60.0  # one wait for an acknowledgement; renewed, so a deadline, not a poll
READ = 64
ENVELOPE_BYTES = 1024  # the JSON around the base64, with room to spare


class Unsendable(Exception):
    """This snapshot will never be sent: journaled once and passed over."""


@dataclass(slots=True)
class SnapshotStats:
    sent: int = 0
    bytes_sent: int = 0
    unsent: int = 0


class SnapshotSender:
    """The snapshots lane; one `run(connection)` per session, beside the event push."""

    def __init__(self, journal: Journal, cursor: SyncCursor, topics: Topics, state_dir: Path,
                 synced: Callable[[], int], acked: asyncio.Event) -> None:
        self.journal = journal
        self.cursor = cursor
        self.topics = topics
        self.state_dir = state_dir
        self.synced = synced  # every event at or below this seq is acknowledged by the broker
        self.acked = acked
        self.follower = Follower(journal, "uplink-snapshots", 0, naming=FIELD, mark=lambda seq: cursor.save_mark(MARK, seq))
        self.stats = SnapshotStats()

    async def resume(self) -> None:
        """Take up the saved position (read on the cursor's thread), once, before the first session."""
        self.follower.seq = await self.cursor.read_mark(MARK)

    @property
    def position(self) -> int:
        """Every snapshot of an event at or below this seq is sent or journaled unsent."""
        return self.follower.seq

    async def run(self, connection: Connection) -> None:
        """Until cancelled or the session is lost (raises ConnectionLost)."""
        follower = self.follower
        while not connection.lost.is_set():
            self.acked.clear()
            through = self.synced()
            if through > follower.seq:
                events = await follower.read(READ, through=through)
                for event in events:
                    await self._send(connection, event)
                    await follower.advance(event.seq)  # saved: a lost session sends it again, never skips it
                if len(events) == READ:
                    continue
                follower.skip(through)  # nothing else in (position, through] names a snapshot; saved with the next one
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FOLLOW_S):
                    await self.acked.wait()
        raise ConnectionLost("session lost")

    async def _send(self, connection: Connection, event: StoredEvent) -> None:
        try:
            payload = await self._load(event, connection.max_packet_bytes)
            try:
                async with asyncio.timeout(ACK_WITHIN_S):
                    await connection.publish(self.topics.snapshot(event.id), payload)
            except PublishRefused as refused:
                raise Unsendable(f"the broker refused it: {refused}") from None
            except TimeoutError:
                raise ConnectionLost(f"snapshot of event {event.seq} not acknowledged within {ACK_WITHIN_S:.0f} s") from None
        except Unsendable as error:
            self.stats.unsent += 1
            log.error("snapshot not sent", seq=event.seq, snapshot=event.body.get(FIELD), reason=str(error))
            await self.journal.append(Event(kind=UplinkKind.SNAPSHOT_UNSENT, priority=Priority.FAULT, source="uplink", body={
                "event_id": event.id, "seq": event.seq, "file": str(event.body.get(FIELD))[:200], "reason": str(error)[:300]}))
            return
        self.stats.sent += 1
        self.stats.bytes_sent += len(payload)

    async def _load(self, event: StoredEvent, max_packet: int | None) -> bytes:
        """The envelope of the event's file (read and encoded off the loop), waiting for the file
        up to WAIT_FOR_FILE_S after the event; raises Unsendable."""
        name = event.body.get(FIELD)
        if not isinstance(name, str) or not name:
            raise Unsendable("the event's snapshot is not a file name")
        folder = (self.state_dir / FOLDER).resolve()
        path = (self.state_dir / name).resolve()
        if not path.is_relative_to(folder) or path.suffix != ".jpg":
            raise Unsendable(f"not a JPEG in {FOLDER}")
        cap = MAX_BYTES
        if max_packet:
            cap = min(cap, (max_packet - ENVELOPE_BYTES - len(self.topics.snapshot(event.id))) * 3 // 4)
        while True:
            try:
                return await pools.call(Pool.FILES, _envelope_of, path, cap, self.topics.building, event, name)
            except FileNotFoundError:
                waited_s = time.time() - event.wall_ns / 1e9
                if waited_s >= WAIT_FOR_FILE_S:
                    raise Unsendable(f"no such file {WAIT_FOR_FILE_S:.0f} s after the event") from None
                await asyncio.sleep(min(FILE_RETRY_S, WAIT_FOR_FILE_S - waited_s))
            except OSError as error:
                raise Unsendable(f"cannot read it: {error.strerror or error}") from None


def _envelope_of(path: Path, cap: int, building: str, event: StoredEvent, name: str) -> bytes:
    """Read (at most `cap` bytes) and encode: blocking, so in a thread."""
    with open(path, "rb") as file:
        data = file.read(cap + 1)
    if len(data) > cap:
        raise Unsendable(f"larger than {cap} bytes")
    return envelope(building, event, name, data)


def envelope(building: str, event: StoredEvent, name: str, data: bytes) -> bytes:
    """The wire form: which event, which file, its sha256 and the JPEG in base64."""
    return wire.encode({
        "v": WIRE_VERSION, "building": building, "event_id": event.id, "seq": event.seq, "kind": event.kind,
        "file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "jpeg": base64.b64encode(data).decode("ascii"),
    }).encode()
