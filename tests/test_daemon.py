"""`edge run` as systemd runs it: notify socket, watchdog, SIGTERM, logs, journal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from edge.hil.waiting import until_sync
from edge.journal import EventQuery, read_events

from conftest import Daemon, NotifySocket, building


def test_daemon_notifies_systemd_pings_the_watchdog_and_stops_cleanly_on_sigterm(write_config, building_dir):
    config = write_config(building())
    notify = NotifySocket(building_dir / "notify.sock")
    daemon = Daemon(config, env={**notify.env, "WATCHDOG_USEC": "200000"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).start()
    try:
        notify.wait_for("READY=1", 20)
        pings = [m for m in notify.datagrams("never", 0.6) if m == "WATCHDOG=1"]
        assert len(pings) >= 3, "the main loop pings at half the watchdog interval"
        sent = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", 5)
        out, err = daemon.process.communicate(timeout=5)
        assert time.monotonic() - sent < 5
    finally:
        daemon.kill()
        notify.close()
    assert daemon.poll() == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    started = next(line for line in lines if line["event"] == "gateway started")
    assert started["level"] == "info" and started["event_id"]
    events = read_events(building_dir / "state" / "journal.db", EventQuery(limit=None))
    kinds = [e.kind for e in events]
    assert kinds[0] == "gateway.started" and kinds[-1] == "gateway.stopped"
    assert events[0].id == started["event_id"], "the log line names the journaled event"


def test_daemon_starts_over_a_damaged_journal_and_keeps_the_old_file(write_config, building_dir):
    config = write_config(building())
    state = building_dir / "state"
    state.mkdir()
    (state / "journal.db").write_bytes(b"\x00garbage" * 512)
    daemon = Daemon(config, stdout=subprocess.PIPE, text=True).start()
    try:
        until_sync(lambda: list(state.glob("journal.db.corrupt-*")), 20, "the damaged journal set aside")
        time.sleep(0.5)
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.communicate(timeout=10)
    finally:
        daemon.kill()
    (kept,) = [p for p in state.glob("journal.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes() == b"\x00garbage" * 512
    alarm = read_events(state / "journal.db", EventQuery(kinds=("alarm.journal_corrupt",)))
    assert alarm and alarm[0].body["moved_to"] == str(kept)


@pytest.mark.parametrize("imports", ["edge.cli, edge.gateway", "edge.gateway, edge.vision.wiring, edge.vision.guard"],
                         ids=["without-a-camera", "with-a-camera"])
def test_the_daemon_leaves_opencv_onnxruntime_and_numpy_to_the_vision_worker(imports):
    """Each of them costs the daemon megabytes it would carry all day: only the worker loads them."""
    probe = f"import sys, {imports}; print(sorted({{'cv2', 'onnxruntime', 'numpy'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
