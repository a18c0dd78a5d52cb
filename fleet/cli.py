"""`edge-fleet`: the fleet's ingest service and the cloud's command line.

    edge-fleet keygen DIR                        the cloud's Ed25519 key pair (cloud.key, cloud.pub)
    edge-fleet migrate                           apply the database migrations (ingest does it at start too)
    edge-fleet ingest --workers N                N ingest workers, each restarted if it dies
    edge-fleet pull BUILDING --after SEQ [--through SEQ] > events.jsonl
    edge-fleet credentials push BUILDING changes.jsonl [--version N]
    edge-fleet command BUILDING NAME [--arg k=v ...]   waits for the gateway's result
    edge-fleet config push BUILDING FILE [--version N]   signed; waits for the outcome and the watch after it
    edge-fleet config get BUILDING               the config it runs, secrets as references
    edge-fleet watch [BUILDING]                  live events, one JSON line each
    edge-fleet gaps [BUILDING]                   holes still open, ranges recorded absent
    edge-fleet status [BUILDING]                 online, backlog and last seen per building

The broker, database and key come from flags or EDGE_FLEET_BROKER (HOST:PORT), EDGE_FLEET_DB (a
libpq connection string) and EDGE_FLEET_KEY (the private key's path). See docs/fleet.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from edge.uplink.signing import DownlinkKind
from edge.fleet import db, keys
from edge.fleet.link import BrokerOptions, Link, LinkError

EXIT_FAILED = 1
EXIT_TIMEOUT = 3
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _broker(args: argparse.Namespace) -> BrokerOptions:
    password = Path(args.password_file).read_text().strip() if args.password_file else None
    return BrokerOptions.parse(args.broker, username=args.username, password=password,
                               ca=Path(args.ca) if args.ca else None)


def _need(args: argparse.Namespace, name: str) -> str:
    value = getattr(args, name)
    if not value:
        flag = {"db": "--db or EDGE_FLEET_DB", "key": "--key or EDGE_FLEET_KEY"}[name]
        sys.exit(f"edge-fleet: {args.command} needs {flag}")
    return value


def _link(args: argparse.Namespace, subscriptions: tuple[str, ...] = ()) -> Link:
    cid = f"edge-fleet-cli-{secrets.token_hex(4)}"
    try:
        return Link(_broker(args), cid, subscriptions=subscriptions, queue_size=10_000).start(args.timeout)
    except LinkError as error:
        sys.exit(f"edge-fleet: {error}")


# --- the service -------------------------------------------------------------------------------

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

    _need(args, "db")
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
    print(_encode({"ingest": "started", "workers": args.workers, "group": args.group}), file=sys.stderr, flush=True)
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
                print(_encode({"worker": i, "exited": process.returncode, "restart_in_s": delays[i]}), file=sys.stderr, flush=True)
                workers.pop(i)
            if now >= due[i]:
                workers[i] = subprocess.Popen(_worker_argv(args, i))
                started_at[i] = now
                print(_encode({"worker": i, "pid": workers[i].pid}), file=sys.stderr, flush=True)
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
        broker=_broker(args), dsn=_need(args, "db"), group=args.group, prefix=args.prefix,
        client_id=f"edge-fleet-{args.group}-{args.index}", batch_messages=args.batch_messages, batch_ms=args.batch_ms,
        key=Path(args.key) if args.key else None, gap_grace_s=args.gap_grace_s, max_message_bytes=args.max_message_bytes,
    ))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = db.migrate(_need(args, "db"))
    print(_encode({"applied": applied}))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        private, public = keys.generate(Path(args.dir))
    except FileExistsError as error:
        sys.exit(f"edge-fleet: {error}")
    print(_encode({"private": str(private), "public": str(public),
                   "next": "give cloud.pub to every gateway (uplink.cloud_public_key); keep cloud.key secret"}))
    return 0


# --- talking to gateways -------------------------------------------------------------------------

def pull_range(link: Link, key, prefix: str, building: str, after: int, through: int | None, timeout_s: float, out) -> dict:
    """Page through (after, through] (to the gateway's head without `through`), writing each event as a JSON line."""
    reply = f"{prefix}/{building}/pull/response/{link.client_id}"
    summary = {"building": building, "after": after, "events": 0, "gone": [], "first_retained_seq": None, "head_seq": None}
    while through is None or after < through:
        limit = 1000 if through is None else min(1000, through - after)
        payload, _ = keys.sign(key, building, DownlinkKind.PULL, {"after_seq": after, "limit": limit})
        correlation = secrets.token_bytes(8)
        link.publish(f"{prefix}/{building}/pull/request", payload, response_topic=reply, correlation=correlation,
                     timeout_s=timeout_s)
        page = None
        deadline = time.monotonic() + timeout_s
        while page is None:
            message = link.get(deadline - time.monotonic())
            if message is None:
                raise TimeoutError(f"{building} did not answer a pull after seq {after} within {timeout_s} s")
            if message.topic == reply and message.correlation == correlation:
                page = json.loads(message.payload)
        summary["first_retained_seq"], summary["head_seq"] = page["first_retained_seq"], page["head_seq"]
        for event in page["events"]:
            if through is None or event["seq"] <= through:
                out.write(_encode(event) + "\n")
                summary["events"] += 1
        summary["gone"] += page.get("gaps", [])
        if page["next_after_seq"] <= after or not (page["more"] or (through is not None and page["next_after_seq"] < through
                                                                   and page["next_after_seq"] < page["head_seq"])):
            break
        after = page["next_after_seq"]
    out.flush()
    return summary


def cmd_pull(args: argparse.Namespace) -> int:
    key = keys.load(Path(_need(args, "key")))
    link = _link(args, (f"{args.prefix}/{args.building}/pull/response/+",))
    try:
        summary = pull_range(link, key, args.prefix, args.building, args.after, args.through, args.timeout, sys.stdout)
    except TimeoutError as error:
        print(f"edge-fleet: {error}", file=sys.stderr)
        return EXIT_TIMEOUT
    finally:
        link.close()
    print(_encode(summary), file=sys.stderr)
    return 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_command(args: argparse.Namespace) -> int:
    arguments = {}
    for pair in args.arg:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"edge-fleet: --arg takes k=v, not {pair!r}")
        arguments[name] = _value(value)
    code, result = _command(args, DownlinkKind.COMMAND, "commands", {"command": args.name, "args": arguments})
    if result is not None:
        print(_encode(result))
    return code


