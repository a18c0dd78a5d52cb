"""`edge points` and `edge breaker close`: the technician's commands for circuits and water points.

`points` reads the daemon's points snapshot (STATE_DIR/points.json, so it works while the daemon is
down) or, with --all, every point of every device; `breaker close` asks the running daemon, which
owns the ports, for the audited re-close (`FieldPoints.reclose`).

Exit codes (sysexits): 0 ok, 1 refused or unconfirmed, 69 EX_UNAVAILABLE (no snapshot, or the daemon
is not running), 78 EX_CONFIG (the config does not validate).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from os import EX_CONFIG, EX_UNAVAILABLE  # sysexits codes

from edge.config import cli as config_cli
from edge.power.feature import PowerOp


def add_commands(commands: argparse._SubParsersAction) -> None:
    points = commands.add_parser("points", help="show each field point's last value, age and state", description=(
        "Read the daemon's status snapshot (written every 2 s into the state dir) and show every circuit and "
        "pressure point: last value, unit, age and state (ok, warning, alarm, sensor_fault, stale, offline)."))
    config_cli.add_option(points)
    points.add_argument("--json", action="store_true", help="one JSON object per point per line")
    points.add_argument("--all", action="store_true", help=(
        "every point of every device (voltages, energies, clocks, serials too): value, unit, state, age, the point "
        "voiding it and every alarm active on it"))
    points.set_defaults(handler=_points)

    breaker = commands.add_parser("breaker", help="operate a circuit's breaker through the running daemon")
    breaker_commands = breaker.add_subparsers(dest="breaker_command", required=True, metavar="ACTION")
    close = breaker_commands.add_parser("close", help="re-close a tripped breaker (audited)", description=(
        "Ask the running daemon to close CIRCUIT's breaker. The request, who made it and why are journaled, and so "
        "is whether the breaker confirmed it closed. Exit 0 when confirmed, 1 when refused or unconfirmed, "
        "69 when the daemon is not running."))
    close.add_argument("circuit", help="circuit name from the config")
    close.add_argument("--operator", required=True, help="your staff id: you take responsibility for re-energising")
    close.add_argument("--reason", required=True, help="why it is safe now (10-500 characters)")
    config_cli.add_option(close)
    close.set_defaults(handler=_breaker_close)


def _points(args: argparse.Namespace) -> int:
    from edge.fieldbus import cli as device_cli
    from edge.points import status_file

    config = config_cli.load_or_report(args.config, summary=True)
    if config is None:
        return EX_CONFIG
    if args.all:
        return device_cli.all_points(config, args.json)
    try:
        snapshot = status_file.read_snapshot(config.state_path)
    except FileNotFoundError:
        print(f"edge points: no status in {config.state_path}: the daemon has not run with field points", file=sys.stderr)
        return EX_UNAVAILABLE
    except OSError as error:
        print(f"edge points: cannot read the status in {config.state_path}: {error.strerror}", file=sys.stderr)
        return EX_UNAVAILABLE
    except ValueError as error:
        print(f"edge points: {error}", file=sys.stderr)
        return EX_UNAVAILABLE
    try:
        rows = status_file.as_rows(snapshot, time.time(), stale_after_s=3 * status_file.SNAPSHOT_EVERY_S)
        lines = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows] if args.json else [status_file.render_table(rows)]
    except (TypeError, ValueError) as error:  # a snapshot with the right keys and wrong types
        print(f"edge points: points snapshot is malformed: {error}", file=sys.stderr)
        return EX_UNAVAILABLE
    print("\n".join(lines))
    return 0


def _breaker_close(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config, summary=True)
    if config is None:
        return EX_CONFIG
    request = {"op": PowerOp.BREAKER_CLOSE, "circuit": args.circuit, "operator": args.operator, "reason": args.reason}
    return control.command("edge breaker close", config, request,
                           lambda answer: f"breaker of circuit {args.circuit} closed and confirmed")
