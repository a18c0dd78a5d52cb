"""Field devices for tests: the Modbus simulator on a thread of its own, the devices and configs
of a building's circuits (conftest's Daemon runs `edge run` on them). Shared by the points, device-command, fire,
runtime, state-disk and uplink tests, so no test module imports another."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.drivers.modbus.profile import load_profile, load_profiles
from edge.config import building as building_config
from edge.cli import main as edge_main
from edge.config.building import device_profiles
from edge.power.points import FieldPoints
from edge.fieldbus.devices import FieldBus, device_specs
from edge.journal import EventQuery, Journal, read_events
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.waiting import until_sync

from conftest import REPO, Daemon, building, modbus_device, modbus_tcp, one_circuit, riser_pressure, tank_level

PROFILES = REPO / "drivers" / "modbus" / "profiles"
BUILT_IN = load_profiles(PROFILES)
WRITES = (5, 6, 15, 16)
BREAKER_STATUS_WORD = 3  # input register 3 (manual: 30004): bit 0 local mode, bit 1 protection trip, bit 2 fault


class SimulatorThread:
    """The field simulator on its own event loop, so the test can block on subprocesses."""

    def __init__(self, devices: list[SimulatedDevice]) -> None:
        self.simulator = FieldSimulator(devices)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.simulator.start_tcp(), self.loop).result(10)

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class SimulatorLoop:
    """A given simulator on an event loop of its own, so the test can block on the CLI and the daemon;
    `run` a coroutine there (`start_tcp`, `start_rtu`)."""

    def __init__(self, simulator: FieldSimulator) -> None:
        self.simulator = simulator
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def __enter__(self) -> SimulatorLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.run(self.simulator.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class WireSimulator(FieldSimulator):
    """The simulator, keeping every request PDU it receives (unit id, PDU bytes) as the wire carried it."""

    def __init__(self, devices, rtu: bool = False) -> None:
        super().__init__(devices)
        self.frames: list[tuple[int, bytes]] = []
        self._rtu = rtu

    def mangle_tcp(self, sending: bool, frame: bytes) -> bytes:
        rest = frame
        while not sending and len(rest) >= 8:  # MBAP: transaction, protocol, length (unit id + PDU), unit id
            length = struct.unpack(">H", rest[4:6])[0]
            self.frames.append((rest[6], bytes(rest[7 : 6 + length])))
            rest = rest[6 + length :]
        return super().mangle_tcp(sending, frame)

    def mangle_rtu(self, sending: bool, frame: bytes) -> bytes:
        if not sending and len(frame) >= 4:
            self.frames.append((frame[0], bytes(frame[1:-2])))  # unit id, PDU, CRC
        return super().mangle_rtu(sending, frame)

    def writes(self, unit: int) -> list[bytes]:
        return [pdu for u, pdu in self.frames if u == unit and pdu and pdu[0] in WRITES]


def journal_until(predicate, timeout_s: float = 20.0, what: str = "condition"):
    """`until_sync` over the journal of a daemon just started: a table it has not created yet is "not yet"."""
    return until_sync(predicate, timeout_s, what, every_s=0.1, ignore=(sqlite3.OperationalError,))


def edge_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`edge ARGS` in process: exit code, stdout, stderr."""
    code = edge_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def socket_ready(config: Path) -> bool:
    """The daemon answers on its control socket."""
    from edge.runtime import control

    try:
        return control.ask(control.socket_path(building_config.load(config)), {"op": "no.such"}, timeout_s=2).get("ok") is False
    except control.DaemonUnavailable:
        return False


def points_config(write_config, port: int) -> Path:
    """A building with a monitor, breaker and tank input on the simulator at `port` (see `devices`)."""
    return write_config(points_building(port))


def points_building(port: int) -> dict:
    """`points_config` as data: circuit f2-c1 (`one_circuit`, its leakage and staleness too) and the roof
    tank on an 8-channel analogue input."""
    config = building(one_circuit(port, stale={"after_intervals": 20}), {"devices": [modbus_device("ai", 3, "generic-ai8")]})
    config["circuits"][0] = {**config["circuits"][0], "leakage": "mon.leakage_ma"}
    config["pressure_points"] = [tank_level("tank-roof", "ai.ch1_ma", duration_s=0.2, hysteresis=None, stale={"after_intervals": 20})]
    return config


def simulated(profile: str, unit: int, **values: float | bool) -> SimulatedDevice:
    """A device of a shipped profile answering as `unit`, its points set to `values`."""
    device = SimulatedDevice(load_profile(PROFILES / f"{profile}.yaml"), unit)
    for point, value in values.items():
        device.set_value(point, value)
    return device


