"""The demo building in one command: simulated hardware from hil/, then the gateway on it.

`./dev demo` runs this. It starts the simulators the demo config points at, starts
`edge run --config config/demo.yaml` (offline: no broker needed), and on Ctrl-C (or after
--seconds) stops the gateway with SIGTERM, as systemd would, and shows the newest events.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo
from pathlib import Path

from edge import config as building_config
from edge.doors.wiring import credentials_path
from hil.demo_building import DemoBuilding, enrol_demo_tenants

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "demo.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="stop after this long (default: run until Ctrl-C)")
    args = parser.parse_args()
    config = building_config.load(CONFIG)
    today = datetime.now(ZoneInfo(config.building.timezone)).date()
    enrol_demo_tenants(credentials_path(config), config.building.secret.read(), today)
    with DemoBuilding():
        gateway = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(CONFIG)])
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            while gateway.poll() is None and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
            code = gateway.wait(timeout=10)
    print("\nnewest events above telemetry (edge events --config config/demo.yaml --priority fault):", flush=True)
    subprocess.run([sys.executable, "-m", "edge.cli", "events", "--config", str(CONFIG), "--priority", "fault", "--limit", "25"])
    return code


if __name__ == "__main__":
    sys.exit(main())
