"""The field bus: readings reach their subscribers, device trouble reaches the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.drivers.modbus.profile import load_profile
from edge.drivers.modbus.tables import Function
from edge.journal import EventQuery, read_events
from edge.hil.modbus_sim import Fault, FaultPlan, SimulatedDevice
from edge.hil.waiting import until

from conftest import REPO
from modbus_rig import one_device_bus


def test_readings_reach_subscribers_and_an_offline_device_is_journaled(write_config, building_dir: Path):
    async def scenario():
        monitor = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-efm8.yaml"), 1)
        monitor.set_value("current_a", 12.5)
        currents: list[float] = []
        async with one_device_bus(write_config, monitor, "f1-monitor", "generic-efm8", bus="floor-1", timeout_s=0.2,
                                  subscriptions=[("f1-monitor.current_a", lambda reading: currents.append(reading.value))]) as (config, fieldbus):
            await until(lambda: len(currents) >= 3, 20, "three readings", every_s=0.02)
            monitor.fault = FaultPlan(Fault.SILENT)
            await until(lambda: not fieldbus.is_online("f1-monitor"), 20, "the silent monitor offline")
            monitor.fault = None
            await until(lambda: fieldbus.is_online("f1-monitor"), 20, "the monitor back online")
        return config, currents

    config, currents = asyncio.run(scenario())
    assert currents[:3] == [12.5, 12.5, 12.5]
    kinds = [(e.kind, e.source) for e in read_events(config.journal_path, EventQuery(limit=None))]
    assert ("fault.device", "f1-monitor") in kinds
    assert kinds.index(("fault.device_offline", "f1-monitor")) < kinds.index(("device.back", "f1-monitor"))


def test_the_variant_a_device_identifies_as_is_journaled(write_config, building_dir: Path):
    (building_dir / "profiles" / "rcm-relay.yaml").write_text("""
model: rcm-relay
addressing: one_based
points: [{name: leakage_ma, function: input, address: 7, type: uint16, unit: mA}]
identify: {name: firmware, function: input, address: 257, type: uint16}
variants:
  - {name: fw2, at_least: 0x200, points: [{name: leakage_ma, function: input, address: 101, type: float32, unit: mA}]}
""")

    async def scenario():
        relay = SimulatedDevice(load_profile(building_dir / "profiles" / "rcm-relay.yaml"), 1)
        relay.set_registers(Function.INPUT, 256, [0x0203])
        relay.set_registers(Function.INPUT, 100, [0x41C8, 0x0000])  # 25.0 as an IEEE float, high word first
        leakage: list[float] = []
        async with one_device_bus(write_config, relay, "rcm", "rcm-relay", timeout_s=0.2,
                                  subscriptions=[("rcm.leakage_ma", lambda reading: leakage.append(reading.value))]) as (config, fieldbus):
            await until(lambda: leakage, 10, "a leakage reading", every_s=0.02)
        return config, leakage

    config, leakage = asyncio.run(scenario())
    assert leakage[0] == 25.0
    (identified,) = read_events(config.journal_path, EventQuery(kinds=("device.identified",), limit=None))
    assert identified.source == "rcm" and identified.body == {"identity": 0x0203, "variant": "fw2"}
