"""The status page's tail while the disk refuses writes: what the journal admits is shown from
the bus at once (a fire release is not hidden behind a full disk), and once the disk takes the
events again the page does not show them twice."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edge.config import building as building_config
from edge.events import Event, Kind, Priority
from edge.doors.kinds import DoorKind
from edge.journal import Journal, JournalLimits
from edge.status.tail import JournalTail
from edge.status.view import BuildingView

from community_rig import until
from conftest import building, egress_door
from journal_disk import SmallDisk, mount_small_disk

FAST_RETRY = JournalLimits(retry_initial_s=0.02, retry_max_s=0.1)


@pytest.fixture
def disk(tmp_path: Path):
    yield from mount_small_disk(tmp_path / "disk", size="1m")


def _journal_messages(listener) -> list[dict]:
    messages = []
    while not listener.queue.empty():
        message = listener.queue.get_nowait()
        name, _, data = message.decode().partition("\ndata: ")
        if name == "event: journal":
            messages.append(json.loads(data))
    return messages


def test_the_page_shows_a_fire_release_while_the_disk_is_full_and_once_only_after(write_config, disk: SmallDisk):
    path = write_config(building({"journal": {"path": str(disk.mount / "journal.db")}}, egress_door("stair")))
    config = building_config.load(path)

    async def scenario():
        journal = await Journal.open(config.journal_path, FAST_RETRY)
        reader = ThreadPoolExecutor(1, thread_name_prefix="status-test")
        tail = JournalTail(journal, BuildingView(config), reader)
        try:
            await journal.append(Event(Kind.GATEWAY_STARTED, Priority.FAULT, "gateway", {}))
            await tail.catch_up()
            following = asyncio.create_task(tail.run())
            listener = tail.listen()
            disk.fill()
            async def degraded() -> bool:  # the WAL may still have room for a commit or two
                if not journal.degraded:
                    await journal.append(Event(Kind.POINT_READING, Priority.TELEMETRY, "mon", {"point": "p", "value": 1, "pad": "x" * 2000}))
                return journal.degraded

            await until(degraded, what="the journal degraded by the full disk")
            head = journal.head_seq
            fire = await journal.append(Event(DoorKind.FIRE_RELEASE, Priority.ALARM, "fire", {"source": "panel"}))
            shown: list[dict] = []
            await until(lambda: shown.extend(_journal_messages(listener)) or any(m["seq"] == fire for m in shown),
                        what="the fire release on the page while the disk is full")
            assert journal.degraded and journal.head_seq == head, "shown before it was written"
            assert tail.view.snapshot(0)["doors"][0]["state"] == "fire_release"
            disk.free()
            await until(lambda: not journal.degraded and journal.head_seq >= fire, what="written once the disk had room")
            after = await journal.append(Event(DoorKind.FIRE_RESET, Priority.ALARM, "fire", {}))
            await until(lambda: shown.extend(_journal_messages(listener)) or any(m["seq"] == after for m in shown),
                        what="the reset, read from the journal")
            assert [m["seq"] for m in shown].count(fire) == 1, "the page showed the fire release once"
            assert [m["seq"] for m in shown] == sorted(m["seq"] for m in shown)
            assert tail.view.snapshot(0)["doors"][0]["state"] != "fire_release"
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        finally:
            tail.close()
            await journal.close(timeout_s=1)
            reader.shutdown()

    asyncio.run(scenario())
