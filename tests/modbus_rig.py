"""Modbus poller set-up shared by the poller, command, field and profile tests: profiles, device
specs, a simulator on loopback TCP, a running poller and taking its observations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge.drivers.modbus.observations import Observation, Reading
from edge.drivers.modbus.device import DeviceSpec
from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.wire import TcpLink
from edge.drivers.modbus.profile import Profile, load_profile
from edge.drivers.modbus.tables import Function
from edge.hil.modbus_sim import FaultPlan, FieldSimulator, SimulatedDevice

from conftest import building, in_background, modbus_device, modbus_tcp

PROFILES = Path(__file__).resolve().parent.parent / "drivers" / "modbus" / "profiles"
WAIT_S = 10.0  # a safety net so a broken test fails instead of hanging; never a timing assertion
ONCE = 3600.0  # a poll interval long enough that a test sees exactly one pass


def profile(model: str, **changes) -> Profile:
    return load_profile(PROFILES / f"{model}.yaml").model_copy(update=changes)


def faulty(model: str, unit_id: int, fault: FaultPlan, **changes) -> tuple[Profile, SimulatedDevice]:
    """A shipped profile (with `changes`, as `profile`) and a device of it at `unit_id` answering as `fault` says."""
    prof = profile(model, **changes)
    device = SimulatedDevice(prof, unit_id)
    device.fault = fault
    return prof, device


def spec(name: str, prof: Profile, link, unit_id: int, **options) -> DeviceSpec:
    options = {"timeout_s": 0.3, "retries": 0, "offline_after": 2, "probe_min_s": 0.05, "probe_max_s": 0.2} | options
    return DeviceSpec(name, prof, link, unit_id, **options)


async def wait_for(queue: asyncio.Queue, found: Callable[[Observation], bool], seen: list | None = None) -> Observation:
    """Take observations until one matches; keep every one taken in `seen`."""

    async def take() -> Observation:
        while True:
            observation = await queue.get()
            if seen is not None:
                seen.append(observation)
            if found(observation):
                return observation

    return await asyncio.wait_for(take(), WAIT_S)


def reading_of(device: str, point: str) -> Callable[[Observation], bool]:
    return lambda o: isinstance(o, Reading) and o.device == device and o.point == point


class Running:
    """`async with Running(poller):` polls in a task, cancelled on the way out."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    async def __aenter__(self) -> Poller:
        self.task = asyncio.create_task(self.poller.run())
        return self.poller

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


class Line:
    """The way from a simulator to the poller, for a test run over both: Modbus TCP on loopback
    ("tcp"), or RTU at 19200 baud over a socat pty pair ("rtu"); conftest's `modbus_line` fixture."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._pair = contextlib.ExitStack()
        self.pair = None

    def __enter__(self) -> Line:
        if self.kind == "rtu":
            from edge.hil.pty import pty_pair

            self.pair = self._pair.enter_context(pty_pair())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pair.close()

    async def start(self, simulator: FieldSimulator):
        """Start `simulator` on this line; the poller's link to it."""
        if self.kind == "tcp":
            return TcpLink("127.0.0.1", await simulator.start_tcp())
        from edge.drivers.modbus.wire import SerialLink

        await simulator.start_rtu(self.pair.b, baudrate=19200)
        return SerialLink(self.pair.a, baudrate=19200)


async def tcp_rig(*devices: SimulatedDevice) -> tuple[FieldSimulator, TcpLink]:
    simulator = FieldSimulator(list(devices))
    port = await simulator.start_tcp()
    return simulator, TcpLink("127.0.0.1", port)


@contextlib.asynccontextmanager
async def polled(served: list[SimulatedDevice] | FieldSimulator, specs_of: Callable[[TcpLink], list[DeviceSpec]],
                 queue: asyncio.Queue) -> AsyncIterator[Poller]:
    """The devices `served` (or a simulator of them a test reads the requests of) on loopback TCP and a
    Poller of the specs `specs_of(link)` gives, putting its observations on `queue`, running (`Running`)
    while the block runs; the poller stops, then the simulator, also when the test failed."""
    simulator = served if isinstance(served, FieldSimulator) else FieldSimulator(list(served))
    link = TcpLink("127.0.0.1", await simulator.start_tcp())
    try:
        async with Running(Poller(specs_of(link), queue)) as poller:
            yield poller
    finally:
        await simulator.stop()


class FlashingRelayModule(SimulatedDevice):
    """An 8-relay module as its manual describes the flash command: FC05 to coil 0x0200 + n with
    the word N switches relay n on for N x 100 ms; the module switches it off by itself."""

    FLASH_BASE = 0x0200

    def __init__(self, profile: Profile, unit_id: int) -> None:
        super().__init__(profile, unit_id)
        self.flashes: dict[int, float] = {}  # relay coil: when the module switches it off

    def write(self, function, address, values):
        if function is Function.COIL and address >= self.FLASH_BASE:
            relay = address - self.FLASH_BASE
            self.set_registers(Function.COIL, relay, [1])
            self.flashes[relay] = self._clock() + values[0] * 0.1
            return None
        return super().write(function, address, values)

    def read(self, function, address, count):
        for relay, until in list(self.flashes.items()):
            if self._clock() >= until:
                self.set_registers(Function.COIL, relay, [0])
                del self.flashes[relay]
        return super().read(function, address, count)


@contextlib.asynccontextmanager
async def one_device_bus(write_config, device: SimulatedDevice, name: str, profile: str, *, bus: str = "box",
                         timeout_s: float = 0.3, subscriptions: tuple = ()) -> AsyncIterator[tuple]:
    """`device` (unit 1, polled every 50 ms) on a simulator of its own, a building with it as `name` on
    TCP bus `bus`, and that building's FieldBus running in process, each (point, callback) of
    `subscriptions` subscribed before it runs; yields the config and the field bus; all stopped after."""
    from edge.config import building as building_config
    from edge.config.building import device_profiles
    from edge.fieldbus.devices import FieldBus, PointKey, device_specs
    from edge.journal import Journal

    simulator = FieldSimulator([device])
    port = await simulator.start_tcp()
    config = building_config.load(write_config(building(modbus_tcp(port, timeout_s=timeout_s, name=bus),
                                                        {"devices": [modbus_device(name, 1, profile, poll_s=0.05, bus=bus)]})))
    journal = await Journal.open(config.journal_path)
    fieldbus = FieldBus(device_specs(config, device_profiles(config)), journal)
    for point, callback in subscriptions:
        fieldbus.subscribe(PointKey.parse(point), callback)
    try:
        async with in_background(fieldbus.run()):
            yield config, fieldbus
    finally:
        await simulator.stop()
        await journal.close()
