"""What the Modbus driver tells the core: typed observations, no rules, no storage."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from edge.drivers.modbus.registers import Value


class FaultKind(StrEnum):
    """Why a transaction or a value failed; each kind has a counter in `DeviceCounters`."""

    TIMEOUT = "timeout"  # nothing came back
    CRC = "crc"  # a whole frame came back with a bad checksum
    SHORT_FRAME = "short_frame"  # a frame came back cut short
    EXCEPTION = "exception"  # the device answered with a Modbus exception code
    CONNECTION = "connection"  # the port or socket could not be opened
    DECODE = "decode"  # the answer arrived but holds no trustworthy value


class Reading(NamedTuple):
    """A decoded engineering value; `mono` is the monotonic time it was read.

    A NamedTuple, not a frozen dataclass: the poller makes one per point per poll, and a
    frozen dataclass costs four times as much to build (`object.__setattr__` per field).
    """

    device: str
    point: str
    value: Value | None  # None: the device says this reading is not valid now (the point's void_if)
    unit: str
    mono: float


@dataclass(frozen=True, slots=True)
class DeviceOffline:
    """The device stopped answering; it is now only probed, with backoff."""

    device: str
    reason: FaultKind


@dataclass(frozen=True, slots=True)
class DeviceBack:
    """An offline device answered again."""

    device: str


@dataclass(frozen=True, slots=True)
class DeviceIdentified:
    """A device's model or firmware register was read; `variant` is the map it picked (None: the base)."""

    device: str
    identity: int | float | str
    variant: str | None


@dataclass(frozen=True, slots=True)
class DeviceUnidentified:
    """The identify read got an answer that picks no map (a Modbus exception: a register one model
    of a family has and another lacks, or an undecodable value). The device is polled by its base
    map meanwhile and identify is tried again after `retry_in_s`, with backoff; reported once a streak."""

    device: str
    point: str
    detail: str
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class PollFault:
    """One failed transaction or value, after retries."""

    device: str
    kind: FaultKind
    detail: str


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What became of a profile command's write: true only when confirmed; `reason` says why not (or "confirmed").
    `sent` is False when nothing reached the wire (a precondition or the argument refused it), so
    the core journals a refusal, not a command the device failed; `refused_by` names the
    precondition point that refused, so the core can try again when it reads otherwise."""

    confirmed: bool
    reason: str
    sent: bool = True
    refused_by: str | None = None

    def __bool__(self) -> bool:
        return self.confirmed


Observation = Reading | DeviceOffline | DeviceBack | DeviceIdentified | DeviceUnidentified | PollFault
