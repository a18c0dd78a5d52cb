"""The devices a scenario plays against: simulators in CI, or a physical rig from a rig file.

Both faces answer the same three questions for the runner: where the daemon's config must
point each bus and reader (`endpoints`), how a stimulus reaches the building (`stimulate`),
and what a device's point reads now (`read_point`).

* `SimulatedRig` starts what hil/ already has: a Modbus field simulator per bus (TCP, or RTU on
  a socat pty pair for `rtu` buses), and a pty pair per card reader with the card simulator
  writing real frames into it (EM4100, Wiegand) or libosdp's peripheral answering on it (OSDP,
  Secure Channel). Pulling a serial reader's cable kills its socat; plugging it back starts a
  new pair at the same path. An OSDP reader's cut cable is the peripheral falling silent.
* `PhysicalRig` (physical_rig.py) reads a rig file that maps each bus and reader to a real port or address and
  says who gives each stimulus: a person (a prompt, answered with Enter) or an actuator (a hook
  command). Point expectations read the device over Modbus TCP, or through a hook.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.registers import Value
from edge.config.building import BuildingConfig, ConfigProblem, SerialBus
from edge.hil import scenario as sc
from edge.hil.card_sim import CardReaderSim
from edge.drivers.osdp.keys import load_key
from edge.hil.modbus_sim import FieldSimulator, Ramp, SimulatedDevice
from edge.hil.osdp_pd import SimulatedOsdpReader

LOOP_MA = {"broken": 0.0, "shorted": 24.0}  # a cut wire carries nothing; a short drives the loop past 20.5 mA
SOCAT_WITHIN_S = 5.0
CARD_BYTES = {  # what each simulated reader can send
    "em4100": ((5,), "EM4100 cards of 5 bytes"),
    "wiegand": ((3, 4), "Wiegand 26/34-bit cards of 3 or 4 bytes"),
    "osdp": ((3,), "26-bit Wiegand through OSDP, cards of 3 bytes"),
}


class RigProblem(RuntimeError):
    """A stimulus or read the rig cannot give, said before or while it is played."""


def card_serial(step: sc.Tap, scenario: sc.Scenario) -> bytes:
    """A tenant's card, or a raw serial (a stranger's card)."""
    tenant = scenario.tenants.get(step.tap)
    return bytes.fromhex(tenant.card if tenant else step.tap)


def point_of_step(step: Any, config: BuildingConfig) -> str | None:
    """The DEVICE.POINT a device stimulus moves, resolved through the building config."""
    if isinstance(step, sc.Set):
        return step.set
    if isinstance(step, sc.Ramp):
        return step.ramp
    if isinstance(step, sc.Loop):
        return step.loop
    if isinstance(step, sc.DoorContact):
        return next(d.contact for d in config.doors if d.name == step.door)
    if isinstance(step, sc.ExitButton):
        return next(d.exit_button for d in config.doors if d.name == step.exit_button)
    if isinstance(step, sc.Fire):
        return config.fire_alarm
    return None


def value_of_step(step: Any) -> Value:
    if isinstance(step, sc.Set):
        return step.value
    if isinstance(step, sc.Loop):
        return LOOP_MA[step.state]
    if isinstance(step, sc.DoorContact):
        return step.contact == "open"
    if isinstance(step, sc.ExitButton):
        return step.pressed
    if isinstance(step, sc.Fire):
        return step.fire == "raised"
    raise TypeError(f"{type(step).__name__} holds no single value")


def open_by(pid: int, path: str) -> bool:
    """Whether process `pid` holds `path` (a tty behind a symlink, say) open: the daemon is listening there."""
    target = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


class _Socat:
    """A socat pty pair at two fixed paths, so a pulled cable can be plugged back where it was."""

    def __init__(self, gateway_end: Path, device_end: Path) -> None:
        self.gateway_end, self.device_end = gateway_end, device_end
        self._process: subprocess.Popen[bytes] | None = None

    def plug(self) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise RigProblem("socat is not installed (Debian package socat)")
        self._process = subprocess.Popen(
            [socat, f"pty,raw,echo=0,link={self.gateway_end}", f"pty,raw,echo=0,link={self.device_end}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + SOCAT_WITHIN_S
        while not (self.gateway_end.exists() and self.device_end.exists()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RigProblem(f"socat did not create {self.gateway_end} within {SOCAT_WITHIN_S} s")
            time.sleep(0.01)

    def unplug(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(SOCAT_WITHIN_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


class SimulatedRig:
    """Every bus and reader of the building played by a simulator."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.simulators: dict[str, FieldSimulator] = {}
        self.devices: dict[str, SimulatedDevice] = {}
        self._ports: dict[str, int] = {}
        self._bus_ptys: list[_Socat] = []
        self._readers: dict[str, tuple[_Socat, str]] = {}
        self._osdp: dict[str, SimulatedOsdpReader] = {}

    def refusals(self, loaded: sc.LoadedScenario, config: BuildingConfig) -> list[ConfigProblem]:
        """Steps this rig cannot play, with their lines."""
        readers = {r.name: r for r in config.readers}
        problems = []
        for index, step in enumerate(loaded.scenario.steps):
            reader = readers.get(getattr(step, "reader", None) or "")
            if isinstance(step, (sc.Tap, sc.Pin)) and reader and reader.protocol.value == "ga467":
                problems.append(loaded.problem(("steps", index, "reader"), f"reader {reader.name!r} is a GA 467 registration desk reader: "
                                               "it reads ID cards for `edge credentials issue`, it opens no door"))
            if isinstance(step, sc.Tap) and reader and reader.protocol.value in CARD_BYTES:
                sizes, why = CARD_BYTES[reader.protocol.value]
                if len(card_serial(step, loaded.scenario)) not in sizes:
                    problems.append(loaded.problem(("steps", index, "tap"), f"reader {reader.name!r} reads {why}: "
                                                   f"card {step.tap} is {len(card_serial(step, loaded.scenario))} bytes"))
        return problems

    async def start(self, config: BuildingConfig, profiles: dict[str, Profile], scenario: sc.Scenario) -> None:
        for bus in config.buses:
            devices = []
            for device in (d for d in config.devices if d.bus == bus.name):
                simulated = SimulatedDevice(profiles[device.profile], device.address)
                settings = scenario.devices.get(device.name, sc.SimulatedDevice())
                simulated.follow_commands = settings.follows_commands
                for point, value in settings.values.items():
                    simulated.set_value(point, value)
                self.devices[device.name] = simulated
                devices.append(simulated)
            simulator = FieldSimulator(devices)
            if isinstance(bus, SerialBus):
                pty = _Socat(self.workdir / f"bus-{bus.name}", self.workdir / f"bus-{bus.name}.device")
                await asyncio.to_thread(pty.plug)
                self._bus_ptys.append(pty)
                await simulator.start_rtu(str(pty.device_end), bus.baud)
            else:
                self._ports[bus.name] = await simulator.start_tcp()
            self.simulators[bus.name] = simulator
        for reader in config.readers:
            pty = _Socat(self.workdir / f"reader-{reader.name}", self.workdir / f"reader-{reader.name}.card")
            await asyncio.to_thread(pty.plug)
            self._readers[reader.name] = (pty, reader.protocol.value)
            if reader.protocol.value == "osdp":
                peripheral = SimulatedOsdpReader(str(pty.device_end), reader.baud, reader.osdp_address, load_key(reader.osdp_key.file))
                self._osdp[reader.name] = peripheral.__enter__()

    def endpoints(self, config: BuildingConfig) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Each bus's new settings and each reader's port, for the daemon's config."""
        buses: dict[str, dict[str, Any]] = {}
        for bus in config.buses:
            if isinstance(bus, SerialBus):
                buses[bus.name] = {"port": str(self.workdir / f"bus-{bus.name}")}
            else:
                buses[bus.name] = {"host": "127.0.0.1", "port": self._ports[bus.name], "timeout_s": 0.5}
        return buses, {name: str(pty.gateway_end) for name, (pty, _) in self._readers.items()}

    async def stimulate(self, step: Any, scenario: sc.Scenario, config: BuildingConfig) -> str:
        """Play a device stimulus; returns what was done, for the report."""
        if isinstance(step, sc.Tap) and step.reader in self._osdp:
            self._osdp[step.reader].tap(int.from_bytes(card_serial(step, scenario), "big"))
            return f"card {step.tap} at OSDP reader {step.reader}"
        if isinstance(step, sc.Pin) and step.reader in self._osdp:
            self._osdp[step.reader].keys(step.pin + "#")
            return f"PIN keyed at OSDP reader {step.reader}"
        if isinstance(step, sc.Unplug) and step.unplug in self._osdp:
            self._osdp[step.unplug].go_silent()
            return f"OSDP reader {step.unplug} stops answering (its cable cut)"
        if isinstance(step, sc.Replug) and step.replug in self._osdp:
            self._osdp[step.replug].resume()
            return f"OSDP reader {step.replug} answers again"
        if isinstance(step, sc.Tap):
            pty, protocol = self._readers[step.reader]
            serial = card_serial(step, scenario)

            def present() -> None:
                with CardReaderSim(str(pty.device_end), protocol) as reader:
                    reader.present(serial, repeats=step.repeats)

            await asyncio.to_thread(present)
            return f"card {step.tap} at {step.reader}"
        if isinstance(step, sc.Pin):
            pty, protocol = self._readers[step.reader]

            def press() -> None:
                with CardReaderSim(str(pty.device_end), protocol) as reader:
                    reader.pin(step.pin)

            await asyncio.to_thread(press)
            return f"PIN keyed at {step.reader}"
        if isinstance(step, sc.Unplug):
            await asyncio.to_thread(self._readers[step.unplug][0].unplug)
            return f"{step.unplug} unplugged"
        if isinstance(step, sc.Replug):
            await asyncio.to_thread(self._readers[step.replug][0].plug)
            return f"{step.replug} plugged back"
        point = point_of_step(step, config)
        device_name, point_name = point.split(".", 1)
        device = self.devices[device_name]
        if isinstance(step, sc.Ramp):
            device.play(point_name, Ramp(start=step.start, per_s=step.per_s, stop=step.stop))
            return f"{point} ramps from {step.start} by {step.per_s}/s to {step.stop}"
        value = value_of_step(step)
        device.set_value(point_name, value)
        return f"{point} = {value}"

    async def read_point(self, ref: str) -> Value:
        device_name, point_name = ref.split(".", 1)
        return self.devices[device_name].value_of(point_name)

    def before_start(self) -> None:
        self._reads = {name: device.reads for name, device in self.devices.items()}

    def not_listening(self, pid: int) -> list[str]:
        """What the daemon does not use yet since it started: a reader port it has not opened, a device it has not polled."""
        waiting = [f"reader {name} ({pty.gateway_end}) is not open" for name, (pty, _) in self._readers.items()
                   if pty.gateway_end.exists() and not open_by(pid, str(pty.gateway_end))]
        waiting += [f"device {name} has not been polled" for name, device in self.devices.items()
                    if device.reads <= self._reads.get(name, 0)]
        waiting += [f"reader {name}: no OSDP Secure Channel" for name, peripheral in self._osdp.items() if not peripheral.secure]
        return waiting

    async def stop(self) -> None:
        for peripheral in self._osdp.values():
            await asyncio.to_thread(peripheral.__exit__, None, None, None)
        for simulator in self.simulators.values():
            await simulator.stop()
        for pty in self._bus_ptys + [pty for pty, _ in self._readers.values()]:
            await asyncio.to_thread(pty.unplug)
