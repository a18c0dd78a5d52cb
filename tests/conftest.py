"""Shared fixtures: a building config in a temp dir, written the way a technician would.

Set-up that several test modules share lives in the *_rig.py modules beside this one (field_rig,
modbus_rig, access_rig, community_rig, uplink_rig, status_rig, ...), never in a test module, so
no test imports another. Waiting for something is the rig's own `edge.hil.waiting.until` (async) or
`until_sync`; a rig module's `until` only gives it that rig's default patience.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable
from typing import IO, Any

import pytest
import yaml

from bodies_rig import typed_bodies_keep_to_their_models  # noqa: F401 - after each test of a gateway: its typed bodies kept

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def building_dir(tmp_path: Path) -> Path:
    """A config directory with a secret file and an empty local profiles/ (the shipped profiles are built in)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "building.key").write_text(secrets.token_hex(32))
    (tmp_path / "profiles").mkdir()
    return tmp_path


@pytest.fixture
def write_config(building_dir: Path):
    """Write YAML (dedented; or a config as data, see `building`) as building.yaml and return its path. A building without an `http:`
    block of its own gets a free port for its status server: nothing a test starts binds a fixed
    port (the default, 8780, is the one a gateway uses)."""

    def write(text: str | dict, name: str = "building.yaml") -> Path:
        path = building_dir / name
        text = as_yaml(text) if isinstance(text, dict) else textwrap.dedent(text).lstrip("\n")
        if re.search(r"^building:", text, re.M) and not re.search(r"^http:", text, re.M) and _a_building(text):
            text = text.rstrip("\n") + "\nhttp: {port: 0}\n"
        path.write_text(text)
        return path

    return write


@pytest.fixture(params=["tcp", "rtu"])
def modbus_line(request):
    """A simulator's line to the poller, once over Modbus TCP and once over RTU on a socat pty pair
    (modbus_rig.Line): `link = await modbus_line.start(simulator)`."""
    from modbus_rig import Line

    with Line(request.param) as line:
        yield line


@pytest.fixture
def unit_to_analyze(tmp_path: Path) -> Path:
    """systemd/edge.service in tmp_path, its ExecStart pointing at a stand-in `edge` (systemd-analyze
    wants the binary to exist)."""
    stand_in = tmp_path / "edge"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "edge.service"
    unit.write_text((REPO / "systemd" / "edge.service").read_text().replace("/opt/edge/bin/edge", str(stand_in)))
    return unit


@pytest.fixture
def media():
    """The empty car and two e-bike images from the shared data folder (skipped without it), for
    the vision tests that make their clips from real images."""
    from vision_media import EBIKE, EMPTY_CAR, labelled, need_shared

    need_shared()
    return EBIKE / EMPTY_CAR, labelled("ebike", 2)


def _a_building(text: str) -> bool:
    """A well-formed building file (a test of broken YAML gets its bytes as written)."""
    try:
        return isinstance(yaml.safe_load(text), dict)
    except yaml.YAMLError:
        return False


MINIMAL = """
building:
  id: test-house
  timezone: Asia/Shanghai
  secret: {file: secrets/building.key}
state_dir: state
"""
MINIMAL_FORMAT = MINIMAL.replace("{", "{{").replace("}", "}}")  # MINIMAL at the head of a str.format template


def as_yaml(data: dict) -> str:
    """A config given as data, in YAML as a technician's file holds it (keys in the order given)."""
    return yaml.safe_dump(data, sort_keys=False, width=1000)


def merged(*parts: dict) -> dict:
    """The sections of `parts` in one config: a list section (devices, circuits, ...) gathers every
    part's entries in order, a later part's other sections win."""
    config: dict = {}
    for part in parts:
        for key, value in part.items():
            config[key] = [*config.get(key, []), *value] if isinstance(value, list) else value
    return config


def building(*parts: dict) -> dict:
    """MINIMAL as data with `parts` merged in (see `merged`), for `write_config`."""
    return merged(yaml.safe_load(MINIMAL), *parts)


def modbus_device(name: str, address: int, profile: str, *, poll_s: float = 0.1, bus: str = "box") -> dict:
    return {"name": name, "bus": bus, "address": address, "profile": profile, "poll_s": poll_s}


