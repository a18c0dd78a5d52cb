"""The journal follower on a real SQLite journal: it wakes on a commit, reads only its slice,
pages, and resumes from its saved position after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.events import Event, Kind, Priority
from edge.community.kinds import CommunityKind
from edge.doors.kinds import DoorKind
from edge.vision.kinds import VisionKind
from edge.journal import Journal
from edge.journal.follower import Follower
from edge.uplink.cursor import SyncCursor


def decision(door: str = "gate", granted: bool = True) -> Event:
    return Event(kind=DoorKind.ACCESS_DECISION, priority=Priority.ACCESS, source=door, body={"door": door, "granted": granted})


def reading(n: int) -> Event:
    return Event(kind=Kind.POINT_READING, priority=Priority.TELEMETRY, source="mon", body={"point": "current_a", "value": n})


def test_a_follower_wakes_on_a_commit_and_rings_its_owner(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        try:
            await journal.append(reading(0))
            follower = Follower(journal, "test", journal.head_seq)
            assert not follower.behind
            waiting = asyncio.create_task(follower.committed(None))
            rung = asyncio.Event()
            ringing = asyncio.create_task(follower.ring(rung.set, 30))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not waiting.done() and not rung.is_set(), "nothing committed: nothing wakes"
            seq = await journal.append(decision())
            assert await waiting is True
            await rung.wait()
            assert follower.behind
            assert [e.seq for e in await follower.read(10)] == [seq]
            assert follower.seq == seq - 1, "reading does not move the position"
            await follower.advance(seq)
            assert not follower.behind and await follower.read(10) == []
            assert await follower.committed(0) is False
            ringing.cancel()
            await asyncio.gather(ringing, return_exceptions=True)
            assert ringing.cancelled(), "the ringer ends on cancel"
        finally:
            await journal.close()

    asyncio.run(scenario())


def test_a_follower_reads_only_its_kinds_priority_and_named_field(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        try:
            start = journal.head_seq
            seqs = {}
            for n, event in enumerate([reading(1), decision("gate"), reading(2), decision("lobby", False),
                                       Event(kind=DoorKind.DOOR_EXIT, priority=Priority.ACCESS, source="gate", body={"door": "gate"}),
                                       Event(kind=VisionKind.ELEVATOR_HOLD, priority=Priority.ALARM, source="car", body={"snapshot": "vision/snapshots/a.jpg"}),
                                       Event(kind=CommunityKind.SMOKE_ALARM, priority=Priority.ALARM, source="room", body={})]):
                seqs[n] = await journal.append(event)
            doors = Follower(journal, "doors", start, (DoorKind.ACCESS_DECISION, DoorKind.DOOR_EXIT))
            assert [e.seq for e in await doors.read(100)] == [seqs[1], seqs[3], seqs[4]]
            alarms = Follower(journal, "alarms", start, min_priority=Priority.ALARM)
            assert [e.seq for e in await alarms.read(100)] == [seqs[5], seqs[6]]
            snapshots = Follower(journal, "snapshots", start, naming="snapshot")
            assert [e.seq for e in await snapshots.read(100)] == [seqs[5]]
            assert [e.seq for e in await snapshots.read(100, through=seqs[4])] == [], "never beyond `through`"
            everything = Follower(journal, "all", start)
            assert [e.seq for e in await everything.read(3)] == [seqs[0], seqs[1], seqs[2]]
            paged = [[e.seq for e in page] async for page in Follower(journal, "pages", start, (DoorKind.ACCESS_DECISION, DoorKind.DOOR_EXIT)).pages(2)]
            assert paged == [[seqs[1], seqs[3]], [seqs[4]]]
        finally:
            await journal.close()

    asyncio.run(scenario())


def test_a_follower_resumes_from_its_saved_position_after_a_restart(tmp_path: Path):
    """The position is saved through the owner's mark (here the uplink cursor's, as the snapshots
    lane keeps it); a new process follows on from there, neither repeating nor skipping."""

    async def first_run() -> list[int]:
        journal = await Journal.open(tmp_path / "journal.db")
        cursor = SyncCursor(tmp_path / "uplink.db")
        try:
            seqs = [await journal.append(decision(f"door-{n}")) for n in range(6)]
            follower = Follower(journal, "test-lane", cursor.load_mark("test_through"), (DoorKind.ACCESS_DECISION,),
                                mark=lambda seq: cursor.save_mark("test_through", seq))
            for event in (await follower.read(100))[:4]:
                await follower.advance(event.seq)  # dealt with, one by one
            return seqs
        finally:
            await journal.close()
            cursor.close()

    async def second_run() -> tuple[list[int], int]:
        journal = await Journal.open(tmp_path / "journal.db")
        cursor = SyncCursor(tmp_path / "uplink.db")
        try:
            follower = Follower(journal, "test-lane", cursor.load_mark("test_through"), (DoorKind.ACCESS_DECISION,))
            later = await journal.append(decision("door-6"))
            assert follower.behind
            return [e.seq for e in await follower.read(100)], later
        finally:
            await journal.close()
            cursor.close()

    seqs = asyncio.run(first_run())
    read, later = asyncio.run(second_run())
    assert read == seqs[4:] + [later]
