"""The physical rig: a rig file that maps each bus and reader of a scenario to a real port or
address and says who gives each stimulus, a person (a prompt, answered with Enter) or an actuator
(a hook command). Point expectations read the device over Modbus TCP, or through a hook.

The same scenarios run here as on the simulators (rig.py): only the faces differ.
"""

from __future__ import annotations

import asyncio
import select
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import Field, ValidationError, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.config import problem_lines
from edge.config import yaml_source
from edge.config.building import BuildingConfig, ConfigProblem
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.registers import Value, decode_point
from edge.drivers.modbus.tables import Function
from edge.hil import scenario as sc
from edge.hil.rig import RigProblem, card_serial, open_by, point_of_step, value_of_step

HOOK_WITHIN_S = 60.0
PROMPT_WITHIN_S = 600.0


class TcpEndpoint(sc.Strict):
    type: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    timeout_s: float = Field(1.0, gt=0, le=30)


class RtuEndpoint(sc.Strict):
    type: Literal["rtu"]
    port: str = Field(min_length=1, description="The RS-485 adapter, e.g. /dev/edge/rs485-1.")
    baud: int | None = None


class ReaderEndpoint(sc.Strict):
    port: str = Field(min_length=1)


class Giver(sc.Strict):
    """Who gives a stimulus: a person told by `prompt`, or an actuator run as `hook`.

    Both are templates: {reader}, {card} (hex), {pin}, {point}, {device}, {value}, {door},
    {contact}, {fire}, {unplug}, {replug} and every other field of the step.
    """

    prompt: str | None = None
    hook: str | None = None
    within_s: float | None = Field(None, gt=0, le=3600, description=f"Deadline; default {HOOK_WITHIN_S:.0f} s for a hook, "
                                                                     f"{PROMPT_WITHIN_S:.0f} s for a person.")

    @property
    def deadline_s(self) -> float:
        return self.within_s or (HOOK_WITHIN_S if self.hook is not None else PROMPT_WITHIN_S)

    @model_validator(mode="after")
    def _one(self) -> "Giver":
        if (self.prompt is None) == (self.hook is None):
            raise ValueError("give exactly one of 'prompt' or 'hook'")
        return self


class RigFile(sc.Strict):
    """Where a scenario's devices are on a physical rig, and who gives each stimulus."""

    buses: dict[str, Union[TcpEndpoint, RtuEndpoint]] = Field(default_factory=dict)
    readers: dict[str, ReaderEndpoint] = Field(default_factory=dict)
    stimuli: dict[str, Giver] = Field(default_factory=dict, description="By step kind: tap, pin, set, door, fire, ...")
    observe: dict[str, Giver] = Field(
        default_factory=dict, description="DEVICE.POINT (or '*') -> a hook that prints the point's value; "
                                          "default: read it over Modbus TCP when its bus is tcp.")


DEVICE_STIMULI = ("tap", "pin", "set", "ramp", "loop", "door", "exit_button", "fire", "unplug", "replug")


def load_rig(path: Path) -> RigFile:
    """Read and validate a rig file; raises ScenarioError listing every problem with its line."""
    try:
        document = yaml_source.load_file(path)
    except yaml_source.SourceError as error:
        raise sc.ScenarioError([ConfigProblem(str(path), error.line, error.column, "(yaml)", str(error))]) from None
    try:
        return RigFile.model_validate(document.data or {})
    except ValidationError as invalid:
        located = problem_lines.located(invalid, document, loc=problem_lines.without({"tcp", "rtu"}))
        raise sc.ScenarioError([ConfigProblem(str(path), *p) for p in located]) from None


