"""The daemon's stop as systemd sees it: one budget, the workers' own deadlines nested in it,
and the journal flushed, even with the cloud's broker hung and the journal busy."""

from __future__ import annotations

import asyncio
import json
import time

from edge.drivers.modbus.profile import load_profile
from edge.config.building import load
from edge.journal import EventQuery, read_events
from edge.hil.broker import Broker
from edge.hil.cloud import Cloud
from edge.hil.modbus_sim import Noise, SimulatedDevice

from conftest import REPO, Daemon, merged, modbus_device, modbus_tcp, riser_pressure
from field_rig import SimulatorThread, journal_until
from uplink_rig import cloud_key, uplink_config

README_STOP_S = 5.0  # "stopping within 5 s with the journal flushed" (README, Running under systemd)


def _busy_building() -> tuple[SimulatedDevice, list[dict]]:
    """Eight 4-20 mA pressure loops read 50 times a second, every reading journaled (deadband 0)."""
    ai = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-ai8.yaml"), 3)
    points = []
    for channel in range(1, 9):
        ai.play(f"ch{channel}_ma", Noise(12.0, 0.5, seed=channel))
        points.append(riser_pressure(f"riser-{channel}", f"ai.ch{channel}_ma", duration_s=0.2, unit="", riser=None) | {"telemetry": {"deadband": 0}})
    return ai, points


async def _unsigned_downlinks(building_dir, port: int, count: int) -> None:
    cloud = Cloud("127.0.0.1", port, building_dir / "cloud.db", cloud_key(building_dir))
    await cloud.start()
    try:
        for _ in range(count):
            await cloud.send("test-house", "credentials", b'{"sig": ""}')
    finally:
        await cloud.stop()


def test_sigterm_with_a_hung_broker_and_a_busy_journal_stops_within_the_readmes_bound_flushed(write_config, building_dir):
    ai, points = _busy_building()
    with Broker() as broker, SimulatorThread([ai]) as port:
        config_path = uplink_config(write_config, building_dir, broker.port, merged(modbus_tcp(port, timeout_s=0.5, name="water"), {
            "devices": [modbus_device("ai", 3, "generic-ai8", poll_s=0.02, bus="water")], "pressure_points": points}))
        journal = load(config_path).journal_path
        log = building_dir / "daemon.log"
        daemon = Daemon(config_path, log=log).start()
        try:
            journal_until(lambda: "uplink connected" in log.read_text())
            asyncio.run(_unsigned_downlinks(building_dir, broker.port, 20))
            journal_until(lambda: read_events(journal, EventQuery(kinds=("security.downlink_refused",), limit=None)))  # the rest are held back
            broker.pause()  # the connection stays open; nothing answers (no PUBACK, no goodbye)
            head = journal_until(lambda: read_events(journal, EventQuery(kinds=("telemetry.point",), limit=None)))[-1].seq
            journal_until(lambda: read_events(journal, EventQuery(after_seq=head + 500, limit=1)))  # the journal is busy
            sent = time.monotonic()
            daemon.stop(timeout_s=15)
            stop_s = time.monotonic() - sent
        finally:
            daemon.kill()
            broker.resume()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    print(f"stop took {stop_s:.2f} s (budget {README_STOP_S} s); the gateway's own count:",
          next((line.get("stop_s") for line in lines if line["event"] == "gateway stopped"), None))
    assert daemon.poll() == 0
    assert stop_s < README_STOP_S, f"the stop took {stop_s:.2f} s"
    events = read_events(journal, EventQuery(limit=None))
    assert events[-1].kind == "gateway.stopped", "the stop is the journal's last word"
    assert "workers_not_stopped" not in events[-1].body, events[-1].body
    assert sum(e.kind == "telemetry.point" for e in events) > 500
    assert sum(e.body["count"] for e in events if e.kind == "security.downlink_refused") == 20, "the uplink's held-back counts too"


def test_the_uplinks_steps_on_the_way_out_share_the_stop_it_is_given(write_config, building_dir):
    """With its broker hung, the uplink's own waits (session loops, the goodbye, paho's thread,
    the held-back refusal counts) add up to 5 s; given half a second of a stop, it ends inside it
    and still journals the refusal counts it held back."""
    from edge.runtime.deadline import Deadline
    from edge.uplink.kinds import UplinkKind
    from edge.journal import Journal
    from edge.runtime.supervisor import Supervisor
    from edge.uplink.worker import Uplink
    from uplink_rig import open_store, until

    async def scenario():
        with Broker() as broker:
            config_path = uplink_config(write_config, building_dir, broker.port)
            config = load(config_path)
            journal = await Journal.open(config.journal_path)
            store = open_store(config_path)
            supervisor = Supervisor(journal)
            uplink = Uplink(config, "cafe", journal, lambda: store, stop_deadline=lambda: supervisor.deadline)
            supervisor.start("uplink", uplink.run)
            cloud = Cloud("127.0.0.1", broker.port, building_dir / "cloud.db", cloud_key(building_dir))
            await cloud.start()
            try:
                await until(lambda: uplink.connected.is_set())
                for _ in range(20):  # unsigned: refused; the first journaled at once, the rest held back
                    await cloud.send("test-house", "credentials", b'{"sig": ""}')
                await until(lambda: uplink.downlink.stats.refused == 20)
                await cloud.stop()
                broker.pause()
                stuck = await supervisor.stop(Deadline.within(0.5))
            finally:
                broker.resume()
                uplink.close()
                store.close()
                await journal.close()
            refused = [e for e in read_events(config.journal_path, EventQuery(limit=None)) if e.kind == UplinkKind.DOWNLINK_REFUSED]
            return stuck, refused

    stuck, refused = asyncio.run(scenario())
    assert stuck == [], "the uplink ended inside the time it was given"
    assert sum(e.body["count"] for e in refused) == 20, "the counts held back were journaled on the way out"
