"""Polling Modbus devices: one task per wire, each device's points read when they fall due.

Each serial port is one `Bus` whose devices are polled in turn; each TCP endpoint is its own
`Bus`, so TCP devices are polled concurrently (wire.py). A device's points are read in as few
blocks as its map allows, the blocks planned once per set of due intervals; a device that stops
answering is only probed (device.py). A profile with variants is polled by its base map until its
identify register picks one. Commands (commands.py) share the wire and go ahead of polls; the
`Poller` is the one object the field bus holds, so it answers for both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pymodbus.pdu import ModbusPDU

from edge.drivers.modbus import commands
from edge.drivers.modbus.device import Device, DeviceCounters, DeviceSpec
from edge.drivers.modbus.observations import (
    DeviceIdentified,
    DeviceUnidentified,
    FaultKind,
    Observation,
    Reading,
    WriteOutcome,
)
from edge.drivers.modbus.plan import Read, plan_reads
from edge.drivers.modbus.points import Point
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.registers import DecodeError, Value, decode_point
from edge.drivers.modbus.wire import Bus, Client, Link, TransactionFailed, answer_words, read_for

Sink = Callable[[Observation], Awaitable[None]] | asyncio.Queue


@dataclass(eq=False, slots=True)
class _PointGroup:
    """The points of a device that share a poll interval: they always fall due together,
    so one due time stands for them all (most devices have one group)."""

    interval_s: float
    names: frozenset[str]
    due: float = 0.0


def _point_groups(profile: Profile) -> list[_PointGroup]:
    names: dict[float, set[str]] = {}
    for point in profile.points:
        names.setdefault(profile.interval_of(point), set()).add(point.name)
    return [_PointGroup(interval, frozenset(members)) for interval, members in names.items()]


@dataclass
class _Schedule:
    """What polling one device needs beside the device itself: when each group of points falls
    due, the planned reads, and what the last answers decoded to."""

    device: Device
    groups: list[_PointGroup] = field(default_factory=list)
    plans: dict[tuple[_PointGroup, ...], list[Read]] = field(default_factory=dict)  # by the due groups
    # The last registers of each point and their value: most registers read the same as last
    # time (states, alarms, a steady load), and decoding is pure, so they are not decoded again.
    decoded: dict[str, tuple[list[int] | list[bool], Value]] = field(default_factory=dict)
    # The whole answer of each planned read (by the id of its Read, which `plans` keeps alive) with
    # every point's value, when all decoded: an answer equal to the last one is reported from here,
    # without slicing or decoding (a steady building's usual poll).
    answers: dict[int, tuple[list[int] | list[bool], tuple[tuple[str, Value, str], ...]]] = field(default_factory=dict)
    # Each planned read's request and whether it reads bits, made once (by the id of its Read, as `answers`).
    requests: dict[int, tuple[Callable[[Client, dict[str, int]], Awaitable[ModbusPDU]], bool]] = field(default_factory=dict)
    # Validity: each voided point's test, and each voider's value with the visit it was read in
    # (a voider read in an earlier visit says nothing about this one's reading).
    void_tests: dict[str, Callable[[Value], bool]] = field(default_factory=dict)
    voiders: dict[str, tuple[Value, int]] = field(default_factory=dict)
    visit: int = 0

    def adopt(self, profile: Profile) -> None:
        """Poll (and command) by `profile` from now on (the base map, or the variant the device identified as)."""
        self.device.spec = replace(self.device.spec, profile=profile)
        self.groups = _point_groups(profile)
        self.plans.clear()
        self.decoded.clear()
        self.answers.clear()
        self.requests.clear()
        self.void_tests.clear()
        self.voiders.clear()
        for point in profile.points:
            if point.void_if is not None:
                voider = profile.point(point.void_if.point)
                self.void_tests[point.name] = point.void_if.predicate(voider.enum)
                self.voiders.setdefault(voider.name, (None, -1))

    def next_wake(self) -> float:
        if not self.device.online:
            return self.device.probe_at
        groups = self.groups
        return groups[0].due if len(groups) == 1 else min(group.due for group in groups)


class Poller:
    """Polls every device of a building and hands observations to `sink`; runs the commands
    sent to them on the same wires.

    `sink` is an async callback or an `asyncio.Queue` (whose size and full-policy the
    caller chooses; the poller awaits `put`, so a full queue slows polling, never drops).
    """

    def __init__(
        self, devices: Sequence[DeviceSpec], sink: Sink, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._emit: Callable[[Observation], Awaitable[None]] = sink.put if isinstance(sink, asyncio.Queue) else sink
        self._clock = clock
        self._buses: dict[Link, Bus] = {}
        self._states: dict[str, _Schedule] = {}
        for spec in devices:
            if spec.name in self._states:
                raise ValueError(f"device {spec.name!r} is listed twice")
            timeout = max(d.timeout_s for d in devices if d.link == spec.link)
            bus = self._buses.setdefault(spec.link, Bus(spec.link, timeout))
            state = self._states[spec.name] = _Schedule(Device(spec, bus, self._emit, clock))
            state.adopt(spec.profile.without_variants())

    @property
    def counters(self) -> Mapping[str, DeviceCounters]:
        return {name: state.device.counters for name, state in self._states.items()}

    def is_online(self, device: str) -> bool:
        return self._states[device].device.online

    def profile_of(self, device: str) -> Profile:
        """The map the device is polled by now: its variant once identified, else the base."""
        return self._states[device].device.spec.profile

    def unidentified(self, device: str) -> str | None:
        """Why the device's identify read picked no map (it is polled by its base map), or None."""
        return self._states[device].device.unidentified

    def queued(self, device: str) -> int:
        """Transactions waiting for the wire `device` hangs on."""
        return self._states[device].device.bus.lane.waiting

    async def write_command(
        self, device: str, command: str, value: float | str | None = None, *, sending: Callable[[], None] | None = None
    ) -> WriteOutcome:
        """Write a named command to `device`, ahead of polls: see `commands.write_command`."""
        return await commands.write_command(self._states[device].device, command, value, sending=sending)

    async def read_now(self, device: str, names: Sequence[str]) -> dict[str, tuple[Value | None, str | None]]:
        """Read the named points of `device` now, ahead of polls: see `commands.read_now`."""
        return await commands.read_now(self._states[device].device, names)

    async def run(self) -> None:
        """Poll until cancelled; closes every client on the way out."""
        try:
            async with asyncio.TaskGroup() as group:
                for bus in self._buses.values():
                    states = [s for s in self._states.values() if s.device.bus is bus]
                    group.create_task(self._serve(states))
        finally:
            for bus in self._buses.values():
                bus.drop()

    async def _serve(self, states: list[_Schedule]) -> None:
        bus = states[0].device.bus  # every device of this task hangs on it
        while True:
            answered = bus.answered
            for state in states:
                await self._visit(state)
            wake = states[0].next_wake() if len(states) == 1 else min(state.next_wake() for state in states)
            delay = wake - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif bus.answered == answered:
                # Already due again and no answer came this round, so nothing may have yielded (a
                # connect refused at once, a sink that does not wait): let the loop run. A round with
                # an answer waited for it, so it goes straight on (a loop turn per round saved).
                await asyncio.sleep(0)


    async def _visit(self, state: _Schedule) -> None:
        now = self._clock()
        device = state.device
        if device.online:
            due = tuple([group for group in state.groups if group.due <= now])
        elif now >= device.probe_at:
            due = tuple(state.groups)
        else:
            return
        if not due:
            return
        for group in due:
            group.due = now + group.interval_s
        if not device.identified and now >= device.identify_at:
            identified = await self._identify(state)
            if identified is None:  # no answer: the device is failing, nothing more this visit
                return
            if identified:
                due = tuple(state.groups)  # the variant's own groups, all due now
                for group in due:
                    group.due = now + group.interval_s
        state.visit += 1
        reads = state.plans.get(due)
        if reads is None:  # a device has few distinct sets of due groups: plan each once
            reads = state.plans[due] = _plan(device.spec.profile, frozenset().union(*(group.names for group in due)))
        for read in reads:
            if not await self._poll(state, read):
                return

    async def _poll(self, state: _Schedule, read: Read) -> bool:
        """Read one block and report its points; False when the device is (now) offline.
        (What `commands.read_point` does for one point, with the request made once: this runs for every poll.)"""
        device = state.device
        prepared = state.requests.get(id(read))
        if prepared is None:
            prepared = state.requests[id(read)] = (read_for(read), read.function.is_bit)
        try:
            response = await device.transact(prepared[0])
            words = None if response.isError() else device.words(read, response, prepared[1])
        except TransactionFailed as failure:
            return await device.failed(failure, f"read {read.function.value} {read.address}+{read.count}")
        if words is None:
            what = f"read {read.function.value} {read.address}+{read.count}"
            await device.fault(FaultKind.EXCEPTION, what, f"{what}: code {response.exception_code}")
            return True
        mono = self._clock()
        name, profile, failing, decoded = device.spec.name, device.spec.profile, device.failing, state.decoded
        voiders, emit, reading = state.voiders, self._emit, Reading._make
        if not failing and not voiders:
            last = state.answers.get(id(read))
            if last is not None and last[0] == words:
                for point_name, value, unit in last[1]:
                    await emit(reading((name, point_name, value, unit, mono)))
                return True
        values: list[tuple[str, Value, str]] | None = [] if not voiders else None
        for point, where in read.slices:
            raw = words[where]
            known = decoded.get(point.name)
            if known is not None and known[0] == raw:
                value = known[1]
            else:
                try:
                    value = decode_point(profile, point, raw)
                except DecodeError as error:
                    values = None  # not a whole answer: the next one is decoded point by point
                    await device.fault(FaultKind.DECODE, point.name, f"{point.name}: {error}")
                    continue
                decoded[point.name] = (raw, value)
            if failing:
                failing.discard(point.name)
            if voiders:
                if point.name in voiders:
                    voiders[point.name] = (value, state.visit)
                if point.void_if is not None and self._voided(state, point):
                    value = None  # the device says this reading is not valid now
            elif values is not None:
                values.append((point.name, value, point.unit))
            await emit(reading((name, point.name, value, point.unit, mono)))
        if values is not None:
            state.answers[id(read)] = (words, tuple(values))
        return True

    async def _identify(self, state: _Schedule) -> bool | None:
        """Read the model or firmware register and poll by the variant it picks: True. An answer that
        picks nothing (an exception, an undecodable value) leaves the base map polled and identify
        retried with backoff: False, reported once a streak. No answer: None (the device is failing)."""
        device = state.device
        spec = device.configured
        base, point = spec.profile, spec.profile.identify
        (read,) = plan_reads([point])
        try:
            response = await device.transact(read_for(read))
        except TransactionFailed as failure:
            await device.failed(failure, f"identify {point.name}")
            return None
        what = f"read {read.function.value} {read.address}+{read.count} ({point.name})"
        problem, identity = None, None
        if response.isError():
            device.counters.count(FaultKind.EXCEPTION)
            problem = f"{what} answered exception {response.exception_code}"
        else:
            words = answer_words(read, response)
            try:
                identity = decode_point(base, point, words[read.slice_of(point)])
            except DecodeError as error:
                device.counters.count(FaultKind.DECODE)
                problem = f"{what}: {error}"
        if problem is not None:
            device.identify_delay = min(max(device.identify_delay * 2, spec.probe_min_s), spec.probe_max_s)
            device.identify_at = self._clock() + device.identify_delay
            if device.unidentified is None:
                await self._emit(DeviceUnidentified(spec.name, point.name, problem, device.identify_delay))
            device.unidentified = problem
            return False
        variant, profile = base.variant_for(identity)
        state.adopt(profile)
        device.identified, device.unidentified, device.identify_delay = True, None, 0.0
        await self._emit(DeviceIdentified(spec.name, identity, variant))
        return True

    @staticmethod
    def _voided(state: _Schedule, point: Point) -> bool:
        """True when the point's voider, read in this same visit, voids it; a voider that was
        not read in this visit leaves the reading's validity unknown, which is not valid."""
        value, visit = state.voiders[point.void_if.point]
        return visit != state.visit or value is None or state.void_tests[point.name](value)


def _plan(profile: Profile, names: frozenset[str]) -> list[Read]:
    """The reads of the points `names` and of the points that void them: reads holding a voider
    go first, and in each read voided points come after the others, so a reading's validity
    is known (from this same visit) when it is reported."""
    voiders = {p.void_if.point for p in profile.points if p.name in names and p.void_if is not None}
    reads = plan_reads(
        [point for point in profile.points if point.name in names or point.name in voiders],
        max_registers=profile.max_registers_per_read,
        max_bits=profile.max_bits_per_read,
        max_gap=profile.max_gap,
    )
    if not voiders:
        return reads
    reads = [
        Read(r.function, r.address, r.count, tuple(sorted(r.points, key=lambda p: p.void_if is not None))) for r in reads
    ]
    return sorted(reads, key=lambda r: not any(p.name in voiders for p in r.points))

