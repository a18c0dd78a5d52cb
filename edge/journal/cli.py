"""`edge events`: the journal read back on site, filtered by time, kind, source and priority.

Read-only, straight from the journal file (no daemon needed), so a technician sees what happened
while the daemon was down too. Exit codes: 0 shown (also none matching), 78 bad config, 66 no
journal or one that cannot be read, 65 a file that is not a journal this gateway wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import stat
import sys
from datetime import datetime, timedelta, timezone
from os import EX_CONFIG, EX_DATAERR, EX_NOINPUT  # sysexits codes
from pathlib import Path

from edge.config import cli as config_cli
from edge.events import Priority
from edge.journal import EventQuery, read_events


def add_commands(commands: argparse._SubParsersAction) -> None:
    events = commands.add_parser("events", help="show events from the journal", description=(
        "Query the journal of this gateway. Times are ISO 8601 (2026-11-24T08:00, UTC unless an offset is given) "
        "or relative to now (30m, 2h, 7d). --kind and --source accept '*' wildcards, e.g. --kind 'alarm.*'."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edge events --since 2h --kind 'alarm.*'\n  edge events --since 1d --priority access\n  edge events --source door-main --limit 0 --json > door.jsonl")
    config_cli.add_option(events)
    events.add_argument("--journal", type=Path, help="read this journal file instead of the configured one")
    events.add_argument("--since", type=_when, help="only events at or after this time")
    events.add_argument("--until", type=_when, help="only events before this time")
    events.add_argument("--kind", action="append", default=[], help="event kind (repeatable, wildcards allowed)")
    events.add_argument("--source", action="append", default=[], help="device or worker name (repeatable)")
    events.add_argument("--priority", choices=[p.name.lower() for p in Priority], default="telemetry",
                        help="only events of this priority or higher (alarm > access > fault > telemetry)")
    events.add_argument("--after-seq", type=int, help="only events with seq greater than this (oldest first)")
    events.add_argument("--limit", type=int, default=50, help="at most this many, the newest (default 50; 0 = all)")
    events.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    events.set_defaults(handler=_events)


def _events(args: argparse.Namespace) -> int:
    path = args.journal
    if path is None:
        config = config_cli.load_or_report(args.config, summary=True)
        if config is None:
            return EX_CONFIG
        path = config.journal_path
    query = EventQuery(
        since_ns=_ns(args.since),
        until_ns=_ns(args.until),
        kinds=tuple(args.kind),
        sources=tuple(args.source),
        after_seq=args.after_seq,
        min_priority=Priority[args.priority.upper()],
        limit=args.limit or None,
        newest_first=args.after_seq is None,
    )
    unusable = _not_a_journal(path)
    if unusable is not None:
        code, message = unusable
        print(f"edge events: {message}", file=sys.stderr)
        return code
    try:
        found = read_events(path, query)
    except FileNotFoundError as missing:
        print(f"edge events: {missing}", file=sys.stderr)
        return EX_NOINPUT
    except (sqlite3.DatabaseError, ValueError) as error:
        print(f"edge events: {path} is not a journal this gateway wrote: {error}", file=sys.stderr)
        return EX_DATAERR
    if args.json:
        for event in found:
            print(json.dumps(event.as_dict(), ensure_ascii=False, separators=(",", ":")))
        return 0
    print(f"{'SEQ':>8}  {'TIME (UTC)':<23}  {'PRIORITY':<9}  {'KIND':<28}  {'SOURCE':<18}  DETAIL")
    for event in found:
        detail = " ".join(f"{k}={v}" for k, v in event.body.items())
        stamp = event.wall.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
        print(f"{event.seq:>8}  {stamp:<23}  {event.priority.name.lower():<9}  {event.kind:<28}  {event.source:<18}  {detail}")
    if not found:
        print("(no events match)")
    return 0


_SQLITE_HEADER = b"SQLite format 3\x00"


def _not_a_journal(path: Path) -> tuple[int, str] | None:
    """(exit code, message) when `path` cannot be a journal, else None.

    Asked before SQLite, which would take an empty file for an empty database and a
    directory or a FIFO for a reason to fail with "disk I/O error" or wait.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return EX_NOINPUT, f"no journal at {path}"
    except OSError as error:
        return EX_NOINPUT, f"cannot read the journal {path}: {error.strerror}"
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return EX_NOINPUT, f"{path} is a directory, not a journal"
        if not stat.S_ISREG(mode):
            return EX_NOINPUT, f"{path} is not a regular file, not a journal"
        header = os.read(fd, len(_SQLITE_HEADER))
    except OSError as error:
        return EX_NOINPUT, f"cannot read the journal {path}: {error.strerror}"
    finally:
        os.close(fd)
    if not header:
        return EX_DATAERR, f"{path} is empty (0 bytes), not a journal: the gateway has not written it"
    if header != _SQLITE_HEADER:
        return EX_DATAERR, f"{path} is not a journal (not an SQLite file)"
    return None


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _when(text: str) -> datetime:
    """ISO 8601 (UTC unless it says otherwise) or an age like 30m, 2h, 7d."""
    relative = _RELATIVE.match(text)
    if relative:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[relative.group(2)]
        return datetime.now(timezone.utc) - timedelta(**{unit: float(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: use ISO 8601 (2026-11-24T08:00) or 30m, 2h, 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _ns(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1e9)
