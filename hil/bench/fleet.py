"""Benchmark: a fleet of gateways into PostgreSQL through shared-subscription ingest workers.

Prints one JSON object. G simulated gateways (the real uplink code, `edge.uplink.worker.Uplink`, each
with its own building id, building key, journal prepared in advance and state; many per process), one
mosquitto, W ingest workers (`edge-fleet ingest`) into a PostgreSQL started here in a temp dir.

- `ingest_events_per_s` for each W: the prepared backlogs drained from every gateway at once, rows
  committed per second over the middle 80 % of the rows (`ingest_whole_phase_events_per_s`: from the
  gateways' start to the last row, with their connection storm and any reconnect backoff).
- `raw_copy_rows_per_s`: the same rows COPYed straight into a table like `events` (its primary key
  and index too) on one connection, in the same run: the database's ceiling. `ingest_ratio` is the
  best W's ingest rate over it.
- `end_to_end_p99_ms`: with every gateway journaling `--rate` events per second, from the event's time
  on the gateway (taken just before its journal commit) to its row's commit in PostgreSQL.
- `gap_repair_s`: the broker restarted (without persistence) during that live phase: the time until
  PostgreSQL holds every event the gateways had journaled when it went down, gaps pulled and filled.
- `machine_busy_pct` (the whole machine's CPU while a phase ran: at 100 the machine, not the database,
  is the bottleneck) and `events_per_worker_cpu_s` (rows per CPU second the workers spent: sizing).
- `lost` and `duplicated`: journaled events missing from the table, and stored twice, over the whole
  run (both must be 0); `worker_rss_mb`: the largest worker's resident memory.

The default run is short enough for a 2-core machine (about two minutes); `--gateways 200 --events
2000 --rate 10 --live-s 60` is the full run of docs/fleet.md.

One benchmark, one file: it is long because it starts the whole fleet it measures (PostgreSQL,
mosquitto, the gateways, the workers), and each figure keeps its baseline from the same run beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import structlog

from edge.hil.bench.stats import percentile
from edge.hil.waiting import until_sync

PHASE_TIMEOUT_S = 900.0


# --- the gateways' side: one process runs many ----------------------------------------------------

def _event(n: int, live: bool = False):
    from edge.events import Event, Kind, Priority
    from edge.power.kinds import PowerKind

    if n % 50 == 7:
        return Event(kind=PowerKind.TRIP_CONFIRMED, priority=Priority.ALARM, source=f"c{n % 9}",
                     body={"circuit": f"c{n % 9}", "breaker": "cb", "reason": "over_current", "outcome": "confirmed",
                           "readback": "open", "severity": None, "detail": "bench", "point": "m1.phase_a_current",
                           "reading": 41.2, "threshold": 32.0, "unit": "A"})
    return Event(kind=Kind.POINT_READING, priority=Priority.TELEMETRY, source="m1",
                 body={"point": "m1.phase_a_current", "quantity": "phase_current", "value": round(10 + n % 17 * 0.1, 2), "unit": "A",
                       "n": n, "live": live})


def _config(root: Path, name: str, port: int, public: Path) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "building.key").write_text(os.urandom(32).hex())  # each building its own key
    path = folder / "building.yaml"
    path.write_text(f"building: {{id: {name}, secret: {{file: building.key}}}}\nstate_dir: state\n"
                    f"uplink: {{enabled: true, host: 127.0.0.1, port: {port}, cloud_public_key: {public}, batch_ms: 20,"
                    f" keepalive_s: 10}}\n")
    return path


async def _gateways(root: Path, names: list[str], port: int, public: Path) -> None:
    from edge.config.building import load
    from edge.journal import Journal, JournalLimits
    from edge.uplink.worker import Uplink

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue(16)
    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(commands.put_nowait, {"cmd": "exit"})  # the conductor is gone: so are we

    threading.Thread(target=read, daemon=True).start()
    configs = {n: load(_config(root, n, port, public)) for n in names}
    journals: dict = {}
    uplinks: dict = {}
    tasks: list[asyncio.Task] = []
    running: asyncio.Task | None = None

    def say(**message) -> None:
        print(json.dumps(message), flush=True)

    async def open_all(reset: bool) -> None:
        for name, config in configs.items():
            if reset:
                for suffix in ("", "-wal", "-shm"):
                    (config.state_path / f"uplink.db{suffix}").unlink(missing_ok=True)
            journals[name] = await Journal.open(config.journal_path, JournalLimits(telemetry_retention_s=None, cap_bytes=10**12))
            uplinks[name] = Uplink(config, "bench", journals[name], lambda: None)
            tasks.append(asyncio.create_task(uplinks[name].run(), name=f"uplink-{name}"))

    async def live(journal, rate: float, seconds: float) -> None:
        """`rate` events per second on a schedule (a slow commit is caught up, not skipped)."""
        started = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - started) < seconds:
            while n < int(elapsed * rate) + 1:
                await journal.append(_event(n, live=True))
                n += 1
            await asyncio.sleep(max(0.0, min((n / rate) - (time.monotonic() - started), seconds - elapsed)))

    async def run(rate: float, seconds: float) -> None:
        if rate:
            await asyncio.gather(*(live(j, rate, seconds) for j in journals.values()))
        end = time.monotonic() + PHASE_TIMEOUT_S
        while any(u.pusher.synced_seq < journals[n].head_seq for n, u in uplinks.items()):
            if time.monotonic() > end:
                say(error="gateways not synced in time")
                return
            await asyncio.sleep(0.1)
        say(ok="synced", heads={n: j.head_seq for n, j in journals.items()})

    while True:
        command = await commands.get()
        if command["cmd"] == "prepare":
            for name, config in configs.items():
                journal = await Journal.open(config.journal_path, JournalLimits(telemetry_retention_s=None, cap_bytes=10**12))
                for start in range(0, command["events"], 1000):
                    await asyncio.gather(*(journal.append(_event(n)) for n in range(start, min(command["events"], start + 1000))))
                await journal.close()
            say(ok="prepared")
        elif command["cmd"] == "run":
            await open_all(command.get("reset", False))
            running = asyncio.create_task(run(command.get("rate", 0), command.get("seconds", 0)))
        elif command["cmd"] == "heads":
            say(ok="heads", heads={n: j.head_seq for n, j in journals.items()})
        elif command["cmd"] in ("stop", "exit"):
            for task in [*tasks, *([running] if running else [])]:
                task.cancel()
            await asyncio.wait([*tasks, *([running] if running else [])], timeout=30)
            for name, uplink in uplinks.items():
                uplink.close()
                await journals[name].close()
            tasks.clear()
            uplinks.clear()
            journals.clear()
            if command["cmd"] == "exit":
                return
            say(ok="stopped")


# --- the conductor ------------------------------------------------------------------------------

class Runner:
    """A gateways process, spoken to in JSON lines."""

    def __init__(self, root: Path, names: list[str], port: int, public: Path) -> None:
        self.names = names
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge.hil.bench.fleet", "--role", "gateways", "--root", str(root), "--port", str(port),
             "--public", str(public), "--names", ",".join(names)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue(1000)
        threading.Thread(target=lambda: [self.lines.put(json.loads(line)) for line in self.process.stdout], daemon=True).start()

    def send(self, **command) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def wait(self, ok: str, timeout_s: float = PHASE_TIMEOUT_S) -> dict:
        try:
            answer = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"benchmark: gateways {self.names[0]}.. did not say {ok} within {timeout_s} s") from None
        if answer.get("ok") != ok:
            raise RuntimeError(f"benchmark: gateways {self.names[0]}..: {answer}")
        return answer


def _all(runners: list[Runner], ok: str, **command) -> dict:
    for r in runners:
        r.send(**command)
    merged: dict = {}
    for r in runners:
        merged |= r.wait(ok).get("heads", {})
    return merged


def _sql(dsn: str, sql: str, *params):
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else None


def _until(predicate, timeout_s: float, what: str) -> float:
    """Wait (edge.hil.waiting) and return when it came true, in wall-clock seconds."""
    until_sync(predicate, timeout_s, f"benchmark: {what}", every_s=0.1)
    return time.time()


def _holds(dsn: str, heads: dict) -> bool:
    marks = dict(_sql(dsn, "SELECT building, watermark FROM buildings"))
    return all(marks.get(b, 0) >= h for b, h in heads.items())


class Ingest:
    def __init__(self, root: Path, port: int, dsn: str, workers: int, key: Path) -> None:
        self.log = root / f"ingest-w{workers}-{time.monotonic_ns()}.log"
        self.workers = workers
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge.fleet.cli", "--broker", f"127.0.0.1:{port}", "--db", dsn, "--key", str(key), "ingest",
             "--workers", str(workers), "--gap-grace-s", "1", "--batch-messages", "200", "--batch-ms", "20"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        _until(lambda: self.log.read_text().count('"worker started"') >= workers, 60, f"{workers} workers up")

    def rss_mb(self) -> float:
        best = 0.0
        for line in self.log.read_text().splitlines():
            if line.startswith('{"worker"') and '"pid"' in line:
                try:
                    status = Path(f"/proc/{json.loads(line)['pid']}/status").read_text()
                except OSError:
                    continue
                kb = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:"))
                best = max(best, kb / 1024)
        return best

    def cpu_s(self) -> float:
        """CPU seconds the workers have used (user + system), from /proc."""
        total = 0.0
        for line in self.log.read_text().splitlines():
            if line.startswith('{"worker"') and '"pid"' in line:
                try:
                    fields = Path(f"/proc/{json.loads(line)['pid']}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _lost_and_duplicated(dsn: str, root: Path, heads: dict) -> tuple[int, int]:
    from edge.journal import EventQuery, read_events

    lost = 0
    for building, head in heads.items():
        journal = {e.id for e in read_events(root / building / "state" / "journal.db", EventQuery(limit=None)) if e.seq <= head}
        stored = {i for (i,) in _sql(dsn, "SELECT id FROM events WHERE building=%s", building)}
        lost += len(journal - stored)
    duplicated = _sql(dsn, "SELECT count(*) - count(DISTINCT (building, seq)) FROM events")[0][0]
    return lost, duplicated


def _raw_copy(dsn: str) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events_raw")
        conn.execute("CREATE TABLE events_raw (LIKE events INCLUDING ALL)")
        rows = []
        with conn.cursor().copy("COPY (SELECT id, building, seq, time, mono_ns, kind, priority, source, body, lane, valid,"
                                " problems FROM events) TO STDOUT") as copy:
            for data in copy:
                rows.append(bytes(data))
        count = _sql(dsn, "SELECT count(*) FROM events")[0][0]
        started = time.perf_counter()
        with conn.transaction(), conn.cursor().copy("COPY events_raw (id, building, seq, time, mono_ns, kind, priority, source,"
                                                    " body, lane, valid, problems) FROM STDIN") as copy:
            for data in rows:
                copy.write(data)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE events_raw")
    return count / elapsed


def conduct(args: argparse.Namespace) -> dict:
    from edge.fleet import db, keys
    from edge.fleet.localdb import LocalPostgres
    from edge.hil.broker import Broker

    root = Path(tempfile.mkdtemp(prefix="edge-bench-fleet-"))
    try:
        with LocalPostgres() as pg, Broker() as broker:
            private, public = keys.generate(root / "cloud")
            db.migrate(pg.dsn)
            names = [f"bench-{i:04d}" for i in range(args.gateways)]
            per = math.ceil(len(names) / args.processes)
            runners = [Runner(root, names[i:i + per], broker.port, public) for i in range(0, len(names), per)]
            _all(runners, "prepared", cmd="prepare", events=args.events)
            result: dict = {"gateways": args.gateways, "events_per_gateway": args.events, "ingest_events_per_s": {}}
            rss = 0.0
            lost = duplicated = 0
            for workers in args.workers:
                _sql(pg.dsn, "TRUNCATE events, buildings, gaps, absent, quarantine, command_results, snapshots")
                ingest = Ingest(root, broker.port, pg.dsn, workers, private)
                busy_before, total_before = _machine_ticks()
                cpu_before = ingest.cpu_s()  # what starting took (imports, the schemas) is not ingest
                started = time.time()
                heads = _all(runners, "synced", cmd="run", reset=True)
                _until(lambda: _holds(pg.dsn, heads), PHASE_TIMEOUT_S, f"W={workers}: every row")
                rows, first, last, p10, p90 = _sql(
                    pg.dsn, "SELECT count(*), min(t), max(t), percentile_cont(0.1) WITHIN GROUP (ORDER BY t),"
                            " percentile_cont(0.9) WITHIN GROUP (ORDER BY t) FROM (SELECT extract(epoch FROM stored_at) AS t"
                            " FROM events) s")[0]
                # the middle 80 % of the rows: the steady rate, without the gateways' connection storm at the
                # start or a straggler's reconnect backoff at the end (both in the whole-phase figure)
                result["ingest_events_per_s"][str(workers)] = round(0.8 * rows / max(1e-3, float(p90) - float(p10)))
                result.setdefault("ingest_whole_phase_events_per_s", {})[str(workers)] = round(rows / (float(last) - started))
                rss = max(rss, ingest.rss_mb())
                busy, total = _machine_ticks()
                result.setdefault("machine_busy_pct", {})[str(workers)] = round(100 * (busy - busy_before) / max(1, total - total_before))
                cpu = ingest.cpu_s() - cpu_before
                result.setdefault("events_per_worker_cpu_s", {})[str(workers)] = round(rows / cpu) if cpu else None
                phase_lost, phase_dup = _lost_and_duplicated(pg.dsn, root, heads)
                lost, duplicated = lost + phase_lost, duplicated + phase_dup
                _all(runners, "stopped", cmd="stop")
                ingest.stop()
            raw = _raw_copy(pg.dsn)
            best = max(result["ingest_events_per_s"].values())
            result |= {"raw_copy_rows_per_s": round(raw),
                       "ingest_ratio": round(result["ingest_events_per_s"][str(max(args.workers))] / raw, 2),
                       "ingest_ratio_best": round(best / raw, 2)}
            # live: every gateway journaling `rate` events/s; the broker restarted two thirds of the way through
            workers = max(args.workers)
            ingest = Ingest(root, broker.port, pg.dsn, workers, private)
            live_from = time.time()
            for r in runners:
                r.send(cmd="run", reset=False, rate=args.rate, seconds=args.live_s)
            time.sleep(args.live_s * 2 / 3)
            restart_at = time.time()
            at_restart = _all(runners, "heads", cmd="heads")
            broker.restart()
            repaired_at = _until(lambda: _holds(pg.dsn, at_restart) and not _sql(pg.dsn, "SELECT 1 FROM gaps LIMIT 1"),
                                 PHASE_TIMEOUT_S, "the gaps after the broker restart repaired")
            heads = {}
            for r in runners:
                heads |= r.wait("synced").get("heads", {})
            _until(lambda: _holds(pg.dsn, heads), PHASE_TIMEOUT_S, "live: every row")
            latencies = [float(ms) for (ms,) in _sql(
                pg.dsn, "SELECT extract(epoch FROM stored_at - time) * 1000 FROM events WHERE body->>'live' = 'true'"
                        " AND time >= to_timestamp(%s) AND time < to_timestamp(%s) ORDER BY 1", live_from + 1, restart_at - 1)]
            rss = max(rss, ingest.rss_mb())
            phase_lost, phase_dup = _lost_and_duplicated(pg.dsn, root, heads)
            lost, duplicated = lost + phase_lost, duplicated + phase_dup
            pulls = _sql(pg.dsn, "SELECT count(*) FROM events WHERE lane='pull'")[0][0]
            _all(runners, "stopped", cmd="stop")
            ingest.stop()
            for r in runners:
                r.send(cmd="exit")
                r.process.wait(30)
            result |= {
                "live_events_per_s": round(_sql(pg.dsn, "SELECT count(*) FROM events WHERE body->>'live' = 'true'")[0][0]
                                           / args.live_s),
                "live_samples": len(latencies),
                "end_to_end_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
                "end_to_end_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
                "gap_repair_s": round(repaired_at - restart_at, 2),
                "events_pulled_after_restart": pulls,
                "lost": lost,
                "duplicated": duplicated,
                "worker_rss_mb": round(rss, 1),
                "cpu_cores": os.cpu_count(),
            }
            return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--events", type=int, default=2000, help="prepared backlog per gateway")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure, comma-separated")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second per gateway in the live phase")
    parser.add_argument("--live-s", type=float, default=24.0)
    parser.add_argument("--processes", type=int, help="gateway processes (default: one per 50 gateways, at least 2)")
    parser.add_argument("--role", default="conductor", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--public", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # stdout is the JSON only
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the `with` blocks still stop what they started
    if args.role == "gateways":
        asyncio.run(_gateways(Path(args.root), args.names.split(","), args.port, Path(args.public)))
        return
    args.workers = [int(w) for w in args.workers.split(",")]
    args.processes = args.processes or max(2, math.ceil(args.gateways / 50))
    started = time.monotonic()
    result = conduct(args)
    result["bench_s"] = round(time.monotonic() - started)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
