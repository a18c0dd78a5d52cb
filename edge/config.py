"""The building config: one YAML file, validated completely before anything starts.

The schema is pydantic (so the JSON Schema in config/schema.json comes from the same
models); the checks that span sections (a door naming a reader that does not exist, two
devices on one Modbus address) run after it. Every problem is reported at once as
`FILE:LINE:COL: dotted.path: message`, because a technician on site fixes them in one go.
Secrets are never inline: the YAML names a file or an environment variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge.drivers.modbus.profile import Function, PointAlarm, Profile
from edge import problem_lines
from edge import yaml_source
from edge.community.settings import CommunitySafety
from edge.community.settings import check as community_check
from edge.safety.power_cut import PowerCutPolicy
from edge.safety.settings import CircuitSafety, WaterPointSafety
from edge.telemetry import TelemetrySettings

DEFAULT_CONFIG = Path("/etc/edge/building.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/edge")
DEFAULT_RUNTIME_DIR = Path("/run/edge")  # systemd's RuntimeDirectory=edge: tmpfs, made at each start
BUILT_IN_PROFILES = Path(str(resources.files("edge.drivers.modbus") / "profiles"))
"""The device profiles installed with the package; a file of the same name in profiles_dir replaces one."""

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


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never silently become a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Circuit(Strict):
    """One outgoing circuit of a floor distribution box, with what may cut it."""

    name: Name
    label: str | None = Field(None, min_length=1, max_length=80, description="What the page and the alarms call it, e.g. 'Floor 1 flats 101-104'; default: circuit NAME, floor, box.")
    floor: int = Field(ge=-10, le=200)
    box: Name
    currents: list[PointRef] = Field(default_factory=list, max_length=3, description="Phase current points.")
    leakage: PointRef | None = Field(None, description="Residual current point, mA.")
    temperatures: list[PointRef] = Field(default_factory=list, description="Cable temperature points.")
    breaker: Name | None = Field(None, description="Smart breaker device with a `trip` command.")
    safety: CircuitSafety
    telemetry: TelemetrySettings | None = Field(None, description="Upstream reporting of every point of the circuit.")


class PressurePoint(Strict):
    """A hydrant riser pressure or a fire-water tank level on a 4-20 mA loop."""

    name: Name
    label: str | None = Field(None, min_length=1, max_length=80, description="What the page and the alarms call it, e.g. 'Roof tank, block B'; default: what it measures and where.")
    point: PointRef = Field(description="The loop current in mA, as DEVICE.POINT.")
    riser: str | None = Field(None, max_length=64)
    tank: str | None = Field(None, max_length=64)
    safety: WaterPointSafety
    telemetry: TelemetrySettings | None = Field(None, description="Upstream reporting of the loop current.")


class PointAlarmRule(PointAlarm):
    """An alarm the building adds on any device point, beside the profile's own `alarms`."""

    point: PointRef = Field(description="The point watched, as DEVICE.POINT.")


class HoldRelay(Strict):
    """The relay to the elevator controller's door-hold input, as named commands of its IO module's profile."""

    device: Name
    hold: str = Field(min_length=1, description="Profile command that holds the car (doors open), e.g. release_7.")
    resume: str = Field(min_length=1, description="Profile command that lets the car go again, e.g. secure_7.")


class VoiceWarning(Strict):
    command: list[str] = Field(min_length=1, description="Program and arguments that play the sound file (appended last), e.g. [aplay, -q].")
    sound: ReadableFile = Field(description="The spoken warning, a sound file the command plays.")


class Qualification(Strict):
    """What `edge vision eval` on the site's own labelled frames must show before the model may hold."""

    report: LocalPath | None = Field(None, description="The eval report (JSON) of this model on this site's frames; without it: observe mode.")
    min_recall: float = Field(0.95, gt=0, le=1)
    max_false_hold: float = Field(0.01, ge=0, lt=1, description="False holds on wheelchairs, prams and bicycles, as a fraction.")
    min_ebike_frames: int = Field(300, ge=1, description="Labelled e-bike frames the report must count.")
    min_negative_frames: int = Field(300, ge=1, description="Labelled frames without one (300 cannot show 1 %; use more).")