def _online(link: Link, args: argparse.Namespace) -> dict | None:
    """The building's (retained) online status: a message to a gateway that is not connected would be lost."""
    status = f"{args.prefix}/{args.building}/status"
    deadline = time.monotonic() + args.timeout
    while True:
        message = link.get(deadline - time.monotonic())
        if message is None:
            print(f"edge-fleet: {args.building} is not online (no online status within {args.timeout} s)", file=sys.stderr)
            return None
        if message.topic == status and b'"online"' in message.payload:
            try:
                return json.loads(message.payload)
            except ValueError:
                continue


def _command(args: argparse.Namespace, kind: DownlinkKind, topic: str, body: dict | Callable[[dict], dict],
             also: tuple[str, ...] = (), then: Callable[[Link, dict], int] | None = None) -> tuple[int, dict | None]:
    """Sign `body` (or what `body(online status)` makes) as `kind`, publish it on the building's `topic` once
    the building is online, and wait for its result on commands/result: (exit code, the result)."""
    key = keys.load(Path(_need(args, "key")))
    results = f"{args.prefix}/{args.building}/commands/result"
    link = _link(args, (results, f"{args.prefix}/{args.building}/status", *also))
    try:
        online = _online(link, args)
        if online is None:
            return EXIT_TIMEOUT, None
        payload, nonce = keys.sign(key, args.building, kind, body(online) if callable(body) else body, ttl_s=args.ttl_s)
        link.publish(f"{args.prefix}/{args.building}/{topic}", payload, timeout_s=args.timeout)
        deadline = time.monotonic() + args.timeout
        while True:
            message = link.get(deadline - time.monotonic())
            if message is None:
                print(f"edge-fleet: no result from {args.building} within {args.timeout} s", file=sys.stderr)
                return EXIT_TIMEOUT, None
            if message.topic != results:
                continue
            try:
                result = json.loads(message.payload)
            except ValueError:
                continue
            if result.get("nonce") == nonce:
                code = 0 if result.get("outcome") == "done" else EXIT_FAILED
                if code == 0 and then is not None:
                    print(_encode(result))
                    return then(link, result), None
                return code, result
    finally:
        link.close()


