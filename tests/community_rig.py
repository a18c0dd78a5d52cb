"""Shared pieces of the community safety tests: a building with smoke detectors, a charging
area, a panic button and an SMS modem, on a pymodbus simulator and a socat pty pair; the gateway
run in process; two tenants' passes through two doors for the trail and inactivity tests."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from edge.config import building as building_config
from edge.doors.credentials.credential import Credential
from edge.doors.credentials.store import CredentialStore
from edge.config.building import load
from edge.events import Event, Priority
from edge.doors.kinds import DoorKind
from edge.gateway import Gateway
from edge.journal import EventQuery, Journal, read_events
from edge.hil import waiting
from edge.hil.modbus_sim import SimulatedDevice

from conftest import building, modbus_device, modbus_tcp
from field_rig import on_free_port, simulated


def devices() -> dict[str, SimulatedDevice]:
    """Two smoke detectors (a room's, the charging area's), the posts' monitor at 8 A a phase on a
    closed breaker, and an IO module, as units 1 to 5 of `community_config`."""
    return {"room": simulated("generic-smoke", 1), "charging": simulated("generic-smoke", 2),
            "monitor": simulated("generic-efm8", 3, current_a=8.0, current_b=8.0, current_c=8.0),
            "breaker": simulated("generic-breaker", 4, closed=True), "io": simulated("generic-dio8", 5)}


ROUTES = [{"name": "first", "alarms": ["smoke", "panic", "intrusion", "trouble"], "notify": ["landlord", "tenant"], "ack_within_s": 2,
           "escalate_to": "station"},
          {"name": "station", "notify": ["micro-fire-station"], "ack_within_s": 2, "escalate_to": "command"},
          {"name": "command", "notify": ["command-centre"]}]


def community_config(port: int, modem: str | None, *, routes: list[dict] | None = None) -> dict:
    """The building of `devices()` on the simulator at `port`: two smoke detectors, a panic button and
    an acknowledge button on the IO module, the charging area's posts on circuit bike-posts, four
    contacts and `routes` (ROUTES: first, station, command); the SMS modem on the pty `modem` if given."""
    devices = [("smoke-301", 1, "generic-smoke"), ("smoke-bike", 2, "generic-smoke"), ("mon", 3, "generic-efm8"),
               ("brk", 4, "generic-breaker"), ("io", 5, "generic-dio8")]
    community = {
        "detectors": [{"name": "room-301", "device": "smoke-301", "area": "unit-301"},
                      {"name": "bike-shed", "device": "smoke-bike", "area": "charging-1"}],
        "inputs": [{"name": "panic-301", "kind": "panic", "point": "io.input_1", "area": "unit-301"}],
        "charging_areas": [{"name": "charging-1", "detectors": ["bike-shed"], "circuits": ["bike-posts"]}],
        "ack_buttons": [{"point": "io.input_8", "area": "*"}],
        "contacts": [{"name": "landlord", "role": "landlord", "phone": "+8613800000001"},
                     {"name": "tenant", "role": "tenant", "phone": "+8613800000002", "channels": ["cloud"]},
                     {"name": "micro-fire-station", "role": "micro_fire_station", "phone": "+8613800000003"},
                     {"name": "command-centre", "role": "command_centre", "phone": "+8613800000004"}],
        "routes": routes or ROUTES,
        **({"modem": {"port": modem, "baud": 115200, "timeout_s": 1.0, "retries": 2, "delivery_within_s": 10}} if modem else {}),
        "cloud_confirm_s": 5,
    }
    return building(modbus_tcp(port), {
        "devices": [modbus_device(name, unit, profile, poll_s=0.05) for name, unit, profile in devices],
        "circuits": [{"name": "bike-posts", "floor": 0, "box": "B0", "currents": ["mon.current_a", "mon.current_b", "mon.current_c"],
                      "breaker": "brk", "safety": {"over_current_a": {"warning": 28, "alarm": 32, "duration_s": 0.3, "hysteresis": 2},
                                                   "power_cut": "warn"}}],
        "community": community})


def events(path: Path, *kinds: str):
    return read_events(path, EventQuery(kinds=kinds, limit=None))


async def until(predicate, timeout_s: float = 20.0, what: str = "condition"):
    """`edge.hil.waiting.until` with the community tests' patience: a gateway in process, 20 s."""
    return await waiting.until(predicate, timeout_s, what)


async def run_gateway(config_path, scenario):
    """The gateway on the config at `config_path`, in process, while `scenario(config, gateway)` plays."""
    config = building_config.load(config_path)
    gateway = Gateway(config, config_path)
    running = asyncio.create_task(gateway.run())
    try:
        await until(lambda: gateway.journal is not None and events(config.journal_path, "gateway.started"), what="gateway start")
        await scenario(config, gateway)
    finally:
        gateway.stopping.set()
        await asyncio.wait_for(running, 10)
    return config


async def gateway_on(simulator, config_of, scenario):
    """`run_gateway` (the whole gateway in process) on `simulator`, as field_rig's `on_free_port` runs it."""
    return await on_free_port(simulator, config_of, lambda path: run_gateway(path, scenario))


DOORS = {"doors": [{"name": "gate"}, {"name": "unit-301"}]}  # the trail's two doors, for `building`


async def trail_building(config_path) -> dict[str, str]:
    """Two tenants' cards, and a day of passes as the door path journals them."""
    config = load(config_path)
    config.state_path.mkdir(parents=True, exist_ok=True)
    store = CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())
    keys = {}
    for tenant, serial in (("elder-7", b"\x01\x02\x03\x04"), ("child-9", b"\x05\x06\x07\x08")):
        keys[tenant] = store.key_for(serial)
        store.upsert(Credential(key=keys[tenant], tenant=tenant, valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1),
                                paid_through=date(2027, 1, 1)))
    store.close()

    journal = await Journal.open(config.journal_path)
    for tenant, door in [("elder-7", "gate"), ("child-9", "gate"), ("elder-7", "unit-301"), ("child-9", "unit-301"), ("elder-7", "gate")]:
        await journal.append(Event(DoorKind.ACCESS_DECISION, Priority.ACCESS, f"r-{door}", {
            "door": door, "reader": f"r-{door}", "reason": "granted", "granted": True, "credential": keys[tenant][:12],
            "frame_to_decision_ms": 1.0}))
    await journal.append(Event(DoorKind.DOOR_EXIT, Priority.ACCESS, "gate", {"door": "gate"}))
    await journal.close()
    return keys
