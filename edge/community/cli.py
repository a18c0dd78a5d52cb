"""`edge trail` and `edge alarm ack`: the entry-trail search and acknowledging an alarm on site.

Both go through the running daemon (it owns the journal's writer, and the notifier's open
alarms live in it). A trail search also works with the daemon stopped (a missing child does
not wait for a repair): the command then opens the journal itself to record the search.

Exit codes (sysexits): 0 ok, 1 refused, 69 EX_UNAVAILABLE (no daemon, for `alarm ack`),
78 EX_CONFIG (the config does not validate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from os import EX_CONFIG  # sysexits codes

from edge import cli_config
from edge.config import BuildingConfig


def add_commands(commands: argparse._SubParsersAction) -> None:
    trail = commands.add_parser("trail", help="where and when a tenant (or anyone at a door) passed; audited", description=(
        "Entry-trail search over the journal. Entry records are personal data: --operator is required and every "
        "search is journaled (privacy.trail_searched) with who asked, for what and how many rows."))
    cli_config.add_option(trail)
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
    cli_config.add_option(ack)
    target = ack.add_mutually_exclusive_group(required=True)
    target.add_argument("--incident", help="the alarm's event id (notify.* events carry it as incident)")
    target.add_argument("--area", help="every open alarm of this area ('*': all)")
    ack.add_argument("--operator", required=True, help="your staff id (journaled)")
    ack.set_defaults(handler=_ack)


def _trail(args: argparse.Namespace) -> int:
    from edge import control

    config = cli_config.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    request = {"op": "trail.search", "operator": args.operator, "via": "site", "after_seq": args.after_seq, "limit": args.limit}
    request |= {k: v for k in ("tenant", "credential", "door", "since", "until") if (v := getattr(args, k)) is not None}
    try:
        answer = control.ask(control.socket_path(config), request)
    except control.DaemonUnavailable:
        answer = asyncio.run(_search_here(config, request))
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


async def _search_here(config: BuildingConfig, request: dict) -> dict:
    """The daemon is stopped: search and journal the search from this process."""
    from edge.access.credentials import CredentialStore, CredentialStoreUnavailable
    from edge.community.trail import TrailSearch
    from edge.journal import Journal

    store = None
    try:
        store = CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())
    except (CredentialStoreUnavailable, OSError):
        pass  # a tenant search then says the store is unavailable
    journal = await Journal.open(config.journal_path)
    try:
        return await TrailSearch(journal, lambda: store)(request)
    finally:
        await journal.close()
        if store is not None:
            store.close()


def _ack(args: argparse.Namespace) -> int:
    from edge import control

    config = cli_config.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    request = {"op": "alarm.ack", "operator": args.operator}
    request |= {"incident": args.incident} if args.incident else {"area": args.area}
    return control.command("edge alarm ack", config, request,
                           lambda answer: f"acknowledged: {', '.join(answer['acknowledged'])}")
