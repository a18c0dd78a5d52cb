"""The daemon loads a part only where the building's config uses it (docs/performance.md).

`edge run` is started as systemd starts it, with `python -X importtime`, which names every module
the process imports on stderr; once READY=1 is sent every part has been built, so what is not
named by then is not in the process.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from conftest import Daemon, NotifySocket, building, doors_io, io_lock, merged

from edge.hil.broker import free_port

def one_door(io_port: int, reader_port: Path) -> dict:
    """A door, its card reader on `reader_port` and its lock on doors-io at `io_port`: all a building needs."""
    return merged(doors_io(io_port, poll_s=None), {"readers": [{"name": "front-reader", "protocol": "em4100", "port": str(reader_port)}],
                                                   "doors": [{"name": "front", "readers": ["front-reader"], "groups": ["entrances"], "lock": io_lock(1)}]})
NOT_FOR_ONE_DOOR = {
    "aiohttp", "prometheus_client", "edge.status.server",  # the status server
    "paho", "cryptography", "edge.uplink.worker",  # the uplink
    "osdp", "edge.drivers.osdp.bus",  # OSDP readers
    "edge.community.notifier", "edge.drivers.modem.at",  # community safety's notifications and the SMS modem
    "edge.power.points", "cv2", "onnxruntime", "numpy",  # field points, the camera
    "edge.doors.cli", "edge.power.cli", "edge.vision.cli", "edge.fieldbus.cli",  # the technician's commands
    "edge.events.bodies", "edge.doors.bodies", "edge.power.bodies",  # the typed bodies: for the contract and the tests
}


def _imported_until_ready(config: Path, building_dir: Path) -> set[str]:
    """Every module `edge run` on `config` imported by the time it sent READY=1."""
    notify = NotifySocket(building_dir / "notify.sock")
    daemon = Daemon(config, python=("-X", "importtime"), env=notify.env, stderr=subprocess.PIPE, text=True).start()
    try:
        ready = notify.datagrams("READY=1", 60)
        assert any("READY=1" in datagram for datagram in ready), f"no READY=1 (exit {daemon.poll()})"
        daemon.process.send_signal(signal.SIGTERM)
        _, err = daemon.process.communicate(timeout=20)
    finally:
        daemon.kill()
        notify.close()
    return {line.split("|")[2].strip() for line in err.splitlines() if line.startswith("import time:") and line.count("|") == 2}


def _top_and_full(modules: set[str]) -> set[str]:
    return modules | {name.split(".")[0] for name in modules}


def test_a_one_door_building_without_page_or_uplink_loads_neither(write_config, building_dir):
    config = write_config(building(one_door(free_port(), building_dir / "no-reader"), {"http": {"enabled": False}}))
    imported = _top_and_full(_imported_until_ready(config, building_dir))
    assert {"edge.doors.access", "edge.fieldbus.devices", "pymodbus"} <= imported  # what a door needs, and the list is read right
    assert imported & NOT_FOR_ONE_DOOR == set()


def test_the_page_and_the_uplink_are_loaded_where_the_config_has_them(write_config, building_dir):
    config = write_config(building(one_door(free_port(), building_dir / "no-reader"), {
        "http": {"port": 0}, "uplink": {"enabled": True, "host": "127.0.0.1", "port": free_port()}}))
    imported = _top_and_full(_imported_until_ready(config, building_dir))
    assert {"aiohttp", "prometheus_client", "edge.status.server", "paho", "cryptography", "edge.uplink.worker"} <= imported
    assert imported & {"osdp", "edge.community.notifier", "cv2"} == set()
