"""A simulated building with `edge run` as a subprocess, for the tests that read it over HTTP.

Modbus devices are a pymodbus server on a free TCP port (a door IO module and a circuit's
monitor); the entrance reader is a socat pty pair with a card simulator at the far end. The
daemon binds its status server to a port the kernel picks and says which in STATE_DIR/http.json.
"""

from __future__ import annotations

import asyncio
import json
import resource
from contextlib import ExitStack
from datetime import date

import aiohttp

from edge.drivers.modbus.profile import load_profile
from edge.config import building as building_config
from edge.config.building import BUILT_IN_PROFILES
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.doors.wiring import credentials_path
from edge.hil import waiting
from edge.hil.card_sim import CardReaderSim
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.pty import pty_pair

from conftest import Daemon, building, modbus_device, modbus_tcp

TENANT = b"\x01\x00\x12\x93\xd8"
MISSING_PORT = "/dev/ttyEDGE-missing-adapter"


async def until(predicate, timeout_s: float = 10.0, what: str = "condition", every_s: float = 0.05):
    """`edge.hil.waiting.until` with the status tests' patience (10 s): what `predicate` (plain or async) gives
    once it is truthy."""
    return await waiting.until(predicate, timeout_s, what, every_s=every_s)


class Site:
    """The building, its simulated hardware and its daemon; `url` is the status server."""

    def __init__(self, write_config, dead_device: bool = False, missing_reader: bool = False, http: dict | None = None,
                 more: dict | None = None, files: int | None = None) -> None:
        """`http`: the status server's section (a free port on localhost without); `more`: sections added
        to the building (cameras, say); `files`: the daemon's soft RLIMIT_NOFILE."""
        self.write_config = write_config
        self.files = files
        self.more = more or {}
        self.dead_device = dead_device
        self.missing_reader = missing_reader
        self.http = http
        self.daemon: Daemon | None = None
        self.url = ""
        self._stack = ExitStack()

    async def __aenter__(self) -> "Site":
        profiles = BUILT_IN_PROFILES
        self.io = SimulatedDevice(load_profile(profiles / "generic-dio8.yaml"), 1)
        for n in range(1, 9):
            self.io.set_value(f"input_{n}", False)
        self.monitor = SimulatedDevice(load_profile(profiles / "generic-efm8.yaml"), 2)
        for phase, amps in zip("abc", (12.0, 11.0, 10.0)):
            self.monitor.set_value(f"current_{phase}", amps)
        self.monitor.set_value("leakage_ma", 20)
        self.monitor.set_value("cable_temp_1", 30.0)
        self.simulator = FieldSimulator([self.io, self.monitor])
        port = await self.simulator.start_tcp()
        self.cards = self._stack.enter_context(pty_pair())
        devices = [modbus_device("doors-io", 1, "generic-dio8", bus="site-bus"), modbus_device("f1-c1-monitor", 2, "generic-efm8", poll_s=0.2, bus="site-bus")]
        if self.dead_device:
            devices.append(modbus_device("pump-room-io", 9, "generic-dio8", poll_s=0.2, bus="site-bus"))
        readers = [{"name": "front-reader", "protocol": "em4100", "port": self.cards.b}]
        if self.missing_reader:
            readers.append({"name": "garage-reader", "protocol": "em4100", "port": MISSING_PORT})
        path = self.write_config(building({"http": self.http or {"port": 0}}, modbus_tcp(port, name="site-bus"), {
            "devices": devices, "readers": readers,
            "doors": [{"name": "front", "readers": ["front-reader"], "groups": ["entrances"],
                       "lock": {"device": "doors-io", "release": "release_1", "secure": "secure_1"},
                       "contact": "doors-io.input_1", "unlock_s": 1, "held_open_s": 30}],
            "circuits": [f1_circuit()]}, self.more))
        self.config_path = path
        self.config = building_config.load(path)
        store_path = credentials_path(self.config)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        with CredentialStore.open(store_path, self.config.building.secret.read()) as store:
            store.issue(Enrolment(serial=TENANT, tenant="t-0101", status="active", door_groups=frozenset({"entrances"}),
                                  valid_from=date(2024, 1, 1), valid_until=date(2099, 1, 1), paid_through=date(2099, 1, 1)))
        self.reader = CardReaderSim(self.cards.a, "em4100")
        return self

    async def start(self) -> None:
        """Start the daemon and wait until its status server has said where it listens."""
        files = self.files
        limit = None if files is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        self.daemon = Daemon(self.config_path, log=self.config_path.parent / "daemon.log", preexec_fn=limit).start()
        endpoint = self.config.state_path / "http.json"

        def announced() -> bool:
            if self.daemon.poll() is not None:
                raise AssertionError(f"the daemon exited: {(self.config_path.parent / 'daemon.log').read_text()[-3000:]}")
            try:
                document = json.loads(endpoint.read_text())
            except (OSError, ValueError):
                return False
            self.url = document["url"]
            return document["pid"] == self.daemon.process.pid

        await until(announced, 20, "the status server's address in http.json")

    async def stop(self) -> int:
        assert self.daemon is not None
        return await asyncio.to_thread(self.daemon.stop, timeout_s=10)

    async def __aexit__(self, *exc: object) -> None:
        if self.daemon is not None:
            await asyncio.to_thread(self.daemon.kill)
        self.reader.close()
        self._stack.close()
        await self.simulator.stop()

    async def get(self, path: str, **kwargs):
        """(status, text) of GET url+path."""
        return await fetch(self.url, path, **kwargs)


