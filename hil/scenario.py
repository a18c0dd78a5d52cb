"""A rig scenario: one YAML file a rig engineer writes instead of pytest code.

A scenario names the building config (a file, a fragment merged onto it, or both), what the
simulated devices hold when the daemon starts, the tenants enrolled on the cards, and a
timeline of steps. A step is a stimulus (tap a card, set a register, raise the fire input,
stop the broker, SIGKILL the daemon...) or an expectation with a deadline (an event of a
kind with these fields, a coil in a state, the cloud holding every event exactly once, no
event of a kind during a window, the daemon's RSS below a bound).

The schema is pydantic, as the building config's is, and problems are reported the same way:
`FILE:LINE:COL: dotted.path: message`, all of them at once. Stimuli the gateway has no way to
take yet (a clock jump, a udev hotplug) are refused here with the reason, never played as
something else.

One language, one module (its length is the language's): the step kinds are one discriminated
union read top to bottom as the rig engineer's reference, beside the loader and the check against
the building config that give every problem its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from edge.config import problem_lines
from edge.config import yaml_source
from edge.config.building import ConfigProblem
from edge.uplink.commands import CommandOutcome
from edge.config.settings import Name, PointRef, Strict  # Strict: a misspelt expectation must never silently pass

Value = Union[bool, float]


class ConfigSource(Strict):
    """The building config: a file (relative to the scenario), a fragment merged onto it, or both.

    Mappings merge key by key; a list in the fragment replaces the file's list. Buses, reader
    ports, the secret, state_dir and the uplink's endpoint are filled in by the runner.
    """

    file: Path | None = Field(None, description="Building config, relative to the scenario file.")
    merge: dict[str, Any] = Field(default_factory=dict, description="Fragment merged onto the file.")


class SimulatedDevice(Strict):
    """What a simulated Modbus device holds when the daemon starts."""

    values: dict[str, Value] = Field(default_factory=dict, description="Engineering value per point name.")
    follows_commands: bool = Field(True, description="false: commands are taken but never move their read-back "
                                                     "(a breaker whose trip does not read back).")


class Tenant(Strict):
    """A card enrolled before the daemon starts. Dates are days from today (negative: past)."""

    card: str = Field(pattern=r"^[0-9A-Fa-f]{6,20}$", description="Card serial, hex (3-4 bytes for Wiegand readers).")
    status: Literal["active", "suspended", "revoked", "flagged"] = "active"
    groups: list[Name] = Field(default_factory=lambda: ["entrances"])
    valid_from: int = Field(-90, ge=-36500, le=36500)
    valid_until: int = Field(275, ge=-36500, le=36500)
    paid_through: int = Field(30, ge=-36500, le=36500)
    pin: str | None = Field(None, pattern=r"^[0-9]{4,8}$")


# --- stimuli ---------------------------------------------------------------------------


class Tap(Strict):
    """A card presented at a reader: a tenant's name or a raw hex serial (a stranger's card)."""

    tap: str = Field(min_length=1)
    reader: Name
    repeats: int = Field(1, ge=1, le=20, description="Frames sent while the card lies on the reader.")


class Pin(Strict):
    """Keys pressed on a reader's keypad, then '#'."""

    pin: str = Field(pattern=r"^[0-9]{1,12}$")
    reader: Name


class Set(Strict):
    """Hold a value on a simulated point (a register, a discrete input, a loop current)."""

    set: PointRef
    value: Value


class Ramp(Strict):
    """Drive a point from `start` by `per_s` per second, stopping at `stop`."""

    ramp: PointRef
    start: float
    per_s: float = Field(allow_inf_nan=False)
    stop: float | None = None


class Loop(Strict):
    """A 4-20 mA loop fault: a broken wire reads 0 mA, a short reads 24 mA."""

    loop: PointRef
    state: Literal["broken", "shorted"]


class DoorContact(Strict):
    """Open or close a door (its contact input, from the building config)."""

    door: Name
    contact: Literal["open", "closed"]


class ExitButton(Strict):
    """Press or release a door's request-to-exit button."""

    exit_button: Name
    pressed: bool


