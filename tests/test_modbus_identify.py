"""Identify that never silently stops polling (issue 21, item 3): an identify read answered with a
Modbus exception is a named fault, the device is polled by its base map meanwhile and shown
unidentified, identify is retried with backoff, and a variant may drop base points."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError
from pymodbus.constants import ExcCodes

from edge.hil.waiting import until
from edge.drivers.modbus.observations import DeviceIdentified, DeviceUnidentified, Reading
from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import Function
from edge.conditions import ActiveConditions
from edge.journal import EventQuery, read_events
from edge.status.health import Disk, Probe, verdict
from edge.status.view import BuildingView
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice

from modbus_rig import WAIT_S, Running, one_device_bus, spec, tcp_rig, wait_for

ILLEGAL_ADDRESS = ExcCodes.ILLEGAL_ADDRESS
FIRMWARE = 0x100  # input register 257 as the manual prints it

# A residual-current relay family: the base map is the full model's; firmware 1 lacks the
# temperature input, so its variant drops it.
RCM = {
    "model": "rcm-family",
    "interval_s": 0.05,
    "points": [
        {"name": "leakage_ma", "function": "input", "address": 6, "type": "uint16", "unit": "mA"},
        {"name": "temperature", "function": "input", "address": 8, "type": "int16", "scale": 0.1, "unit": "C"},
    ],
    "identify": {"name": "firmware", "function": "input", "address": FIRMWARE, "type": "uint16"},
    "variants": [{"name": "fw1", "below": 0x200, "drop": ["temperature"]}],
}


class Unflashed(SimulatedDevice):
    """Answers its firmware register with ILLEGAL_ADDRESS until `flashed`, as a model that lacks it does."""

    def __init__(self, profile: Profile, unit_id: int) -> None:
        super().__init__(profile, unit_id)
        self.flashed = False
        self.identify_reads = 0
        self.set_registers(Function.INPUT, FIRMWARE, [0x0105])
        self.set_value("leakage_ma", 12)
        self.set_value("temperature", 31.5)

    def read(self, function, address, count):
        if function is Function.INPUT and address <= FIRMWARE < address + count:
            self.identify_reads += 1
            if not self.flashed:
                return ILLEGAL_ADDRESS
        return super().read(function, address, count)


async def _unidentified_then_identified(line) -> dict:
    profile = Profile.model_validate(RCM)
    device = Unflashed(profile, 4)
    simulator = FieldSimulator([device])
    link = await line.start(simulator)
    queue: asyncio.Queue = asyncio.Queue()
    poller = Poller([spec("rcm", profile, link, 4, probe_min_s=0.05, probe_max_s=0.2)], queue)
    seen: list = []
    try:
        async with Running(poller):
            unidentified = await wait_for(queue, lambda o: isinstance(o, DeviceUnidentified), seen)
            temperature = await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "temperature", seen)
            state = poller.unidentified("rcm")
            while device.identify_reads < 3:  # retried, with backoff
                await wait_for(queue, lambda o: True, seen)
            device.flashed = True
            identified = await wait_for(queue, lambda o: isinstance(o, DeviceIdentified), seen)
            after: list = []
            for _ in range(3):
                await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "leakage_ma", after)
    finally:
        await simulator.stop()
    return {"unidentified": unidentified, "temperature": temperature, "state": state, "seen": seen,
            "identified": identified, "after": after, "now": poller.unidentified("rcm")}


def _judge(found: dict) -> None:
    unidentified = found["unidentified"]
    assert unidentified.device == "rcm" and unidentified.point == "firmware"
    assert unidentified.detail == f"read input {FIRMWARE}+1 (firmware) answered exception {ILLEGAL_ADDRESS}"
    assert found["temperature"].value == pytest.approx(31.5), "the base map is polled while unidentified"
    assert found["state"] == unidentified.detail
    assert sum(isinstance(o, DeviceUnidentified) for o in found["seen"]) == 1, "one report per streak, not one per retry"
    assert found["identified"].identity == 0x0105 and found["identified"].variant == "fw1"
    assert found["now"] is None
    assert not [o for o in found["after"] if isinstance(o, Reading) and o.point == "temperature"], "fw1 drops it"


def test_an_identify_answered_with_an_exception_polls_the_base_map_and_is_retried(modbus_line):
    """Over Modbus TCP and over an RTU line."""
    _judge(asyncio.run(_unidentified_then_identified(modbus_line)))


def test_an_unidentified_device_is_a_named_fault_in_the_journal_every_view_and_healthz(write_config, building_dir: Path):
    import yaml

    (building_dir / "profiles" / "rcm-family.yaml").write_text(yaml.safe_dump(RCM))

    async def scenario():
        device = Unflashed(Profile.model_validate(RCM), 1)
        states = []
        async with one_device_bus(write_config, device, "rcm", "rcm-family") as (config, fieldbus):
            await until(lambda: fieldbus.unidentified("rcm") is not None and device.identify_reads >= 2, WAIT_S, "unidentified", every_s=0.02)
            states.append(fieldbus.device_state("rcm"))
            device.flashed = True
            await until(lambda: fieldbus.unidentified("rcm") is None, WAIT_S, "identified", every_s=0.02)
            states.append(fieldbus.device_state("rcm"))
        return config, states

    config, states = asyncio.run(scenario())
    assert states == ["unidentified", "online"]
    events = read_events(config.journal_path, EventQuery(limit=None))
    (fault,) = [e for e in events if e.kind == "fault.device_unidentified"]
    assert fault.source == "rcm" and fault.body["point"] == "firmware" and "exception 2" in fault.body["detail"]
    assert not [e for e in events if e.kind == "fault.device"], "the named fault, not a bare fault.device"
    model, view = ActiveConditions(), BuildingView(config)
    for event in events:
        model.apply(event)
        view.apply(event)
        if event.seq == fault.seq:
            (active,) = [c for c in model.now(1e12) if c.kind == "fault.device_unidentified"]
            assert str(active.severity) == "fault" and "unidentified" in active.text and "exception 2" in active.text
            assert view.devices["rcm"]["unidentified"] == fault.body["detail"]
    assert not [c for c in model.now(1e12) if c.kind == "fault.device_unidentified"], "ended by device.identified"
    assert view.devices["rcm"]["unidentified"] is None


def test_unidentified_is_a_healthz_problem_and_a_device_row_of_the_status_view(write_config):
    probe = Probe(0.0, 0.0, Disk(0, 1 << 30, True), {"rcm": True}, unidentified={"rcm": "read input 256+1 (firmware) answered exception 2"})
    healthy, body = verdict(probe)
    assert not healthy and body["unidentified"] == {"rcm": "read input 256+1 (firmware) answered exception 2"}
    assert body["problems"] == ["device rcm unidentified (polled by its base map only): read input 256+1 (firmware) answered exception 2"]


def test_a_variant_may_drop_base_points_and_a_drop_must_name_one():
    profile = Profile.model_validate(RCM)
    _, fw1 = profile.variant_for(0x105)
    assert [p.name for p in fw1.points] == ["leakage_ma"]
    with pytest.raises(ValidationError, match="drop: humidity is not a point of the base map"):
        Profile.model_validate({**RCM, "variants": [{"name": "fw1", "below": 2, "drop": ["humidity"]}]})
    with pytest.raises(ValidationError, match="temperature: a point is either dropped or given"):
        Profile.model_validate({**RCM, "variants": [{"name": "fw1", "below": 2, "drop": ["temperature"],
                                                     "points": [RCM["points"][1]]}]})
