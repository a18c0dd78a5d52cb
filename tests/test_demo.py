"""The README's first command: the demo building runs, decides a card and reports events."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from edge.config import building as building_config
from edge.journal import EventQuery, read_events

from conftest import REPO


def test_demo_runs_the_gateway_on_simulated_hardware_and_stops_cleanly(tmp_path):
    started_ns = time.time_ns()
    result = subprocess.run(
        [sys.executable, "-m", "edge.hil.demo", "--seconds", "14", "--dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "newest events above telemetry" in result.stdout
    config = building_config.load(tmp_path / "demo.yaml")  # the demo keeps its config and state in its own folder
    assert config.state_dir.is_relative_to(tmp_path)
    assert re.search(r"status page: http://127\.0\.0\.1:\d+/", result.stdout), result.stdout[-2000:]  # read from the daemon's endpoint file
    events = read_events(config.journal_path, EventQuery(since_ns=started_ns, limit=None))
    kinds = [e.kind for e in events]
    assert kinds[0] == "gateway.started" and kinds[-1] == "gateway.stopped"
    granted = [e for e in events if e.kind == "access.decision" and e.body["reason"] == "granted"]
    assert granted, "the tenant's first tap opens the entrance"
    assert any(e.kind == "telemetry.point" and e.source == "f1-c1" for e in events), "the floor box is polled"