class Fire(Strict):
    """Raise or clear the fire panel input (`fire_alarm` in the building config)."""

    fire: Literal["raised", "cleared"]


class BrokerStep(Strict):
    """Stop the broker (the uplink is down) or start it again on the same port."""

    broker: Literal["down", "up"]


class DaemonStep(Strict):
    """SIGKILL the daemon and start it again (sigkill), or SIGTERM and start it again (restart)."""

    daemon: Literal["sigkill", "restart"]


class Unplug(Strict):
    """Pull a reader's serial cable: its socat pty pair is killed and the path disappears.

    This is the reader driver's own error path (EIO, then reopening under the supervisor);
    the gateway has no udev hotplug handling yet, so nothing here claims to test one.
    """

    unplug: Name


class Replug(Strict):
    """Plug a pulled reader back: a new pty pair at the same path."""

    replug: Name


class Wait(Strict):
    """Let time pass (a door held open, a current held over its limit)."""

    wait_s: float = Field(gt=0, le=3600)


class CloudCommand(Strict):
    """A signed command from the reference cloud; the step waits for its result."""

    cloud_command: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    outcome: CommandOutcome = CommandOutcome.DONE
    within_ms: int = Field(10_000, gt=0, le=600_000)


class CredentialChange(Strict):
    """One entry of a change set: upsert a tenant (optionally changed) or remove its card."""

    upsert: str | None = None
    remove: str | None = None
    status: Literal["active", "suspended", "revoked", "flagged"] | None = None
    paid_through: int | None = Field(None, ge=-36500, le=36500)

    @model_validator(mode="after")
    def _one_op(self) -> "CredentialChange":
        if (self.upsert is None) == (self.remove is None):
            raise ValueError("give exactly one of 'upsert: TENANT' or 'remove: TENANT'")
        return self


class Credentials(Strict):
    """A signed credential change set from the reference cloud, at the next version."""

    credentials: list[CredentialChange] = Field(min_length=1)


class ClockJump(Strict):
    """Refused: named so a rig engineer learns why, instead of reading 'unknown step'."""

    clock_jump: Any

    @field_validator("clock_jump")
    @classmethod
    def _refused(cls, value: Any) -> Any:
        raise ValueError("clock jumps cannot be played: `edge run` reads the host's wall clock and has no hook "
                         "to shift it (a clock test belongs in tests/test_access_clock.py, on the pure clock check)")


class ClipImage(Strict):
    """One still of a clip, shown for `seconds`; the path is relative to the data root."""

    image: str = Field(min_length=1)
    seconds: float = Field(gt=0, le=600)


class CameraClip(Strict):
    """Frames played into a camera of the building as its live stream: stills from the data root,
    each for a while, or a video file. The step is done once the camera has read the clip's
    last frame; then the camera sees its `idle` still again (an empty car).

    Paths are relative to the data root (`--data DIR` or $HIL_DATA): the images are not ours to
    copy into the repository, so without them the scenario is skipped, saying what is missing.
    """

    camera_clip: list[ClipImage] | str = Field(description="Stills with durations, or a video file.")
    camera: Name | None = Field(None, description="Which camera; default: the scenario's only one.")

    @field_validator("camera_clip")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("a clip needs at least one still")
        return value


class Qualify(Strict):
    """Labelled frames the runner evaluates the camera's installed model on, with `edge vision eval
    --json` and the camera's hold classes, before the daemon starts; the report becomes the
    camera's `qualification.report`, judged against the config's limits as on site."""

    labels: str = Field(min_length=1, description="Labels CSV (file, ebike, bicycle, ...), relative to the data root.")
    images: str | None = Field(None, description="Folder of the labelled images, relative to the data root; default: the labels file's.")


