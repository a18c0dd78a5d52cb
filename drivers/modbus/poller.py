"""Polling Modbus devices: one Bus per wire, typed observations out.

An RS-485 line is half-duplex: one transaction at a time, so each serial port is one `Bus`
whose devices are polled in turn. Each TCP endpoint is its own `Bus`, so TCP devices are
polled concurrently. A device that stops answering is reported offline after
`offline_after` failed transactions and then only probed, with exponential backoff, so a
dead device costs its line little time. After an error on TCP the client is dropped and
rebuilt (as edgexfoundry's device-modbus-go does): a half-open socket never recovers.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import WriteSingleCoilRequest

from edge.drivers.modbus.frames import classify_rtu, classify_tcp
from edge.drivers.modbus.lane import Lane, Priority
from edge.drivers.modbus.observations import (
    CommandOutcome,
    DeviceBack,
    DeviceIdentified,
    DeviceOffline,
    DeviceUnidentified,
    FaultKind,
    Observation,
    PollFault,
    Reading,
)
from edge.drivers.modbus.plan import Read, plan_reads
from edge.drivers.modbus.profile import Command, Function, Match, Point, Profile, Result
from edge.drivers.modbus.registers import DecodeError, EncodeError, Value, command_words, decode_point

# pymodbus 3.10 renamed slave= to device_id=.
_UNIT = "device_id" if "device_id" in inspect.signature(AsyncModbusTcpClient.read_coils).parameters else "slave"

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
Sink = Callable[[Observation], Awaitable[None]] | asyncio.Queue


@dataclass(frozen=True, slots=True)
class TcpLink:
    host: str
    port: int = 502


@dataclass(frozen=True, slots=True)
class SerialLink:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1


Link = TcpLink | SerialLink


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device on one link, as the building config names it."""

    name: str
    profile: Profile
    link: Link
    unit_id: int = 1
    timeout_s: float = 1.0
    retries: int = 1
    offline_after: int = 3
    probe_min_s: float = 1.0
    probe_max_s: float = 60.0


@dataclass
class DeviceCounters:
    """What went over the wire for one device, for diagnostics and the health report."""

    requests: int = 0
    answers: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    short_frames: int = 0
    exceptions: int = 0
    connection_errors: int = 0
    decode_errors: int = 0

    def count(self, kind: FaultKind) -> None:
        attribute = {
            FaultKind.TIMEOUT: "timeouts",
            FaultKind.CRC: "crc_errors",
            FaultKind.SHORT_FRAME: "short_frames",
            FaultKind.EXCEPTION: "exceptions",
            FaultKind.CONNECTION: "connection_errors",
            FaultKind.DECODE: "decode_errors",
        }[kind]
        setattr(self, attribute, getattr(self, attribute) + 1)


