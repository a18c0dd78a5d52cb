"""What every feature's config section is built from: names, point and command references,
secrets, paths beside the config file, USB identities, and the lookups a feature's
cross-reference check uses.

Each feature keeps its own models and checks (edge/doors/settings.py, edge/vision/settings.py,
...) and `edge.config.building.BuildingConfig` composes them; they share these parts so a name, a
DEVICE.POINT or a secret means the same in every section. This module imports no feature, so
any feature's settings can import it without a cycle through the building config.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Protocol

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import Function
from edge.drivers.strict import Strict  # every feature's models are built on it

Name = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="Letters, digits, '-' and '_'; unique in its kind."),
]
PointRef = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.[A-Za-z0-9_-]{1,64}$", description="DEVICE.POINT"),
]
CommandRef = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.[a-z][a-z0-9_]{0,63}$", description="DEVICE.COMMAND"),
]

Problem = tuple[tuple, str]


class Plugged(NamedTuple):
    """A device a feature's section names and plugs (a reader's port, a camera's source): its name
    shares one name space with every device; a `udev:NAME` port follows the device by identity, and
    its worker is woken when the device comes back (edge/hotplug.py)."""

    section: str
    index: int
    item: Any  # the section's entry, with a `name`
    field: str  # which of its fields holds the port ("port", "source")
    subsystem: str  # udev's: tty, video4linux
    worker: Callable[[Path], str]  # the supervised worker that opens it, given the folder of stable links

    @property
    def port(self) -> str:
        return getattr(self.item, self.field)
"""A cross-reference problem: its path in the file and the message; the loader adds the line."""


def _beside_config(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in the file are relative to the file, not to wherever `edge` was started."""
    base = (info.context or {}).get("base")
    return (base / value).resolve() if base is not None and not value.is_absolute() else value


def _readable(value: Path, info: ValidationInfo) -> Path:
    path = _beside_config(value, info)
    if not path.is_file():
        raise ValueError(f"file {path} does not exist")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file {path} is not readable by this user")
    return path


LocalPath = Annotated[Path, AfterValidator(_beside_config)]
ReadableFile = Annotated[Path, AfterValidator(_readable)]


class Secret(Strict):
    """Where a secret lives: a file (readable by the daemon only) or an environment variable."""

    file: ReadableFile | None = Field(None, description="Path to a file holding the secret; relative to the config file.")
    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable name.")

    @model_validator(mode="after")
    def _present(self) -> "Secret":
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        if self.file is not None and not self.file.read_bytes().strip():
            raise ValueError(f"secret file {self.file} is empty")
        if self.env is not None and not os.environ.get(self.env):
            raise ValueError(f"environment variable {self.env} is not set")
        return self

    def read(self) -> bytes:
        if self.file is not None:
            return self.file.read_bytes().strip()
        return os.environ[self.env].encode()  # type: ignore[index]


class UsbIdentity(Strict):
    """A USB adapter or camera named by what it is (udev properties), not by where the kernel put it.

    A bus, reader or camera whose port is `udev:NAME` uses the device that matches; the daemon
    follows it when it is unplugged and plugged in again on another node (edge/hotplug.py). Here
    because a port in any feature's section may name one."""

    name: Name = Field(description="The stable name: ports say udev:NAME; `edge udev-rules` links it as /dev/edge/NAME.")
    subsystem: Literal["tty", "video4linux"] = Field("tty", description="tty for serial adapters, video4linux for cameras.")
    vendor_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{4}$", description="USB vendor id (udev ID_VENDOR_ID), e.g. 0403.")
    product_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{4}$", description="USB product id (udev ID_MODEL_ID), e.g. 6001.")
    serial: str | None = Field(None, min_length=1, max_length=128, description="Serial number (udev ID_SERIAL_SHORT).")
    usb_path: str | None = Field(None, min_length=1, max_length=256, description="Physical port (udev ID_PATH), e.g. pci-0000:00:14.0-usb-0:1.2:1.0.")

    @model_validator(mode="after")
    def _something(self) -> "UsbIdentity":
        if not (self.vendor_id or self.product_id or self.serial or self.usb_path):
            raise ValueError("give at least one of vendor_id, product_id, serial, usb_path")
        return self


class _Device(Protocol):
    name: str
    profile: str


class References:
    """The building's Modbus devices, their profiles and its serial ports, as a feature's
    cross-reference check looks them up: each method returns the problems it finds."""

    def __init__(self, devices: Iterable[_Device], profiles: Mapping[str, Profile], serial_ports: Mapping[str, str]) -> None:
        self.devices = {d.name: d for d in devices}
        self.profiles = profiles
        self.serial_ports = serial_ports
        """Port -> which bus holds it, e.g. {'/dev/ttyUSB0': "bus 'rs485-1'"}."""

    def profile_of(self, device_name: str) -> Profile | None:
        device = self.devices.get(device_name)
        return self.profiles.get(device.profile) if device is not None else None

    def point(self, ref: str | None, loc: tuple, bit: bool = False) -> list[Problem]:
        """A DEVICE.POINT reference must name a device and a point of its profile (an on/off one if `bit`)."""
        if ref is None:
            return []
        device_name, point_name = ref.split(".", 1)
        device = self.devices.get(device_name)
        if device is None:
            return [(loc, f"no device named {device_name!r}")]
        profile = self.profiles.get(device.profile)
        if profile is None:
            return []
        point = next((p for p in profile.points if p.name == point_name), None)
        if point is None:
            return [(loc, f"device {device_name!r} ({device.profile}) has no point {point_name!r}")]
        if bit and not (point.function in (Function.COIL, Function.DISCRETE) or point.bit is not None):
            return [(loc, f"{ref} is not an on/off input")]
        return []

    def commands(self, device_name: str | None, names: tuple[str, ...], loc: tuple) -> list[Problem]:
        """Each of `names` must be a command of the device's profile."""
        if device_name is None:
            return []
        device = self.devices.get(device_name)
        if device is None:
            return [(loc, f"no device named {device_name!r}")]
        profile = self.profiles.get(device.profile)
        known = {c.name for c in profile.commands} if profile else set(names)
        return [(loc, f"device {device_name!r} ({device.profile}) has no command {name!r}") for name in names if name not in known]


def unique(section: tuple, items: Iterable[Any], kind: str) -> list[Problem]:
    """Two items of one list with the same name: the second is the problem."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.name in seen:
            where = ".".join(map(str, (*section, seen[item.name])))
            problems.append(((*section, index, "name"), f"{kind} {item.name!r} is already defined ({where})"))
        else:
            seen[item.name] = index
    return problems