class Collect(Strict):
    """Motion-triggered frames saved in STATE_DIR/vision/collect for labelling (`edge vision export`)."""

    enabled: bool = False
    every_s: float = Field(10, ge=0.5, description="At most one frame per this many seconds.")
    cap_mb: int = Field(500, ge=1, description="The oldest frames are deleted beyond this.")


Corner = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]


class Camera(Strict):
    name: Name
    source: str = Field(description="Analysis stream (an IP camera's substream): V4L2 device, RTSP URL or a video file (for the rig).")
    snapshot_source: str | None = Field(None, description="Main stream, opened only for a snapshot; default: the analysis frame.")
    elevator: Name | None = None
    region: list[Corner] = Field(
        [(0, 0), (1, 0), (1, 1), (0, 1)], min_length=3, description="The car's floor inside the door: polygon corners as fractions of width and height."
    )
    analysis_fps: float = Field(5, ge=0.2, le=30)
    stall_s: float = Field(5, ge=0.5, le=120, description="No frame for this long is a camera fault (and releases a hold).")
    model: LocalPath | None = Field(None, description="Detector manifest (installed by `edge models install`); none: the camera only collects.")
    threads: int = Field(1, ge=1, le=8, description="Inference threads (they run at a lower priority than the doors).")
    hold_classes: list[Literal["ebike", "kick_scooter", "motorcycle"]] = Field(
        ["ebike"], min_length=1, description="Classes whose confirmed detection holds the car (a motorcycle is held like an e-bike).")
    hold: HoldRelay | None = None
    warning: VoiceWarning | None = None
    leave_s: float = Field(5, gt=0, le=300, description="The hold ends once the e-bike has been out of the region this long.")
    max_hold_s: float = Field(120, gt=0, le=900, description="A hold never lasts longer (never trap people).")
    qualification: Qualification = Qualification()
    collect: Collect = Collect()


class Tls(Strict):
    ca: ReadableFile = Field(description="CA bundle that signs the broker's certificate; verification is always on.")
    cert: ReadableFile | None = Field(None, description="Client certificate (PEM), when the broker asks for one.")
    key: ReadableFile | None = Field(None, description="Client certificate's private key (PEM file, readable by the daemon only).")

    @model_validator(mode="after")
    def _pair(self) -> "Tls":
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both 'cert' and 'key' for a client certificate, or neither")
        return self


class Uplink(Strict):
    enabled: bool = Field(False, description="Off by default: the gateway works fully offline.")
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT version; pull replies use MQTT 5 response topics or, on 3.1.1, a reply_to field.")
    client_id: str | None = Field(None, max_length=128, description="MQTT client id; default edge-BUILDING.")
    topic_prefix: str = Field("edge/v1", pattern=r"^[A-Za-z0-9_/-]{1,64}$", description="Topics are PREFIX/BUILDING/...; see docs/uplink.md.")
    keepalive_s: int = Field(30, ge=5, le=3600)
    batch_events: int = Field(500, ge=1, le=10_000, description="Most events in one published batch.")
    batch_ms: int = Field(50, ge=0, le=60_000, description="Longest an event waits for a batch to fill.")
    batch_bytes: int = Field(128 * 1024, ge=1024, le=8 * 1024 * 1024, description="Payload cap of one batch.")
    bandwidth_bytes_per_s: int | None = Field(None, ge=256, description="Pace the backlog to this rate (alarms are not paced); null: no cap.")
    cloud_public_key: ReadableFile | None = Field(
        None, description="The cloud's Ed25519 public key (PEM); without it every downlink message is refused."
    )
    username: str | None = None
    password: Secret | None = None
    tls: Tls | None = None