class TransactionFailed(Exception):
    """A request got no usable answer."""

    def __init__(self, kind: FaultKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


class Bus:
    """One wire (a serial port or a TCP endpoint): one transaction at a time, commands first."""

    def __init__(self, link: Link, timeout_s: float) -> None:
        self.link = link
        self.lane = Lane()
        self._timeout_s = timeout_s
        self._client: Client | None = None
        self._received = b""
        self._gap_s = _frame_gap_s(link) if isinstance(link, SerialLink) else 0.0
        self._quiet_at = 0.0  # an RTU line must be silent 3.5 characters between frames
        self.answered = 0  # answers received: each one was awaited, so the task that asked has yielded to the loop
        self._loop: asyncio.AbstractEventLoop | None = None  # where the transactions run (see _cancelling)

    def _witness(self, sending: bool, data: bytes) -> bytes:
        """pymodbus trace hook: keep the longest receive buffer of this transaction."""
        if not sending and len(data) > len(self._received):
            self._received = data
        return data

    def _build(self) -> Client:
        common = {"timeout": self._timeout_s, "retries": 0, "reconnect_delay": 0, "trace_packet": self._witness}
        if isinstance(self.link, TcpLink):
            return AsyncModbusTcpClient(self.link.host, port=self.link.port, **common)
        return AsyncModbusSerialClient(
            self.link.port,
            baudrate=self.link.baudrate,
            parity=self.link.parity,
            bytesize=self.link.bytesize,
            stopbits=self.link.stopbits,
            **common,
        )

    async def transact(
        self,
        unit_id: int,
        timeout_s: float,
        request: Callable[[Client, dict[str, int]], Awaitable[ModbusPDU]],
        priority: Priority = Priority.POLL,
    ) -> ModbusPDU:
        """Run one request; raises `TransactionFailed`. Exception responses are returned."""
        if not self.lane.take():
            await self.lane.acquire(priority)
        try:
            if self._client is None:
                self._client = self._build()
            if not self._client.connected and not await self._client.connect():
                self.drop()
                raise TransactionFailed(FaultKind.CONNECTION, f"cannot open {self.link}")
            self._received = b""
            if self._gap_s:
                await asyncio.sleep(max(0.0, self._quiet_at - time.monotonic()))
            # pymodbus times the answer itself (reading this each try); a wait_for of our own
            # would cost a task and a timer per request, which is most of the scheduler's overhead.
            self._client.ctx.comm_params.timeout_connect = timeout_s
            try:
                response = await request(self._client, {_UNIT: unit_id})
                self.answered += 1
                return response
            except ConnectionException as error:
                self.drop()
                raise TransactionFailed(FaultKind.CONNECTION, str(error)) from error
            except (ModbusException, TimeoutError) as error:
                kind = classify_tcp(self._received) if isinstance(self.link, TcpLink) else classify_rtu(self._received)
                if isinstance(self.link, TcpLink):
                    self.drop()
                raise TransactionFailed(kind, f"{kind.value} after {len(self._received)} bytes") from error
            except OSError as error:
                self.drop()
                raise TransactionFailed(FaultKind.CONNECTION, str(error)) from error
            finally:
                if self._gap_s:
                    self._quiet_at = time.monotonic() + self._gap_s
                if self._cancelling():
                    # pymodbus awaits the answer under asyncio.wait_for, which on 3.11 swallows a
                    # cancellation that lands as the answer arrives: the poller must still stop.
                    raise asyncio.CancelledError
        finally:
            self.lane.release()

    def _cancelling(self) -> bool:
        """Whether the running task is being cancelled. The loop is looked up once, not per transaction
        (asyncio.current_task() asks for the running loop, a getpid each time on 3.11); another loop
        than the one kept has no current task there, so it is looked up again."""
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        if task is None:
            self._loop = asyncio.get_running_loop()
            task = asyncio.current_task(self._loop)
        return bool(task and task.cancelling())

    def drop(self) -> None:
        """Forget the client; the next transaction builds a fresh one."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _frame_gap_s(link: SerialLink) -> float:
    """The Modbus RTU silent interval: 3.5 characters, fixed at 1.75 ms above 19200 baud."""
    if link.baudrate > 19200:
        return 0.00175
    bits = 1 + link.bytesize + (link.parity != "N") + link.stopbits
    return 3.5 * bits / link.baudrate


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
class _DeviceState:
    spec: DeviceSpec
    bus: Bus
    groups: list[_PointGroup]
    counters: DeviceCounters = field(default_factory=DeviceCounters)
    online: bool = True
    failures: int = 0
    probe_at: float = 0.0
    probe_delay: float = 0.0
    failing: set[str] = field(default_factory=set)  # points and reads whose fault was reported
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
    identified: bool = True  # False while a profile with variants waits to read its identify register
    unidentified: str | None = None  # why its identify read picked no map: polled by the base map meanwhile
    identify_at: float = 0.0  # when identify is next tried
    identify_delay: float = 0.0  # its backoff

    def adopt(self, profile: Profile) -> None:
        """Poll by `profile` from now on (the base map, or the variant the device identified as)."""
        self.spec = replace(self.spec, profile=profile)
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
        if not self.online:
            return self.probe_at
        groups = self.groups
        return groups[0].due if len(groups) == 1 else min(group.due for group in groups)


class Poller:
    """Polls every device of a building and hands observations to `sink`.

    `sink` is an async callback or an `asyncio.Queue` (whose size and full-policy the
    caller chooses; the poller awaits `put`, so a full queue slows polling, never drops).
    """

    def __init__(
        self, devices: Sequence[DeviceSpec], sink: Sink, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._emit: Callable[[Observation], Awaitable[None]] = sink.put if isinstance(sink, asyncio.Queue) else sink
        self._clock = clock
        self._buses: dict[Link, Bus] = {}
        self._states: dict[str, _DeviceState] = {}
        self._specs = {spec.name: spec for spec in devices}
        for spec in devices:
            if spec.name in self._states:
                raise ValueError(f"device {spec.name!r} is listed twice")
            timeout = max(d.timeout_s for d in devices if d.link == spec.link)
            bus = self._buses.setdefault(spec.link, Bus(spec.link, timeout))
            state = self._states[spec.name] = _DeviceState(spec, bus, [])
            state.adopt(spec.profile.without_variants())
            state.identified = spec.profile.identify is None

    @property
    def counters(self) -> Mapping[str, DeviceCounters]:
        return {name: state.counters for name, state in self._states.items()}

    def is_online(self, device: str) -> bool:
        return self._states[device].online

    def profile_of(self, device: str) -> Profile:
        """The map the device is polled by now: its variant once identified, else the base."""
        return self._states[device].spec.profile

    def unidentified(self, device: str) -> str | None:
        """Why the device's identify read picked no map (it is polled by its base map), or None."""
        return self._states[device].unidentified

    def queued(self, device: str) -> int:
        """Transactions waiting for the wire `device` hangs on."""
        return self._states[device].bus.lane.waiting

    async def run(self) -> None:
        """Poll until cancelled; closes every client on the way out."""
        try:
            async with asyncio.TaskGroup() as group:
                for bus in self._buses.values():
                    states = [s for s in self._states.values() if s.bus is bus]
                    group.create_task(self._serve(states))
        finally:
            for bus in self._buses.values():
                bus.drop()

    async def _serve(self, states: list[_DeviceState]) -> None:
        bus = states[0].bus  # every device of this task hangs on it
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

    async def _visit(self, state: _DeviceState) -> None:
        now = self._clock()
        if state.online:
            due = tuple([group for group in state.groups if group.due <= now])
        elif now >= state.probe_at:
            due = tuple(state.groups)
        else:
            return
        if not due:
            return
        for group in due:
            group.due = now + group.interval_s
        if not state.identified and now >= state.identify_at:
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
            reads = state.plans[due] = _plan(state.spec.profile, frozenset().union(*(group.names for group in due)))
        for read in reads:
            if not await self._poll(state, read):
                return

    async def _poll(self, state: _DeviceState, read: Read) -> bool:
        """Read one block and report its points; False when the device is (now) offline.
        (What `_read` does, without its per-call request and one coroutine less: this runs for every poll.)"""
        prepared = state.requests.get(id(read))
        if prepared is None:
            prepared = state.requests[id(read)] = (_request_for(read), read.function.is_bit)
        try:
            response = await self._transact(state, prepared[0])
            words = None if response.isError() else _words(state, read, response, prepared[1])
        except TransactionFailed as failure:
            return await self._failed(state, failure, f"read {read.function.value} {read.address}+{read.count}")
        if words is None:
            what = f"read {read.function.value} {read.address}+{read.count}"
            await self._fault(state, FaultKind.EXCEPTION, what, f"{what}: code {response.exception_code}")
            return True
        mono = self._clock()
        device, profile, failing, decoded = state.spec.name, state.spec.profile, state.failing, state.decoded
        voiders, emit, reading = state.voiders, self._emit, Reading._make
        if not failing and not voiders:
            last = state.answers.get(id(read))
            if last is not None and last[0] == words:
                for name, value, unit in last[1]:
                    await emit(reading((device, name, value, unit, mono)))
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
                    await self._fault(state, FaultKind.DECODE, point.name, f"{point.name}: {error}")
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
            await emit(reading((device, point.name, value, point.unit, mono)))
        if values is not None:
            state.answers[id(read)] = (words, tuple(values))
        return True

    async def _identify(self, state: _DeviceState) -> bool | None:
        """Read the model or firmware register and poll by the variant it picks: True. An answer that
        picks nothing (an exception, an undecodable value) leaves the base map polled and identify
        retried with backoff: False, reported once a streak. No answer: None (the device is failing)."""
        spec = self._specs[state.spec.name]
        base, point = spec.profile, spec.profile.identify
        (read,) = plan_reads([point])
        reader = _READERS[read.function]
        try:
            response = await self._transact(state, lambda client, unit: reader(client, read, unit))
        except TransactionFailed as failure:
            await self._failed(state, failure, f"identify {point.name}")
            return None
        what = f"read {read.function.value} {read.address}+{read.count} ({point.name})"
        problem, identity = None, None
        if response.isError():
            state.counters.count(FaultKind.EXCEPTION)
            problem = f"{what} answered exception {response.exception_code}"
        else:
            words = list(response.bits[: read.count]) if read.function.is_bit else list(response.registers)
            try:
                identity = decode_point(base, point, words[read.slice_of(point)])
            except DecodeError as error:
                state.counters.count(FaultKind.DECODE)
                problem = f"{what}: {error}"
        if problem is not None:
            state.identify_delay = min(max(state.identify_delay * 2, spec.probe_min_s), spec.probe_max_s)
            state.identify_at = self._clock() + state.identify_delay
            if state.unidentified is None:
                await self._emit(DeviceUnidentified(spec.name, point.name, problem, state.identify_delay))
            state.unidentified = problem
            return False
        variant, profile = base.variant_for(identity)
        state.adopt(profile)
        state.identified, state.unidentified, state.identify_delay = True, None, 0.0
        await self._emit(DeviceIdentified(state.spec.name, identity, variant))
        return True

    @staticmethod
    def _voided(state: _DeviceState, point: Point) -> bool:
        """True when the point's voider, read in this same visit, voids it; a voider that was
        not read in this visit leaves the reading's validity unknown, which is not valid."""
        value, visit = state.voiders[point.void_if.point]
        return visit != state.visit or value is None or state.void_tests[point.name](value)

    async def _read(
        self, state: _DeviceState, read: Read, priority: Priority = Priority.POLL
    ) -> list[int] | list[bool] | None:
        """The words of one read; None after an exception response (already reported)."""
        response = await self._transact(state, _request_for(read), priority)
        if response.isError():
            what = f"read {read.function.value} {read.address}+{read.count}"
            await self._fault(state, FaultKind.EXCEPTION, what, f"{what}: code {response.exception_code}")
            return None
        return _words(state, read, response, read.function.is_bit)

    async def _transact(
        self,
        state: _DeviceState,
        request: Callable[[Client, dict[str, int]], Awaitable[ModbusPDU]],
        priority: Priority = Priority.POLL,
    ) -> ModbusPDU:
        """One request with the device's retries; success brings an offline device back."""
        spec = state.spec
        attempts_left = 1 + (spec.retries if state.online else 0)  # a probe is one try
        while True:
            attempts_left -= 1
            state.counters.requests += 1
            try:
                response = await state.bus.transact(spec.unit_id, spec.timeout_s, request, priority)
            except TransactionFailed as failure:
                state.counters.count(failure.kind)
                if attempts_left == 0:
                    raise
                continue
            state.counters.answers += 1
            state.failures = 0
            if not state.online:
                state.online = True
                await self._emit(DeviceBack(spec.name))
            return response

    async def _failed(self, state: _DeviceState, failure: TransactionFailed, what: str) -> bool:
        """Account one failed transaction; False when the device is offline afterwards."""
        if not state.online:
            state.probe_delay = min(state.probe_delay * 2, state.spec.probe_max_s)
            state.probe_at = self._clock() + state.probe_delay
            return False
        await self._emit(PollFault(state.spec.name, failure.kind, f"{what}: {failure.detail}"))
        state.failures += 1
        if state.failures < state.spec.offline_after:
            return True
        state.online = False
        state.identified = self._specs[state.spec.name].profile.identify is None  # it may come back re-flashed
        state.identify_at = 0.0  # and is identified at once when it does
        state.probe_delay = state.spec.probe_min_s
        state.probe_at = self._clock() + state.probe_delay
        await self._emit(DeviceOffline(state.spec.name, failure.kind))
        return False

    async def _fault(self, state: _DeviceState, kind: FaultKind, key: str, detail: str) -> None:
        """Count every time; report when `key` (a point or a read) starts failing, so a
        channel with a cut wire is one observation, not one per poll."""
        state.counters.count(kind)
        if key not in state.failing:
            state.failing.add(key)
            await self._emit(PollFault(state.spec.name, kind, detail))

    async def write_command(
        self, device: str, command: str, value: float | str | None = None, *, sending: Callable[[], None] | None = None
    ) -> CommandOutcome:
        """Write a named command (with `value` if it takes an argument). The outcome is true once
        the device acknowledged it, its result register (if any) says done, and its read-back
        point (if any) shows the expected value in time; otherwise `reason` says why not, e.g.
        a precondition that refused it ("breaker in local mode", `sent` False) or the device's
        own refusal. `sending` is called once the preconditions passed, just before the write,
        so a caller journals "sent" only for a command that goes out."""
        state = self._states[device]
        profile = state.spec.profile
        order = profile.command(command)
        try:
            words = command_words(profile, order, value)
        except EncodeError as error:
            return CommandOutcome(False, f"refused: {error}", sent=False)
        for condition in order.preconditions:
            point = profile.point(condition.point)
            if point.void_if is None:
                seen, problem = await self._read_point(state, point)
            else:  # its voider is read with it: a voided precondition cannot say the command is safe
                ((seen, problem),) = (await self.read_now(device, [point.name])).values()
            if problem is not None:
                return CommandOutcome(False, f"refused: cannot read {point.name} ({problem})", sent=False, refused_by=point.name)
            if not condition.predicate(point.enum)(seen):
                return CommandOutcome(False, f"refused: {condition.refuse}", sent=False, refused_by=point.name)
        if sending is not None:
            sending()
        try:
            response = await self._transact(
                state, lambda client, unit: _write(client, order, words, unit), Priority.COMMAND
            )
        except TransactionFailed as failure:
            await self._failed(state, failure, f"write {command}")
            return CommandOutcome(False, f"no answer: {failure.detail}")
        if response.isError():
            await self._fault(state, FaultKind.EXCEPTION, f"write {command}", f"write {command}: code {response.exception_code}")
            return CommandOutcome(False, f"device answered exception {response.exception_code}")
        state.failing.discard(f"write {command}")
        if order.result is not None:
            refused = await self._result(state, order.result)
            if refused is not None:
                return CommandOutcome(False, refused)
        if order.readback is None:
            return CommandOutcome(True, "done")
        point = profile.point(order.readback.point)
        expect = order.readback.expected(point, None if order.argument is None else order.argument.code_of(value))
        deadline = self._clock() + order.readback.within_s
        while True:
            seen, problem = await self._read_point(state, point)
            if problem is None and _matches(seen, expect):
                return CommandOutcome(True, "confirmed")
            if self._clock() >= deadline:
                shown = problem or f"{point.name} reads {seen}"
                return CommandOutcome(False, f"not confirmed within {order.readback.within_s:g} s: {shown}")
            await asyncio.sleep(min(0.1, max(0.0, deadline - self._clock())))

    async def read_now(self, device: str, names: Sequence[str]) -> dict[str, tuple[Value | None, str | None]]:
        """Read the named points now, ahead of polls, in as few requests as the map allows: each name
        gives (value, None), or (None, what went wrong). A point its voider voids in the same read
        gives (None, "voided by VOIDER")."""
        state = self._states[device]
        profile = state.spec.profile
        wanted = [profile.point(name) for name in names]
        voiders = {p.void_if.point for p in wanted if p.void_if is not None}
        points = wanted + [profile.point(v) for v in sorted(voiders) if v not in names]
        reads = plan_reads(points, max_registers=profile.max_registers_per_read, max_bits=profile.max_bits_per_read,
                           max_gap=profile.max_gap)
        found: dict[str, tuple[Value | None, str | None]] = {}
        for read in reads:
            reader = _READERS[read.function]
            what = f"read {read.function.value} {read.address}+{read.count}"
            try:
                response = await self._transact(state, lambda client, unit, r=read: reader(client, r, unit), Priority.COMMAND)
            except TransactionFailed as failure:
                await self._failed(state, failure, what)
                found.update({p.name: (None, f"no answer: {failure.detail}") for p in read.points})
                continue
            if response.isError():
                found.update({p.name: (None, f"{what}: the device answered exception {response.exception_code}") for p in read.points})
                continue
            words = list(response.bits[: read.count]) if read.function.is_bit else list(response.registers)
            for point, where in read.slices:
                try:
                    found[point.name] = (decode_point(profile, point, words[where]), None)
                except DecodeError as error:
                    found[point.name] = (None, str(error))
        for point in wanted:
            if point.void_if is not None and found[point.name][1] is None:
                voider, problem = found[point.void_if.point]
                if problem is not None or point.void_if.predicate(profile.point(point.void_if.point).enum)(voider):
                    found[point.name] = (None, f"voided by {point.void_if.point}")
        return {name: found[name] for name in names}

    async def _result(self, state: _DeviceState, result: Result) -> str | None:
        """None when the device's result register says done; else why not, in its words."""
        point = state.spec.profile.point(result.point)
        ok = Match(when=result.ok).values(point.enum)
        pending = Match(when=result.pending).values(point.enum) if result.pending else frozenset()
        if result.settle_s:
            await asyncio.sleep(result.settle_s)
        deadline = self._clock() + result.within_s
        while True:
            seen, problem = await self._read_point(state, point)
            if problem is None and seen in ok:
                return None
            if problem is None and seen not in pending:
                label = point.enum.get(seen) if point.enum else None
                return f"refused by the device: {label or f'{point.name} = {seen}'}"
            if self._clock() >= deadline:
                return f"no result within {result.within_s:g} s: {problem or 'still pending'}"
            await asyncio.sleep(min(0.05, max(0.0, deadline - self._clock())))

    async def _read_point(
        self, state: _DeviceState, point: Point, priority: Priority = Priority.COMMAND, report: bool = True
    ) -> tuple[Value | None, str | None]:
        """Read one point now (by default ahead of polls): (value, None), or (None, what went wrong)."""
        (read,) = plan_reads([point])
        try:
            words = await self._read(state, read, priority)
        except TransactionFailed as failure:
            await self._failed(state, failure, f"read {point.name}")
            return None, failure.detail
        if words is None:
            return None, "the device answered with an exception"
        try:
            value = decode_point(state.spec.profile, point, words[read.slice_of(point)])
        except DecodeError as error:
            await self._fault(state, FaultKind.DECODE, point.name, f"{point.name}: {error}")
            return None, str(error)
        state.failing.discard(point.name)
        if report:
            await self._emit(Reading(state.spec.name, point.name, value, point.unit, self._clock()))
        return value, None


def _request_for(read: Read) -> Callable[[Client, dict[str, int]], Awaitable[ModbusPDU]]:
    reader = _READERS[read.function]
    return lambda client, unit: reader(client, read, unit)


def _words(state: _DeviceState, read: Read, response: ModbusPDU, bits: bool) -> list[int] | list[bool]:
    """The values of an answer that is not an exception; a short one raises `TransactionFailed`."""
    if state.failing:
        state.failing.discard(f"read {read.function.value} {read.address}+{read.count}")
    words = list(response.bits[: read.count]) if bits else list(response.registers)
    if len(words) < read.count:
        state.counters.count(FaultKind.SHORT_FRAME)
        raise TransactionFailed(FaultKind.SHORT_FRAME, f"{len(words)} of {read.count} values")
    return words


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


def _matches(value: Value, expect: float | bool) -> bool:
    if isinstance(expect, bool) or isinstance(value, bool):
        return bool(value) == bool(expect)
    return math.isclose(value, expect, rel_tol=1e-6, abs_tol=1e-6)


_READERS: dict[Function, Callable[[Client, Read, dict[str, int]], Awaitable[ModbusPDU]]] = {
    Function.HOLDING: lambda c, r, unit: c.read_holding_registers(r.address, count=r.count, **unit),
    Function.INPUT: lambda c, r, unit: c.read_input_registers(r.address, count=r.count, **unit),
    Function.COIL: lambda c, r, unit: c.read_coils(r.address, count=r.count, **unit),
    Function.DISCRETE: lambda c, r, unit: c.read_discrete_inputs(r.address, count=r.count, **unit),
}


def read_request(client: Client, read: Read, unit_id: int) -> Awaitable[ModbusPDU]:
    """The request the poller sends for `read` to device `unit_id`: public so that a raw pymodbus
    baseline (edge.hil.bench.modbus) sends exactly what the poller sends, with none of its scheduling."""
    return _READERS[read.function](client, read, {_UNIT: unit_id})


def _write(client: Client, command: Command, words: list[int], unit: dict[str, int]) -> Awaitable[ModbusPDU]:
    """One request for the whole block, with the command's function code."""
    code = command.code
    if code == 5:
        if command.raw_word is None and command.argument is None:  # on/off, sent as the standard 0xFF00/0x0000
            return client.write_coil(command.address, bool(words[0]), **unit)
        return client.execute(False, RawCoilWrite(command.address, words[0], unit[_UNIT]))
    if code == 15:
        return client.write_coils(command.address, [bool(v) for v in words], **unit)
    if code == 6:
        return client.write_register(command.address, words[0], **unit)
    return client.write_registers(command.address, words, **unit)


class RawCoilWrite(WriteSingleCoilRequest):
    """FC05 with the 16-bit word the device's manual gives (a relay's flash or toggle command,
    e.g. 0x5500), not only the standard 0xFF00/0x0000 pymodbus makes of a bool."""

    def __init__(self, address: int, word: int, device_id: int) -> None:
        super().__init__(address=address, bits=[bool(word)], dev_id=device_id)
        self.word = word

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.word)
