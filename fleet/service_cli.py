"""The fleet's ingest service from the command line: `keygen`, `migrate`, `ingest` (N worker
processes, each restarted with backoff if it dies) and `worker` (one of them).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.fleet import db, keys
from edge.fleet.operator import broker_options, encode, need

RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0


def _worker_argv(args: argparse.Namespace, index: int) -> list[str]:
    argv = [sys.executable, "-m", "edge.fleet.cli", "--broker", args.broker, "--db", args.db, "--prefix", args.prefix,
            "worker", "--index", str(index), "--group", args.group, "--batch-messages", str(args.batch_messages),
            "--batch-ms", str(args.batch_ms), "--gap-grace-s", str(args.gap_grace_s),
            "--max-message-bytes", str(args.max_message_bytes)]
    if args.key:
        argv[3:3] = ["--key", args.key]
    if args.username:
        argv[3:3] = ["--username", args.username]
    if args.password_file:
        argv[3:3] = ["--password-file", args.password_file]
    if args.ca:
        argv[3:3] = ["--ca", args.ca]
    return argv


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run `--workers` worker processes; one that exits is started again (with backoff when it keeps dying).
    SIGTERM stops them all: each finishes the batch in hand first."""
    import threading

    need(args, "db")
    stopping = False
    stopped = threading.Event()

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        db.migrate_with_retry(args.db, stopped)  # a database not up yet is waited for
    except Exception:  # noqa: BLE001 - stopped while waiting
        if stopping:
            return 0
        raise
    workers: dict[int, subprocess.Popen] = {}
    delays = {i: RESTART_MIN_S for i in range(args.workers)}
    due = {i: 0.0 for i in range(args.workers)}
    started_at: dict[int, float] = {}
    print(encode({"ingest": "started", "workers": args.workers, "group": args.group}), file=sys.stderr, flush=True)
    while not stopping:
        now = time.monotonic()
        for i in range(args.workers):
            process = workers.get(i)
            if process is not None and process.poll() is None:
                continue
            if process is not None:
                lived = now - started_at[i]
                delays[i] = RESTART_MIN_S if lived > 60 else min(RESTART_MAX_S, delays[i] * 2)
                due[i] = now + delays[i]
                print(encode({"worker": i, "exited": process.returncode, "restart_in_s": delays[i]}), file=sys.stderr, flush=True)
                workers.pop(i)
            if now >= due[i]:
                workers[i] = subprocess.Popen(_worker_argv(args, i))
                started_at[i] = now
                print(encode({"worker": i, "pid": workers[i].pid}), file=sys.stderr, flush=True)
        time.sleep(0.1)
    for process in workers.values():
        process.terminate()
    deadline = time.monotonic() + args.stop_within_s
    for process in workers.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return 0


def _log_json_to_stderr() -> None:
    import structlog

    structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def cmd_worker(args: argparse.Namespace) -> int:
    from edge.fleet.worker import WorkerSettings, serve

    _log_json_to_stderr()

    serve(WorkerSettings(
        broker=broker_options(args), dsn=need(args, "db"), group=args.group, prefix=args.prefix,
        client_id=f"edge-fleet-{args.group}-{args.index}", batch_messages=args.batch_messages, batch_ms=args.batch_ms,
        key=Path(args.key) if args.key else None, gap_grace_s=args.gap_grace_s, max_message_bytes=args.max_message_bytes,
    ))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = db.migrate(need(args, "db"))
    print(encode({"applied": applied}))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        private, public = keys.generate(Path(args.dir))
    except FileExistsError as error:
        sys.exit(f"edge-fleet: {error}")
    print(encode({"private": str(private), "public": str(public),
                   "next": "give cloud.pub to every gateway (uplink.cloud_public_key); keep cloud.key secret"}))
    return 0
