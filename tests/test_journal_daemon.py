"""`edge run` over a journal in trouble: a read-only disk, and a journal damaged between two runs
while the uplink's cursor (and the cloud) remember the old seqs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge.config.building import load
from edge.events import Event, Kind, Priority
from edge.journal import EventQuery, Journal, read_events
from edge.hil.waiting import until_sync

from conftest import Daemon, NotifySocket, building
from journal_disk import SmallDisk, mount_small_disk
from uplink_rig import cloud_online, journaled, until

B = "test-house"


@pytest.fixture
def disk(tmp_path: Path):
    yield from mount_small_disk(tmp_path / "disk", size="4m")


def _kinds(path: Path, pattern: str) -> list:
    return read_events(path, EventQuery(kinds=(pattern,), limit=None))


def test_daemon_on_a_read_only_journal_disk_keeps_running_and_catches_up_when_writable(write_config, building_dir, disk: SmallDisk):
    path = disk.mount / "journal.db"

    async def history():
        journal = await Journal.open(path)
        for n in range(3):
            await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", body={"n": n}))
        await journal.close()

    asyncio.run(history())
    config = write_config(building({"journal": {"path": str(path)}}))
    disk.read_only()
    notify = NotifySocket(building_dir / "notify.sock")
    daemon = Daemon(config, log=building_dir / "daemon.log", env=notify.env).start()
    try:
        notify.wait_for("READY=1", 30)  # the building runs although its journal cannot be written
        assert daemon.poll() is None
        assert not list(disk.mount.glob("journal.db.corrupt-*"))
        disk.writable()
        until_sync(lambda: _kinds(path, Kind.JOURNAL_RECOVERED), 60, "alarm.journal_recovered on disk")
        assert daemon.stop(timeout_s=10) == 0
    finally:
        daemon.kill()
        notify.close()
    assert not list(disk.mount.glob("journal.db.corrupt-*")), "a read-only disk is not damage"
    events = read_events(path, EventQuery(limit=None))
    assert [e.seq for e in events[:3]] == [1, 2, 3] and all(e.kind == "telemetry.reading" for e in events[:3])
    kinds = [e.kind for e in events[3:]]
    assert kinds[:2] == [Kind.JOURNAL_UNAVAILABLE, Kind.GATEWAY_STARTED], "held in memory, written in order"
    assert events[3].body["fault"] in ("read_only", "cannot_open") and events[3].seq == 4
    assert Kind.JOURNAL_RECOVERED in kinds and kinds[-1] == Kind.GATEWAY_STOPPED
    lines = [json.loads(line) for line in (building_dir / "daemon.log").read_text().splitlines() if line.startswith("{")]
    assert any(line["event"] == "journal unavailable; events are held in memory" for line in lines)


def test_after_a_damaged_journal_the_cloud_gets_the_alarm_the_new_events_and_the_lost_range(write_config, building_dir):
    async def scenario():
        async with cloud_online(write_config, building_dir) as (_, config_path, cloud):
            journal_path = load(config_path).journal_path
            daemon = Daemon(config_path, log=config_path.parent / "daemon.log").start()
            try:
                await until(lambda: cloud.book(B).status.get("state") == "online", timeout_s=30)
                first = journaled(config_path)
                await until(lambda: {e.id for e in first} <= {e["id"] for e in cloud.events(B)}, timeout_s=30)
                assert daemon.stop(timeout_s=10) == 0
                old_head = journaled(config_path)[-1].seq
                for suffix in ("-wal", "-shm"):
                    Path(f"{journal_path}{suffix}").unlink(missing_ok=True)
                journal_path.write_bytes(b"\x00damaged by a power cut" * 400)

                daemon.start()
                await until(lambda: any(e["kind"] == Kind.JOURNAL_CORRUPT for e in cloud.events(B)), timeout_s=30)
                (alarm,) = [e for e in cloud.events(B) if e["kind"] == Kind.JOURNAL_CORRUPT]
                await until(lambda: any(e["kind"] == Kind.GATEWAY_STARTED and e["seq"] > alarm["seq"] for e in cloud.events(B)),
                            timeout_s=30)
                page = await cloud.pull(B, after_seq=old_head)
                assert daemon.stop(timeout_s=10) == 0
            finally:
                daemon.kill()
        return old_head, alarm, page, cloud

    old_head, alarm, page, cloud = asyncio.run(scenario())
    assert alarm["seq"] > old_head, "seq never repeats: the new journal starts above every seq the old one used"
    assert alarm["body"]["lost_first_seq"] == 1
    assert old_head <= alarm["body"]["lost_last_seq"] < alarm["seq"]
    assert page["first_retained_seq"] == alarm["seq"], "the cloud sees where the retained log starts again"
    assert page["events"][0]["seq"] == alarm["seq"]
    ids = [e["id"] for e in cloud.events(B)]
    assert len(ids) == len(set(ids))
