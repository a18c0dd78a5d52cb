"""The demo building's simulated hardware: what `config/demo.yaml` points at.

One Modbus TCP simulator on 127.0.0.1:15020 holds every device, with value scripts that
make something happen within a minute: circuit f1-c1's phase A current climbs past its
warning and alarm limits (the gateway trips the breaker), and the roof tank's loop wire
breaks after 40 s (a sensor fault, which must never read as an empty tank).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from drivers.modbus.profile import load_profile
from hil.modbus_sim import FieldSimulator, Noise, Ramp, SimulatedDevice, Step, wire_break

PROFILES = Path(__file__).resolve().parent.parent / "config" / "profiles"
PORT = 15020


def devices() -> list[SimulatedDevice]:
    monitor = SimulatedDevice(load_profile(PROFILES / "generic-efm8.yaml"), 1)
    monitor.play("current_a", Ramp(start=14.0, per_s=0.5, stop=38.0))
    monitor.play("current_b", Noise(mean=12.0, sd=0.3, seed=2))
    monitor.play("current_c", Noise(mean=9.5, sd=0.3, seed=3))
    monitor.set_value("leakage_ma", 35)
    monitor.play("cable_temp_1", Noise(mean=31.0, sd=0.2, seed=4))
    breaker = SimulatedDevice(load_profile(PROFILES / "generic-breaker.yaml"), 2)
    breaker.set_value("closed", True)
    water = SimulatedDevice(load_profile(PROFILES / "generic-ai8.yaml"), 3)
    for channel in range(1, 9):
        water.set_value(f"ch{channel}_ma", 4.0)
    water.play("ch1_ma", Noise(mean=11.5, sd=0.05, seed=5))  # about 0.75 MPa
    water.play("ch3_ma", Step(before=14.0, after=wire_break().value, at_s=40.0))  # 3.1 m, then a cut wire
    doors = SimulatedDevice(load_profile(PROFILES / "generic-dio8.yaml"), 4)
    for n in range(1, 9):
        doors.set_value(f"input_{n}", False)
    return [monitor, breaker, water, doors]


class DemoBuilding:
    """Runs the simulator on its own event loop in a background thread."""

    def __init__(self, port: int = PORT) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo-building", daemon=True)
        self.simulator = FieldSimulator(devices())

    def __enter__(self) -> "DemoBuilding":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.simulator.start_tcp("127.0.0.1", self.port), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
