"""OSDP readers in the daemon: one bus per port, reads into the access path, grant/deny on the
reader, faults journaled (rate-limited), and the config's cross-checks for OSDP readers."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import osdp
import pytest

from edge.drivers.cards.observations import FaultReason, ReaderFault, ReaderRestored
from edge.drivers.modbus.profile import load_profile
from edge.drivers.osdp.keys import generate_key_file, load_key
from edge.config import building as building_config
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.config.building import ConfigError, device_profiles
from edge.doors.wiring import assemble_doors, credentials_path
from edge.fieldbus.devices import FieldBus, device_specs
from edge.journal import EventQuery, Journal, read_events
from edge.doors.readers import FaultLimiter, ReaderInbox, reader_workers
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.osdp_pd import SimulatedOsdpReader
from edge.hil.pty import pty_pair
from edge.hil.waiting import until

from conftest import REPO, building, doors_io, io_lock

pytestmark = pytest.mark.timeout(60)

BAUD = 115200
TENANT_CARD = 0xD41B81
UNKNOWN_CARD = 0x00BEEF


def osdp_reader(name: str, port: str, address: int, key: str, **more) -> dict:
    """An OSDP reader at `address` on the line `port`, its secure-channel key in secrets/`key`.key."""
    return {"name": name, "protocol": "osdp", "port": str(port), **more, "osdp_address": address, "osdp_key": {"file": f"secrets/{key}.key"}}


def _enrol(config, serial: bytes) -> None:
    credentials_path(config).parent.mkdir(parents=True, exist_ok=True)
    with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
        store.issue(Enrolment(serial=serial, tenant="t-osdp", status="active", door_groups=frozenset({"entrances"}),
                              valid_from=date(2024, 1, 1), valid_until=date(2099, 1, 1), paid_through=date(2099, 1, 1)))


def test_osdp_tap_unlocks_the_door_and_the_reader_shows_grant_and_deny(write_config, building_dir: Path) -> None:
    generate_key_file(building_dir / "secrets" / "front.key")

    async def scenario():
        io = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
        simulator = FieldSimulator([io])
        port = await simulator.start_tcp()
        with pty_pair() as (gateway_end, reader_end):
            config = building_config.load(write_config(building(doors_io(port), {
                "readers": [osdp_reader("front-reader", gateway_end, 1, "front", baud=BAUD)],
                "doors": [{"name": "front", "readers": ["front-reader"], "groups": ["entrances"], "unlock_s": 0.5, "lock": io_lock(1)}]})))
            _enrol(config, TENANT_CARD.to_bytes(3, "big"))
            journal = await Journal.open(config.journal_path)
            fieldbus = FieldBus(device_specs(config, device_profiles(config)), journal)
            doors = assemble_doors(config, journal, fieldbus)
            assert set(doors.work) == {"access", f"osdp:{gateway_end}"}
            tasks = [asyncio.create_task(fieldbus.run())] + [asyncio.create_task(work()) for work in doors.work.values()]
            try:
                with SimulatedOsdpReader(reader_end, BAUD, 1, load_key(building_dir / "secrets" / "front.key")) as pd:
                    await until(lambda: pd.secure, 8.0, every_s=0.02)
                    before = len(pd.commands())
                    pd.tap(TENANT_CARD)
                    await until(lambda: io.value_of("relay_1") is True, 8.0, every_s=0.02)
                    green = await asyncio.to_thread(pd.wait_command, osdp.Command.LED, before)
                    assert await asyncio.to_thread(pd.wait_command, osdp.Command.Buzzer, before) is not None
                    before = len(pd.commands())
                    pd.tap(UNKNOWN_CARD)
                    red = await asyncio.to_thread(pd.wait_command, osdp.Command.LED, before)
                    beeps = await asyncio.to_thread(pd.wait_command, osdp.Command.Buzzer, before)
                    pd.tamper(True)
                    await until(lambda: read_events(config.journal_path, EventQuery(kinds=("fault.reader",), limit=None)), 8.0, every_s=0.02)
                    pd.tamper(False)
                    await until(lambda: read_events(config.journal_path, EventQuery(kinds=("fault.reader_restored",), limit=None)), 8.0, every_s=0.02)
                decisions = read_events(config.journal_path, EventQuery(kinds=("access.decision",), limit=None))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await journal.close()
                await simulator.stop()
        return green, red, beeps, decisions, read_events(config.journal_path, EventQuery(kinds=("fault.reader", "fault.reader_restored"), limit=None))

    green, red, beeps, decisions, health = asyncio.run(scenario())
    assert green is not None and green.command["on_color"] == osdp.CommandLEDColor.Green
    assert red is not None and red.command["on_color"] == osdp.CommandLEDColor.Red
    assert beeps is not None and beeps.command["rep_count"] == 3
    assert [(e.source, e.body["reason"], e.body["granted"]) for e in decisions] == [
        ("front-reader", "granted", True), ("front-reader", "unknown_card", False)]
    assert [(e.kind, e.body["reason"]) for e in health] == [("fault.reader", "tamper"), ("fault.reader_restored", "tamper")]


def test_osdp_readers_on_one_port_share_one_bus(write_config, building_dir: Path) -> None:
    for name in ("a", "b", "c"):
        generate_key_file(building_dir / "secrets" / f"{name}.key")
    config = building_config.load(write_config(building({"readers": [
        osdp_reader("lobby-a", "/dev/ttyRS485-1", 1, "a", baud=115200), osdp_reader("lobby-b", "/dev/ttyRS485-1", 2, "b", baud=115200),
        osdp_reader("garage", "/dev/ttyRS485-2", 1, "c"), {"name": "side", "protocol": "em4100", "port": "/dev/ttyUSB0"}]})))

    async def workers():
        return reader_workers(config.readers, ReaderInbox(asyncio.get_running_loop()))

    work = asyncio.run(workers())
    assert set(work.jobs) == {"osdp:/dev/ttyRS485-1", "osdp:/dev/ttyRS485-2", "reader:side"}
    assert set(work.indicators) == {"lobby-a", "lobby-b", "garage"}
    assert work.indicators["lobby-a"] == work.indicators["lobby-b"] != work.indicators["garage"]


@pytest.mark.parametrize(("second", "message"), [
    (osdp_reader("b", "/dev/ttyRS485-1", 2, "b", baud=9600), "share one bus: baud 9600"),
    (osdp_reader("b", "/dev/ttyRS485-1", 1, "b", baud=115200), "OSDP address 1 on /dev/ttyRS485-1 is already used by 'a'"),
    (osdp_reader("b", "/dev/ttyRS485-2", 1, "b") | {"osdp_key": {"env": "OSDP_TEST_KEY"}}, "must be a key file"),
])


def test_osdp_config_cross_checks(write_config, building_dir: Path, monkeypatch, second: dict, message: str) -> None:
    monkeypatch.setenv("OSDP_TEST_KEY", "00" * 16)
    for name in ("a", "b"):
        generate_key_file(building_dir / "secrets" / f"{name}.key")
    path = write_config(building({"readers": [osdp_reader("a", "/dev/ttyRS485-1", 1, "a", baud=115200), second]}))
    with pytest.raises(ConfigError, match=message):
        building_config.load(path)


def test_fault_limiter_lets_a_burst_through_then_sums_up_a_flapping_reader() -> None:
    limiter = FaultLimiter(burst=2, window_s=10.0)
    down = ReaderFault("front", FaultReason.OFFLINE, "no reply")
    up = ReaderRestored("front", FaultReason.OFFLINE, "online")
    assert limiter.offer(down, 0.0) == [(down, 0)]
    assert limiter.offer(up, 1.0) == [(up, 0)]
    assert limiter.offer(down, 2.0) == []
    assert limiter.offer(up, 3.0) == []
    assert limiter.offer(ReaderFault("front", FaultReason.TAMPER, "opened"), 3.5) != []  # another reason, its own budget
    assert limiter.flush(9.9) == []
    assert limiter.flush(10.0) == [(up, 1)]  # the latest state, standing for the one held back before it
    assert limiter.flush(10.1) == []
    assert limiter.offer(down, 10.5) == []  # the window still holds the passes at 1.0 and 10.0
    assert limiter.flush(11.0) == [(down, 0)]
