"""`edge run` with the uplink on, SIGKILLed in the middle of a backlog drain, then started again."""

from __future__ import annotations

import asyncio
import signal

from edge.config.building import load
from edge.events import Event, Priority
from edge.journal import Journal
from edge.hil.broker import Broker

from conftest import Daemon
from uplink_rig import journaled, open_cloud, until, uplink_config

B = "test-house"


def test_sigkill_mid_drain_resumes_from_the_cursor_and_the_cloud_has_everything_once(write_config, building_dir):
    async def scenario():
        with Broker() as broker:
            config_path = uplink_config(write_config, building_dir, broker.port, bandwidth_bytes_per_s=200000)
            config = load(config_path)
            journal = await Journal.open(config.journal_path)  # a backlog from a week offline
            for start in range(0, 6000, 1000):
                await asyncio.gather(*(journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", body={"n": n, "pad": "x" * 100}))
                                       for n in range(start, start + 1000)))
            await journal.close()
            cloud = open_cloud(building_dir, broker.port)
            await cloud.start()
            daemon = Daemon(config_path, log=config_path.parent / "daemon.log").start()
            try:
                await until(lambda: cloud.received > 500, timeout_s=30)
                daemon.stop(signal.SIGKILL, timeout_s=10)
                assert cloud.received < 6000, "killed in the middle of the drain"
                daemon.start()
                await until(lambda: cloud.book(B).status.get("state") == "online" and cloud.received >= 6000, timeout_s=60)
                events = journaled(config_path)
                await cloud.fill_gaps(B, events[-1].seq)  # whatever the cloud missed, while the gateway is up
                assert daemon.stop(timeout_s=10) == 0
            finally:
                daemon.kill()
            await cloud.stop()
            got = [e for e in cloud.events(B) if e["seq"] <= events[-1].seq]
            assert [e["id"] for e in got] == [e.id for e in events]

    asyncio.run(scenario())
