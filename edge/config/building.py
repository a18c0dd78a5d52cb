"""The building config: one YAML file, validated completely before anything starts.

The schema is pydantic (so the JSON Schema in config/schema.json comes from the same
models). `BuildingConfig` composes the sections: the building's shared parts (buses, devices,
point alarms, the journal, udev identities) are here; each feature declares its own in its
package (`SECTIONS` in edge/<feature>/settings.py, found through edge/features.py), built from
edge/config/settings.py. The checks that span sections run after validation: those of the shared parts
here (two devices on one Modbus address), then each feature's own `check` (a door naming a
reader that does not exist). Every problem is reported at once as
`FILE:LINE:COL: dotted.path: message`, because a technician on site fixes them in one go.
Secrets are never inline: the YAML names a file or an environment variable.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, create_model, field_validator

from edge.drivers.modbus.points import PointAlarm
from edge.drivers.modbus.profile import Profile
from edge.config import problem_lines
from edge.config import yaml_source
from edge import features
from edge.config.settings import CommandRef, LocalPath, Name, Plugged, PointRef, Problem, References, Secret, Strict, UsbIdentity, unique

DEFAULT_CONFIG = Path("/etc/edge/building.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/edge")
DEFAULT_RUNTIME_DIR = Path("/run/edge")  # systemd's RuntimeDirectory=edge: tmpfs, made at each start
BUILT_IN_PROFILES = Path(str(resources.files("edge.drivers.modbus") / "profiles"))
"""The device profiles installed with the package; a file of the same name in profiles_dir replaces one."""

class Building(Strict):
    id: Name = Field(description="Stable building id; used in topics and event sources upstream.")
    name: str = Field("", max_length=200, description="Human name shown to property managers.")
    timezone: str = Field("UTC", description="IANA zone for leases, rent dates and schedules, e.g. Asia/Shanghai.")
    secret: Secret = Field(description="Building HMAC secret: keys credentials so no card number is stored.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class JournalSettings(Strict):
    path: LocalPath | None = Field(None, description="Journal file; default STATE_DIR/journal.db.")
    cap_mb: float = Field(512, ge=1, le=1_000_000, description="Disk cap; the oldest telemetry goes first.")
    telemetry_retention_days: float | None = Field(
        30, gt=0, le=3650, description="Telemetry older than this is deleted; null keeps it until the cap."
    )
    spill_dir: LocalPath | None = Field(
        None, description="A second place (another disk) for events the journal could not write before a stop; "
        "tried after runtime_dir, replayed into the journal at the next start."
    )


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class Logging(Strict):
    format: LogFormat = Field(LogFormat.AUTO, description="auto: readable on a terminal, JSON lines otherwise.")
    level: Literal["debug", "info", "warning", "error"] = "info"


class Parity(StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


class SerialBus(Strict):
    """An RS-485 line (USB adapter): half-duplex, one transaction at a time."""

    name: Name
    type: Literal["rtu"]
    port: str = Field(description="Device path; prefer /dev/serial/by-id/... or a udev symlink.")
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Parity = Parity.NONE
    stop_bits: Literal[1, 2] = 1
    timeout_s: float = Field(0.5, gt=0, le=10)


class TcpBus(Strict):
    """A Modbus TCP gateway or device on the building network."""

    name: Name
    type: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    timeout_s: float = Field(1.0, gt=0, le=30)


Bus = Annotated[Union[SerialBus, TcpBus], Field(discriminator="type")]


class Device(Strict):
    """A Modbus device on a bus, described by a device profile (see profile_path)."""

    name: Name
    bus: Name
    address: int = Field(ge=1, le=247, description="Modbus unit id.")
    profile: Name = Field(description="Profile name: a file stem in profiles_dir, else a built-in profile (generic-efm8, ...).")
    poll_s: float | None = Field(None, gt=0, le=3600, description="Poll interval for its points; default: the profile's.")


class PointAlarmRule(PointAlarm):
    """An alarm the building adds on any device point, beside the profile's own `alarms`."""

    point: PointRef = Field(description="The point watched, as DEVICE.POINT.")


