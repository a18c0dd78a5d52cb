"""Door lock pulses are serial per door: overlapping pulses extend to the later end, never secure early.

The lock writes through the FieldBus to a pymodbus server (the simulated IO module); a gate in
front of the bus holds the first release write, so the second pulse deterministically arrives
while the first one's write is still on the wire.
"""

from __future__ import annotations

import asyncio

import pytest

from edge.drivers.modbus.profile import load_profile
from edge.config import building as building_config
from edge.config.building import device_profiles
from edge.doors.settings import Lock
from edge.doors.lock import DoorLock
from edge.doors.wiring import assemble_doors
from edge.fieldbus.devices import FieldBus, device_specs
from edge.journal import Journal
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.waiting import until

from conftest import MINIMAL, REPO, building, doors_io, io_lock
from modbus_rig import FlashingRelayModule

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


async def _doors_bus(write_config, module: SimulatedDevice, doors: dict | None = None):
    """`module` as doors-io (unit 1) on a simulator of its own, the building's config with `doors`, its
    journal and its field bus (not yet running)."""
    simulator = FieldSimulator([module])
    port = await simulator.start_tcp()
    config = building_config.load(write_config(building(doors_io(port), doors or {})))
    journal = await Journal.open(config.journal_path)
    return simulator, config, journal, FieldBus(device_specs(config, device_profiles(config)), journal)


async def _close(lock, running: asyncio.Task, journal, simulator) -> None:
    """The lock, then the field bus's task, the journal and the simulator (a test's `finally`)."""
    await lock.close()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await journal.close()
    await simulator.stop()


async def _io_module(write_config):
    io = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
    simulator, _, journal, fieldbus = await _doors_bus(write_config, io)
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
            await until(lambda: fieldbus.is_online("doors-io"), 5.0, "the IO module coming online", every_s=0.01)
            short = asyncio.create_task(lock.pulse(0.4))
            await until(lambda: bus.holding, 5.0, "the first release write starting", every_s=0.01)
            long_started = asyncio.get_running_loop().time()
            long = asyncio.create_task(lock.pulse(1.0))  # its write overlaps the first one's
            await asyncio.sleep(0)  # let the second pulse reach its own wait
            bus.gate.set()
            confirmed = await asyncio.gather(short, long)
            await until(lambda: io.value_of("relay_1") is True, 5.0, "the relay releasing", every_s=0.01)
            await until(lambda: io.value_of("relay_1") is False, 5.0, "the relay securing", every_s=0.01)
            return confirmed, list(bus.sent), long_started, unconfirmed
        finally:
            await _close(lock, running, journal, simulator)

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
            await until(lambda: fieldbus.is_online("doors-io"), 5.0, "the IO module coming online", every_s=0.01)
            assert await lock.pulse(0.3)
            extended_at = asyncio.get_running_loop().time()
            assert await lock.pulse(0.8)
            await until(lambda: not lock.pulsing, 5.0, "the extended pulse ending", every_s=0.01)
            first = list(bus.sent)
            assert await lock.pulse(5.0)
            fire[0] = True
            assert await lock.release()  # fire: released for good, the pulse's timer is gone
            assert not lock.pulsing
            return first, extended_at, io.value_of("relay_1")
        finally:
            await _close(lock, running, journal, simulator)

    first, extended_at, relay = asyncio.run(scenario())
    assert [command for command, _ in first] == ["release_1", "release_1", "secure_1"]
    assert first[-1][1] >= extended_at + 0.8
    assert relay is True


# Doors driven by a module-timed pulse (the relay module's flash command, `pulse_N` of generic-dio8).
PULSE_DOORS = {"doors": [{"name": "front", "egress": True, "unlock_s": 1.0, "lock": {**io_lock(1), "pulse": "pulse_1"}},
                         {"name": "back", "unlock_s": 0.7, "lock": {"device": "doors-io", "pulse": "pulse_2"}}]}


class RecordingFlasher(FlashingRelayModule):
    """The flashing relay module, logging each write as (coil address, word) and each flash
    it ends by itself as ("ended", relay), in order."""

    def __init__(self, profile, unit_id: int) -> None:
        super().__init__(profile, unit_id)
        self.log: list[tuple] = []

    def write(self, function, address, values):
        self.log.append((address, values[0]))
        return super().write(function, address, values)

    def read(self, function, address, count):
        ending = [relay for relay, until in self.flashes.items() if self._clock() >= until]
        self.log += [("ended", relay) for relay in ending]
        return super().read(function, address, count)