def cmd_config(args: argparse.Namespace) -> int:
    """`config push BUILDING FILE`: the file, signed, applied and watched by the gateway; `config get BUILDING`:
    the config it runs (secrets as references), as YAML (`--json`: the whole answer)."""
    if args.action == "get":
        code, result = _command(args, DownlinkKind.COMMAND, "commands", {"command": "config.get", "args": {}})
        if result is not None:
            detail = result.get("detail", {})
            if args.json or code != 0:
                print(_encode(result))
            else:
                import yaml

                print(f"# {args.building}: config {detail.get('digest')}, fleet version {detail.get('version')}")
                print(yaml.safe_dump(detail.get("config"), sort_keys=False, allow_unicode=True), end="")
        return code
    if args.file is None:
        sys.exit("edge-fleet: config push needs BUILDING FILE")
    text = Path(args.file).read_text()
    events = f"{args.prefix}/{args.building}/events"

    def body(online: dict) -> dict:
        version = args.version or int(online.get("config_version") or 0) + 1
        return {"version": version, "yaml": text} | ({"watch_s": args.watch_s} if args.watch_s is not None else {})

    def watched(link: Link, result: dict) -> int:
        """Wait for the gateway's word on its watch: config.kept (0) or config.rolled_back (1)."""
        detail = result.get("detail", {})
        if args.no_watch or detail.get("redelivery"):
            return 0
        deadline = time.monotonic() + float(detail.get("watch_s") or 0) + args.timeout + 30.0  # and a restart
        while True:
            message = link.get(deadline - time.monotonic())
            if message is None:
                print(f"edge-fleet: no word from {args.building} on its watch of version {detail.get('version')}", file=sys.stderr)
                return EXIT_TIMEOUT
            if message.topic != events:
                continue
            try:
                batch = json.loads(message.payload)
            except ValueError:
                continue
            for event in batch.get("events", []):
                if event.get("kind") in ("config.kept", "config.rolled_back") and event.get("body", {}).get("nonce") == result["nonce"]:
                    print(_encode({"building": args.building, **event}))
                    return 0 if event["kind"] == "config.kept" else EXIT_FAILED

    code, result = _command(args, DownlinkKind.CONFIG_APPLY, "config", body, also=(events,), then=watched)
    if result is not None:
        print(_encode(result))
        for problem in result.get("detail", {}).get("problems", []):
            print(problem, file=sys.stderr)
    return code