class ScenarioCamera(Strict):
    """How the runner feeds one camera of the building: a live MJPEG stream through a FIFO (the
    camera's `source`), showing `idle` between clips, and the model it installs for it."""

    idle: str = Field(min_length=1, description="Still shown between clips (an empty car), relative to the data root.")
    manifest: Path | None = Field(None, description="Detector manifest, relative to the scenario file; none: the camera only collects.")
    weights: str | None = Field(None, description="The model file, relative to the data root (installed with the manifest).")
    fps: float = Field(5.0, gt=0, le=30, description="Frames per second of the stream.")
    size: tuple[int, int] = Field((640, 360), description="Width and height of the frames.")
    qualify: Qualify | None = Field(None, description="Evaluate the model on labelled frames; the report qualifies it (or not).")

    @model_validator(mode="after")
    def _both(self) -> "ScenarioCamera":
        if (self.manifest is None) != (self.weights is None):
            raise ValueError("give both `manifest` and `weights`, or neither")
        if self.qualify is not None and self.manifest is None:
            raise ValueError("`qualify` evaluates the camera's model: give `manifest` and `weights`")
        return self


class Edge(Strict):
    """`edge ARGS --config BUILDING` as an operator types it on site; the step fails unless it exits with `exit_code`."""

    edge: list[str] = Field(min_length=1, description="The arguments after `edge`, e.g. [trail, --tenant, alice, --operator, T-1].")
    exit_code: int = 0
    output_contains: str | None = None


# --- expectations ----------------------------------------------------------------------

Deadline = Annotated[int, Field(gt=0, le=600_000, description="Milliseconds after the last stimulus.")]


class ExpectEvent(Strict):
    """An event of `kind` (and source, body fields) journaled within `within_ms` of the last stimulus."""

    expect: str = Field(pattern=r"^[a-z_]+\.[a-z_.]+$")
    source: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="Body fields that must be equal.")
    has: list[str] = Field(default_factory=list, description="Body fields that must be there, whatever their value (a snapshot).")
    count: int = Field(1, ge=1, le=100_000, description="At least this many matching events.")
    within_ms: Deadline = 5000


class ExpectPoint(Strict):
    """A coil, input or register of a simulated device in a state within `within_ms`."""

    expect_point: PointRef
    equals: Value
    within_ms: Deadline = 5000


class ExpectNone(Strict):
    """No event of `kind` (with these fields) for `for_ms` after the last stimulus."""

    expect_none: str = Field(pattern=r"^[a-z_]+\.[a-z_.]+$")
    source: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    for_ms: int = Field(gt=0, le=600_000)


class ExpectCloud(Strict):
    """The reference cloud holds every journaled event exactly once, in seq order, no gap."""

    expect_cloud: Literal["exactly_once"]
    within_ms: Deadline = 30_000


class ExpectOpen(Strict):
    """The daemon holds a reader's port open (again, after a re-plug) within `within_ms`."""

    expect_open: Name
    within_ms: Deadline = 5000


class Sms(Strict):
    to: str = Field(pattern=r"^\+?[0-9]{3,20}$")
    contains: str = ""
    within_ms: Deadline = 30_000


class ExpectSms(Strict):
    """The simulated modem took an SMS to `to` whose text contains `contains`, within `within_ms`."""

    expect_sms: Sms


class ExpectNoSms(Strict):
    """The simulated modem took no SMS for `for_ms` after the last stimulus."""

    expect_no_sms: Literal[True]
    for_ms: int = Field(gt=0, le=600_000)


class ExpectRss(Strict):
    """The daemon's resident memory now, in MB."""

    expect_rss_mb_below: float = Field(gt=0, le=65536)


STIMULI = {
    "tap": Tap, "pin": Pin, "set": Set, "ramp": Ramp, "loop": Loop, "door": DoorContact, "exit_button": ExitButton,
    "fire": Fire, "broker": BrokerStep, "daemon": DaemonStep, "unplug": Unplug, "replug": Replug, "wait_s": Wait,
    "cloud_command": CloudCommand, "credentials": Credentials, "clock_jump": ClockJump, "camera_clip": CameraClip, "edge": Edge,
}
EXPECTATIONS = {
    "expect": ExpectEvent, "expect_point": ExpectPoint, "expect_none": ExpectNone,
    "expect_cloud": ExpectCloud, "expect_open": ExpectOpen, "expect_rss_mb_below": ExpectRss,
    "expect_sms": ExpectSms, "expect_no_sms": ExpectNoSms,
}
STEP_KINDS = {**STIMULI, **EXPECTATIONS}


