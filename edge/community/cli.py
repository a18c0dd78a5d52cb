"""`edge trail` and `edge alarm ack`: the entry-trail search and acknowledging an alarm on site.

Both go through the running daemon (it owns the journal's writer, and the notifier's open
alarms live in it). A trail search also works with the daemon stopped (a missing child does
not wait for a repair): the command then takes the journal's lock (edge/journal/owner.py) and
records the search itself. It refuses, showing no rows, when a daemon holds the journal but does
not answer (two writers would give one seq twice), when this user cannot write the journal, or
when the search could not be made durable: no rows are handed out without their audit record.

Exit codes (sysexits): 0 ok, 1 refused, 66 EX_NOINPUT (no journal), 69 EX_UNAVAILABLE (no daemon,
for `alarm ack`; a daemon that holds the journal but does not answer, for `trail`), 77 EX_NOPERM
(this user cannot write the journal), 78 EX_CONFIG (the config does not validate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from os import EX_CONFIG, EX_NOINPUT, EX_NOPERM, EX_UNAVAILABLE  # sysexits codes
from pathlib import Path

from edge.config import cli as config_cli
from edge.community.feature import CommunityOp
from edge.config.building import BuildingConfig


def add_commands(commands: argparse._SubParsersAction) -> None:
    trail = commands.add_parser("trail", help="where and when a tenant (or anyone at a door) passed; audited", description=(
        "Entry-trail search over the journal. Entry records are personal data: --operator is required and every "
        "search is journaled (privacy.trail_searched) with who asked, for what and how many rows."))
    config_cli.add_option(trail)
    whom = trail.add_argument_group("whose trail (at least one)")
    whom.add_argument("--tenant", help="tenant id, as in the credential store")
    whom.add_argument("--credential", help="credential key or a prefix of at least 12 hex digits")
    whom.add_argument("--door", help="one door's passes (needs --since)")
    trail.add_argument("--since", help="ISO time with zone, e.g. 2026-11-29T08:00+08:00")
    trail.add_argument("--until", help="ISO time with zone")
    trail.add_argument("--operator", required=True, help="your staff id (journaled)")
    trail.add_argument("--after-seq", type=int, default=0, help="continue after this seq (the last page's next_after_seq)")
    trail.add_argument("--limit", type=int, default=100, help="rows per page (at most 500)")
    trail.add_argument("--json", action="store_true", help="one JSON object: rows and next_after_seq")
    trail.set_defaults(handler=_trail)

    alarm = commands.add_parser("alarm", help="community alarms: acknowledge through the running daemon")
    actions = alarm.add_subparsers(dest="alarm_command", required=True, metavar="ACTION")
    ack = actions.add_parser("ack", help="acknowledge an alarm (stops its escalation; journaled)")
    config_cli.add_option(ack)
    target = ack.add_mutually_exclusive_group(required=True)
    target.add_argument("--incident", help="the alarm's event id (notify.* events carry it as incident)")
    target.add_argument("--area", help="every open alarm of this area ('*': all)")
    ack.add_argument("--operator", required=True, help="your staff id (journaled)")
    ack.set_defaults(handler=_ack)


def _trail(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    request = {"op": CommunityOp.TRAIL_SEARCH, "operator": args.operator, "via": "site", "after_seq": args.after_seq, "limit": args.limit}
    request |= {k: v for k in ("tenant", "credential", "door", "since", "until") if (v := getattr(args, k)) is not None}
    try:
        answer = control.ask(control.socket_path(config), request)
    except control.DaemonUnavailable as unavailable:
        try:
            answer = _search_without_daemon(config, request)
        except _Refused as refused:
            print(f"edge trail: {unavailable}; {refused.reason}; nothing was searched", file=sys.stderr)
            return refused.code
    if not answer.get("ok"):
        print(f"edge trail: {answer.get('error', 'refused')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"rows": answer["rows"], "next_after_seq": answer["next_after_seq"]}, ensure_ascii=False))
        return 0
    print(f"{'SEQ':>8}  {'TIME (UTC)':<27}  {'DOOR':<16}  {'PASS':<5}  {'GRANTED':<7}  {'REASON':<18}  CREDENTIAL")
    for row in answer["rows"]:
        print(f"{row['seq']:>8}  {row['time']:<27}  {row['door'] or '':<16}  {row['kind']:<5}  {str(row['granted']):<7}  "
              f"{row['reason'] or '':<18}  {row['credential'] or ''}")
    more = f"; more after seq {answer['next_after_seq']} (--after-seq)" if answer["next_after_seq"] else ""
    print(f"{len(answer['rows'])} pass(es); this search is journaled (seq {answer['search_seq']}){more}", file=sys.stderr)
    return 0


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _search_without_daemon(config: BuildingConfig, request: dict) -> dict:
    """No daemon answers: search under the journal's lock, or refuse (_Refused) with the reason."""
    from edge.journal.owner import JournalHeld, JournalOwner

    path = config.journal_path
    if not path.exists():
        raise _Refused(EX_NOINPUT, f"there is no journal at {path}")
    if not _writable(path):
        raise _Refused(EX_NOPERM, f"this user cannot write the journal {path}, and a search is journaled before "
                                  "its rows are shown: run it as the daemon's user")
    try:
        owner = JournalOwner.take(path)
    except JournalHeld:
        raise _Refused(EX_UNAVAILABLE, "the daemon is running (it holds the journal) but does not answer, and only "
                                       "the daemon writes its journal: fix its control socket or ask it another way") from None
    with owner:
        answer = asyncio.run(_search_here(config, request))
    if answer.get("ok") and not answer.get("durable"):
        raise _Refused(EX_NOPERM, f"the search could not be journaled ({answer.get('journal_problem') or 'the disk refused'}), "
                                  "so its rows are not shown")
    return answer


def _writable(journal: Path) -> bool:
    """Can this process write the journal, its WAL files and their directory (where SQLite makes them)?"""
    files = [journal, *(journal.with_name(journal.name + tail) for tail in ("-wal", "-shm"))]
    return os.access(journal.parent, os.W_OK | os.X_OK) and all(os.access(f, os.W_OK) for f in files if f.exists())


async def _search_here(config: BuildingConfig, request: dict) -> dict:
    """The daemon is stopped and its lock is ours: search and journal the search from this process;
    `durable` says whether the audit record reached the disk (a degraded journal only holds it)."""
    from edge.doors.credentials.store import CredentialStore, CredentialStoreUnavailable
    from edge.community.trail import TrailSearch
    from edge.journal import Journal

    store = None
    try:
        store = CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())
    except (CredentialStoreUnavailable, OSError):
        pass  # a tenant search then says the store is unavailable
    journal = await Journal.open(config.journal_path)
    try:
        answer = await TrailSearch(journal, lambda: store)(request)
        durable = answer.get("ok", False) and await journal.flush() and not journal.degraded
        return answer | {"durable": durable}
    finally:
        await journal.close()
        if store is not None:
            store.close()


def _ack(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    request = {"op": CommunityOp.ALARM_ACK, "operator": args.operator}
    request |= {"incident": args.incident} if args.incident else {"area": args.area}
    return control.command("edge alarm ack", config, request,
                           lambda answer: f"acknowledged: {', '.join(answer['acknowledged'])}")