def cmd_credentials(args: argparse.Namespace) -> int:
    key = keys.load(Path(_need(args, "key")))
    changes = [json.loads(line) for line in Path(args.changes).read_text().splitlines() if line.strip()]
    version = args.version
    conn = db.connect(args.db, autocommit=True) if args.db else None
    try:
        if version is None:
            if conn is None:
                sys.exit("edge-fleet: credentials push needs --version N, or --db to take the next version")
            row = conn.execute("SELECT greatest((SELECT max(version) FROM credential_sets WHERE building=%(b)s),"
                               " (SELECT credential_version FROM buildings WHERE building=%(b)s))", {"b": args.building}).fetchone()
            version = (row[0] or 0) + 1
        body = {"version": version, "changes": changes}
        status = f"{args.prefix}/{args.building}/status"
        link = _link(args, (status,))
        try:
            payload, nonce = keys.sign(key, args.building, DownlinkKind.CHANGE_SET, body, ttl_s=args.ttl_s)
            link.publish(f"{args.prefix}/{args.building}/credentials", payload, timeout_s=args.timeout)
            if conn is not None:
                from psycopg.types.json import Jsonb
                conn.execute("INSERT INTO credential_sets (building, version, kind, body) VALUES (%s,%s,%s,%s)"
                             " ON CONFLICT (building, version) DO UPDATE SET body=excluded.body, sent_at=clock_timestamp()",
                             (args.building, version, str(DownlinkKind.CHANGE_SET), Jsonb(body)))
            deadline = time.monotonic() + args.timeout
            while True:  # the gateway republishes its status with the new version once applied
                message = link.get(deadline - time.monotonic())
                if message is None:
                    print(_encode({"building": args.building, "version": version, "nonce": nonce, "applied": False,
                                   "detail": f"no status with credential_version >= {version} within {args.timeout} s"}))
                    return EXIT_TIMEOUT
                try:
                    seen = json.loads(message.payload)
                except ValueError:
                    continue
                if isinstance(seen.get("credential_version"), int) and seen["credential_version"] >= version:
                    print(_encode({"building": args.building, "version": version, "nonce": nonce, "applied": True}))
                    return 0
        finally:
            link.close()
    finally:
        if conn is not None:
            conn.close()


