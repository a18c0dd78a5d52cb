"""A stop while the disk refuses writes: what the journal held goes to a spill file elsewhere and is
written at the next start; what no place takes is a recorded gap; and no seq is ever given twice.

On a real loop-mounted ext4 with errors=remount-ro (journal_disk.py) that the kernel turns
read-only under the open journal, as a failing SD card does, so SQLite meets the kernel's own EROFS.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge.events import Event, Kind, Priority
from edge.journal import EventQuery, Journal, JournalLimits, gaps_between, read_events

from journal_disk import Ext4Disk, mount_ext4_disk

FAST_RETRY = JournalLimits(retry_initial_s=0.05, retry_max_s=0.2, maintenance_every_s=3600, telemetry_retention_s=None)


@pytest.fixture
def disk(tmp_path: Path):
    yield from mount_ext4_disk(tmp_path / "disk")


def decision(n: int) -> Event:
    return Event(kind="access.decision", priority=Priority.ACCESS, source="door-1", body={"n": n})


async def _open(path: Path, places=()) -> Journal:
    return await (Journal.open(path, FAST_RETRY, spill_places=places) if places else Journal.open(path, FAST_RETRY))


async def _history(path: Path, count: int, places=()) -> list[int]:
    journal = await _open(path, places)
    seqs = [await journal.append(decision(-1 - n)) for n in range(count)]
    await journal.close()
    return seqs


async def _stop_on_a_disk_turned_read_only(path: Path, disk: Ext4Disk, places=()) -> tuple[list[Event], list[int]]:
    """One event written, then the disk turns read-only under the journal; four decisions are held; stop."""
    journal = await _open(path, places)
    await journal.append(decision(0))
    disk.fail()
    held = [decision(n) for n in range(1, 5)]
    seqs = [await journal.append(e) for e in held]
    assert journal.degraded and None not in seqs
    await journal.close()
    return held, seqs


def test_a_stop_on_a_refusing_disk_never_lets_the_next_start_give_its_seqs_again(disk: Ext4Disk):
    path = disk.mount / "journal.db"

    async def scenario():
        before = await _history(path, 54)
        held, seqs = await _stop_on_a_disk_turned_read_only(path, disk)
        disk.repair()
        journal = await _open(path)
        after = await journal.append(decision(99))
        await journal.close()
        journal = await _open(path)  # after a clean close: on from the head, no second jump
        again = await journal.append(decision(100))
        await journal.close()
        return before, held, seqs, after, again

    before, held, seqs, after, again = asyncio.run(scenario())
    assert again == after + 1, "a clean close lets the next start continue without a hole"
    assert before == list(range(1, 55)) and seqs[0] > 55
    assert after > max(seqs), f"seq {after} was handed out again (the stopped run gave {seqs})"
    stored = read_events(path, EventQuery(limit=None))
    assert len({e.seq for e in stored}) == len(stored)
    assert not {e.id for e in held} & {e.id for e in stored}, "nothing took the held events: they are lost"
    gaps = gaps_between(path, 0, after)
    assert any(g.first_seq <= min(seqs) and g.last_seq >= max(seqs) and g.reason == "unclean_stop" for g in gaps), gaps


def test_held_events_go_to_a_spill_place_and_are_written_with_their_seqs_at_the_next_start(disk: Ext4Disk, tmp_path: Path):
    path = disk.mount / "journal.db"
    run = tmp_path / "run"  # another filesystem (systemd's RuntimeDirectory under /run in production)

    async def scenario():
        await _history(path, 10, [run])
        held, seqs = await _stop_on_a_disk_turned_read_only(path, disk, [run])
        (spilled,) = run.glob("journal.db.spill-*.json")
        document = json.loads(spilled.read_text())
        disk.repair()
        journal = await Journal.open(path, FAST_RETRY, spill_places=[run])
        after = await journal.append(decision(99))
        assert await journal.flush()
        await journal.close()
        return held, seqs, document, after

    held, seqs, document, after = asyncio.run(scenario())
    assert [row["id"] for row in document["events"] if row["kind"] == "access.decision"] == [e.id for e in held]
    stored = {e.id: e for e in read_events(path, EventQuery(limit=None))}
    assert [stored[e.id].seq for e in held] == seqs, "each held event is written under the seq its producer got"
    assert Kind.JOURNAL_UNAVAILABLE in {e.kind for e in stored.values()}, "the alarm held with them is written too"
    assert after > max(seqs)
    assert not list(run.glob("journal.db.spill-*")), "a replayed spill is removed once written"
    assert len({e.seq for e in stored.values()}) == len(stored)


def test_a_start_still_refused_keeps_the_spill_and_numbers_above_it(disk: Ext4Disk, tmp_path: Path):
    path = disk.mount / "journal.db"
    run = tmp_path / "run"

    async def scenario():
        await _history(path, 5, [run])
        held, seqs = await _stop_on_a_disk_turned_read_only(path, disk, [run])
        journal = await Journal.open(path, FAST_RETRY, spill_places=[run])  # still read-only
        assert journal.degraded
        second = await journal.append(decision(50))
        await journal.close()  # spills again: both runs' events in one new file
        assert len(list(run.glob("journal.db.spill-*.json"))) == 1
        disk.repair()
        journal = await Journal.open(path, FAST_RETRY, spill_places=[run])
        assert await journal.flush()
        await journal.close()
        return held, seqs, second

    held, seqs, second = asyncio.run(scenario())
    assert second > max(seqs)
    stored = {e.id: e.seq for e in read_events(path, EventQuery(limit=None))}
    assert [stored[e.id] for e in held] == seqs
    assert len(set(stored.values())) == len(stored)
    assert not list(run.glob("journal.db.spill-*"))


def test_a_new_journal_file_is_0640_whatever_the_umask(tmp_path: Path):
    import os

    old = os.umask(0o022)
    try:
        asyncio.run(_history(tmp_path / "journal.db", 1))
    finally:
        os.umask(old)
    assert (tmp_path / "journal.db").stat().st_mode & 0o777 == 0o640


HELD_THEN_KILLED = """
import asyncio, contextlib, sys
from pathlib import Path
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout carries only seqs
from edge.events import Event, Priority
from edge.hil import waiting
from edge.journal import Journal, JournalLimits