def step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next(key for key, model in STEP_KINDS.items() if type(value) is model)
    if isinstance(value, dict):
        return next((key for key in value if key in STEP_KINDS), None)
    return None


Step = Annotated[
    Union[tuple(Annotated[model, Tag(key)] for key, model in STEP_KINDS.items())],
    Discriminator(step_kind, custom_error_type="step_kind",
                  custom_error_message=f"a step needs one of: {', '.join(STEP_KINDS)}"),
]


def is_expectation(step: BaseModel) -> bool:
    return isinstance(step, tuple(EXPECTATIONS.values()))


class Scenario(Strict):
    """One scenario: the building, its simulated devices and tenants, and the timeline."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    config: ConfigSource
    devices: dict[Name, SimulatedDevice] = Field(default_factory=dict)
    tenants: dict[Name, Tenant] = Field(default_factory=dict)
    credential_store: Literal["intact", "damaged"] = Field(
        "intact", description="damaged: the credential store file is garbage when the daemon starts.")
    cloud: bool = Field(False, description="Start mosquitto and the reference cloud, and turn the uplink on.")
    cameras: dict[Name, ScenarioCamera] = Field(default_factory=dict, description="Cameras of the building the runner feeds.")
    modem: Literal["ok", "error", "silent", "no_network"] = Field(
        "ok", description="How the simulated modem behaves (when the building has `community.modem`).")
    steps: list[Step] = Field(min_length=1)


SCHEMA_FILE = Path(__file__).resolve().parent / "scenarios" / "schema.json"  # the shipped copy of json_schema()


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors check a scenario against while it is written (SCHEMA_FILE is this,
    committed, and each shipped scenario names it); the runner's own checks go further (a reader
    the building has, a clock jump refused with the reason)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Building gateway rig scenario"
    return schema


class ScenarioError(Exception):
    """Every problem found in one scenario file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


class LoadedScenario:
    """A validated scenario, its file, and where each of its paths sits in that file."""

    def __init__(self, path: Path, scenario: Scenario, document: yaml_source.Document) -> None:
        self.path, self.scenario, self.document = path, scenario, document

    def problem(self, loc: tuple, message: str) -> ConfigProblem:
        return _problem(self.path, self.document, loc, message)


def _problem(path: Path, document: yaml_source.Document, loc: tuple, message: str) -> ConfigProblem:
    return ConfigProblem(str(path), *problem_lines.at(document, loc, message))


def load(path: Path) -> LoadedScenario:
    """Read and validate a scenario; raises ScenarioError listing every problem with its line."""
    path = Path(path)
    try:
        document = yaml_source.load_file(path)
    except yaml_source.SourceError as error:
        raise ScenarioError([ConfigProblem(str(path), error.line, error.column, "(yaml)", str(error))]) from None
    if not isinstance(document.data, dict):
        raise ScenarioError([ConfigProblem(str(path), 1, 1, "(root)", "expected a scenario (a mapping with name, config, steps)")])
    try:
        scenario = Scenario.model_validate(document.data)
    except ValidationError as invalid:
        raise ScenarioError([ConfigProblem(str(path), *p) for p in problem_lines.located(invalid, document, loc=_step_loc)]) from None
    return LoadedScenario(path, scenario, document)


def _step_loc(loc: tuple) -> tuple:
    """Drop pydantic's discriminator tag after `steps.N` (it is not a key in the file)."""
    if len(loc) >= 3 and loc[0] == "steps" and isinstance(loc[1], int) and loc[2] in STEP_KINDS:
        return loc[:2] + loc[3:]
    return loc


