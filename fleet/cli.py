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
import os
import sys
from datetime import datetime, timezone

from edge.fleet import db
from edge.fleet.gateway_cli import cmd_command, cmd_config, cmd_credentials, cmd_pull, cmd_watch
from edge.fleet.operator import encode, need
from edge.fleet.service_cli import cmd_ingest, cmd_keygen, cmd_migrate, cmd_worker

# Here: the parser, and `gaps` and `status` (the fleet's own database). (The docstring is --help's text.)
# The service's commands are service_cli.py, those that talk to gateways gateway_cli.py, what they share operator.py.


def cmd_gaps(args: argparse.Namespace) -> int:
    with db.connect(need(args, "db")) as conn:
        where, params = ("WHERE building=%s", (args.building,)) if args.building else ("", ())
        for building, first, last, owner, pulls, found in conn.execute(
                f"SELECT building, first_seq, last_seq, owner, pulls, found_at FROM gaps {where} ORDER BY building, first_seq",
                params):
            print(encode({"building": building, "first_seq": first, "last_seq": last, "state": "open",
                           "repairing": owner, "pulls": pulls, "found_at": found}))
        for building, first, last, reason, at in conn.execute(
                f"SELECT building, first_seq, last_seq, reason, recorded_at FROM absent {where} ORDER BY building, first_seq",
                params):
            print(encode({"building": building, "first_seq": first, "last_seq": last, "state": "absent", "reason": reason,
                           "recorded_at": at}))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with db.connect(need(args, "db")) as conn:
        where, params = ("WHERE b.building=%s", (args.building,)) if args.building else ("", ())
        rows = conn.execute(
            "SELECT b.building, b.state, b.last_seen, b.since, b.head_seq, b.synced_seq, b.watermark, b.max_seq,"
            " b.credential_version, (SELECT count(*) FROM gaps g WHERE g.building=b.building),"
            " (SELECT count(*) FROM events e WHERE e.building=b.building AND NOT e.valid),"
            f" (SELECT count(*) FROM quarantine q WHERE q.building=b.building) FROM buildings b {where} ORDER BY b.building",
            params).fetchall()
    now = datetime.now(timezone.utc)
    for (building, state, seen, since, head, synced, watermark, max_seq, cred, gaps, flagged, quarantined) in rows:
        print(encode({
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
