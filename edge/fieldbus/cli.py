"""`edge device command|read|show`: a technician's hands on any field device while commissioning.

A profile's commands (a range, an address, a relay's flash, a residual-current relay's threshold)
and points (a voltage, an energy, a serial number) are reached through the running daemon, which
owns the lines: a command is checked, journaled before and after and confirmed as its profile says,
like `edge breaker close`. `show` reads only the config and profiles, so it works without a daemon.

Exit codes: 0 done, 1 refused or unconfirmed (or a point not read), 69 no daemon, 78 bad config.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from os import EX_CONFIG, EX_UNAVAILABLE  # sysexits codes
from typing import Any

from edge.config import cli as config_cli
from edge.fieldbus import DeviceOp


def add_commands(commands: argparse._SubParsersAction) -> None:
    device = commands.add_parser("device", help="run a device's profile commands and read its points (audited)")
    actions = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")

    command = actions.add_parser("command", help="run a command its profile defines (audited)", description=(
        "Ask the running daemon to run COMMAND of DEVICE as its profile defines it: preconditions checked first "
        "(nothing is sent when one refuses), then the write, its result register and its read-back. The request, "
        "who made it and why, and the outcome are journaled. A circuit's breaker closes only through `edge breaker "
        "close`. Exit 0 when confirmed, 1 when refused or unconfirmed, 69 when the daemon is not running."))
    command.add_argument("device", help="device name from the config")
    command.add_argument("command", help="command name from its profile (`edge device show DEVICE` lists them)")
    command.add_argument("--arg", type=_number_or_label, metavar="VALUE",
                         help="the value of a command that takes one, in its unit (or a label of its codes, e.g. b9600)")
    command.add_argument("--reason", required=True, help="why (10-500 characters): it is journaled")
    command.add_argument("--operator", default=None, help="your staff id (default: your login name)")
    config_cli.add_option(command)
    command.set_defaults(handler=_command)

    read = actions.add_parser("read", help="read points now, with units", description=(
        "Ask the running daemon to read POINTs of DEVICE now (all of them when none is named), ahead of polls, "
        "and print each typed value with its unit and its label. Exit 0 when every point was read, 1 otherwise."))
    read.add_argument("device", help="device name from the config")
    read.add_argument("points", nargs="*", metavar="POINT", help="point names from its profile (default: all)")
    read.add_argument("--json", action="store_true", help="one JSON object per point per line")
    config_cli.add_option(read)
    read.set_defaults(handler=_read)

    show = actions.add_parser("show", help="list a device's points and commands from its profile (no daemon needed)")
    show.add_argument("device", help="device name from the config")
    config_cli.add_option(show)
    show.set_defaults(handler=_show)


def _number_or_label(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _command(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config, summary=True)
    if config is None:
        return EX_CONFIG
    request = {"op": DeviceOp.COMMAND, "device": args.device, "command": args.command, "value": args.arg,
               "operator": args.operator or getpass.getuser(), "reason": args.reason}
    return control.command("edge device command", config, request,
                           lambda answer: f"{args.device} {args.command}: {answer.get('outcome', 'done')}")


def _read(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config, summary=True)
    if config is None:
        return EX_CONFIG
    request = {"op": DeviceOp.READ, "device": args.device, "points": ",".join(args.points) or None}
    try:
        answer = control.ask(control.socket_path(config), request)
    except control.DaemonUnavailable as error:
        print(f"edge device read: {error}; nothing was read", file=sys.stderr)
        return EX_UNAVAILABLE
    if "points" not in answer:
        print(f"edge device read: {answer.get('error', 'refused')}", file=sys.stderr)
        return 1
    if args.json:
        print("\n".join(json.dumps({"device": args.device, **row}, ensure_ascii=False) for row in answer["points"]))
    else:
        print(f"{args.device} ({answer.get('state')})")
        print(render_reads(answer["points"]))
    return 0 if answer.get("ok") else 1


def render_reads(rows: list[dict[str, Any]]) -> str:
    """POINT VALUE UNIT, a label beside a code, what went wrong instead of a value."""
    lines = [f"{'POINT':<24}  {'VALUE':>14}  {'UNIT':<6}  {'TYPE':<8}  NOTE"]
    for row in rows:
        value = row["value"]
        if row.get("problem"):
            shown, note = "-", row["problem"]
        elif isinstance(value, float):
            shown, note = f"{value:.6g}", row.get("label") or ""
        else:
            shown, note = str(value), row.get("label") or ""
        if row.get("label") and not row.get("problem"):
            shown = f"{row['label']} ({value})" if not isinstance(value, bool) else row["label"]
            note = ""
        lines.append(f"{row['point']:<24}  {shown:>14}  {row['unit'] or '':<6}  {row['type']:<8}  {note}".rstrip())
    return "\n".join(lines)


def all_points(config: Any, as_json: bool) -> int:
    """`edge points --all`: the daemon's device-points.json (written every 2 s), so it works for anyone who
    may read the state dir and still shows the last values, ageing, when the daemon is down."""
    from edge.fieldbus.devices import DEVICE_POINTS_NAME
    from edge.points.status_file import SNAPSHOT_EVERY_S

    path = config.state_path / DEVICE_POINTS_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        written_at, points = float(document["written_at"]), list(document["points"])
    except FileNotFoundError:
        print(f"edge points: no {DEVICE_POINTS_NAME} in {config.state_path}: the daemon has not run with field devices", file=sys.stderr)
        return EX_UNAVAILABLE
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"edge points: {path} cannot be read: {error}", file=sys.stderr)
        return EX_UNAVAILABLE
    now = time.time()
    silent = now - written_at > 3 * SNAPSHOT_EVERY_S  # the daemon is not updating it: every value may be anything by now
    rows = []
    for row in points:
        age = None if row.get("read_at") is None else round(max(0.0, now - row["read_at"]), 1)
        state = "stale" if silent and row.get("state") not in ("offline", "never_read") else row.get("state")
        rows.append({**{k: v for k, v in row.items() if k != "read_at"}, "age_s": age, "state": state})
    if as_json:
        print("\n".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows))
    else:
        print(render_all(rows))
    return 0


def render_all(rows: list[dict[str, Any]]) -> str:
    """One line a point: a label beside its code, '-' for no value, then what voids it and its alarms."""
    lines = [f"{'DEVICE':<14}  {'POINT':<22}  {'VALUE':>14}  {'UNIT':<6}  {'AGE':>8}  STATE"]
    for row in rows:
        value = row["value"]
        if row.get("label") is not None:
            shown = row["label"] if value is None or isinstance(value, bool) else f"{row['label']} ({value:g})"
        else:
            shown = "-" if value is None else f"{value:.6g}"
        age = "never" if row["age_s"] is None else f"{row['age_s']:.1f}s"
        notes = ([f"voided by {row['voided_by']}"] if row.get("voided_by") else []) + list(row.get("alarms") or [])
        lines.append(f"{row['device']:<14}  {row['point']:<22}  {shown:>14}  {row['unit'] or '':<6}  {age:>8}  {row['state']}"
                     + "".join(f"  ({note})" for note in notes))
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    from edge.config.building import ConfigError, device_profiles

    config = config_cli.load_or_report(args.config, summary=True)
    if config is None:
        return EX_CONFIG
    device = next((d for d in config.devices if d.name == args.device), None)
    if device is None:
        print(f"edge device show: no device named {args.device!r}; known: {', '.join(d.name for d in config.devices)}", file=sys.stderr)
        return 1
    try:
        profile = device_profiles(config)[device.profile]
    except ConfigError as error:  # load_or_report already checked it; kept for a file changed since
        print(f"edge device show: {error}", file=sys.stderr)
        return EX_CONFIG
    print(f"{device.name}: profile {profile.model}, bus {device.bus}, address {device.address}")
    print("points:")
    for point in profile.points:
        labels = f"  {{{', '.join(f'{k:g}: {v}' for k, v in point.enum.items())}}}" if point.enum else ""
        print(f"  {point.name:<24} {point.function.value:<8} {point.address:>5}  {point.type.value:<7} {point.unit:<5}{labels}")
    print("commands:")
    for command in profile.commands or []:
        argument = command.argument
        takes = f"--arg {argument.min:g}..{argument.max:g} {argument.unit}".rstrip() if argument is not None else ""
        print(f"  {command.name:<24} {takes}  {command.description}".rstrip())
    for variant in profile.variants:
        print(f"variant {variant.name}: points {', '.join(p.name for p in variant.points) or '-'}; "
              f"commands {', '.join(c.name for c in variant.commands) or '-'}; drops {', '.join(variant.drop) or '-'}")
    return 0