def check_against(loaded: LoadedScenario, config: Any, profiles: dict[str, Any]) -> list[ConfigProblem]:
    """What the scenario names that the building does not have: readers, doors, points, tenants, the cloud."""
    scenario = loaded.scenario
    devices = {d.name: d for d in config.devices}
    readers = {r.name: r for r in config.readers}
    doors = {d.name: d for d in config.doors}
    problems: list[ConfigProblem] = []

    def point(ref: str, loc: tuple) -> None:
        device_name, point_name = ref.split(".", 1)
        device = devices.get(device_name)
        if device is None:
            problems.append(loaded.problem(loc, f"the building has no device {device_name!r}"))
        elif device.profile in profiles and point_name not in {p.name for p in profiles[device.profile].points}:
            problems.append(loaded.problem(loc, f"device {device_name!r} ({device.profile}) has no point {point_name!r}"))

    for name, device in scenario.devices.items():
        if name not in devices:
            problems.append(loaded.problem(("devices", name), f"the building has no device {name!r}"))
            continue
        for point_name in device.values:
            point(f"{name}.{point_name}", ("devices", name, "values", point_name))
    for index, step in enumerate(scenario.steps):
        loc = ("steps", index)
        reader = getattr(step, "reader", None)
        if reader is not None and reader not in readers:
            problems.append(loaded.problem(loc + ("reader",), f"the building has no reader {reader!r}"))
        if isinstance(step, Tap) and step.tap not in scenario.tenants:
            try:
                bytes.fromhex(step.tap)
            except ValueError:
                problems.append(loaded.problem(loc + ("tap",), f"{step.tap!r} is neither a tenant of this scenario nor a hex card serial"))
        if isinstance(step, Pin) and reader in readers and not readers[reader].keypad:
            problems.append(loaded.problem(loc + ("reader",), f"reader {reader!r} has no keypad"))
        for key in ("set", "ramp", "loop", "expect_point"):
            if isinstance(getattr(step, key, None), str) and key in type(step).model_fields:
                point(getattr(step, key), loc + (key,))
        if isinstance(step, (Unplug, Replug, ExpectOpen)):
            name = step.unplug if isinstance(step, Unplug) else step.replug if isinstance(step, Replug) else step.expect_open
            if name not in readers:
                problems.append(loaded.problem(loc, f"only card readers can be unplugged and re-plugged; the building has no reader {name!r}"))
        if isinstance(step, DoorContact):
            door = doors.get(step.door)
            if door is None or door.contact is None:
                problems.append(loaded.problem(loc + ("door",), f"the building has no door {step.door!r} with a contact"))
        if isinstance(step, ExitButton):
            door = doors.get(step.exit_button)
            if door is None or door.exit_button is None:
                problems.append(loaded.problem(loc + ("exit_button",), f"the building has no door {step.exit_button!r} with an exit button"))
        if isinstance(step, Fire) and config.fire_alarm is None:
            problems.append(loaded.problem(loc, "the building config has no fire_alarm input"))
        if isinstance(step, (BrokerStep, CloudCommand, Credentials, ExpectCloud)) and not scenario.cloud:
            problems.append(loaded.problem(loc, "this step needs the broker and the reference cloud: set `cloud: true`"))
        if isinstance(step, CameraClip):
            name = step.camera or (next(iter(scenario.cameras)) if len(scenario.cameras) == 1 else None)
            if name is None or name not in scenario.cameras:
                problems.append(loaded.problem(loc, f"name the camera this clip plays into (the scenario's `cameras`: {sorted(scenario.cameras)})"))
        if isinstance(step, (ExpectSms, ExpectNoSms)) and config.community.modem is None:
            problems.append(loaded.problem(loc, "the building has no modem (community.modem): there is no SMS to expect"))
        if isinstance(step, Credentials):
            for c_index, change in enumerate(step.credentials):
                if (change.upsert or change.remove) not in scenario.tenants:
                    problems.append(loaded.problem(loc + ("credentials", c_index), f"no tenant {change.upsert or change.remove!r} in this scenario"))
    cameras = {c.name for c in config.cameras}
    for name in scenario.cameras:
        if name not in cameras:
            problems.append(loaded.problem(("cameras", name), f"the building has no camera {name!r}"))
    for name in cameras - set(scenario.cameras):
        problems.append(loaded.problem(("cameras",), f"say how the runner feeds camera {name!r} (cameras: {{{name}: {{idle: ...}}}})"))
    return problems
