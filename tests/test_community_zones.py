"""Intrusion zones: armed and disarmed intrusion, arming by command and by the tenant's card, exit and entry delays."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path

import pytest

from edge.community.zones import Outcome, Zone, ZoneState
from edge.runtime.control import ask, socket_path
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.config.building import load
from edge.doors.wiring import credentials_path
from edge.doors.readers import REPEAT_GAP_S
from edge.hil.card_sim import CardReaderSim
from edge.hil.modbus_sim import FieldSimulator
from edge.hil.pty import pty_pair

from community_rig import community_config, devices, events, gateway_on, run_gateway, until
from journal_disk import mount_failing_card
from conftest import in_background

def zone_config(port: int, card_port: str | None = None) -> dict:
    """The community building with the unit's window and door as intrusion inputs of zone unit-301 (exit and
    entry delays of 1 s); with `card_port`, the unit's door and its reader too, whose card arms and disarms it."""
    config = community_config(port, None)
    config["community"]["inputs"] += [{"name": "window-301", "kind": "intrusion", "point": "io.input_2", "area": "unit-301"},
                                      {"name": "door-301", "kind": "intrusion", "point": "io.input_3", "area": "unit-301"}]
    zone = {"name": "unit-301", "area": "unit-301", "inputs": ["window-301", "door-301"], "entry": "door-301"}
    config["community"]["zones"] = [{**zone, **({"door": "unit-301"} if card_port else {}), "exit_delay_s": 1, "entry_delay_s": 1}]
    if card_port:
        config["readers"] = [{"name": "unit-301-reader", "protocol": "em4100", "port": card_port}]
        config["doors"] = [{"name": "unit-301", "readers": ["unit-301-reader"], "groups": ["units"],
                            "lock": {"device": "io", "release": "release_4", "secure": "secure_4"}}]
    return config


def test_the_zone_machine():
    zone = Zone("z", "door", exit_delay_s=10, entry_delay_s=20)
    assert zone.sensor("window", True, 0).outcome is Outcome.LOGGED
    step = zone.arm(1, "command:x", delay=False)
    assert step.outcome is Outcome.NOT_ARMED and step.open_sensors == ("window",) and zone.state is ZoneState.DISARMED
    zone.sensor("window", False, 2)
    assert zone.card(3, "card:a").outcome is Outcome.ARMING
    assert zone.sensor("door", True, 4).outcome is Outcome.LOGGED, "leaving through the door in the exit delay"
    zone.sensor("door", False, 5)
    assert zone.tick(12.9).outcome is Outcome.UNCHANGED and zone.tick(13).outcome is Outcome.ARMED
    assert zone.sensor("door", True, 20).outcome is Outcome.ENTRY
    assert zone.card(30, "card:a").outcome is Outcome.DISARMED and zone.tick(50).outcome is Outcome.UNCHANGED
    zone.sensor("door", False, 51)
    zone.arm(52, "schedule", delay=False)
    assert zone.sensor("door", True, 60).outcome is Outcome.ENTRY
    assert zone.tick(80).outcome is Outcome.ALARM and zone.armed, "the entry delay ran out: alarm, still armed"
    assert zone.sensor("window", True, 81).outcome is Outcome.ALARM


TENANT = b"\x01\x00\x12\x93\xd8"


def enrol(config_path: Path) -> Path:
    """The tenant's card for the units' doors in the building at `config_path` (returned)."""
    config = load(config_path)
    credentials_path(config).parent.mkdir(parents=True, exist_ok=True)
    with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
        store.issue(Enrolment(serial=TENANT, tenant="tenant-301", door_groups=frozenset({"units"}),
                              valid_from=date(2024, 1, 1), valid_until=date(2099, 1, 1), paid_through=date(2099, 1, 1)))
    return config_path


