"""`edge credentials ...` and `edge fire reset`: the technician's door commands.

Credentials are written straight into STATE_DIR/credentials.db (SQLite allows the daemon
and a technician's command at once); afterwards the command asks a running daemon to
reload its in-memory copy. `fire reset` must go through the daemon, which owns the relays.

Exit codes (sysexits): 0 ok, 64 EX_USAGE (arguments that do not fit together), 65 EX_DATAERR (bad rows or values), 69 EX_UNAVAILABLE
(the daemon is not running, for `fire reset`), 74 EX_IOERR (the store cannot be used),
78 EX_CONFIG (the config does not validate), 1 refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import date
from os import EX_CONFIG, EX_DATAERR, EX_IOERR, EX_USAGE  # sysexits codes
from pathlib import Path

from pydantic import ValidationError

from edge.config import cli as config_cli
from edge.doors.credentials.credential import Credential
from edge.doors.credentials.card_import import CredentialImportError, import_cards
from edge.doors.credentials.store import CredentialStore, CredentialStoreUnavailable, Enrolment, parse_serial
from edge.config.building import BuildingConfig
from edge.doors.feature import DoorOp
from edge.doors.settings import ReaderProtocol


def add_commands(commands: argparse._SubParsersAction) -> None:
    credentials = commands.add_parser("credentials", help="tenants' cards: import, list, show, revoke, issue", description=(
        "Manage the credential store (STATE_DIR/credentials.db). Card serials are hashed with the building secret "
        "before they are stored; keys shown are those hashes. KEY may be any unique prefix of a key."))
    actions = credentials.add_subparsers(dest="credentials_command", required=True, metavar="ACTION")

    importing = actions.add_parser("import", help="import a CSV or JSON-lines file of enrolments", description=(
        "Rows upsert; good rows are written even when others are bad (those are listed by line, exit 65). "
        "CSV columns: serial, tenant, valid_from, valid_until, paid_through (required), status, doors, "
        "door_groups (';'-separated), schedule, pin, id_number."))
    importing.add_argument("file", type=Path)
    importing.set_defaults(handler=_import)

    listing = actions.add_parser("list", help="list every credential")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="show one credential")
    show.add_argument("key")
    show.set_defaults(handler=_show)

    revoke = actions.add_parser("revoke", help="revoke a credential (kept, so the journal says 'revoked')")
    revoke.add_argument("key")
    revoke.set_defaults(handler=_revoke)

    issue = actions.add_parser("issue", help="register a card on site (works offline)", description=(
        "Hash the card's serial and write its credential. The serial comes from --serial (hex) or from one card "
        "presented at --reader-port within --wait seconds. With --reader (a ga467 reader of the config: register "
        "on arrival) the tenant's resident ID card is read first and its ID number stored as a keyed hash; "
        "without a card serial, the credentials already issued to that ID number are renewed with the new dates."))
    source = issue.add_mutually_exclusive_group()
    source.add_argument("--serial", help="card serial in hex (e.g. 01001293D8)")
    source.add_argument("--reader-port", help="serial port of a desk reader; the next card presented is used")
    issue.add_argument("--reader", metavar="DESK", help="GA 467 resident-ID reader (a reader name in the config)")
    issue.add_argument("--protocol", choices=("em4100", "wiegand"), default="em4100", help="desk reader protocol")
    issue.add_argument("--baud", type=int, default=9600)
    issue.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a card at the reader")
    issue.add_argument("--tenant", help="opaque tenant id from the management system (required for a new card)")
    issue.add_argument("--valid-from", type=date.fromisoformat, required=True, help="first day of the lease (YYYY-MM-DD)")
    issue.add_argument("--valid-until", type=date.fromisoformat, required=True, help="last day of the lease")
    issue.add_argument("--paid-through", type=date.fromisoformat, required=True, help="last day covered by rent paid")
    issue.add_argument("--door", action="append", default=[], help="a door it opens (repeatable)")
    issue.add_argument("--group", action="append", default=[], help="a door group it opens (repeatable)")
    issue.add_argument("--schedule", help="weekly schedule, e.g. 'mon-fri 07:00-22:00'")
    issue.add_argument("--pin", help="PIN for card+PIN doors (4-8 digits)")
    issue.set_defaults(handler=_issue)

    for parser in (importing, listing, show, revoke, issue):
        config_cli.add_option(parser)

    door = commands.add_parser("door", help="open a door through the running daemon (audited)")
    door_actions = door.add_subparsers(dest="door_command", required=True, metavar="ACTION")
    unlock = door_actions.add_parser("unlock", help="one unlock pulse, journaled with who and why", description=(
        "Ask the running daemon to pulse a door's lock once, as a card would. Who asked and why are "
        "journaled. Exit 0 when the relay confirmed, 1 when refused or unconfirmed, 69 when no daemon runs."))
    unlock.add_argument("door", help="door name from the building config")
    unlock.add_argument("--operator", required=True, help="your staff id, journaled")
    unlock.add_argument("--reason", default="", help="why, journaled (e.g. 'delivery for flat 402')")
    config_cli.add_option(unlock)
    unlock.set_defaults(handler=_door_unlock)

    fire = commands.add_parser("fire", help="fire release: reset after an alarm")
    fire_actions = fire.add_subparsers(dest="fire_command", required=True, metavar="ACTION")
    reset = fire_actions.add_parser("reset", help="end a fire release: egress doors lock again (audited)", description=(
        "Ask the running daemon to end the fire release. Who did it is journaled. Exit 0 when reset, "
        "1 when there was nothing to reset or a fire input still reads active (or its state is not known: "
        "never read, stale, its device offline; the doors then stay released), 69 when the daemon is not running."))
    reset.add_argument("--operator", required=True, help="technician id, journaled")
    config_cli.add_option(reset)
    reset.set_defaults(handler=_fire_reset)


def _with_store(args: argparse.Namespace, action) -> int:
    """Load the config, open the store, run `action(store, config) -> exit code`, tell the daemon."""
    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    path = config.state_path / "credentials.db"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        store = CredentialStore.open(path, config.building.secret.read())
    except (CredentialStoreUnavailable, OSError, ValueError) as error:
        print(f"edge credentials: {error}", file=sys.stderr)
        return EX_IOERR
    with store:
        try:
            code = action(store, config)
        except CredentialStoreUnavailable as error:
            print(f"edge credentials: {error}", file=sys.stderr)
            return EX_IOERR
    if args.credentials_command in ("import", "revoke", "issue") and code in (0, EX_DATAERR):
        _ask_daemon(config, {"op": DoorOp.CREDENTIALS_RELOAD})
    return code


def _ask_daemon(config: BuildingConfig, request: dict) -> dict | None:
    from edge.runtime import control

    try:
        return control.ask(control.socket_path(config), request, timeout_s=10)
    except control.DaemonUnavailable:
        return None


def _find(store: CredentialStore, prefix: str) -> Credential | None:
    prefix = prefix.strip().lower()
    found = [c for c in store.list() if c.key.startswith(prefix)] if prefix else []
    if len(found) == 1:
        return found[0]
    print(f"edge credentials: {'no' if not found else 'more than one'} credential with key {prefix!r}"
          f"{'; give more digits' if found else ''}", file=sys.stderr)
    return None


def _import(args: argparse.Namespace) -> int:
    def action(store: CredentialStore, config: BuildingConfig) -> int:
        started = time.monotonic()
        try:
            report = import_cards(store, args.file)
        except CredentialImportError as error:
            print(f"edge credentials import: {error}", file=sys.stderr)
            return EX_DATAERR
        for row in report.errors:
            print(f"{args.file}:{row.line}: {row.message}", file=sys.stderr)
        print(f"imported {report.imported} credential(s) from {args.file} in {time.monotonic() - started:.2f} s"
              f"{f'; {len(report.errors)} row(s) refused' if report.errors else ''}")
        return EX_DATAERR if report.errors else 0

    return _with_store(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(store: CredentialStore, config: BuildingConfig) -> int:
        credentials = store.list()
        print(f"{'KEY':<12}  {'TENANT':<16}  {'STATUS':<9}  {'VALID FROM':<10}  {'UNTIL':<10}  {'PAID TO':<10}  PIN  DOORS")
        for c in credentials:
            where = ",".join(sorted(c.doors) + [f"@{g}" for g in sorted(c.door_groups)]) or "-"
            print(f"{c.key[:12]:<12}  {c.tenant[:16]:<16}  {c.status.value:<9}  {c.valid_from}  {c.valid_until}  "
                  f"{c.paid_through}  {'yes' if c.pin_hash else 'no ':<3}  {where}")
        print(f"({len(credentials)} credential(s), change-set version {store.version})")
        return 0

    return _with_store(args, action)


def _describe(c: Credential) -> str:
    lines = [
        f"key           {c.key}",
        f"tenant        {c.tenant}",
        f"status        {c.status.value}",
        f"doors         {', '.join(sorted(c.doors)) or '-'}",
        f"door groups   {', '.join(sorted(c.door_groups)) or '-'}",
        f"lease         {c.valid_from} to {c.valid_until} (inclusive)",
        f"paid through  {c.paid_through}",
        f"schedule      {c.schedule if c.schedule is not None else 'any time'}",
        f"PIN           {'set' if c.pin_hash else 'none'}",
        f"ID number     {'…' + c.id_last4 if c.id_last4 else 'none'}",
    ]
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    def action(store: CredentialStore, config: BuildingConfig) -> int:
        credential = _find(store, args.key)
        if credential is None:
            return EX_DATAERR
        print(_describe(credential))
        return 0

    return _with_store(args, action)


def _revoke(args: argparse.Namespace) -> int:
    def action(store: CredentialStore, config: BuildingConfig) -> int:
        credential = _find(store, args.key)
        if credential is None:
            return EX_DATAERR
        store.revoke(credential.key)
        print(f"revoked {credential.key[:12]} (tenant {credential.tenant})")
        return 0

    return _with_store(args, action)


def _issue(args: argparse.Namespace) -> int:
    if not (args.serial or args.reader_port or args.reader):
        print("edge credentials issue: give --serial, --reader-port or --reader", file=sys.stderr)
        return EX_USAGE
    if (args.serial or args.reader_port) and not args.tenant:
        print("edge credentials issue: a new card needs --tenant", file=sys.stderr)
        return EX_USAGE
    if args.reader and args.pin and not (args.serial or args.reader_port):
        print("edge credentials issue: a PIN is set with the card (--serial or --reader-port)", file=sys.stderr)
        return EX_USAGE

    def action(store: CredentialStore, config: BuildingConfig) -> int:
        desk = _desk(config, args.reader) if args.reader else None
        if isinstance(desk, int):
            return desk
        id_number = None
        try:
            if desk is not None:
                id_number = read_id_card(desk, args.wait).id_number
                if not (args.serial or args.reader_port):
                    return _renew(store, store.id_key_for(id_number), args)
            serial = parse_serial(args.serial) if args.serial else read_one_card(args.reader_port, args.protocol, args.baud, args.wait)
        except (ValueError, TimeoutError, OSError) as error:
            print(f"edge credentials issue: {error}", file=sys.stderr)
            return EX_DATAERR
        fields = {
            "serial": serial, "tenant": args.tenant, "valid_from": args.valid_from, "valid_until": args.valid_until,
            "paid_through": args.paid_through, "doors": args.door, "door_groups": args.group,
            "schedule": args.schedule, "pin": args.pin, "id_number": id_number,
        }
        try:
            enrolment = Enrolment.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as error:
            for problem in error.errors(include_input=False, include_url=False):
                print(f"edge credentials issue: {'.'.join(map(str, problem['loc']))}: {problem['msg']}", file=sys.stderr)
            return EX_DATAERR
        credential = store.issue(enrolment)
        print(f"issued {credential.key[:12]}\n{_describe(credential)}")
        return 0

    return _with_store(args, action)


@dataclass(frozen=True, slots=True)
class DeskReader:
    """A GA 467 reader of the config, for registration at the desk."""

    name: str
    port: str
    baud: int


def _desk(config: BuildingConfig, name: str) -> DeskReader | int:
    """The --reader of the config (it must be a ga467 reader), or the exit code that says it is not."""
    reader = next((r for r in config.readers if r.name == name), None)
    if reader is None or reader.protocol is not ReaderProtocol.GA467:
        found = f"is a {reader.protocol.value} reader" if reader is not None else "is not in the config"
        print(f"edge credentials issue: reader {name!r} {found}; --reader takes a ga467 reader", file=sys.stderr)
        return EX_USAGE
    return DeskReader(reader.name, reader.port, reader.baud)


def read_id_card(desk: DeskReader, wait_s: float):
    """The identity on the next resident ID card placed on the desk reader."""
    from edge.drivers.cards.ga467_desk import Ga467Desk

    print(f"place the ID card on {desk.name} ...", file=sys.stderr)
    with Ga467Desk(desk.port, desk.baud) as reader:
        return reader.read_identity(wait_s)


def _renew(store: CredentialStore, id_key: str, args: argparse.Namespace) -> int:
    """Register on arrival for a returning tenant: the ID card's credentials get the new lease and rent dates."""
    held = [c for c in store.list() if c.id_key == id_key]
    if not held:
        print("edge credentials issue: no credential holds this ID card's number; present the tenant's access card "
              "too (--serial or --reader-port) to issue one", file=sys.stderr)
        return EX_DATAERR
    changes: dict[str, object] = {"valid_from": args.valid_from, "valid_until": args.valid_until, "paid_through": args.paid_through}
    if args.tenant:
        changes["tenant"] = args.tenant
    if args.door:
        changes["doors"] = frozenset(args.door)
    if args.group:
        changes["door_groups"] = frozenset(args.group)
    try:
        renewed = [Credential.model_validate({**c.model_dump(), **changes}) for c in held]
    except ValidationError as error:
        for problem in error.errors(include_input=False, include_url=False):
            print(f"edge credentials issue: {'.'.join(map(str, problem['loc']))}: {problem['msg']}", file=sys.stderr)
        return EX_DATAERR
    for credential in renewed:
        store.upsert(credential)
        print(f"renewed {credential.key[:12]}\n{_describe(credential)}")
    return 0