class StatusServer(Strict):
    """The daemon's HTTP server: /healthz, /metrics and the live status page (read-only)."""

    enabled: bool = Field(True, description="Serve health, metrics and the status page.")
    bind: str = Field("127.0.0.1", min_length=1, description="Address to listen on; anything but loopback needs beyond_localhost and a token.")
    port: int = Field(8780, ge=0, le=65535, description="TCP port; 0 picks a free one (written to STATE_DIR/http.json).")
    beyond_localhost: bool = Field(False, description="Allow binding beyond loopback; every request then needs the token.")
    token: Secret | None = Field(None, description="Bearer token (or Basic password) required beyond localhost; compared in constant time.")

    @model_validator(mode="after")
    def _guarded(self) -> "StatusServer":
        loopback = self.bind in ("127.0.0.1", "::1", "localhost") or self.bind.startswith("127.")
        if not loopback and not self.beyond_localhost:
            raise ValueError(f"bind {self.bind!r} is beyond localhost: set beyond_localhost: true and a token")
        if self.beyond_localhost and self.token is None:
            raise ValueError("beyond_localhost needs a token ({file: ...}): nothing unauthenticated may reach the building")
        return self


class UsbIdentity(Strict):
    """A USB adapter or camera named by what it is (udev properties), not by where the kernel put it.

    A bus, reader or camera whose port is `udev:NAME` uses the device that matches; the daemon
    follows it when it is unplugged and plugged in again on another node."""

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


class BuildingConfig(Strict):
    """The whole building, as one file describes it."""

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
    readers: list[Reader] = Field(default_factory=list)
    doors: list[Door] = Field(default_factory=list)
    access: AccessSettings = AccessSettings()
    circuits: list[Circuit] = Field(default_factory=list)
    pressure_points: list[PressurePoint] = Field(default_factory=list)
    alarms: list[PointAlarmRule] = Field(
        default_factory=list, description="Any point's value (a bit, an enum code, a limit) as an alarm or a warning."
    )
    cameras: list[Camera] = Field(default_factory=list)
    uplink: Uplink = Uplink()
    fire_alarm: PointRef | None = Field(None, description="Fire alarm panel input (true = fire), as DEVICE.POINT: releases every egress door.")
    cloud_commands: list[CommandRef] = Field(
        default_factory=list, max_length=256, description="Profile commands the cloud may run (signed `device.command`), as "
        "DEVICE.COMMAND; none by default. A technician runs any of them with `edge device command`.",
    )
    http: StatusServer = Field(StatusServer(), description="Health, metrics and the status page, on 127.0.0.1 by default.")
    udev: list[UsbIdentity] = Field(default_factory=list, description="USB adapters and cameras by udev identity; ports name them as udev:NAME.")
    community: CommunitySafety = Field(
        CommunitySafety(), description="Smoke, intrusion and panic inputs, charging areas, and who is told (edge/community/)."
    )

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
    problems += [problem(loc, message) for loc, message in missing_extras(config)]
    if problems:
        raise ConfigError(problems)
    return config


CAMERA_LIBRARIES = {"cv2": "opencv-python-headless", "onnxruntime": "onnxruntime", "numpy": "numpy"}
"""What the camera extra installs (setup.cfg, `camera`), by import name: only the camera and vision modules use them."""


def missing_extras(config: BuildingConfig) -> list[tuple[tuple, str]]:
    """A camera on a gateway installed without the camera extra: a problem at each camera that names the
    extra, found without importing anything (so `edge check-config` says it before `edge run` fails)."""
    if not config.cameras:
        return []
    missing = [distribution for module, distribution in CAMERA_LIBRARIES.items() if find_spec(module) is None]
    if not missing:
        return []
    return [(("cameras", index), f"camera {camera.name!r} needs the camera extra, which is not installed here "
             f"({', '.join(missing)} missing): pip install 'building-edge[camera]'")
            for index, camera in enumerate(config.cameras)]


