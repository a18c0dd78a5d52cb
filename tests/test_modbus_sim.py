"""The field simulator on its own: value scripts, address checks, command effects, the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

from edge.drivers.modbus.profile import load_profile
from edge.drivers.modbus.tables import Function
from edge.hil.modbus_sim import Constant, Noise, Ramp, SimulatedDevice, Step, wire_break

REPO = Path(__file__).resolve().parent.parent
PROFILES = REPO / "drivers" / "modbus" / "profiles"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_scripts_follow_elapsed_time():
    assert Ramp(start=1.0, per_s=0.5).value_at(4.0) == 3.0
    assert Ramp(start=1.0, per_s=0.5, stop=2.0).value_at(4.0) == 2.0
    assert Ramp(start=5.0, per_s=-1.0, stop=4.0).value_at(4.0) == 4.0
    assert [Step(before=0.3, after=0.0, at_s=2.0).value_at(t) for t in (1.9, 2.0)] == [0.3, 0.0]
    assert Constant(7).value_at(99.0) == 7
    assert wire_break().value_at(0.0) == 0.0
    first, second = Noise(mean=1.0, sd=0.1, seed=3), Noise(mean=1.0, sd=0.1, seed=3)
    assert [first.value_at(0) for _ in range(5)] == [second.value_at(0) for _ in range(5)]


def test_device_plays_a_script_against_its_clock():
    clock = FakeClock()
    device = SimulatedDevice(load_profile(PROFILES / "generic-level.yaml"), 1, clock=clock)
    device.play("level", Ramp(start=2.0, per_s=0.25))
    clock.now += 4.0
    assert device.value_of("level") == pytest.approx(3.0)
    assert device.read(Function.INPUT, 0, 1) == [3000]
    device.set_value("level", 1.5)  # a held value ends the script
    clock.now += 4.0
    assert device.value_of("level") == pytest.approx(1.5)


def test_addresses_outside_the_profile_answer_illegal_address():
    device = SimulatedDevice(load_profile(PROFILES / "generic-level.yaml"), 1)
    assert device.read(Function.INPUT, 0, 2) == [0, 0]
    assert device.read(Function.INPUT, 1, 2) == ExcCodes.ILLEGAL_ADDRESS
    assert device.read(Function.HOLDING, 0, 1) == ExcCodes.ILLEGAL_ADDRESS
    assert device.write(Function.INPUT, 0, [1]) == ExcCodes.ILLEGAL_ADDRESS


def test_commands_move_their_read_back_point_unless_jammed():
    device = SimulatedDevice(load_profile(PROFILES / "generic-breaker.yaml"), 1)
    device.set_value("closed", True)
    assert device.write(Function.COIL, 0, [1]) is None
    assert device.value_of("closed") is False
    device.follow_commands = False
    device.write(Function.COIL, 1, [1])
    assert device.value_of("closed") is False


def test_status_word_bits_are_set_apart():
    device = SimulatedDevice(load_profile(PROFILES / "generic-efm8.yaml"), 1)
    device.set_value("leakage_alarm", True)
    device.set_value("sensor_fault", True)
    device.set_value("leakage_alarm", False)
    assert device.read(Function.INPUT, 17, 1) == [0b100]


def test_command_line_serves_a_profile_over_tcp():
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.hil.modbus_sim", "--profile", f"{PROFILES / 'generic-level.yaml'}@4",
         "--port", "0", "--set", "4.level=2.5"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = process.stdout.readline()
        assert banner.startswith("modbus_sim: TCP on 127.0.0.1:"), process.stderr.read() if not banner else banner
        port = int(banner.rsplit(":", 1)[1])

        async def read_level() -> list[int]:
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
            assert await client.connect()
            try:
                response = await client.read_input_registers(0, count=1, device_id=4)
                return response.registers
            finally:
                client.close()

        assert asyncio.run(read_level()) == [2500]
    finally:
        process.terminate()
        process.wait(timeout=10)
