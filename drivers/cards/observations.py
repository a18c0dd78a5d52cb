"""What card-reader drivers report: parsed frames, stamped reads, PIN entries, drops and faults.

Parsers are pure (bytes in, `CardFrame` / `PinFrame` / `FrameDropped` out, no clock); the port
loop adds the reader's name and the monotonic time the frame's last byte was read, giving
`CardRead` and `PinEntry`. Card serials are credentials: their fields are left out of repr so a
log line of an observation never carries one (the core keys credentials by HMAC of the serial).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


class Protocol(enum.Enum):
    """Which reader protocol produced a frame."""

    EM4100 = "em4100"
    WIEGAND = "wiegand"
    OSDP = "osdp"


class DropCause(enum.Enum):
    """Why bytes from a reader did not become an observation."""

    GARBAGE = "garbage"  # bytes outside any frame
    TRUNCATED = "truncated"  # a frame cut short by the start of another or by its terminator
    OVERSIZED = "oversized"  # longer than the protocol allows
    MALFORMED = "malformed"  # right size, but a field holds impossible characters or values
    BAD_CHECKSUM = "bad_checksum"
    BAD_PARITY = "bad_parity"
    UNSUPPORTED = "unsupported"  # a well-formed frame of a kind this driver does not decode


class FaultReason(enum.Enum):
    """Why a reader port stopped."""

    PORT_MISSING = "port_missing"  # could not be opened
    DISCONNECTED = "disconnected"  # read failed after opening: unplugged, or the device died
    # OSDP readers report these; each clears with a ReaderRestored of the same reason
    OFFLINE = "offline"  # the reader stopped answering its polls
    SECURE_CHANNEL = "secure_channel"  # the reader answers but no secure session (wrong key?)
    TAMPER = "tamper"  # the reader's tamper switch is open
    POWER = "power"  # the reader reports a power failure


@dataclass(frozen=True, slots=True)
class CardFrame:
    """A card serial decoded from one valid frame."""

    serial: bytes = field(repr=False)
    protocol: Protocol
    bits: int | None  # bits on the card interface (26, 34, 40), None when not meaningful


@dataclass(frozen=True, slots=True)
class PinFrame:
    """A PIN submitted on a keypad ('#' pressed after digits)."""

    pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """One frame (or run of garbage) dropped, by cause; for counters, never for decisions."""

    cause: DropCause


ParsedItem = CardFrame | PinFrame | FrameDropped


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card presented at a reader, stamped when the frame's last byte was read."""

    reader: str
    serial: bytes = field(repr=False)
    protocol: Protocol
    bits: int | None
    received_mono: float


@dataclass(frozen=True, slots=True)
class PinEntry:
    """A PIN entered at a reader's keypad."""

    reader: str
    pin: str = field(repr=False)
    received_mono: float


@dataclass(frozen=True, slots=True)
class ReaderFault:
    """A reader port failed; the supervisor journals it and restarts the port with backoff."""

    reader: str
    reason: FaultReason
    detail: str


@dataclass(frozen=True, slots=True)
class ReaderRestored:
    """A reader fault of `reason` has cleared (back online, session up, tamper closed)."""

    reader: str
    reason: FaultReason
    detail: str


class DropCounts:
    """Dropped frames counted by cause, for health telemetry."""

    def __init__(self) -> None:
        self._counts: Counter[DropCause] = Counter()

    def add(self, cause: DropCause) -> FrameDropped:
        """Count one drop and return the observation that reports it."""
        self._counts[cause] += 1
        return FrameDropped(cause)

    def __getitem__(self, cause: DropCause) -> int:
        return self._counts[cause]

    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        return {cause.value: self._counts[cause] for cause in DropCause if self._counts[cause]}


class BytewiseParser:
    """The shared `feed` of parsers that advance one byte at a time: a subclass says, in
    `_step`, what one byte completes (an item, or None)."""

    def feed(self, data: bytes) -> list[ParsedItem]:
        out: list[ParsedItem] = []
        for byte in data:
            item = self._step(byte)
            if item is not None:
                out.append(item)
        return out

    def _step(self, byte: int) -> ParsedItem | None:
        raise NotImplementedError
