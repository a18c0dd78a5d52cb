"""A refusing disk (full, read-only) never moves a healthy journal aside and never stops appends.

These run against a real tmpfs of a few hundred KiB (see journal_disk.py), so SQLite meets
the kernel's own ENOSPC and EROFS, not a simulation of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.events import Event, Kind, Priority
from edge.doors.kinds import DoorKind
from edge.journal import EventQuery, Journal, JournalLimits, gaps_between, read_events
from edge.hil.waiting import until

from journal_disk import SmallDisk, mount_small_disk

FAST_RETRY = JournalLimits(retry_initial_s=0.05, retry_max_s=0.2, maintenance_every_s=3600, telemetry_retention_s=None)


@contextlib.asynccontextmanager
async def degraded(path: Path, limits: JournalLimits) -> AsyncIterator[Journal]:
    """The journal at `path` opened on a disk that refuses it (degraded from the start); closed on the
    way out, also when the test failed."""
    journal = await Journal.open(path, limits)
    try:
        assert journal.degraded
        yield journal
    finally:
        await journal.close()


async def recovered(journal: Journal, restore, what: str) -> None:
    """`restore()` the disk, then the journal's recovery within 10 s and a flush that says all is written."""
    restore()
    await until(lambda: not journal.degraded, 10.0, what, every_s=0.01)
    assert await journal.flush()


@pytest.fixture
def disk(tmp_path: Path):
    yield from mount_small_disk(tmp_path / "disk")


def event(priority: Priority = Priority.TELEMETRY, kind: str = "telemetry.test", **body) -> Event:
    return Event(kind=kind, priority=priority, source="meter-1", body=body or {"value": 1.5})


def fill_journal(path: Path, count: int) -> list[int]:
    async def fill():
        journal = await Journal.open(path, FAST_RETRY)
        seqs = [await journal.append(event(n=i)) for i in range(count)]
        await journal.close()
        return seqs

    return asyncio.run(fill())


def moved_aside(disk: SmallDisk) -> list[Path]:
    return list(disk.mount.glob("journal.db.corrupt-*"))


@pytest.mark.parametrize("refuse, allow", [("fill", "free"), ("read_only", "writable")], ids=["disk-full", "read-only"])
def test_a_refusing_disk_at_start_keeps_the_journal_degrades_and_catches_up(disk: SmallDisk, refuse: str, allow: str):
    path = disk.mount / "journal.db"
    before = fill_journal(path, 20)
    getattr(disk, refuse)()

    async def scenario():
        journal = await Journal.open(path, FAST_RETRY)
        try:
            assert journal.degraded, "the journal could not be written: it must say so, not start a new one"
            alarm = event(Priority.ALARM, "alarm.fire_release")
            seq = await journal.append(alarm)  # returns at once: nothing waits on a refusing disk
            assert seq == before[-1] + 2, "seq continues from the kept file (the unavailable alarm took one)"
            assert not moved_aside(disk)
            getattr(disk, allow)()
            await until(lambda: not journal.degraded, 10.0, "recovery after the disk allowed writes", every_s=0.01)
            assert await journal.flush()
        finally:
            await journal.close()
        return alarm, seq

    alarm, seq = asyncio.run(scenario())
    assert not moved_aside(disk), "a healthy journal is never moved aside for a disk fault"
    stored = read_events(path, EventQuery(limit=None))
    assert [e.seq for e in stored[:20]] == before, "the history is still there"
    tail = [(e.seq, e.kind) for e in stored[20:]]
    assert tail[:2] == [(21, Kind.JOURNAL_UNAVAILABLE), (seq, "alarm.fire_release")]
    assert (seq + 1, Kind.JOURNAL_RECOVERED) in tail
    assert next(e for e in stored if e.seq == seq).id == alarm.id
    unavailable = stored[20]
    assert unavailable.priority is Priority.ALARM and unavailable.body["path"] == str(path)


def test_a_disk_that_fills_while_running_releases_waiting_producers_and_writes_their_events_later(disk: SmallDisk):
    path = disk.mount / "journal.db"

    async def scenario():
        journal = await Journal.open(path, FAST_RETRY)
        try:
            first = await journal.append(event(n=0))
            disk.fill()
            big = [event(Priority.ACCESS, "access.decision", n=i, pad="p" * 3000) for i in range(30)]
            # Healthy when called: these wait for a commit the disk refuses, and must be let go with their seqs.
            seqs = list(await asyncio.gather(*(journal.append(e) for e in big)))
            assert journal.degraded
            assert disk.ballast.exists(), "they returned while the disk was still full"
            assert await journal.flush() is False, "a degraded journal says it holds events in memory"
            more = [event(Priority.FAULT, "fault.timeout", n=i) for i in range(10)]
            seqs += [await journal.append(e) for e in more]
            await recovered(journal, disk.free, "recovery after space was freed")
        finally:
            await journal.close()
        return first, big + more, seqs

    first, appended, seqs = asyncio.run(scenario())
    stored = {e.id: e for e in read_events(path, EventQuery(limit=None))}
    assert [stored[e.id].seq for e in appended] == seqs, "each producer got the seq its event is stored under"
    assert len(set(seqs)) == len(seqs) and min(seqs) > first
    kinds = [e.kind for e in sorted(stored.values(), key=lambda e: e.seq)]
    assert kinds.count(Kind.JOURNAL_UNAVAILABLE) == 1 and kinds.count(Kind.JOURNAL_RECOVERED) == 1
    assert Kind.JOURNAL_EVENTS_LOST not in kinds, "nothing was lost"
    assert not moved_aside(disk)