def read_one_card(port: str, protocol: str, baud: int, wait_s: float) -> bytes:
    """The serial of the next card presented at a desk reader (EM4100 or Wiegand bridge)."""
    import serial

    from edge.drivers.cards.em4100 import Em4100Parser
    from edge.drivers.cards.observations import CardFrame
    from edge.drivers.cards.wiegand import WiegandParser

    parser = Em4100Parser() if protocol == "em4100" else WiegandParser()
    deadline = time.monotonic() + wait_s
    print(f"present the card at {port} ...", file=sys.stderr)
    try:
        with serial.Serial(port, baud, timeout=0.1) as reader:
            while time.monotonic() < deadline:
                for item in parser.feed(reader.read(64)):
                    if isinstance(item, CardFrame):
                        return item.serial
    except serial.SerialException as error:
        raise OSError(f"cannot read the reader at {port}: {error}") from None
    raise TimeoutError(f"no card presented at {port} within {wait_s:g} s")


def _fire_reset(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    return control.command("edge fire reset", config, {"op": DoorOp.FIRE_RESET, "operator": args.operator},
                           lambda answer: f"fire release ended by {args.operator}: {', '.join(answer.get('doors', []))} secured")


def _door_unlock(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    request = {"op": DoorOp.UNLOCK, "door": args.door, "operator": args.operator, "reason": args.reason}
    return control.command("edge door unlock", config, request,
                           lambda answer: f"door {args.door} unlocked for one pulse by {args.operator}")