class PhysicalRig:
    """The scenario's devices are real (or simulators started separately, as in the rig's own test)."""

    def __init__(self, rig: RigFile, rig_path: Path, prompt_in=None, prompt_out=None) -> None:
        self.rig, self.rig_path = rig, rig_path
        self._in = prompt_in or sys.stdin
        self._out = prompt_out or sys.stderr
        self._config: BuildingConfig | None = None
        self._profiles: dict[str, Profile] = {}
        self._clients: dict[str, AsyncModbusTcpClient] = {}

    def refusals(self, loaded: sc.LoadedScenario, config: BuildingConfig) -> list[ConfigProblem]:
        """Everything the rig file leaves unsaid: an unmapped bus or reader, a stimulus nobody gives."""
        rig = str(self.rig_path)
        problems = []
        for bus in config.buses:
            if bus.name not in self.rig.buses:
                problems.append(ConfigProblem(rig, 1, 1, "buses", f"bus {bus.name!r} of the building is not mapped to a port or host"))
        for reader in config.readers:
            if reader.name not in self.rig.readers:
                problems.append(ConfigProblem(rig, 1, 1, "readers", f"reader {reader.name!r} of the building is not mapped to a port"))
        for index, step in enumerate(loaded.scenario.steps):
            kind = sc.step_kind(step)
            if kind in DEVICE_STIMULI and kind not in self.rig.stimuli:
                problems.append(loaded.problem(("steps", index), f"the rig file {rig} says nobody gives '{kind}' "
                                               f"(add stimuli: {{{kind}: {{prompt: ...}}}} or {{hook: ...}})"))
            if isinstance(step, sc.ExpectPoint) and step.expect_point not in self.rig.observe and "*" not in self.rig.observe:
                device = next((d for d in config.devices if d.name == step.expect_point.split(".")[0]), None)
                bus = self.rig.buses.get(device.bus) if device else None
                if not isinstance(bus, TcpEndpoint):
                    problems.append(loaded.problem(("steps", index), f"{step.expect_point} is not on a Modbus TCP bus: "
                                                   f"the rig file {rig} needs observe: {{{step.expect_point}: {{hook: ...}}}}"))
        return problems

    async def start(self, config: BuildingConfig, profiles: dict[str, Profile], scenario: sc.Scenario) -> None:
        self._config, self._profiles = config, profiles

    def before_start(self) -> None:
        pass

    def not_listening(self, pid: int) -> list[str]:
        """Real reader ports the daemon has not opened yet (Modbus devices are the rig's own)."""
        return [f"reader {name} ({reader.port}) is not open" for name, reader in self.rig.readers.items()
                if not open_by(pid, reader.port)]

    def endpoints(self, config: BuildingConfig) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        buses = {}
        for name, endpoint in self.rig.buses.items():
            settings = endpoint.model_dump(exclude={"type"}, exclude_none=True)
            buses[name] = settings
        return buses, {name: reader.port for name, reader in self.rig.readers.items()}

    async def stimulate(self, step: Any, scenario: sc.Scenario, config: BuildingConfig) -> str:
        kind = sc.step_kind(step)
        fields = {key: value for key, value in step.model_dump().items()}
        if isinstance(step, sc.Tap):
            fields["card"] = card_serial(step, scenario).hex().upper()
            fields["reader_port"] = self.rig.readers[step.reader].port
        point = point_of_step(step, config)
        if point:
            fields["point"] = point
            fields["device"], fields["point_name"] = point.split(".", 1)
            if not isinstance(step, sc.Ramp):
                fields["value"] = str(value_of_step(step)).lower()
        giver = self.rig.stimuli[kind]
        return await self._give(giver, fields, f"stimulus '{kind}'")

    async def _give(self, giver: Giver, fields: dict[str, Any], what: str) -> str:
        try:
            argv = [part.format(**fields) for part in shlex.split(giver.hook)] if giver.hook is not None else []
            text = giver.prompt.format(**fields) if giver.prompt is not None else ""
        except (KeyError, IndexError, ValueError) as error:
            raise RigProblem(f"{what}: the rig file's template names {error}, which this step does not have "
                             f"(it has {', '.join(sorted(fields))})") from None
        if giver.hook is not None:
            try:
                result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=giver.deadline_s)
            except subprocess.TimeoutExpired:
                raise RigProblem(f"{what}: hook {shlex.join(argv)} did not finish within {giver.deadline_s:.0f} s") from None
            except OSError as error:
                raise RigProblem(f"{what}: hook {shlex.join(argv)} could not be started: {error}") from None
            if result.returncode != 0:
                raise RigProblem(f"{what}: hook {shlex.join(argv)} exited {result.returncode}: {result.stderr.strip()[-400:]}")
            return result.stdout.strip()
        print(f"\nRIG: {text}  [Enter when done]", file=self._out, flush=True)
        line = await asyncio.to_thread(self._read_line, giver.deadline_s)
        if line is None:
            raise RigProblem(f"{what}: nobody answered the prompt within {giver.deadline_s:.0f} s: {text}")
        return f"done by hand: {text}"

    def _read_line(self, within_s: float) -> str | None:
        ready, _, _ = select.select([self._in], [], [], within_s)
        return self._in.readline() if ready else None

    async def read_point(self, ref: str) -> Value:
        giver = self.rig.observe.get(ref) or self.rig.observe.get("*")
        device_name, point_name = ref.split(".", 1)
        if giver is not None:
            text = (await self._give(giver, {"point": ref, "device": device_name, "point_name": point_name}, f"observe {ref}")).lower()
            if text in ("true", "on", "false", "off"):
                return text in ("true", "on")
            try:
                return float(text)
            except ValueError:
                raise RigProblem(f"observe {ref}: the hook printed {text[:80]!r}, not true/false/on/off or a number") from None
        device = next(d for d in self._config.devices if d.name == device_name)
        endpoint = self.rig.buses[device.bus]
        profile = self._profiles[device.profile]
        point = profile.point(point_name)
        client = self._clients.get(device.bus)
        if client is None:
            client = self._clients[device.bus] = AsyncModbusTcpClient(endpoint.host, port=endpoint.port, timeout=endpoint.timeout_s)
        if not client.connected and not await client.connect():
            raise RigProblem(f"cannot reach {endpoint.host}:{endpoint.port} to read {ref}")
        read = {
            Function.COIL: client.read_coils, Function.DISCRETE: client.read_discrete_inputs,
            Function.HOLDING: client.read_holding_registers, Function.INPUT: client.read_input_registers,
        }[point.function]
        try:
            response = await read(point.address, count=point.width, device_id=device.address)
        except ModbusException as error:
            raise RigProblem(f"reading {ref} from {endpoint.host}:{endpoint.port} unit {device.address}: {error}") from None
        if response.isError():
            raise RigProblem(f"reading {ref} from {endpoint.host}:{endpoint.port} unit {device.address}: {response}")
        words = [int(b) for b in response.bits[: point.width]] if point.function.is_bit else list(response.registers)
        return decode_point(profile, point, words)

    async def stop(self) -> None:
        for client in self._clients.values():
            client.close()
