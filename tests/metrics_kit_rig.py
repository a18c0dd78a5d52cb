"""What the metrics kit's tests share: a building that serves every metric the kit names, and a
reader of PromQL that says which metrics an expression names.

The building has a current monitor and its smart breaker, a hydrant riser's pressure and the roof
tank's level on one pymodbus server (a free TCP port), a card reader whose adapter is unplugged,
an elevator camera whose stream cannot open, and an uplink to a real mosquitto (a free port).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

from edge.drivers.modbus.profile import load_profile
from edge.config.building import BUILT_IN_PROFILES
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.broker import Broker
from conftest import Daemon, merged, modbus_device, modbus_tcp, riser_pressure, tank_level
from status_rig import f1_circuit, until
from uplink_rig import uplink_config

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "contrib" / "prometheus" / "edge-rules.yml"
RULE_TESTS = REPO / "contrib" / "prometheus" / "edge-rules.test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "edge.json"

# Served by Prometheus itself for every target, not by the daemon.
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

def kit_building(modbus: int, clip: Path) -> dict:
    """The sections of the kit's building beside its uplink: the monitor, breaker and water inputs on the
    simulator at `modbus`, a reader on an adapter that is not there, a camera on `clip`."""
    return merged({"http": {"port": 0}}, modbus_tcp(modbus, name="site-bus"), {
        "devices": [modbus_device("f1-c1-monitor", 1, "generic-efm8", poll_s=0.2, bus="site-bus"),
                    modbus_device("f1-c1-breaker", 2, "generic-breaker", poll_s=0.2, bus="site-bus"),
                    modbus_device("water-ai", 3, "generic-ai8", poll_s=0.2, bus="site-bus")],
        "readers": [{"name": "garage-reader", "protocol": "em4100", "port": "/dev/ttyEDGE-missing-adapter"}],
        "circuits": [f1_circuit("trip", breaker="f1-c1-breaker")],
        "pressure_points": [riser_pressure("riser-1-pressure", "water-ai.ch1_ma"), tank_level("roof-tank-level", "water-ai.ch3_ma")],
        "cameras": [{"name": "lift-1-cam", "elevator": "lift-1", "source": str(clip), "stall_s": 1, "collect": {"enabled": True}}]})


def simulated_devices() -> tuple[SimulatedDevice, SimulatedDevice, SimulatedDevice]:
    """The monitor (12/11/10 A), the breaker (closed) and the water inputs (12 mA: 0.8 MPa; 14 mA: 3.125 m)."""
    monitor = SimulatedDevice(load_profile(BUILT_IN_PROFILES / "generic-efm8.yaml"), 1)
    for phase, amps in zip("abc", (12.0, 11.0, 10.0)):
        monitor.set_value(f"current_{phase}", amps)
    monitor.set_value("leakage_ma", 20)
    monitor.set_value("cable_temp_1", 30.0)
    breaker = SimulatedDevice(load_profile(BUILT_IN_PROFILES / "generic-breaker.yaml"), 2)
    breaker.set_value("closed", True)
    water = SimulatedDevice(load_profile(BUILT_IN_PROFILES / "generic-ai8.yaml"), 3)
    for channel in range(1, 9):
        water.set_value(f"ch{channel}_ma", 4.0)
    water.set_value("ch1_ma", 12.0)
    water.set_value("ch3_ma", 14.0)
    return monitor, breaker, water


async def start_simulator() -> tuple[FieldSimulator, int, tuple[SimulatedDevice, ...]]:
    devices = simulated_devices()
    simulator = FieldSimulator(list(devices))
    return simulator, await simulator.start_tcp(), devices


def write_building(write_config, building_dir: Path, modbus_port: int, broker_port: int) -> Path:
    """The whole building, uplink included; the camera's clip does not exist (its stream is down)."""
    return uplink_config(write_config, building_dir, broker_port, kit_building(modbus_port, building_dir / "no-such-clip.avi"))


class Running(NamedTuple):
    config: Path
    url: str  # the status server's, as it wrote it to http.json
    devices: tuple[SimulatedDevice, ...]  # monitor, breaker, water inputs


@contextlib.asynccontextmanager
async def running_building(write_config, building_dir: Path) -> AsyncIterator[Running]:
    """`edge run` on the kit's whole building (the simulator, a mosquitto) once its status server says
    where it listens; on the way out the daemon must stop cleanly (exit 0), then the simulator stops."""
    simulator, modbus_port, devices = await start_simulator()
    try:
        with Broker() as broker:
            config = write_building(write_config, building_dir, modbus_port, broker.port)
            daemon = Daemon(config, log=config.parent / "daemon.log", stop_s=15).start()
            try:
                endpoint = building_dir / "state" / "http.json"
                await until(lambda: endpoint.exists() or daemon.poll() is not None, 30, "the status server's address")
                assert daemon.poll() is None, (building_dir / "daemon.log").read_text()[-3000:]
                yield Running(config, json.loads(endpoint.read_text())["url"], devices)
            finally:
                assert daemon.stop() == 0
    finally:
        await simulator.stop()


# --- reading PromQL ------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                       "inf", "nan", "atan2"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expression: str) -> set[str]:
    """The metric names an expression (a rule's or a Grafana target's) selects: identifiers that are
    neither a function (followed by a parenthesis), a keyword, a label list, nor a label matcher."""
    text = _VARIABLE.sub("1", expression)  # Grafana's $instance, ${__rate_interval}
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        after = text[match.end():].lstrip()
        before = text[:match.start()]
        if after.startswith("(") or match.group() in _KEYWORDS or (before and (before[-1].isdigit() or before[-1] == ".")):
            continue
        names.add(match.group())
    return names