def test_armed_and_disarmed_intrusion_arming_by_command_and_by_card(write_config):
    sim = devices()

    async def main():
        def zone_events(outcome):
            return [e for e in events(config_path_holder[0], "community.zone") if e.body["outcome"] == outcome]

        async def card(gateway):  # the tenant's card at the unit's reader (a new tap, not the card left lying there)
            await until(lambda: time.monotonic() - tapped[-1] > REPEAT_GAP_S, what="a new tap")
            before = len(events(config_path_holder[0], "access.decision"))
            tapped.append(reader.present(TENANT))
            await until(lambda: len(events(config_path_holder[0], "access.decision")) > before, what="the card decided")

        async def scenario(config, gateway):
            config_path_holder.append(config.journal_path)
            control = socket_path(config.state_path)
            await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
            sim["io"].set_value("input_2", True)  # window opened at home: logged
            await until(lambda: events(config.journal_path, "community.intrusion_disarmed"), what="the logged opening")
            refused = await asyncio.to_thread(ask, control, {"op": "zone.arm", "zone": "unit-301", "armed": True, "operator": "tenant-app"})
            assert not refused["ok"] and "open window-301" in refused["error"]
            sim["io"].set_value("input_2", False)
            await until(lambda: gateway.community.alarms.arming.zones["unit-301"].open == set(), what="the window closed")
            armed = await asyncio.to_thread(ask, control, {"op": "zone.arm", "zone": "unit-301", "armed": True, "operator": "tenant-app"})
            assert armed["ok"] and armed["state"] == "armed", armed
            sim["io"].set_value("input_2", True)  # window opened while away: alarm
            await until(lambda: events(config.journal_path, "alarm.intrusion"), what="the intrusion alarm")
            sim["io"].set_value("input_2", False)
            await asyncio.to_thread(ask, control, {"op": "zone.arm", "zone": "unit-301", "armed": False, "operator": "tenant-app"})
            # the tenant leaves: card, exit delay, armed
            await card(gateway)
            await until(lambda: zone_events("arming"), what="the exit delay")
            await until(lambda: len(zone_events("armed")) == 2, what="armed after the exit delay")
            # and comes home: door opens (entry delay), card in time: disarmed, no alarm
            sim["io"].set_value("input_3", True)
            await until(lambda: zone_events("entry"), what="the entry delay")
            await card(gateway)
            await until(lambda: len(zone_events("disarmed")) == 2, what="disarmed by the card")
            sim["io"].set_value("input_3", False)
            await until(lambda: gateway.community.alarms.arming.zones["unit-301"].open == set(), what="the door closed")
            # leaves again; someone opens the door and shows no card: the entry delay runs out
            await card(gateway)
            await until(lambda: len(zone_events("armed")) == 3, what="armed again")
            sim["io"].set_value("input_3", True)
            await until(lambda: len(events(config.journal_path, "alarm.intrusion")) == 2, timeout_s=10, what="the entry-delay alarm")
            # the gateway stops only once both alarms were handed to the notifier (it tells them after the journal)
            await until(lambda: {a.id for a in events(config.journal_path, "alarm.intrusion")}
                        <= {e.body["incident"] for e in events(config.journal_path, "notify.sent")}, what="both alarms told")

        config_path_holder: list = []
        tapped = [0.0]
        return await gateway_on(FieldSimulator(list(sim.values())), lambda port: enrol(write_config(zone_config(port, card_port))),
                                scenario)

    with pty_pair() as (card_port, reader_port), CardReaderSim(reader_port, "em4100") as reader:
        config = asyncio.run(main())
    alarms = events(config.journal_path, "alarm.intrusion")
    assert [(e.body["input"], e.body["zone"]) for e in alarms] == [("window-301", "unit-301"), ("door-301", "unit-301")], \
        "no alarm while disarmed, nor when the card came within the entry delay"
    not_armed = events(config.journal_path, "fault.zone_not_armed")
    assert not_armed[0].body["open"] == ["window-301"]
    told = {e.body["incident"] for e in events(config.journal_path, "notify.sent")}
    assert {a.id for a in alarms} <= told
    by = [e.body.get("by", "") for e in events(config.journal_path, "community.zone") if e.body["outcome"] in ("armed", "disarmed")]
    assert by[:2] == ["command:tenant-app", "command:tenant-app"] and by[2].startswith("card:")
    granted = [e for e in events(config.journal_path, "access.decision") if e.body["granted"]]
    assert len(granted) == 3 and by[2] == f"card:{granted[0].body['credential']}"


