"""The field bus: readings reach their subscribers, device trouble reaches the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.modbus.profile import load_profile
from edge import config as building_config
from edge.config import device_profiles
from edge.fieldbus import FieldBus, PointKey, device_specs
from edge.journal import EventQuery, Journal, read_events
from hil.modbus_sim import Fault, FaultPlan, FieldSimulator, SimulatedDevice

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