def test_a_full_buffer_drops_the_oldest_least_important_events_and_journals_the_loss(disk: SmallDisk):
    path = disk.mount / "journal.db"
    limits = JournalLimits(buffer_events=64, retry_initial_s=0.05, retry_max_s=0.2, maintenance_every_s=3600)
    fill_journal(path, 5)
    disk.fill()

    async def scenario():
        async with degraded(path, limits) as journal:
            appended: list[tuple[Event, int]] = []
            for i in range(150):
                priority = Priority.ALARM if i % 30 == 0 else Priority.FAULT if i % 5 == 0 else Priority.TELEMETRY
                e = event(priority, f"{priority.name.lower()}.test", n=i)
                appended.append((e, await journal.append(e)))
            await recovered(journal, disk.free, "recovery after space was freed")
        return appended

    appended = asyncio.run(scenario())
    stored = read_events(path, EventQuery(limit=None))
    by_id = {e.id: e for e in stored}
    kept = [(e, seq) for e, seq in appended if e.id in by_id]
    dropped = [(e, seq) for e, seq in appended if e.id not in by_id]
    assert all(by_id[e.id].seq == seq for e, seq in kept)
    assert dropped, "the buffer of 64 could not hold 150 events"
    assert {e.priority for e, _ in dropped} == {Priority.TELEMETRY}, "faults and alarms are kept while telemetry can go"
    kept_telemetry = [seq for e, seq in kept if e.priority is Priority.TELEMETRY]
    assert max(seq for _, seq in dropped) < min(kept_telemetry), "the oldest go first"
    (gap,) = gaps_between(path, 0, stored[-1].seq)
    assert (gap.first_seq, gap.last_seq, gap.reason) == (min(s for _, s in dropped), max(s for _, s in dropped), "buffer_full")
    (lost,) = [e for e in stored if e.kind == Kind.JOURNAL_EVENTS_LOST]
    assert lost.priority is Priority.ALARM
    assert lost.body == {
        "reason": "buffer_full",
        "lost": len(dropped),
        "first_seq": min(seq for _, seq in dropped),
        "last_seq": max(seq for _, seq in dropped),
        "by_priority": {"telemetry": len(dropped)},
    }


def test_a_journal_directory_that_cannot_be_made_holds_events_unnumbered_until_it_can(disk: SmallDisk):
    path = disk.mount / "state" / "journal.db"
    disk.read_only()

    async def scenario():
        async with degraded(path, FAST_RETRY) as journal:
            first = event(Priority.ACCESS, "access.decision")
            assert await journal.append(first) is None, "no file and no seq mark: the seq is not known yet"
            await recovered(journal, disk.writable, "recovery once the directory could be made")
        return first

    first = asyncio.run(scenario())
    stored = read_events(path, EventQuery(limit=None))
    assert [(e.seq, e.kind) for e in stored[:2]] == [(1, Kind.JOURNAL_UNAVAILABLE), (2, "access.decision")]
    assert stored[0].body["fault"] == "read_only" and stored[1].id == first.id


def test_close_on_a_disk_that_still_refuses_ends_and_keeps_the_file(disk: SmallDisk):
    path = disk.mount / "journal.db"
    before = fill_journal(path, 5)
    disk.fill()

    async def scenario():
        journal = await Journal.open(path, FAST_RETRY)
        assert journal.degraded
        await journal.append(event(Priority.ALARM, "alarm.fire_release"))
        await asyncio.wait_for(journal.close(), 10)  # one last attempt, then the stop goes on
        with pytest.raises(Exception, match="closed"):
            await journal.append(event())

    asyncio.run(scenario())
    disk.free()
    assert [e.seq for e in read_events(path, EventQuery(limit=None))] == before
    assert not moved_aside(disk)


def test_fire_release_and_reset_on_a_full_disk_complete_and_are_journaled_once_it_has_room(disk: SmallDisk):
    from edge.doors.settings import Lock
    from edge.doors.lock import DoorLock
    from edge.doors.fire import FireRelease

    class Relays:
        """A relay module that confirms every write."""

        def __init__(self) -> None:
            self.writes: list[tuple[str, str]] = []

        async def command(self, device: str, command: str) -> bool:
            self.writes.append((device, command))
            return True

    path = disk.mount / "journal.db"
    fill_journal(path, 3)
    disk.fill()

    async def scenario():
        async with degraded(path, FAST_RETRY) as journal:
            relays, holder = Relays(), []

            async def unconfirmed(door: str, command: str) -> None:
                raise AssertionError(f"{door} {command} not confirmed")

            lock = DoorLock("front", Lock(device="io-1", release="release_1", secure="secure_1"), relays, unconfirmed,
                            lambda: holder[0].active)
            fire = FireRelease({"front": lock}, relays, journal)
            holder.append(fire)
            fire.trigger("panel")
            await until(lambda: ("io-1", "release_1") in relays.writes, 10.0, "the egress door's release", every_s=0.01)
            assert await asyncio.wait_for(fire.reset("tech-1"), 5), "a technician's reset does not wait on the disk"
            assert ("io-1", "secure_1") in relays.writes
            await recovered(journal, disk.free, "recovery after space was freed")

    asyncio.run(scenario())
    kinds = [e.kind for e in read_events(path, EventQuery(kinds=("alarm.fire_*",), limit=None))]
    assert kinds == [DoorKind.FIRE_RELEASE, DoorKind.FIRE_RESET]