def test_an_armed_zone_stays_armed_across_a_restart(write_config):
    sim = devices()

    async def main():
        simulator = FieldSimulator(list(sim.values()))
        port = await simulator.start_tcp()
        path = write_config(zone_config(port))

        async def arm(config, gateway):
            await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
            answer = await asyncio.to_thread(ask, socket_path(config.state_path), {"op": "zone.arm", "zone": "unit-301", "armed": True, "operator": "cloud"})
            assert answer["ok"], answer
            await until(lambda: (config.state_path / "zones.json").exists() and "armed" in (config.state_path / "zones.json").read_text(),
                        what="the armed state saved")

        async def intrude(config, gateway):
            assert gateway.community.alarms.arming.zones["unit-301"].armed
            sim["io"].set_value("input_2", True)
            await until(lambda: events(config.journal_path, "alarm.intrusion"), what="the alarm after the restart")

        try:
            await run_gateway(path, arm)
            return await run_gateway(path, intrude)
        finally:
            await simulator.stop()

    config = asyncio.run(main())
    assert len(events(config.journal_path, "gateway.started")) == 2
    assert events(config.journal_path, "alarm.intrusion")[0].body["zone_state"] == "armed"


@pytest.fixture
def state_card(building_dir):
    """The building's state dir on a real ext4 card that the test turns read-only under the daemon."""
    yield from mount_failing_card(building_dir / "state")


def test_a_tenants_card_arms_and_disarms_the_zone_while_the_state_disk_is_read_only(write_config, state_card):
    """The journal cannot write, so its head stands still; the card must reach the zone all the same
    (through the bus), or the entry delay runs out and the intrusion alarm fires on the tenant."""
    sim = devices()
    heard: list = []

    async def main():
        def said(kind, outcome=None):
            return [n for n in heard if n.kind == kind and (outcome is None or n.body.get("outcome") == outcome)]

        async def card():  # a new tap of the tenant's card, decided (as the bus says: the journal cannot)
            await until(lambda: time.monotonic() - tapped[-1] > REPEAT_GAP_S, what="a new tap")
            before = len(said("access.decision"))
            tapped.append(reader.present(TENANT))
            await until(lambda: len(said("access.decision")) > before, what="the card decided")
            assert said("access.decision")[-1].body["granted"], said("access.decision")[-1].body

        async def scenario(config, gateway):
            await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
            with gateway.journal.bus.subscribe("test", size=100_000) as everything:
                async def listen():
                    async for notice in everything:
                        heard.append(notice)

                async with in_background(listen()):
                    state_card.fail()
                    assert state_card.read_only
                    await until(lambda: gateway.journal.degraded, what="the journal degraded")
                    head = gateway.journal.head_seq
                    await card()  # the tenant leaves: exit delay, then armed
                    await until(lambda: said("community.zone", "armed"), what="armed by the card")
                    sim["io"].set_value("input_3", True)  # and comes home: the entry delay runs
                    await until(lambda: said("community.zone", "entry"), what="the entry delay")
                    await card()
                    await until(lambda: said("community.zone", "disarmed"), what="disarmed by the card while the disk refuses")
                    assert not said("alarm.intrusion")
                    assert gateway.journal.degraded and gateway.journal.head_seq == head, "the disk refused throughout"
                    assert gateway.community.alarms.arming.zones["unit-301"].state is ZoneState.DISARMED
                    granted = said("access.decision")[-1].body["credential"]
                    assert [n.body.get("by") for n in said("community.zone") if n.body["outcome"] in ("arming", "disarmed")] == \
                        [f"card:{granted}", f"card:{granted}"]

        tapped = [0.0]
        return await gateway_on(FieldSimulator(list(sim.values())), lambda port: enrol(write_config(zone_config(port, card_port))),
                                scenario)

    with pty_pair() as (card_port, reader_port), CardReaderSim(reader_port, "em4100") as reader:
        asyncio.run(main())
    assert not [n for n in heard if n.kind == "alarm.intrusion"], "the card came within the entry delay"
