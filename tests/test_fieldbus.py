"""The field bus: readings reach their subscribers, device trouble reaches the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.drivers.modbus.profile import Function, load_profile
from edge import config as building_config
from edge.config import device_profiles
from edge.fieldbus import FieldBus, PointKey, device_specs
from edge.journal import EventQuery, Journal, read_events
from edge.hil.modbus_sim import Fault, FaultPlan, FieldSimulator, SimulatedDevice

from conftest import MINIMAL, REPO


def test_readings_reach_subscribers_and_an_offline_device_is_journaled(write_config, building_dir: Path):
    async def scenario():
        monitor = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-efm8.yaml"), 1)
        monitor.set_value("current_a", 12.5)
        simulator = FieldSimulator([monitor])
        port = await simulator.start_tcp()
        path = write_config(MINIMAL + f"""
buses: [{{name: floor-1, type: tcp, host: 127.0.0.1, port: {port}, timeout_s: 0.2}}]
devices: [{{name: f1-monitor, bus: floor-1, address: 1, profile: generic-efm8, poll_s: 0.05}}]
""")
        config = building_config.load(path)
        journal = await Journal.open(config.journal_path)
        fieldbus = FieldBus(device_specs(config, device_profiles(config)), journal)
        currents: list[float] = []
        fieldbus.subscribe(PointKey.parse("f1-monitor.current_a"), lambda reading: currents.append(reading.value))
        running = asyncio.create_task(fieldbus.run())
        try:
            while len(currents) < 3:
                await asyncio.sleep(0.02)
            monitor.fault = FaultPlan(Fault.SILENT)
            while fieldbus.is_online("f1-monitor"):
                await asyncio.sleep(0.05)
            monitor.fault = None
            while not fieldbus.is_online("f1-monitor"):
                await asyncio.sleep(0.05)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await simulator.stop()
            await journal.close()
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
        simulator = FieldSimulator([relay])
        port = await simulator.start_tcp()
        path = write_config(MINIMAL + f"""
buses: [{{name: box, type: tcp, host: 127.0.0.1, port: {port}, timeout_s: 0.2}}]
devices: [{{name: rcm, bus: box, address: 1, profile: rcm-relay, poll_s: 0.05}}]
""")
        config = building_config.load(path)
        journal = await Journal.open(config.journal_path)
        fieldbus = FieldBus(device_specs(config, device_profiles(config)), journal)
        leakage: list[float] = []
        fieldbus.subscribe(PointKey.parse("rcm.leakage_ma"), lambda reading: leakage.append(reading.value))
        running = asyncio.create_task(fieldbus.run())
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while not leakage:
                assert asyncio.get_running_loop().time() < deadline, "no leakage reading within 10 s"
                await asyncio.sleep(0.02)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await simulator.stop()
            await journal.close()
        return config, leakage

    config, leakage = asyncio.run(scenario())
    assert leakage[0] == 25.0
    (identified,) = read_events(config.journal_path, EventQuery(kinds=("device.identified",), limit=None))
    assert identified.source == "rcm" and identified.body == {"identity": 0x0203, "variant": "fw2"}
