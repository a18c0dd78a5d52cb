"""Snapshots upstream on their own topic, after their event, against a real mosquitto and the
reference cloud: the bytes arrive intact, never ahead of the event, again after a broker outage,
late files are waited for, and a snapshot that can never be sent is journaled once."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import cv2
import numpy as np

from edge.config.building import load
from edge.events import Event, Priority
from edge.uplink.kinds import UplinkKind
from edge.vision.kinds import VisionKind
from edge.journal import Journal
from edge.uplink.snapshots import MAX_BYTES
from edge.uplink.worker import Uplink

from uplink_rig import cloud_online, journaled, until

B = "test-house"
FOLDER = Path("vision") / "snapshots" / "lift-1-cam"


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def hold(snapshot: str, wall_ns: int | None = None) -> Event:
    body = {"camera": "lift-1-cam", "elevator": "lift-1", "class": "ebike", "score": 0.9, "snapshot": snapshot}
    if wall_ns is None:
        return Event(kind=VisionKind.ELEVATOR_HOLD, priority=Priority.ALARM, source="lift-1-cam", body=body)
    return Event(kind=VisionKind.ELEVATOR_HOLD, priority=Priority.ALARM, source="lift-1-cam", body=body, wall_ns=wall_ns)


def observed(snapshot: str) -> Event:
    return Event(kind=VisionKind.ELEVATOR_OBSERVED, priority=Priority.FAULT, source="lift-1-cam",
                 body={"camera": "lift-1-cam", "would_hold": True, "snapshot": snapshot})


class Gateway:
    def __init__(self, config_path: Path) -> None:
        self.config = load(config_path)
        self.state = self.config.state_path

    async def __aenter__(self) -> "Gateway":
        self.journal = await Journal.open(self.config.journal_path)
        self.store = open_store_for(self.config)
        self.uplink = Uplink(self.config, "cafe", self.journal, lambda: self.store)
        self.task = asyncio.create_task(self.uplink.run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.uplink.close()
        self.store.close()
        await self.journal.close()

    def write(self, name: str, data: bytes) -> str:
        path = self.state / FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(FOLDER / name)


def open_store_for(config):
    from edge.doors.credentials.store import CredentialStore

    return CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())


def unsent(config_path: Path) -> list:
    return [e for e in journaled(config_path) if e.kind == UplinkKind.SNAPSHOT_UNSENT]


def test_a_snapshot_follows_its_event_on_its_own_topic_intact(write_config, building_dir):
    async def scenario():
        async with cloud_online(write_config, building_dir) as (broker, config_path, cloud):
            async with Gateway(config_path) as gw:
                data = [jpeg(1), jpeg(2)]
                events = [hold(gw.write("1-hold.jpg", data[0])), observed(gw.write("2-observed.jpg", data[1]))]
                for event in events:
                    await gw.journal.append(event)
                await until(lambda: len(cloud.snapshots(B)) == 2)
                got = cloud.snapshots(B)
                for event, expected in zip(events, data):
                    assert got[event.id]["jpeg"] == expected
                    assert got[event.id]["sha256"] == hashlib.sha256(expected).hexdigest()
                    assert got[event.id]["file"] == event.body["snapshot"]
                assert cloud.snapshots_before_event == 0 and cloud.bad_snapshots == 0
                assert {e["id"] for e in cloud.events(B)} >= {e.id for e in events}
                assert gw.uplink.snapshots.stats.sent == 2

    asyncio.run(scenario())


def test_a_snapshot_that_cannot_be_sent_is_journaled_once_and_passed_over(write_config, building_dir):
    async def scenario():
        async with cloud_online(write_config, building_dir) as (broker, config_path, cloud):
            long_ago = time.time_ns() - 600 * 10**9  # its file never came (the worker died before writing it)
            async with Gateway(config_path) as gw:
                bad = [
                    hold(str(FOLDER / "never-written.jpg"), wall_ns=long_ago),
                    hold("credentials.db"),  # outside the snapshots folder: never read, never sent
                    hold(gw.write("huge.jpg", b"\xff" * (MAX_BYTES + 1))),
                ]
                for event in bad:
                    await gw.journal.append(event)
                good = hold(gw.write("after.jpg", jpeg(3)))
                good_seq = await gw.journal.append(good)
                await until(lambda: good.id in cloud.snapshots(B))  # past the three it could not send
                await until(lambda: gw.uplink.snapshots.position >= good_seq)  # acknowledged and saved
                reasons = {e.body["event_id"]: e.body["reason"] for e in unsent(config_path)}
                assert len(unsent(config_path)) == 3
                assert "no such file" in reasons[bad[0].id]
                assert "not a JPEG in vision/snapshots" in reasons[bad[1].id]
                assert "larger than" in reasons[bad[2].id]
            async with Gateway(config_path) as gw:  # a restart resumes after them: nothing is journaled again
                again = hold(gw.write("again.jpg", jpeg(4)))
                await gw.journal.append(again)
                await until(lambda: again.id in cloud.snapshots(B))
                assert len(unsent(config_path)) == 3
                assert gw.uplink.snapshots.stats.sent == 1  # `after.jpg` was acknowledged and saved before: not sent twice
            assert set(cloud.snapshots(B)) == {good.id, again.id}

    asyncio.run(scenario())


def test_a_late_file_is_waited_for_and_a_broker_outage_is_retried(write_config, building_dir):
    async def scenario():
        async with cloud_online(write_config, building_dir) as (broker, config_path, cloud):
            async with Gateway(config_path) as gw:
                late = hold(str(FOLDER / "late.jpg"))
                await gw.journal.append(late)
                await until(lambda: late.id in {e["id"] for e in cloud.events(B)})
                assert late.id not in cloud.snapshots(B)
                gw.write("late.jpg", jpeg(5))  # the worker wrote it after the event went up
                await until(lambda: late.id in cloud.snapshots(B))

                broker.stop()
                await until(lambda: not gw.uplink.connected.is_set())
                during = observed(gw.write("during.jpg", jpeg(6)))
                await gw.journal.append(during)
                broker.start()
                await until(lambda: cloud.connection is not None and not cloud.connection.lost.is_set())
                await until(lambda: during.id in cloud.snapshots(B), timeout_s=30)
                assert cloud.snapshots(B)[during.id]["jpeg"] == jpeg(6)
                assert unsent(config_path) == []
            assert cloud.snapshots_before_event == 0

    asyncio.run(scenario())
