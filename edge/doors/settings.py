"""The doors' sections of the building config: `readers:`, `doors:` (with their locks) and
`access:` (the wrong-PIN lockout), and the checks of their references (a door naming a
reader that does not exist, OSDP readers that cannot share their line, a lock command the
IO module's profile does not have), reported with the config's other problems, all at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from edge.drivers.modbus.profile import Profile
from edge.config.settings import Name, Plugged, PointRef, Problem, References, Secret, Strict, unique

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig


class ReaderProtocol(StrEnum):
    EM4100 = "em4100"
    WIEGAND = "wiegand"
    GA467 = "ga467"
    OSDP = "osdp"


class Reader(Strict):
    """A card reader on its own serial port (or an OSDP address on a shared RS-485 line)."""

    name: Name
    protocol: ReaderProtocol
    port: str = Field(description="Serial device path.")
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 9600
    osdp_address: int | None = Field(None, ge=0, le=126)
    osdp_key: Secret | None = Field(None, description="Secure Channel key (16 bytes hex) for OSDP readers.")
    keypad: bool = Field(False, description="The reader has a PIN keypad.")


class Lock(Strict):
    """The relay that holds a door locked, as named commands of its IO module's profile: a
    release/secure pair the gateway times, or a pulse the module times itself (or both)."""

    device: Name
    release: str | None = Field(None, min_length=1, description="Profile command that releases (unlocks), e.g. release_1.")
    secure: str | None = Field(None, min_length=1, description="Profile command that locks again, e.g. secure_1.")
    pulse: str | None = Field(None, min_length=1, description=(
        "Profile command the module times itself (a relay's flash), e.g. pulse_1: unlocks then end even if the gateway "
        "dies mid-pulse. Given unlock_s if it takes an argument, else its length is the profile's. An egress door also "
        "needs release and secure: a pulse cannot hold the door released for a fire."))

    @model_validator(mode="after")
    def _commands(self) -> "Lock":
        if (self.release is None) != (self.secure is None):
            raise ValueError("release and secure come together")
        if self.release is None and self.pulse is None:
            raise ValueError("a lock needs release and secure, or pulse")
        return self


class Door(Strict):
    name: Name
    readers: list[Name] = Field(default_factory=list)
    groups: list[Name] = Field(default_factory=list, description="Door groups credentials may name.")
    lock: Lock | None = Field(None, description="Relay output that unlocks.")
    contact: PointRef | None = Field(None, description="Door contact input (true = open), as DEVICE.POINT.")
    exit_button: PointRef | None = Field(None, description="Request-to-exit input, as DEVICE.POINT.")
    fail: Literal["safe", "secure"] = Field("secure", description="safe: unlocked without power (egress doors).")
    egress: bool = Field(False, description="Released on fire alarm until a technician resets it.")
    require_pin: bool = False
    unlock_s: float = Field(5, gt=0, le=60)
    extended_unlock_s: float = Field(15, gt=0, le=120, description="For credentials marked for accessibility.")
    held_open_s: float = Field(30, gt=0, le=3600)


class PinLockoutSettings(Strict):
    """Wrong-PIN lockout at card+PIN readers; a lockout is journaled and ends by itself."""

    attempts: int = Field(5, ge=1, le=100, description="Wrong PINs for one card within window_s that lock the card out (at every PIN reader).")
    reader_attempts: int = Field(10, ge=1, le=1000, description="Wrong PINs at one reader, any cards, within window_s that lock its PIN entry.")
    window_s: float = Field(300, gt=0, le=86400, description="How long a wrong PIN counts.")
    lockout_s: float = Field(300, gt=0, le=86400, description="How long a lockout lasts.")


class AccessSettings(Strict):
    pin_lockout: PinLockoutSettings = PinLockoutSettings()


def check(config: BuildingConfig, refs: References) -> list[Problem]:
    """The readers' ports and OSDP lines, and each door's readers, lock and inputs."""
    problems = unique(("doors",), config.doors, "door")
    problems += _reader_problems(config.readers, refs)
    readers = {r.name for r in config.readers}
    for index, door in enumerate(config.doors):
        for r_index, reader in enumerate(door.readers):
            if reader not in readers:
                problems.append((("doors", index, "readers", r_index), f"no reader named {reader!r}"))
        if door.lock is not None:
            named = tuple(name for name in (door.lock.release, door.lock.secure, door.lock.pulse) if name is not None)
            problems += refs.commands(door.lock.device, named, ("doors", index, "lock"))
            problems += _lock_problems(door, refs.profile_of(door.lock.device), index)
        problems += refs.point(door.contact, ("doors", index, "contact"), bit=True)
        problems += refs.point(door.exit_button, ("doors", index, "exit_button"), bit=True)
    return problems


def _reader_problems(readers: list[Reader], refs: References) -> list[Problem]:
    """A serial port has one owner (a bus or a reader), except OSDP readers, which share a line
    when they agree on its baud and have addresses of their own on it."""
    problems: list[Problem] = []
    serial_owners = dict(refs.serial_ports)
    osdp_ports: dict[str, Reader] = {}  # port -> its first OSDP reader (readers on one port share a bus)
    osdp_addresses: dict[tuple[str, int | None], str] = {}
    for index, reader in enumerate(readers):
        owner = serial_owners.get(reader.port)
        if owner and not (reader.protocol is ReaderProtocol.OSDP and owner.startswith("reader")):
            problems.append((("readers", index, "port"), f"port {reader.port} is already used by {owner}"))
        serial_owners.setdefault(reader.port, f"reader {reader.name!r}")
        if reader.protocol is ReaderProtocol.OSDP:
            if reader.osdp_address is None:
                problems.append((("readers", index), "an OSDP reader needs osdp_address"))
            if reader.osdp_key is None:
                problems.append((("readers", index), "an OSDP reader needs osdp_key (Secure Channel is on by default)"))
            elif reader.osdp_key.file is None:
                # the driver checks a key file's mode and format; an environment variable is neither
                problems.append((("readers", index, "osdp_key"), "an OSDP reader's key must be a key file ({file: ...}, mode 0600, 32 hex digits)"))
            first_on_port = osdp_ports.setdefault(reader.port, reader)
            if first_on_port.baud != reader.baud:
                problems.append((("readers", index, "baud"), f"OSDP readers on {reader.port} share one bus: baud {reader.baud} differs from {first_on_port.name!r}'s {first_on_port.baud}"))
            holder = osdp_addresses.setdefault((reader.port, reader.osdp_address), reader.name)
            if holder != reader.name:
                problems.append((("readers", index, "osdp_address"), f"OSDP address {reader.osdp_address} on {reader.port} is already used by {holder!r}"))
        elif reader.osdp_address is not None or reader.osdp_key is not None:
            problems.append((("readers", index), f"osdp_address/osdp_key apply only to OSDP readers, not {reader.protocol}"))
    return problems


def _lock_problems(door: Door, profile: Profile | None, index: int) -> list[Problem]:
    """A lock's commands as the door uses them: release and secure take no value, a pulse's
    argument covers the door's unlock_s, and an egress door can be held released for a fire."""
    lock, loc = door.lock, ("doors", index, "lock")
    assert lock is not None
    problems: list[Problem] = []
    if door.egress and lock.release is None:
        problems.append((loc, "an egress door driven by pulse needs release and secure too: a pulse the module "
                              "ends cannot hold the door released for a fire"))
    commands = {c.name: c for c in profile.commands} if profile is not None else {}
    for name in (lock.release, lock.secure):
        if name in commands and commands[name].argument is not None:
            problems.append((loc, f"{name} takes a value at run time; a lock's release and secure must be fixed writes"))
    pulse = commands.get(lock.pulse) if lock.pulse is not None else None
    if pulse is not None and pulse.argument is not None:
        low, high, unit = pulse.argument.min, pulse.argument.max, pulse.argument.unit
        if not low <= door.unlock_s <= high:
            problems.append((("doors", index, "unlock_s"),
                             f"unlock_s {door.unlock_s:g} is outside what {lock.pulse} takes ({low:g}..{high:g}{' ' + unit if unit else ''})"))
    return problems


SECTIONS = {
    "readers": (list[Reader], Field(default_factory=list)),
    "doors": (list[Door], Field(default_factory=list)),
    "access": (AccessSettings, AccessSettings()),
    "fire_alarm": (PointRef | None, Field(None, description="Fire alarm panel input (true = fire), as DEVICE.POINT: releases every egress door.")),
}
"""The building config's sections this feature owns (edge/feature.py)."""


def hardware(config: BuildingConfig) -> list[Plugged]:
    """Its readers: one name space with every device; followed by udev identity on a `udev:NAME` port."""
    return [Plugged("readers", i, r, "port", "tty", lambda links, r=r: _reader_worker(r, links)) for i, r in enumerate(config.readers)]


def _reader_worker(reader: Reader, links) -> str:
    """The worker that opens the reader's port: its own, or its OSDP line's (shared by the line's readers)."""
    return f"osdp:{links / reader.port.removeprefix('udev:')}" if reader.protocol is ReaderProtocol.OSDP else f"reader:{reader.name}"