class SharedSections(Strict):
    """The building's shared parts, as one file describes them; `BuildingConfig` adds each
    feature's sections (its `SECTIONS`, edge/feature.py) after these."""

    building: Building
    state_dir: LocalPath | None = Field(None, description="Journal and credential store; default $STATE_DIRECTORY or /var/lib/edge.")
    runtime_dir: LocalPath | None = Field(
        None, description="Control socket, the status server's address and the journal's spill: a place that can always be "
        "written (tmpfs), so a full or read-only state disk never cuts the CLI off the daemon. Default $RUNTIME_DIRECTORY "
        "(systemd's RuntimeDirectory=edge), else /run/edge with the default state dir, else the state dir."
    )
    profiles_dir: LocalPath | None = Field(
        None, description="Local Modbus device profiles, looked up before the built-in ones; default: profiles/ beside this file."
    )
    journal: JournalSettings = JournalSettings()
    logging: Logging = Logging()
    buses: list[Bus] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    alarms: list[PointAlarmRule] = Field(
        default_factory=list, description="Any point's value (a bit, an enum code, a limit) as an alarm or a warning."
    )
    cloud_commands: list[CommandRef] = Field(
        default_factory=list, max_length=256, description="Profile commands the cloud may run (signed `device.command`), as "
        "DEVICE.COMMAND; none by default. A technician runs any of them with `edge device command`.",
    )
    udev: list[UsbIdentity] = Field(default_factory=list, description="USB adapters and cameras by udev identity; ports name them as udev:NAME.")

    @property
    def journal_path(self) -> Path:
        return self.journal.path or (self.state_path / "journal.db")

    @property
    def state_path(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        return Path(os.environ.get("STATE_DIRECTORY", DEFAULT_STATE_DIR))

    @property
    def runtime_paths(self) -> list[Path]:
        """Where the daemon's small runtime files go, in order of preference: the runtime dir, then
        the state dir (when the runtime dir cannot be made, the state dir is the last resort)."""
        if self.runtime_dir is not None:
            first: Path | None = self.runtime_dir
        elif os.environ.get("RUNTIME_DIRECTORY"):
            first = Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])
        elif self.state_path == Path(DEFAULT_STATE_DIR):
            first = Path(DEFAULT_RUNTIME_DIR)
        else:
            first = None
        return [first, self.state_path] if first is not None and first != self.state_path else [self.state_path]

    @property
    def spill_paths(self) -> list[Path]:
        """Where the journal leaves what it could not write before a stop (never the journal's own disk first)."""
        places = [p for p in self.runtime_paths if p != self.state_path]
        if self.journal.spill_dir is not None:
            places.append(self.journal.spill_dir)
        return places


def _compose() -> type[SharedSections]:
    """The building config: the shared sections, then each feature's, in the features' order."""
    sections: dict[str, Any] = {}
    for settings in features.modules("settings"):
        for name, section in settings.SECTIONS.items():
            if name in SharedSections.model_fields or name in sections:
                raise ValueError(f"config section {name!r} is declared twice ({settings.__name__})")
            sections[name] = section
    return create_model("BuildingConfig", __base__=SharedSections, __module__=__name__,
                        __doc__="The whole building, as one file describes it.", **sections)


BuildingConfig = _compose()

@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def load(path: Path) -> BuildingConfig:
    """Read, parse and validate a building config; raises ConfigError listing every problem."""
    path = Path(path)
    file = str(path)
    try:
        text = yaml_source.read(path)
    except yaml_source.SourceError as error:
        raise ConfigError([ConfigProblem(file, error.line, error.column, "(file)", str(error))]) from None
    try:
        document = yaml_source.load(text)
    except yaml_source.SourceError as error:
        raise ConfigError([ConfigProblem(file, error.line, error.column, "(yaml)", str(error))]) from None
    if not isinstance(document.data, dict):
        what = "empty" if document.data is None else f"a {type(document.data).__name__}, not a mapping"
        raise ConfigError([ConfigProblem(file, 1, 1, "(root)", f"the file is {what}; expected the building config")])

    def problem(loc: tuple, message: str) -> ConfigProblem:
        return ConfigProblem(file, *problem_lines.at(document, loc, message))

    try:
        config = BuildingConfig.model_validate(document.data, context={"base": path.parent.resolve()})
    except ValidationError as invalid:
        raise ConfigError([ConfigProblem(file, *p) for p in problem_lines.located(invalid, document, loc=_data_loc, booleans=True)]) from None
    problems: list[ConfigProblem] = []
    if config.profiles_dir is None:
        config = config.model_copy(update={"profiles_dir": (path.parent / "profiles").resolve()})
    elif not config.profiles_dir.is_dir():
        # named on purpose: falling back to a built-in of the same name would be a silent swap
        problems.append(problem(("profiles_dir",), f"{config.profiles_dir} is not a directory"))
    try:
        profiles = device_profiles(config)
    except ConfigError as broken:
        profiles = {}
        problems += broken.problems
    problems += [problem(loc, message) for loc, message in cross_check(config, profiles)]
    for settings in features.modules("settings"):  # what a feature needs installed (the camera's extra)
        if hasattr(settings, "missing_extras"):
            problems += [problem(loc, message) for loc, message in settings.missing_extras(config)]
    if problems:
        raise ConfigError(problems)
    return config


def device_profiles(config: BuildingConfig) -> dict[str, Profile]:
    """The profile of every device the building uses, by profile name; problems carry the profile's own lines."""
    profiles: dict[str, Profile] = {}
    problems: list[ConfigProblem] = []
    for name in sorted({d.profile for d in config.devices}):
        path = profile_path(config, name)
        if path is None:
            continue  # reported against the device that names it
        try:
            stat = path.stat()
            profiles[name] = _read_profile(path, stat.st_mtime_ns, stat.st_size)
        except OSError as error:
            problems.append(ConfigProblem(str(path), 1, 1, "(yaml)", f"cannot open: {error.strerror}"))
        except yaml_source.SourceError as error:
            problems.append(ConfigProblem(str(path), error.line, error.column, "(yaml)", str(error)))
        except ValidationError as invalid:
            document = yaml_source.load_file(path)
            problems += [ConfigProblem(str(path), *p) for p in problem_lines.located(invalid, document, booleans=True)]
    if problems:
        raise ConfigError(problems)
    return profiles


