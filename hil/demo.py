"""The demo building in one command: simulated hardware from hil/, then the gateway on it.

`./dev demo` runs this. It starts the simulators the demo config points at, starts
`edge run --config config/demo.yaml` (offline: no broker needed), prints the address of the
live status page, and on Ctrl-C (or after
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
from edge.status.report import daemon_url
from hil.demo_building import DemoBuilding, enrol_demo_tenants

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "demo.yaml"
RECLOSE_AFTER_S = 100.0  # the surge at 40 s trips f1-c1; the demo's technician closes it again


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
        shown, started, reclosed = False, time.monotonic(), False
        try:
            while gateway.poll() is None and (deadline is None or time.monotonic() < deadline):
                if not reclosed and time.monotonic() - started > RECLOSE_AFTER_S:
                    reclosed = True  # a technician came, checked the load and closes the tripped breaker, audited
                    subprocess.run([sys.executable, "-m", "edge.cli", "breaker", "close", "f1-c1", "--config", str(CONFIG),
                                    "--operator", "demo-technician", "--reason", "demo: surge over, load checked on site"])
                if not shown and (url := daemon_url(config)) is not None:
                    print(f"\nstatus page: {url}  (edge status --config config/demo.yaml for the same on the terminal)\n", flush=True)
                    shown = True
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
