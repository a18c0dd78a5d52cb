"""The CLI as a technician meets it: --version, --config everywhere, a pipe into `head` that ends
quietly, a description on every subcommand, a doctor that prints one line per check (one FAIL per
missing bus, no library logs, a missing directory named with its fix), and a status server whose
port another process holds: one clear fault, then it waits for the port instead of failing."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

from edge.config import building as building_config
from edge.cli import _parser
from edge.hil.waiting import until_sync
from edge.journal import EventQuery, read_events
from edge.version import VERSION

from conftest import REPO, Daemon, building, edge, merged, modbus_tcp


def test_version():
    result = edge("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"edge {VERSION}"


def test_check_config_takes_the_file_as_every_command_does_and_as_before(write_config):
    path = write_config(building())
    for args in (["check-config", str(path)], ["check-config", "--config", str(path)], ["check-config", "-c", str(path)]):
        result = edge(*args)
        assert result.returncode == 0 and "ok: building test-house" in result.stdout, (args, result.stderr)
    both = edge("check-config", str(path), "--config", str(REPO / "config" / "demo.yaml"))
    assert both.returncode == 2 and "give one" in both.stderr


def test_output_piped_into_head_ends_quietly():
    for args in (["schema"], ["--help"]):
        writer = subprocess.Popen([sys.executable, "-m", "edge.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = writer.stdout.readline()  # `| head -1`: one line, then the reader is gone
        writer.stdout.close()
        _, errors = writer.communicate(timeout=60)
        assert first.strip()
        assert b"Traceback" not in errors and b"BrokenPipe" not in errors and b"Exception ignored" not in errors, errors.decode()


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("edge",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join((*path, name)), sub
                yield from subcommands(sub, (*path, name))


def test_every_subcommand_has_a_description():
    missing = [name for name, sub in subcommands(_parser()) if not (sub.description or "").strip()]
    assert missing == []
    for group in ("breaker", "door", "fire", "alarm", "elevator"):
        shown = edge(group, "--help")
        assert shown.returncode == 0
        description = shown.stdout.split("\n\n")[1]
        assert not description.startswith(("positional", "options")), shown.stdout  # a sentence says what it is for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_doctor_one_line_per_check_one_fail_per_missing_bus_and_no_library_logs(write_config, tmp_path):
    closed = free_port()  # nothing listens there: a Modbus TCP gateway that is not reachable
    lines = merged({"buses": [{"name": "line-1", "type": "rtu", "port": str(tmp_path / "ttyUSB-gone"), "baud": 9600}]},
                   modbus_tcp(closed, name="tcp-box"))
    devices = [("f1-monitor", "line-1", 1, "generic-efm8"), ("f2-monitor", "line-1", 2, "generic-efm8"), ("f3-monitor", "line-1", 3, "generic-efm8"),
               ("pump-io", "tcp-box", 1, "generic-dio8"), ("tank-io", "tcp-box", 2, "generic-dio8")]
    path = write_config(building({"state_dir": str(tmp_path / "no-such-dir" / "state")}, lines, {
        "devices": [{"name": name, "bus": bus, "address": address, "profile": profile} for name, bus, address, profile in devices]}))
    result = edge("doctor", "--config", str(path), timeout_s=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "", result.stderr  # no pymodbus "Failed to connect" or any other library log
    checks = [line for line in result.stdout.splitlines() if line.strip() and not line[0].isdigit()]
    assert all(line.startswith(("PASS  ", "FAIL  ")) for line in checks), checks  # one line each, the fix on it
    fails = [line for line in checks if line.startswith("FAIL")]
    serial = [line for line in fails if "line-1" in line or "f1-monitor" in line]
    assert len(serial) == 1 and "3 device(s)" in serial[0] and "f1-monitor" in serial[0] and "; fix: " in serial[0], serial
    tcp = [line for line in fails if "tcp-box" in line or "pump-io" in line or "tank-io" in line]
    assert len(tcp) == 1 and "none of its 2 devices answers" in tcp[0], tcp
    state = [line for line in fails if line.startswith("FAIL  state directory")]
    assert len(state) == 1 and "does not exist" in state[0] and "install -d" in state[0], state


def test_a_status_port_another_process_holds_is_one_fault_then_the_server_waits_for_it(write_config, tmp_path):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))  # a free port, taken here as another program would
    squatter.listen()
    port = squatter.getsockname()[1]
    state = tmp_path / "state"
    path = write_config(building({"state_dir": str(state), "http": {"port": port}}))
    started_ns = time.time_ns()
    daemon = Daemon(path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).start()
    try:
        journal = building_config.load(path).journal_path

        def faults() -> list:
            try:
                events = read_events(journal, EventQuery(since_ns=started_ns, limit=None))
            except (OSError, sqlite3.Error):
                return []  # the daemon has not made its journal yet
            return [e for e in events if e.kind.startswith("fault.")]

        until_sync(lambda: faults() or daemon.poll() is not None, 60, "a fault journaled, or the daemon's exit", every_s=0.2)
        first = faults()
        assert [e.kind for e in first] == ["fault.status_port_in_use"], [(e.kind, e.body) for e in first]
        assert first[0].body["port"] == port and first[0].body["holder"] and f"pid {os.getpid()}" in first[0].body["holder"]

        squatter.close()  # the other program goes: the server takes its port without a restart
        endpoint = state / "http.json"
        until_sync(lambda: endpoint.exists() or daemon.poll() is not None, 90, "the status server's address, or the daemon's exit", every_s=0.2)
        url = json.loads(endpoint.read_text())["url"]
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url + "metrics", timeout=10) as answer:
            assert answer.status == 200
        assert [e.kind for e in faults()] == ["fault.status_port_in_use"]  # still the one fault: no task_failed
    finally:
        squatter.close()
        daemon.process.send_signal(signal.SIGTERM)
        output, _ = daemon.process.communicate(timeout=30)
    assert daemon.poll() == 0, output[-3000:]
