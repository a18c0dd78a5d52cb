"""Talking to gateways from the command line: `pull` a building's events, send a signed `command`,
push or get its `config`, push `credentials`, `watch` live events.

A message to a gateway that is not connected would be lost, so a command waits for the building's
online status first, then for its result (exit 0 done, 1 refused or failed, 3 no answer in time).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable

from edge.uplink.signing import DownlinkKind
from edge.fleet import db, keys
from edge.fleet.link import Link
from edge.fleet.operator import EXIT_FAILED, EXIT_TIMEOUT, connect, encode, need


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
                out.write(encode(event) + "\n")
                summary["events"] += 1
        summary["gone"] += page.get("gaps", [])
        if page["next_after_seq"] <= after or not (page["more"] or (through is not None and page["next_after_seq"] < through
                                                                   and page["next_after_seq"] < page["head_seq"])):
            break
        after = page["next_after_seq"]
    out.flush()
    return summary


def cmd_pull(args: argparse.Namespace) -> int:
    key = keys.load(Path(need(args, "key")))
    link = connect(args, (f"{args.prefix}/{args.building}/pull/response/+",))
    try:
        summary = pull_range(link, key, args.prefix, args.building, args.after, args.through, args.timeout, sys.stdout)
    except TimeoutError as error:
        print(f"edge-fleet: {error}", file=sys.stderr)
        return EXIT_TIMEOUT
    finally:
        link.close()
    print(encode(summary), file=sys.stderr)
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
        print(encode(result))
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
    key = keys.load(Path(need(args, "key")))
    results = f"{args.prefix}/{args.building}/commands/result"
    link = connect(args, (results, f"{args.prefix}/{args.building}/status", *also))
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
                    print(encode(result))
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
                print(encode(result))
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
                    print(encode({"building": args.building, **event}))
                    return 0 if event["kind"] == "config.kept" else EXIT_FAILED

    code, result = _command(args, DownlinkKind.CONFIG_APPLY, "config", body, also=(events,), then=watched)
    if result is not None:
        print(encode(result))
        for problem in result.get("detail", {}).get("problems", []):
            print(problem, file=sys.stderr)
    return code


def cmd_credentials(args: argparse.Namespace) -> int:
    key = keys.load(Path(need(args, "key")))
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
        link = connect(args, (status,))
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
                    print(encode({"building": args.building, "version": version, "nonce": nonce, "applied": False,
                                   "detail": f"no status with credential_version >= {version} within {args.timeout} s"}))
                    return EXIT_TIMEOUT
                try:
                    seen = json.loads(message.payload)
                except ValueError:
                    continue
                if isinstance(seen.get("credential_version"), int) and seen["credential_version"] >= version:
                    print(encode({"building": args.building, "version": version, "nonce": nonce, "applied": True}))
                    return 0
        finally:
            link.close()
    finally:
        if conn is not None:
            conn.close()


def cmd_watch(args: argparse.Namespace) -> int:
    topic = f"{args.prefix}/{args.building or '+'}/events"
    link = connect(args, (topic,))
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
                print(encode({"building": batch.get("building"), "lane": batch.get("lane"), **event}), flush=True)
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        link.close()
    return 0