@contextlib.contextmanager
def points_daemon(write_config, **daemon: Any) -> Iterator[tuple[tuple[SimulatedDevice, ...], Path, Daemon]]:
    """`edge run` (conftest's Daemon, with `daemon`'s arguments) on `points_config` and the `devices()`
    on a simulator thread: yields the monitor, breaker and tank, the config and the daemon."""
    monitor, breaker, tank = devices()
    with SimulatorThread([monitor, breaker, tank]) as port:
        config = points_config(write_config, port)
        with Daemon(config, **daemon) as running:
            yield (monitor, breaker, tank), config, running


def devices() -> tuple[SimulatedDevice, SimulatedDevice, SimulatedDevice]:
    """The monitor, breaker and tank input of `points_config`: 10 A on a closed breaker, the roof tank at
    1.25 m (8 mA of 0-5 m), below its alarm level."""
    return (simulated("generic-efm8", 1, current_a=10.0), simulated("generic-breaker", 2, closed=True),
            simulated("generic-ai8", 3, ch1_ma=8.0))


def circuit_section(policy: str = "trip") -> dict:
    """Circuit f3-c1 (three phases, leakage, breaker `brk`, power cut `policy`) and riser 1's pressure on
    `ai`, their staleness after 10 polls."""
    return {
        "circuits": [{"name": "f3-c1", "floor": 3, "box": "F3", "currents": ["mon.current_a", "mon.current_b", "mon.current_c"],
                      "leakage": "mon.leakage_ma", "breaker": "brk", "safety": {
                          "over_current_a": {"warning": 28, "alarm": 32, "duration_s": 0.3, "hysteresis": 2},
                          "leakage_ma": {"alarm": 500, "duration_s": 0.2}, "power_cut": policy, "stale": {"after_intervals": 10}}}],
        "pressure_points": [riser_pressure("riser-1", "ai.ch1_ma", duration_s=0.2, unit="", stale={"after_intervals": 10})],
    }


def circuit_devices() -> tuple[SimulatedDevice, SimulatedDevice, SimulatedDevice]:
    """The monitor (12 A a phase), closed breaker and riser pressure input (0.8 MPa) of `circuit_config`."""
    return (simulated("generic-efm8", 1, current_a=12.0, current_b=12.0, current_c=12.0), simulated("generic-breaker", 2, closed=True),
            simulated("generic-ai8", 3, ch1_ma=12.0))  # 0.8 MPa


def events_of(path: Path, *kinds: str):
    """The journal's events of `kinds` (all of them without), oldest first."""
    return read_events(path, EventQuery(kinds=kinds, limit=None))


async def run_building(config_path: Path, scenario) -> building_config.BuildingConfig:
    """FieldBus and FieldPoints of the config at `config_path` running in process while `scenario(config, field)` plays."""
    config = building_config.load(config_path)
    journal = await Journal.open(config.journal_path)
    profiles = device_profiles(config)
    fieldbus = FieldBus(device_specs(config, profiles), journal)
    field = FieldPoints(config, fieldbus, journal, profiles)
    tasks = [asyncio.create_task(fieldbus.run()), asyncio.create_task(field.run())]
    try:
        await scenario(config, field)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await journal.close()
    return config


async def on_free_port(simulator: FieldSimulator, config_of, run):
    """`run(path)` on the config `config_of(port)` writes for `simulator`, started on a free TCP port for
    the run and stopped after it (also when the run failed)."""
    port = await simulator.start_tcp()
    try:
        return await run(config_of(port))
    finally:
        await simulator.stop()


async def run_simulated(simulator: FieldSimulator, config_of, scenario) -> building_config.BuildingConfig:
    """`run_building` (FieldBus and FieldPoints in process) on `simulator`, as `on_free_port` runs it."""
    return await on_free_port(simulator, config_of, lambda path: run_building(path, scenario))


def circuit_config(write_config, port: int, policy: str = "trip") -> Path:
    """The circuit and riser of `circuit_section` on the simulator at `port`, polled every 50 ms."""
    return write_config(circuit_building(port, policy))


def circuit_building(port: int, policy: str = "trip") -> dict:
    """`circuit_config` as data."""
    return building(modbus_tcp(port), {"devices": [modbus_device(name, unit, profile, poll_s=0.05) for name, unit, profile in (
        ("mon", 1, "generic-efm8"), ("brk", 2, "generic-breaker"), ("ai", 3, "generic-ai8"))]}, circuit_section(policy))
