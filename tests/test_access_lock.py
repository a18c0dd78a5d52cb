"""Door lock pulses are serial per door: overlapping pulses extend to the later end, never secure early.

The lock writes through the FieldBus to a pymodbus server (the simulated IO module); a gate in
front of the bus holds the first release write, so the second pulse deterministically arrives
while the first one's write is still on the wire.
"""

from __future__ import annotations

import asyncio

import pytest

from drivers.modbus.profile import load_profile
from edge import config as building_config
from edge.config import Lock, device_profiles
from edge.doors.lock import DoorLock
from edge.fieldbus import FieldBus, device_specs
from edge.journal import Journal
from hil.modbus_sim import FieldSimulator, SimulatedDevice

from conftest import MINIMAL, REPO

pytestmark = pytest.mark.timeout(60)
LOCK = Lock(device="doors-io", release="release_1", secure="secure_1")


class GatedBus:
    """The field bus, with the first `release` write held until `gate` is set; every write is logged
    with the loop time it was sent."""

    def __init__(self, fieldbus: FieldBus) -> None:
        self.fieldbus = fieldbus
        self.gate = asyncio.Event()
        self.holding = False
        self.sent: list[tuple[str, float]] = []

    async def command(self, device: str, command: str) -> bool:
        if command == LOCK.release and not self.holding:
            self.holding = True
            await self.gate.wait()
        self.sent.append((command, asyncio.get_running_loop().time()))
        return await self.fieldbus.command(device, command)


async def _until(predicate, what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.01)


async def _io_module(write_config):
    io = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
    simulator = FieldSimulator([io])
    port = await simulator.start_tcp()
    config = building_config.load(write_config(MINIMAL + f"""
buses: [{{name: doors-bus, type: tcp, host: 127.0.0.1, port: {port}, timeout_s: 0.5}}]
devices: [{{name: doors-io, bus: doors-bus, address: 1, profile: generic-dio8, poll_s: 0.05}}]
"""))
    journal = await Journal.open(config.journal_path)
    fieldbus = FieldBus(device_specs(config, device_profiles(config)), journal)
    return io, simulator, journal, fieldbus


def test_overlapping_pulses_secure_once_at_the_later_end(write_config):
    async def scenario():
        io, simulator, journal, fieldbus = await _io_module(write_config)
        running = asyncio.create_task(fieldbus.run())
        bus = GatedBus(fieldbus)
        unconfirmed: list[tuple[str, str]] = []

        async def note(door: str, command: str) -> None:
            unconfirmed.append((door, command))

        lock = DoorLock("front", LOCK, bus, note, lambda: False)
        try:
            await _until(lambda: fieldbus.is_online("doors-io"), "the IO module coming online")
            short = asyncio.create_task(lock.pulse(0.4))
            await _until(lambda: bus.holding, "the first release write starting")
            long_started = asyncio.get_running_loop().time()
            long = asyncio.create_task(lock.pulse(1.0))  # its write overlaps the first one's
            await asyncio.sleep(0)  # let the second pulse reach its own wait
            bus.gate.set()
            confirmed = await asyncio.gather(short, long)
            await _until(lambda: io.value_of("relay_1") is True, "the relay releasing")
            await _until(lambda: io.value_of("relay_1") is False, "the relay securing")
            return confirmed, list(bus.sent), long_started, unconfirmed
        finally:
            await lock.close()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await journal.close()
            await simulator.stop()

    confirmed, sent, long_started, unconfirmed = asyncio.run(scenario())
    assert confirmed == [True, True] and unconfirmed == []
    secures = [at for command, at in sent if command == LOCK.secure]
    assert len(secures) == 1, f"one secure write for two overlapping pulses, got {sent}"
    assert secures[0] >= long_started + 1.0, "the door stays released until the later pulse ends"
    assert all(command == LOCK.release for command, _ in sent[:-1])


def test_a_pulse_during_a_pulse_extends_it_and_a_fire_release_stops_it(write_config):
    async def scenario():
        io, simulator, journal, fieldbus = await _io_module(write_config)
        running = asyncio.create_task(fieldbus.run())
        bus = GatedBus(fieldbus)
        bus.holding = True  # no gate in this test
        fire = [False]

        async def note(door: str, command: str) -> None:
            pass

        lock = DoorLock("front", LOCK, bus, note, lambda: fire[0])
        try:
            await _until(lambda: fieldbus.is_online("doors-io"), "the IO module coming online")
            assert await lock.pulse(0.3)
            extended_at = asyncio.get_running_loop().time()
            assert await lock.pulse(0.8)
            await _until(lambda: not lock.pulsing, "the extended pulse ending")
            first = list(bus.sent)
            assert await lock.pulse(5.0)
            fire[0] = True
            assert await lock.release()  # fire: released for good, the pulse's timer is gone
            assert not lock.pulsing
            return first, extended_at, io.value_of("relay_1")
        finally:
            await lock.close()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await journal.close()
            await simulator.stop()

    first, extended_at, relay = asyncio.run(scenario())
    assert [command for command, _ in first] == ["release_1", "release_1", "secure_1"]
    assert first[-1][1] >= extended_at + 0.8
    assert relay is True