async def main():
    journal = await Journal.open(Path(sys.argv[1]), JournalLimits(retry_initial_s=0.05, retry_max_s=0.2),
                                 spill_places=[Path(sys.argv[2])])
    assert journal.degraded
    for n in range(4):
        seq = await journal.append(Event(kind="access.decision", priority=Priority.ACCESS, source="door-1", body={"n": n}))
        print(seq, flush=True)
    with contextlib.suppress(waiting.NotReached):  # the lease is written off the loop: give it a moment (an old journal never writes one)
        await waiting.until(lambda: list(Path(sys.argv[2]).glob("*.spill-lease.json")), 5, "the spill lease", every_s=0.01)
    print("waited", flush=True)
    await asyncio.sleep(3600)  # killed here, holding its events

asyncio.run(main())
"""


@pytest.fixture
def tmpfs(tmp_path: Path):
    from journal_disk import mount_small_disk

    yield from mount_small_disk(tmp_path / "tmpfs", size="2m")


def test_a_daemon_killed_while_the_disk_refuses_leaves_a_lease_the_next_start_continues_above(tmpfs, tmp_path: Path):
    """Started degraded after a clean stop (the seq mark drawn back to the head) and SIGKILLed: no spill,
    and the mark could not move; the lease in the spill place still keeps its seqs from being given again."""
    import signal
    import subprocess
    import sys

    path = tmpfs.mount / "journal.db"
    run = tmp_path / "run"
    asyncio.run(_history(path, 10, [run]))
    tmpfs.read_only()
    held = subprocess.Popen([sys.executable, "-c", HELD_THEN_KILLED, str(path), str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [held.stdout.readline().strip() for _ in range(5)]
    finally:
        held.send_signal(signal.SIGKILL)
        held.wait()
    assert lines[-1] == "waited", lines
    given = [int(line) for line in lines[:4]]
    tmpfs.writable()

    async def restart():
        journal = await _open(path, [run])
        seq = await journal.append(decision(99))
        await journal.close()
        return seq

    after = asyncio.run(restart())
    assert min(given) == 12 and after > max(given), f"seq {after} given again (the killed run gave {given})"
    assert not list(run.glob("journal.db.spill-*")), "the lease goes once the new run has written"