def device_profiles(config: BuildingConfig) -> dict[str, Profile]:
    """The profile of every device the building uses, by profile name; problems carry the profile's own lines."""
    profiles: dict[str, Profile] = {}
    problems: list[ConfigProblem] = []
    for name in sorted({d.profile for d in config.devices}):
        path = profile_path(config, name)
        if path is None:
            continue  # reported against the device that names it
        try:
            document = yaml_source.load_file(path)
            profiles[name] = Profile.model_validate(document.data)
        except yaml_source.SourceError as error:
            problems.append(ConfigProblem(str(path), error.line, error.column, "(yaml)", str(error)))
        except ValidationError as invalid:
            problems += [ConfigProblem(str(path), *p) for p in problem_lines.located(invalid, document, booleans=True)]
    if problems:
        raise ConfigError(problems)
    return profiles


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


def cross_check(config: BuildingConfig, profiles: dict[str, Profile]) -> list[tuple[tuple, str]]:
    """Checks that span sections; each problem is (path in the file, message)."""
    problems: list[tuple[tuple, str]] = []

    def unique(section: str, items: list[Any], kind: str) -> None:
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.name in seen:
                problems.append(((section, index, "name"), f"{kind} {item.name!r} is already defined ({section}.{seen[item.name]})"))
            else:
                seen[item.name] = index

    unique("buses", config.buses, "bus")
    # Devices, readers and cameras all appear as event sources: one name space.
    hardware = [("devices", i, d) for i, d in enumerate(config.devices)]
    hardware += [("readers", i, r) for i, r in enumerate(config.readers)]
    hardware += [("cameras", i, c) for i, c in enumerate(config.cameras)]
    first: dict[str, str] = {}
    for section, index, item in hardware:
        if item.name in first:
            problems.append(((section, index, "name"), f"device name {item.name!r} is already used by {first[item.name]}"))
        else:
            first[item.name] = f"{section}.{index}"
    unique("doors", config.doors, "door")
    unique("circuits", config.circuits, "circuit")
    unique("pressure_points", config.pressure_points, "pressure point")

    buses = {b.name: b for b in config.buses}
    devices = {d.name: d for d in config.devices}
    readers = {r.name for r in config.readers}
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

    serial_owners: dict[str, str] = {}
    osdp_ports: dict[str, Reader] = {}  # port -> its first OSDP reader (readers on one port share a bus)
    osdp_addresses: dict[tuple[str, int | None], str] = {}
    for bus in config.buses:
        if isinstance(bus, SerialBus):
            serial_owners.setdefault(bus.port, f"bus {bus.name!r}")
    for index, reader in enumerate(config.readers):
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

    def point_of(ref: str | None, loc: tuple, bit: bool = False) -> None:
        """A DEVICE.POINT reference must name a device and a point of its profile."""
        if ref is None:
            return
        device_name, point_name = ref.split(".", 1)
        device = devices.get(device_name)
        if device is None:
            problems.append((loc, f"no device named {device_name!r}"))
            return
        profile = profiles.get(device.profile)
        if profile is None:
            return
        point = next((p for p in profile.points if p.name == point_name), None)
        if point is None:
            problems.append((loc, f"device {device_name!r} ({device.profile}) has no point {point_name!r}"))
        elif bit and not (point.function in (Function.COIL, Function.DISCRETE) or point.bit is not None):
            problems.append((loc, f"{ref} is not an on/off input"))

    def commands_of(device_name: str | None, names: tuple[str, ...], loc: tuple) -> None:
        if device_name is None:
            return
        device = devices.get(device_name)
        if device is None:
            problems.append((loc, f"no device named {device_name!r}"))
            return
        profile = profiles.get(device.profile)
        known = {c.name for c in profile.commands} if profile else set(names)
        for name in names:
            if name not in known:
                problems.append((loc, f"device {device_name!r} ({device.profile}) has no command {name!r}"))

    for index, door in enumerate(config.doors):
        for r_index, reader in enumerate(door.readers):
            if reader not in readers:
                problems.append((("doors", index, "readers", r_index), f"no reader named {reader!r}"))
        if door.lock is not None:
            named = tuple(name for name in (door.lock.release, door.lock.secure, door.lock.pulse) if name is not None)
            commands_of(door.lock.device, named, ("doors", index, "lock"))
            device = devices.get(door.lock.device)
            problems.extend(_lock_problems(door, profiles.get(device.profile) if device else None, index))
        point_of(door.contact, ("doors", index, "contact"), bit=True)
        point_of(door.exit_button, ("doors", index, "exit_button"), bit=True)
    for index, circuit in enumerate(config.circuits):
        for p_index, ref in enumerate(circuit.currents):
            point_of(ref, ("circuits", index, "currents", p_index))
        point_of(circuit.leakage, ("circuits", index, "leakage"))
        for p_index, ref in enumerate(circuit.temperatures):
            point_of(ref, ("circuits", index, "temperatures", p_index))
        if not (circuit.currents or circuit.leakage or circuit.temperatures):
            problems.append((("circuits", index), "a circuit needs at least one current, leakage or temperature point"))
        commands_of(circuit.breaker, ("trip", "close"), ("circuits", index, "breaker"))
        if circuit.safety.power_cut is PowerCutPolicy.TRIP and circuit.breaker is None:
            problems.append((("circuits", index, "safety", "power_cut"), "power_cut: trip needs a breaker to trip"))
    for index, point in enumerate(config.pressure_points):
        point_of(point.point, ("pressure_points", index, "point"))
    for index, camera in enumerate(config.cameras):
        if camera.hold is not None:
            commands_of(camera.hold.device, (camera.hold.hold, camera.hold.resume), ("cameras", index, "hold"))
    point_of(config.fire_alarm, ("fire_alarm",), bit=True)
    for index, ref in enumerate(config.cloud_commands):
        device_name, command = ref.split(".", 1)
        device = devices.get(device_name)
        profile = profiles.get(device.profile) if device else None
        if device is None:
            problems.append((("cloud_commands", index), f"no device named {device_name!r}"))
        elif profile is not None and command not in {c.name for c in profile.commands} | {
                c.name for v in profile.variants for c in v.commands}:
            problems.append((("cloud_commands", index), f"device {device_name!r} ({device.profile}) has no command {command!r}"))
    for index, alarm in enumerate(config.alarms):
        point_of(alarm.point, ("alarms", index, "point"))
        device = devices.get(alarm.point.split(".", 1)[0])
        profile = profiles.get(device.profile) if device else None
        point = next((p for p in profile.points if f"{device.name}.{p.name}" == alarm.point), None) if profile else None
        if point is not None:
            try:
                alarm.check_against(point)
            except ValueError as error:
                problems.append((("alarms", index), str(error)))
    unique("udev", config.udev, "udev identity")
    identities = {i.name: i.subsystem for i in config.udev}
    users = [(("buses", i, "port"), b.port, "tty") for i, b in enumerate(config.buses) if isinstance(b, SerialBus)]
    users += [(("readers", i, "port"), r.port, "tty") for i, r in enumerate(config.readers)]
    users += [(("cameras", i, "source"), c.source, "video4linux") for i, c in enumerate(config.cameras)]
    for loc, port, subsystem in users:
        name = port.removeprefix("udev:")
        if port.startswith("udev:") and identities.get(name) != subsystem:
            problems.append((loc, f"no {subsystem} udev identity named {name!r} (udev: section)"))
    problems += community_check(config.community, point_of, {c.name: c.breaker is not None for c in config.circuits}, {d.name for d in config.doors})

    return problems


def _lock_problems(door: Door, profile: Profile | None, index: int) -> list[tuple[tuple, str]]:
    """A lock's commands as the door uses them: release and secure take no value, a pulse's
    argument covers the door's unlock_s, and an egress door can be held released for a fire."""
    lock, loc = door.lock, ("doors", index, "lock")
    assert lock is not None
    problems: list[tuple[tuple, str]] = []
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


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use (config/schema.json is this, committed)."""
    schema = BuildingConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Building gateway config"
    return schema