async def _pulse_building(write_config, doors: dict = PULSE_DOORS):
    module = RecordingFlasher(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
    simulator, config, journal, fieldbus = await _doors_bus(write_config, module, doors)
    doors = assemble_doors(config, journal, fieldbus)
    tasks = [asyncio.create_task(fieldbus.run()), *(asyncio.create_task(work()) for work in doors.work.values())]
    await until(lambda: fieldbus.is_online("doors-io"), 5.0, "the IO module coming online", every_s=0.01)
    return module, simulator, journal, doors, tasks


async def _stop(simulator, journal, tasks) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await journal.close()
    await simulator.stop()


def test_a_pulse_door_is_unlocked_by_the_modules_own_timer_and_a_pulse_during_it_is_sent_again(write_config):
    async def scenario():
        module, simulator, journal, doors, tasks = await _pulse_building(write_config)
        try:
            answer = await doors.access.remote_unlock({"door": "back", "operator": "T-17", "reason": "delivery"})
            await until(lambda: ("ended", 1) in module.log, 5.0, "the module ending its pulse", every_s=0.01)
            await until(lambda: module.value_of("relay_2") is False, 5.0, "the relay switched off by the module", every_s=0.01)
            single = list(module.log)
            lock = doors.access.doors["back"].lock
            assert await lock.pulse(1.5)
            assert await lock.pulse(0.3)  # a shorter grant during the pulse: the later end stands
            assert await lock.pulse(4.0)  # a longer one: the module's timer starts over, longer
            overlapping = [word for address, word in module.log[len(single):] if address == 0x0201]
            return answer, single, overlapping
        finally:
            await _stop(simulator, journal, tasks)

    answer, single, overlapping = asyncio.run(scenario())
    assert answer["ok"] and answer["confirmed"]
    assert single == [(0x0201, 7), ("ended", 1)], "one FC05 word of 7 x 100 ms, ended by the module; no secure write"
    assert len(overlapping) == 3, "every pulse during a pulse is sent again"
    assert overlapping[0] == 15 and 3 < overlapping[1] <= 15, "the re-sent pulse runs to the first grant's end, not 0.3 s"
    assert overlapping[2] == 40


@pytest.mark.parametrize("pulse_doors", [PULSE_DOORS, {"doors": PULSE_DOORS["doors"][:1]}], ids=["per-door", "block-write"])
def test_fire_holds_a_pulse_door_by_its_release_even_when_the_modules_pulse_ends(write_config, pulse_doors):
    """With only egress doors on the module the fire release is its one release_all write."""
    async def scenario():
        module, simulator, journal, doors, tasks = await _pulse_building(write_config, pulse_doors)
        try:
            await doors.access.remote_unlock({"door": "front", "operator": "T-17"})  # a 1 s module-timed pulse
            doors.fire.trigger("panel")  # fire during the pulse: the door is released by release_1
            await until(lambda: (0x0000, 1) in module.log, 5.0, "the fire release write", every_s=0.01)
            await until(lambda: ("ended", 0) in module.log, 5.0, "the module ending the pulse sent before the fire", every_s=0.01)
            ended = module.log.index(("ended", 0))
            await until(lambda: (0x0000, 1) in module.log[ended:], 5.0, "release written again after the pulse's end", every_s=0.01)
            await until(lambda: module.value_of("relay_1") is True, 5.0, "the relay held on for the fire", every_s=0.01)
            held = list(module.log)
            assert await doors.fire.reset("tech-7")
            await until(lambda: module.value_of("relay_1") is False, 5.0, "the reset securing the door", every_s=0.01)
            return held
        finally:
            await _stop(simulator, journal, tasks)

    held = asyncio.run(scenario())
    assert held[0] == (0x0200, 10), "the unlock was the module's 1 s pulse"
    assert [entry for entry in held if entry[0] == 0x0200] == [(0x0200, 10)], "no pulse during the fire"


@pytest.mark.parametrize("lock, extra, message", [
    ("{device: doors-io, pulse: pulse_1}", "egress: true", "an egress door driven by pulse needs release and secure too"),
    ("{device: doors-io, pulse: pulse_1, release: release_1}", "", "release and secure come together"),
    ("{device: doors-io}", "", "a lock needs release and secure, or pulse"),
    ("{device: doors-io, pulse: pulse_9}", "", "has no command 'pulse_9'"),
    ("{device: doors-io, pulse: pulse_1}", "unlock_s: 0.05", "unlock_s 0.05 is outside what pulse_1 takes (0.1..60 s)"),
    ("{device: doors-io, pulse: release_1}", "", None),  # a fixed pulse: its length is the profile's
    ("{device: doors-io, release: pulse_1, secure: secure_1}", "", "pulse_1 takes a value at run time"),
])


def test_a_pulse_lock_is_checked_when_the_config_loads(write_config, lock, extra, message):
    # text, not data: the problem names the door's line, one line in flow style
    path = write_config(MINIMAL + f"""
buses: [{{name: doors-bus, type: tcp, host: 127.0.0.1, port: 1502}}]
devices: [{{name: doors-io, bus: doors-bus, address: 1, profile: generic-dio8}}]
doors: [{{name: front, lock: {lock}{', ' + extra if extra else ''}}}]
""")
    if message is None:
        assert building_config.load(path).doors[0].lock.pulse == "release_1"
        return
    with pytest.raises(building_config.ConfigError) as refused:
        building_config.load(path)
    assert message in str(refused.value) and "building.yaml:9:" in str(refused.value), str(refused.value)  # the doors line