def cmd_watch(args: argparse.Namespace) -> int:
    topic = f"{args.prefix}/{args.building or '+'}/events"
    link = _link(args, (topic,))
    shown = 0
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while args.count is None or shown < args.count:
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if deadline is not None and wait <= 0:
                break
            message = link.get(min(wait, 1.0))
            if message is None:
                continue
            try:
                batch = json.loads(message.payload)
            except ValueError:
                continue
            for event in batch.get("events", [])[: None if args.count is None else args.count - shown]:
                print(_encode({"building": batch.get("building"), "lane": batch.get("lane"), **event}), flush=True)
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        link.close()
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    with db.connect(_need(args, "db")) as conn:
        where, params = ("WHERE building=%s", (args.building,)) if args.building else ("", ())
        for building, first, last, owner, pulls, found in conn.execute(
                f"SELECT building, first_seq, last_seq, owner, pulls, found_at FROM gaps {where} ORDER BY building, first_seq",
                params):
            print(_encode({"building": building, "first_seq": first, "last_seq": last, "state": "open",
                           "repairing": owner, "pulls": pulls, "found_at": found}))
        for building, first, last, reason, at in conn.execute(
                f"SELECT building, first_seq, last_seq, reason, recorded_at FROM absent {where} ORDER BY building, first_seq",
                params):
            print(_encode({"building": building, "first_seq": first, "last_seq": last, "state": "absent", "reason": reason,
                           "recorded_at": at}))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with db.connect(_need(args, "db")) as conn:
        where, params = ("WHERE b.building=%s", (args.building,)) if args.building else ("", ())
        rows = conn.execute(
            "SELECT b.building, b.state, b.last_seen, b.since, b.head_seq, b.synced_seq, b.watermark, b.max_seq,"
            " b.credential_version, (SELECT count(*) FROM gaps g WHERE g.building=b.building),"
            " (SELECT count(*) FROM events e WHERE e.building=b.building AND NOT e.valid),"
            f" (SELECT count(*) FROM quarantine q WHERE q.building=b.building) FROM buildings b {where} ORDER BY b.building",
            params).fetchall()
    now = datetime.now(timezone.utc)
    for (building, state, seen, since, head, synced, watermark, max_seq, cred, gaps, flagged, quarantined) in rows:
        print(_encode({
            "building": building, "online": state == "online", "state": state, "last_seen": seen,
            "last_seen_s_ago": round((now - seen).total_seconds(), 1) if seen else None, "since": since,
            "head_seq": head, "synced_seq": synced, "backlog": (head - synced) if head is not None and synced is not None else None,
            "stored_through": watermark, "max_seq": max_seq, "open_gaps": gaps, "credential_version": cred,
            "flagged_events": flagged, "quarantined": quarantined,
        }))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-fleet", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--broker", default=os.environ.get("EDGE_FLEET_BROKER", "127.0.0.1:1883"), help="HOST:PORT")
    p.add_argument("--username", default=os.environ.get("EDGE_FLEET_USERNAME"))
    p.add_argument("--password-file", default=os.environ.get("EDGE_FLEET_PASSWORD_FILE"))
    p.add_argument("--ca", default=os.environ.get("EDGE_FLEET_CA"), help="CA file: TLS to the broker")
    p.add_argument("--db", default=os.environ.get("EDGE_FLEET_DB"), help="libpq connection string")
    p.add_argument("--key", default=os.environ.get("EDGE_FLEET_KEY"), help="the cloud's Ed25519 private key (PEM)")
    p.add_argument("--prefix", default="edge/v1")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the broker or a gateway")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("keygen", help="write DIR/cloud.key and DIR/cloud.pub")
    s.add_argument("dir")
    sub.add_parser("migrate", help="apply the database migrations")
    for name in ("ingest", "worker"):
        s = sub.add_parser(name, **({"help": "run N ingest workers"} if name == "ingest" else {}))
        s.add_argument("--group", default="fleet", help="the shared subscription's group")
        s.add_argument("--batch-messages", type=int, default=200)
        s.add_argument("--batch-ms", type=int, default=50)
        s.add_argument("--gap-grace-s", type=float, default=3.0)
        s.add_argument("--max-message-bytes", type=int, default=2 * 2**20, help="larger messages are kept aside, not taken")
        if name == "ingest":
            s.add_argument("--workers", type=int, default=2)
            s.add_argument("--stop-within-s", type=float, default=10.0)
        else:
            s.add_argument("--index", type=int, required=True)
    s = sub.add_parser("pull", help="events of BUILDING after SEQ, as JSON lines on stdout")
    s.add_argument("building")
    s.add_argument("--after", type=int, required=True)
    s.add_argument("--through", type=int)
    s = sub.add_parser("credentials", help="credentials push BUILDING changes.jsonl")
    s.add_argument("action", choices=["push"])
    s.add_argument("building")
    s.add_argument("changes", help="one change a line: {\"op\":\"upsert\",\"credential\":{...}} or {\"op\":\"remove\",\"key\":...}")
    s.add_argument("--version", type=int)
    s.add_argument("--ttl-s", type=float, default=3600.0)
    s = sub.add_parser("command", help="send a signed command and wait for its result")
    s.add_argument("building")
    s.add_argument("name")
    s.add_argument("--arg", action="append", default=[], help="k=v (v as JSON if it parses)")
    s.add_argument("--ttl-s", type=float, default=300.0)
    s = sub.add_parser("config", help="config push BUILDING FILE | config get BUILDING")
    s.add_argument("action", choices=["push", "get"])
    s.add_argument("building")
    s.add_argument("file", nargs="?", help="push: the building config (YAML), checked by the gateway as check-config does")
    s.add_argument("--version", type=int, help="push: the config's version (default: the gateway's last + 1)")
    s.add_argument("--watch-s", type=float, help="push: how long the gateway watches its health after the apply (default 120)")
    s.add_argument("--no-watch", action="store_true", help="push: return once applied, not after the watch")
    s.add_argument("--json", action="store_true", help="get: the whole answer as JSON, not the config as YAML")
    s.add_argument("--ttl-s", type=float, default=300.0)
    s = sub.add_parser("watch", help="live events of one building or all")
    s.add_argument("building", nargs="?")
    s.add_argument("--count", type=int)
    s.add_argument("--seconds", type=float)
    for name in ("gaps", "status"):
        s = sub.add_parser(name)
        s.add_argument("building", nargs="?")
    return p


COMMANDS = {"ingest": cmd_ingest, "worker": cmd_worker, "migrate": cmd_migrate, "keygen": cmd_keygen, "pull": cmd_pull,
            "command": cmd_command, "credentials": cmd_credentials, "config": cmd_config, "watch": cmd_watch, "gaps": cmd_gaps, "status": cmd_status}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return COMMANDS[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