async def served_url(config, running: asyncio.Task, timeout_s: float = 20.0) -> str:
    """The url a StatusServer run in process (its task `running`) wrote to the state dir, once it has
    (a server that ended instead, or one silent for `timeout_s`, fails the test)."""
    from edge.status.address import endpoint_path

    def announced() -> bool:
        assert not running.done(), running
        return endpoint_path(config.state_path).exists()

    await waiting.until(announced, timeout_s, "the status server's address in the state dir", every_s=0.02)
    return json.loads(endpoint_path(config.state_path).read_text())["url"]


def f1_circuit(power_cut: str = "warn", **more) -> dict:
    """Circuit f1-c1 on its three-phase monitor f1-c1-monitor (leakage, a cable temperature): 28 A a
    warning, 32 A for 0.5 s an alarm; `more` adds to it (its breaker)."""
    return {"name": "f1-c1", "floor": 1, "box": "F1", "currents": [f"f1-c1-monitor.current_{phase}" for phase in "abc"],
            "leakage": "f1-c1-monitor.leakage_ma", "temperatures": ["f1-c1-monitor.cable_temp_1"],
            "safety": {"over_current_a": {"warning": 28, "alarm": 32, "duration_s": 0.5, "hysteresis": 2}, "power_cut": power_cut}} | more


async def fetch(url: str, path: str, **kwargs):
    """(status, text) of GET url+path."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url + path.lstrip("/"), timeout=aiohttp.ClientTimeout(total=10), **kwargs) as response:
            return response.status, await response.text()


class Stream:
    """The status page's server-sent events, as a browser receives them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[tuple[str, dict]] = []

    async def __aenter__(self) -> "Stream":
        self.session = aiohttp.ClientSession()
        self.response = await self.session.get(self.url + "api/stream", timeout=aiohttp.ClientTimeout(total=None, sock_read=30))
        assert self.response.status == 200 and self.response.headers["Content-Type"].startswith("text/event-stream")
        self.reading = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        name, data = "message", ""
        async for raw in self.response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                self.messages.append((name, json.loads(data)))
                name, data = "message", ""

    def of(self, name: str) -> list[dict]:
        return [data for kind, data in self.messages if kind == name]

    async def __aexit__(self, *exc: object) -> None:
        self.reading.cancel()
        await asyncio.gather(self.reading, return_exceptions=True)
        self.response.close()
        await self.session.close()
