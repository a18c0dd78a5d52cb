"""The demo building in one command: simulated hardware from hil/, then the gateway on it.

`./dev demo` runs this. It starts the simulators on free ports, writes the demo building's
config (`config/demo.yaml`, shipped with the rig as `hil/config/demo.yaml`) into a folder of its
own with those ports, starts `edge run --config FOLDER/demo.yaml` (offline: no broker needed),
prints the address the status page really bound, and on Ctrl-C (or after --seconds) stops the
gateway with SIGTERM, as systemd would, and shows the newest events. Two demos, or a demo beside
a running gateway, do not collide: nothing binds a fixed port and nothing is shared.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Any

import yaml

from edge.config import building as building_config
from edge.doors.wiring import credentials_path
from edge.status.report import daemon_url
from edge.hil.demo_building import DemoBuilding, enrol_demo_tenants

CONFIG = Path(__file__).resolve().parent / "config" / "demo.yaml"  # hil/config links to the repository's config/
STATUS_WITHIN_S = 60.0  # the gateway's status page is up within this, or --seconds counts without it
RECLOSE_AFTER_S = 100.0  # the surge at 40 s trips f1-c1; the demo's technician closes it again


def write_config(folder: Path, simulator_port: int, reader_port: Path, http_port: int) -> Path:
    """The demo building's config, in `folder` with the simulators' ports and a state dir of its own."""
    document: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    secrets = folder / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets / "demo-building.key"
    shutil.copyfile(CONFIG.parent / "secrets" / "demo-building.key", key)
    key.chmod(0o600)
    document["building"]["secret"] = {"file": str(key)}
    document["state_dir"] = str(folder / "state")
    for bus in document["buses"]:
        if bus["name"] == "demo-sim":
            bus["port"] = simulator_port
    for reader in document["readers"]:
        if reader["name"] == "entrance-reader":
            reader["port"] = str(reader_port)
    document["http"] = {**document.get("http", {}), "port": http_port}
    path = folder / "demo.yaml"
    path.write_text(f"# Written by python -m edge.hil.demo from {CONFIG.name}, with this run's ports and folder.\n"
                    + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="stop this long after the status page is up (default: run until Ctrl-C)")
    parser.add_argument("--port", type=int, default=0, help="the status page's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--dir", type=Path, help="the demo's folder: its config, journal and reader pty "
                        "(default: a new one under the system's temporary folder)")
    args = parser.parse_args()
    folder = (args.dir or Path(tempfile.mkdtemp(prefix="edge-demo-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"demo folder: {folder}", flush=True)
    with DemoBuilding(folder) as building:
        config_path = write_config(folder, building.port, building.reader_port, args.port)
        config = building_config.load(config_path)
        today = datetime.now(ZoneInfo(config.building.timezone)).date()
        enrol_demo_tenants(credentials_path(config), config.building.secret.read(), today)
        gateway = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config_path)])
        # --seconds counts from the moment the status page is up (a loaded machine may take a while to
        # start the gateway), or from the start if it is not up within STATUS_WITHIN_S.
        deadline = None if args.seconds is None else time.monotonic() + STATUS_WITHIN_S + args.seconds
        shown, started, reclosed = False, time.monotonic(), False
        try:
            while gateway.poll() is None and (deadline is None or time.monotonic() < deadline):
                if not reclosed and time.monotonic() - started > RECLOSE_AFTER_S:
                    reclosed = True  # a technician came, checked the load and closes the tripped breaker, audited
                    subprocess.run([sys.executable, "-m", "edge.cli", "breaker", "close", "f1-c1", "--config", str(config_path),
                                    "--operator", "demo-technician", "--reason", "demo: surge over, load checked on site"])
                if not shown and (url := daemon_url(config)) is not None:
                    print(f"\nstatus page: {url}  (edge status --config {config_path} for the same on the terminal)\n", flush=True)
                    shown = True
                    if args.seconds is not None:
                        deadline = time.monotonic() + args.seconds
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
            code = gateway.wait(timeout=10)
    print(f"\nnewest events above telemetry (edge events --config {config_path} --priority fault):", flush=True)
    subprocess.run([sys.executable, "-m", "edge.cli", "events", "--config", str(config_path), "--priority", "fault", "--limit", "25"])
    return code


if __name__ == "__main__":
    sys.exit(main())
