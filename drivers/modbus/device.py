"""One Modbus device as its wire sees it: answering or offline, what is failing, which map it speaks.

A device that stops answering is reported offline after `offline_after` failed transactions
and then only probed, with exponential backoff, so a dead device costs its line little time.
A fault that repeats (a channel with a cut wire) is reported once, and counted every time. The
polling scheduler (poller.py) and the commands (commands.py) both transact through a `Device`,
so a command's silence and a poll's count the same toward offline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus.pdu import ModbusPDU

from edge.drivers.modbus.lane import Priority
from edge.drivers.modbus.observations import DeviceBack, DeviceOffline, FaultKind, Observation, PollFault
from edge.drivers.modbus.plan import Read
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.wire import Bus, Link, Request, TransactionFailed

Emit = Callable[[Observation], Awaitable[None]]


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


class Device:
    """A configured device on its bus: transactions with its retries, and the faults and
    offline/back transitions they cause, handed to `emit`."""

    def __init__(self, configured: DeviceSpec, bus: Bus, emit: Emit, clock: Callable[[], float]) -> None:
        self.configured = configured  # as the building config names it (its profile may list variants)
        self.spec = configured  # its profile is the map the device is polled and commanded by now
        self.bus = bus
        self.emit = emit
        self.clock = clock
        self.counters = DeviceCounters()
        self.online = True
        self.failures = 0
        self.probe_at = 0.0
        self.probe_delay = 0.0
        self.failing: set[str] = set()  # points and reads whose fault was reported
        self.identified = configured.profile.identify is None  # False while its variant is not known
        self.unidentified: str | None = None  # why its identify read picked no map: polled by the base map meanwhile
        self.identify_at = 0.0  # when identify is next tried
        self.identify_delay = 0.0  # its backoff

    async def transact(self, request: Request, priority: Priority = Priority.POLL) -> ModbusPDU:
        """One request with the device's retries; success brings an offline device back."""
        spec = self.spec
        attempts_left = 1 + (spec.retries if self.online else 0)  # a probe is one try
        while True:
            attempts_left -= 1
            self.counters.requests += 1
            try:
                response = await self.bus.transact(spec.unit_id, spec.timeout_s, request, priority)
            except TransactionFailed as failure:
                self.counters.count(failure.kind)
                if attempts_left == 0:
                    raise
                continue
            self.counters.answers += 1
            self.failures = 0
            if not self.online:
                self.online = True
                await self.emit(DeviceBack(spec.name))
            return response

    async def failed(self, failure: TransactionFailed, what: str) -> bool:
        """Account one failed transaction; False when the device is offline afterwards."""
        if not self.online:
            self.probe_delay = min(self.probe_delay * 2, self.spec.probe_max_s)
            self.probe_at = self.clock() + self.probe_delay
            return False
        await self.emit(PollFault(self.spec.name, failure.kind, f"{what}: {failure.detail}"))
        self.failures += 1
        if self.failures < self.spec.offline_after:
            return True
        self.online = False
        self.identified = self.configured.profile.identify is None  # it may come back re-flashed
        self.identify_at = 0.0  # and is identified at once when it does
        self.probe_delay = self.spec.probe_min_s
        self.probe_at = self.clock() + self.probe_delay
        await self.emit(DeviceOffline(self.spec.name, failure.kind))
        return False

    async def fault(self, kind: FaultKind, key: str, detail: str) -> None:
        """Count every time; report when `key` (a point or a read) starts failing, so a
        channel with a cut wire is one observation, not one per poll."""
        self.counters.count(kind)
        if key not in self.failing:
            self.failing.add(key)
            await self.emit(PollFault(self.spec.name, kind, detail))

    def words(self, read: Read, response: ModbusPDU, bits: bool) -> list[int] | list[bool]:
        """The values of an answer that is not an exception (`bits`: whether `read` reads bits, known
        beforehand on the poll path); a short one raises `TransactionFailed`."""
        if self.failing:
            self.failing.discard(f"read {read.function.value} {read.address}+{read.count}")
        words = list(response.bits[: read.count]) if bits else list(response.registers)
        if len(words) < read.count:
            self.counters.count(FaultKind.SHORT_FRAME)
            raise TransactionFailed(FaultKind.SHORT_FRAME, f"{len(words)} of {read.count} values")
        return words