@functools.lru_cache(maxsize=64)
def _read_profile(path: Path, mtime_ns: int, size: int) -> Profile:
    """One profile file, parsed once per version of it (its stamp is in the key): the check, the
    field bus and the doors each ask for it at start, and parsing YAML with lines is slow. Bounded:
    a building names a handful of profiles, and a changed file is a new key."""
    return Profile.model_validate(yaml_source.load_file(path).data)


def profile_path(config: BuildingConfig, name: str) -> Path | None:
    """The file of profile `name`: the building's own profiles_dir first, so a site can fix or
    replace a shipped profile without touching the package, then the built-in set."""
    for directory in (config.profiles_dir, BUILT_IN_PROFILES):
        if directory is not None and (directory / f"{name}.yaml").is_file():
            return directory / f"{name}.yaml"
    return None


def shadowed_profiles(config: BuildingConfig) -> dict[str, Path]:
    """The profiles the building uses whose local file replaces a built-in one of the same name."""
    shadowed: dict[str, Path] = {}
    for name in sorted({d.profile for d in config.devices}):
        path, built_in = profile_path(config, name), BUILT_IN_PROFILES / f"{name}.yaml"
        if path is not None and built_in.is_file() and not path.samefile(built_in):
            shadowed[name] = path
    return shadowed


_data_loc = problem_lines.without({"rtu", "tcp"})
"""Drop pydantic's union-branch tags ('tcp', 'rtu') that are not keys in the file."""



def every_plugged(config: BuildingConfig) -> list[Plugged]:
    """The devices every feature's sections plug (readers, cameras), from each feature's `hardware`."""
    return [plugged for settings in features.modules("settings") if hasattr(settings, "hardware") for plugged in settings.hardware(config)]


def cross_check(config: BuildingConfig, profiles: dict[str, Profile]) -> list[Problem]:
    """Checks that span sections; each problem is (path in the file, message)."""
    serial_ports = {b.port: f"bus {b.name!r}" for b in reversed(config.buses) if isinstance(b, SerialBus)}
    refs = References(config.devices, profiles, serial_ports)
    problems = unique(("buses",), config.buses, "bus")
    # Devices, readers and cameras all appear as event sources: one name space.
    plugged = every_plugged(config)
    hardware = [("devices", i, d) for i, d in enumerate(config.devices)] + [(p.section, p.index, p.item) for p in plugged]
    first: dict[str, str] = {}
    for section, index, item in hardware:
        if item.name in first:
            problems.append(((section, index, "name"), f"device name {item.name!r} is already used by {first[item.name]}"))
        else:
            first[item.name] = f"{section}.{index}"

    buses = {b.name for b in config.buses}
    addresses: dict[tuple[str, int], str] = {}
    for index, device in enumerate(config.devices):
        if device.bus not in buses:
            problems.append((("devices", index, "bus"), f"no bus named {device.bus!r}"))
        key = (device.bus, device.address)
        if key in addresses:
            problems.append((("devices", index, "address"), f"address {device.address} on bus {device.bus!r} is already used by device {addresses[key]!r}"))
        else:
            addresses[key] = device.name
        if profile_path(config, device.profile) is None:
            built_in = ", ".join(sorted(p.stem for p in BUILT_IN_PROFILES.glob("*.yaml")))
            problems.append((("devices", index, "profile"), f"no profile {device.profile!r} in {config.profiles_dir} nor built in ({built_in})"))

    problems += refs.point(config.fire_alarm, ("fire_alarm",), bit=True)
    for index, alarm in enumerate(config.alarms):
        problems += refs.point(alarm.point, ("alarms", index, "point"))
        device_name = alarm.point.split(".", 1)[0]
        profile = refs.profile_of(device_name)
        point = next((p for p in profile.points if f"{device_name}.{p.name}" == alarm.point), None) if profile else None
        if point is not None:
            try:
                alarm.check_against(point)
            except ValueError as error:
                problems.append((("alarms", index), str(error)))
    problems += unique(("udev",), config.udev, "udev identity")
    identities = {i.name: i.subsystem for i in config.udev}
    users = [(("buses", i, "port"), b.port, "tty") for i, b in enumerate(config.buses) if isinstance(b, SerialBus)]
    users += [((p.section, p.index, p.field), p.port, p.subsystem) for p in plugged]
    for loc, port, subsystem in users:
        name = port.removeprefix("udev:")
        if port.startswith("udev:") and identities.get(name) != subsystem:
            problems.append((loc, f"no {subsystem} udev identity named {name!r} (udev: section)"))
    for settings in features.modules("settings"):  # each feature checks the references of its own sections
        if hasattr(settings, "check"):
            problems += settings.check(config, refs)
    return problems


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use (config/schema.json is this, committed)."""
    schema = BuildingConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Building gateway config"
    return schema
