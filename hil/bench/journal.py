"""Benchmark: durable journal appends against raw sqlite3 on the same disk, and the daemon's memory.

Prints one JSON object. The journal is measured with producers that each await the
durability of their event (as the access path does); the baseline is plain
`executemany` + commit of the same rows, with the same pragmas and the journal's own
mean batch size, so the ratio is the cost of the journal's machinery, not of the disk.
demo_rss_mb is `edge run`'s resident memory 3 s after READY=1 on the demo building (its page
on, its simulators off); rss_mb_minimal the same for the smallest building, one door with its
reader and lock, no uplink and no page (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.events import Event, Priority
from edge.journal import Journal, JournalLimits

REPO = Path(__file__).resolve().parents[2]
BODY = {"point": "phase_a_current", "value": 12.345, "unit": "A", "pad": "x" * 140}


# The baseline writes the journal's table (its CREATE TABLE is in _raw_rate) with the same statement and
# the same row for each event as the journal's store does, with none of the journal's machinery around it.
INSERT = "INSERT INTO events (seq, id, wall_ns, mono_ns, kind, priority, source, body) VALUES (?,?,?,?,?,?,?,?)"


def _rows(events: list[Event], first: int) -> list[tuple]:
    """The journal's row of each event, numbered from seq `first`."""
    return [(first + offset, e.id, e.wall_ns, e.mono_ns, str(e.kind), int(e.priority), e.source, e.body_json())
            for offset, e in enumerate(events)]


def _events(count: int) -> list[Event]:
    return [Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="f3-monitor", body=dict(BODY, n=i)) for i in range(count)]


async def _journal_rate(path: Path, count: int, producers: int) -> tuple[float, float]:
    journal = await Journal.open(path, JournalLimits(telemetry_retention_s=None, cap_bytes=10**12))
    commits_before = journal.commits
    per_producer = count // producers

    async def produce() -> None:
        # Events are made when they happen, as in the gateway: ids arrive nearly in order.
        for n in range(per_producer):
            await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="f3-monitor", body=dict(BODY, n=n)))

    started = time.perf_counter()
    await asyncio.gather(*(produce() for _ in range(producers)))
    elapsed = time.perf_counter() - started
    commits = journal.commits - commits_before
    await journal.close()
    return per_producer * producers / elapsed, per_producer * producers / commits


def _raw_rate(path: Path, count: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, wall_ns INTEGER NOT NULL, "
        "mono_ns INTEGER NOT NULL, kind TEXT NOT NULL, priority INTEGER NOT NULL, source TEXT NOT NULL, body TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX events_by_priority ON events (priority, seq)")
    conn.execute("CREATE INDEX events_by_time ON events (wall_ns)")
    rows = _rows(_events(count), 1)
    started = time.perf_counter()
    for offset in range(0, count, batch):
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows[offset : offset + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


# The smallest building a gateway runs: one door, its reader and its lock's IO module; no uplink, no page.
MINIMAL = """
building: {id: minimal, timezone: Asia/Shanghai, secret: {file: secret.key}}
buses: [{name: doors-bus, type: tcp, host: 127.0.0.1, port: 15020, timeout_s: 0.5}]
devices: [{name: doors-io, bus: doors-bus, address: 1, profile: generic-dio8}]
readers: [{name: front-reader, protocol: em4100, port: /tmp/edge-minimal/front-reader}]
doors:
  - {name: front, readers: [front-reader], groups: [entrances], lock: {device: doors-io, release: release_1, secure: secure_1}}
uplink: {enabled: false}
http: {enabled: false}
"""


def _minimal_rss_mb(base: Path, settle_s: float) -> float:
    """`_demo_rss_mb` for the MINIMAL building."""
    (base / "secret.key").write_text("bench-" + "0" * 40)
    (base / "building.yaml").write_text(MINIMAL)
    (base / "state").mkdir()
    return _demo_rss_mb(base / "state", settle_s, base / "building.yaml")


def _demo_rss_mb(state: Path, settle_s: float, config: Path = REPO / "config" / "demo.yaml") -> float:
    """Start the demo gateway (or `config`'s) as systemd would, wait for READY=1, then read its VmRSS."""
    notify = state / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--state-dir", str(state)],
        env=env, stdout=subprocess.DEVNULL,
    )
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        time.sleep(settle_s)
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)
        sock.close()
    return rss_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=512)
    parser.add_argument("--dir", type=Path, help="where to put the files (default: a temp dir on the same disk as the journal would be)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        journal_rate, mean_batch = asyncio.run(_journal_rate(base / "journal.db", args.events, args.producers))
        raw_rate = _raw_rate(base / "raw.db", args.events, max(1, round(mean_batch)))
        (base / "demo").mkdir()
        rss = _demo_rss_mb(base / "demo", settle_s=3)
        (base / "minimal").mkdir()
        minimal_rss = _minimal_rss_mb(base / "minimal", settle_s=3)
    print(json.dumps({
        "journal_events_per_s": round(journal_rate),
        "raw_sqlite_rows_per_s": round(raw_rate),
        "ratio": round(journal_rate / raw_rate, 3),
        "mean_batch": round(mean_batch, 1),
        "events": args.events,
        "producers": args.producers,
        "demo_rss_mb": round(rss, 1),
        "rss_mb_minimal": round(minimal_rss, 1),
    }))


if __name__ == "__main__":
    main()