def modbus_tcp(port: int | None, *, timeout_s: float | None = 0.3, name: str = "box") -> dict:
    """The `buses:` section of one Modbus TCP bus: the simulator at `port` on this machine (a config
    only loaded, never run, may leave out the port and the timeout: None)."""
    bus = {"name": name, "type": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": timeout_s}
    return {"buses": [{key: value for key, value in bus.items() if value is not None}]}


def modbus_rtu(port: str, baud: int, *, timeout_s: float = 0.5, name: str = "line") -> dict:
    """The `buses:` section of one Modbus RTU line on the serial device `port` (a socat pty)."""
    return {"buses": [{"name": name, "type": "rtu", "port": port, "baud": baud, "timeout_s": timeout_s}]}


def doors_io(port: int | None, *, poll_s: float | None = 0.05, timeout_s: float | None = 0.5) -> dict:
    """The doors' IO module doors-io (generic-dio8, unit 1) on a Modbus TCP bus of its own, doors-bus, at
    `port` (None, and no poll_s or timeout: a config only loaded)."""
    device = {"name": "doors-io", "bus": "doors-bus", "address": 1, "profile": "generic-dio8", "poll_s": poll_s}
    return merged(modbus_tcp(port, timeout_s=timeout_s, name="doors-bus"),
                  {"devices": [{key: value for key, value in device.items() if value is not None}]})


def io_lock(relay: int, device: str = "doors-io") -> dict:
    """A door's `lock:` on relay `relay` of an IO module: release_N opens it, secure_N locks it."""
    return {"device": device, "release": f"release_{relay}", "secure": f"secure_{relay}"}


def egress_door(name: str) -> dict:
    """An egress door `name` with its card reader `name`-reader on a serial port no test opens (a config
    only loaded, or a view of it): a grant releases it for 3 s."""
    return {"readers": [{"name": f"{name}-reader", "protocol": "em4100", "port": "/dev/ttyUSB9"}],
            "doors": [{"name": name, "readers": [f"{name}-reader"], "egress": True, "unlock_s": 3}]}


def one_device(name: str, profile: str) -> dict:
    """A building with one device `name` of `profile` at unit 1 of a Modbus TCP bus `b` (a config only
    loaded: the test of a local profile's problems)."""
    return building(modbus_tcp(None, timeout_s=None, name="b"), {"devices": [{"name": name, "bus": "b", "address": 1, "profile": profile}]})


def profile_problems(write_config, building_dir: Path, model: str, text: str, device: str = "d") -> tuple[str, list[str]]:
    """A local profile `model` (its YAML `text`, in the building's profiles/; text, since its problems
    name their FILE:LINE:COL) and the problems a building with one `device` of it raises: (the profile's
    path, the problems)."""
    path = building_dir / "profiles" / f"{model}.yaml"
    path.write_text(text)
    return str(path), problems_of(write_config(one_device(device, model)))


def problems_of(path: Path) -> list[str]:
    """The problems (FILE:LINE:COL: path: message) loading the config at `path` raises; it must raise."""
    from edge.config.building import ConfigError, load

    with pytest.raises(ConfigError) as caught:
        load(path)
    return [str(problem) for problem in caught.value.problems]


def one_circuit(port: int, *, poll_s: float = 0.1, **safety: Any) -> dict:
    """A current monitor (`mon`, unit 1) and a breaker (`brk`, unit 2) on the simulator at `port`, and
    circuit f2-c1 between them: 32 A for 0.3 s is an alarm that trips the breaker; `safety` adds to its
    safety block (`stale={"after_intervals": 20}`)."""
    return merged(modbus_tcp(port), {
        "devices": [modbus_device("mon", 1, "generic-efm8", poll_s=poll_s), modbus_device("brk", 2, "generic-breaker", poll_s=poll_s)],
        "circuits": [{"name": "f2-c1", "floor": 2, "box": "F2", "currents": ["mon.current_a"], "breaker": "brk",
                      "safety": {"over_current_a": {"alarm": 32, "duration_s": 0.3, "hysteresis": 2}, "power_cut": "trip", **safety}}],
    })


def tank_level(name: str, point: str, *, duration_s: float = 60, hysteresis: float | None = 0.1, **safety: Any) -> dict:
    """A pressure point for the roof tank's level on a 4-20 mA loop of 0-5 m: a warning under 3 m, an
    alarm under 2 m for `duration_s`; `safety` adds to its safety block (`stale=...`)."""
    low = {"warning": 3.0, "alarm": 2.0, "duration_s": duration_s} | ({} if hysteresis is None else {"hysteresis": hysteresis})
    return {"name": name, "point": point, "tank": "roof", "safety": {
        "measures": "level", "sensor": {"unit": "m", "value_at_4ma": 0.0, "value_at_20ma": 5.0}, "low_level": low, **safety}}


def riser_pressure(name: str, point: str, *, duration_s: float = 10, unit: str = "MPa", riser: str | None = "1", **safety: Any) -> dict:
    """A pressure point for a hydrant `riser` on a 4-20 mA loop of 0-1.6 MPa (`unit` as the file names it,
    "" for none): a warning under 0.25, an alarm under 0.15 for `duration_s`; `safety` adds to its safety block."""
    return {"name": name, "point": point, **({} if riser is None else {"riser": riser}), "safety": {
        "measures": "pressure", "sensor": ({"unit": unit} if unit else {}) | {"value_at_4ma": 0.0, "value_at_20ma": 1.6},
        "low_pressure": {"warning": 0.25, "alarm": 0.15, "duration_s": duration_s, "hysteresis": 0.02}, **safety}}


def edge(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`edge ARGS` as a technician runs it: a subprocess, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=timeout_s)


class Daemon:
    """`edge run --config CONFIG` as systemd starts it: a subprocess, stopped on the way out (SIGTERM,
    `stop_s` to finish, then a kill), so a failing test leaves no daemon behind; `strict`: a daemon
    that had to be killed fails the test (TimeoutExpired). Its output goes to `log` (appended; the file
    a test reads the daemon's lines from) or to `stdout`/`stderr`; `env` adds to the environment."""

    def __init__(self, config: Path, *, log: Path | None = None, stdout: Any = subprocess.DEVNULL,
                 stderr: Any = subprocess.DEVNULL, env: dict[str, str] | None = None, text: bool = False,
                 stop_s: float = 20, strict: bool = False, python: tuple[str, ...] = (), interpreter: str = sys.executable,
                 **popen: Any) -> None:
        self.config = config
        self.journal = config.parent / "state" / "journal.db"
        self.log, self.stdout, self.stderr, self.env, self.text, self.stop_s = log, stdout, stderr, env, text, stop_s
        self.strict, self.popen = strict, popen  # more of Popen's arguments (preexec_fn)
        self.python = python  # the interpreter's own options ("-X", "importtime")
        self.interpreter = interpreter  # another install's python (an installed wheel's venv)
        self.process: subprocess.Popen | None = None
        self._log: IO[str] | None = None

    def start(self) -> Daemon:
        if self.log is not None:
            if self._log is not None:
                self._log.close()  # the last run's, ended some other way (a SIGKILL through `process`)
            self._log = open(self.log, "a")
            self.stdout, self.stderr = self._log, subprocess.STDOUT
        self.process = subprocess.Popen([self.interpreter, *self.python, "-m", "edge.cli", "run", "--config", str(self.config)],
                                        env=dict(os.environ, **(self.env or {})), stdout=self.stdout,
                                        stderr=self.stderr, text=self.text, **self.popen)
        return self

    def stop(self, how: signal.Signals = signal.SIGTERM, timeout_s: float | None = None) -> int | None:
        """Signal it (if it still runs) and wait `timeout_s` (default `stop_s`) for its exit; a kill after
        that. Its exit code (negative: the signal that ended it; None if it never started)."""
        process = self.process
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.send_signal(how)
                try:
                    process.wait(self.stop_s if timeout_s is None else timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
                    if self.strict:
                        raise
        finally:
            if self._log is not None:
                self._log.close()
        return process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        """Kill it at once if it still runs (a test's `finally` after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._log is not None:
            self._log.close()

    def events(self, *kinds: str):
        """The journal's events of `kinds` so far (none while the daemon is still creating it)."""
        from edge.journal import EventQuery, read_events

        try:
            return read_events(self.journal, EventQuery(kinds=kinds, limit=None)) if self.journal.exists() else []
        except Exception:  # the daemon is still creating the journal's tables
            return []

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class NotifySocket:
    """systemd's notify socket at `path`, bound for a Daemon started with `env` (NOTIFY_SOCKET): the
    datagrams it sends (READY=1, WATCHDOG=1, STOPPING=1), read with a deadline; closed on the way out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.env = {"NOTIFY_SOCKET": str(path)}

    def datagrams(self, until: str, deadline_s: float) -> list[str]:
        """What arrives within `deadline_s`, up to the first datagram holding `until`."""
        received: list[str] = []
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and not (received and until in received[-1]):
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return received

    def wait_for(self, wanted: str, timeout_s: float) -> list[str]:
        """`datagrams` up to `wanted`; NotReached (an AssertionError) if it never came."""
        from edge.hil.waiting import NotReached

        received = self.datagrams(wanted, timeout_s)
        if not any(wanted in datagram for datagram in received):
            raise NotReached(f"the daemon did not send {wanted} within {timeout_s} s (it sent {received})")
        return received

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.asynccontextmanager
async def in_background(work: Awaitable) -> AsyncIterator[asyncio.Task]:
    """`work` (a server's or a worker's run()) as a task while the block runs: cancelled and awaited on
    the way out, also when the test failed, so none outlives its test."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def running(*daemons: Daemon):
    """Every daemon started, in order; each stopped on the way out, in the same order, also when the
    test failed."""
    try:
        for daemon in daemons:
            daemon.start()
        yield daemons
    finally:
        for daemon in daemons:
            daemon.stop()
