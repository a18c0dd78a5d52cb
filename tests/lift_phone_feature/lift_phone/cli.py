from __future__ import annotations

import argparse
import json

from edge.config import cli as config_cli
from edge.config.building import load
from edge.lift_phone.feature import LiftPhoneOp
from edge.runtime import control


def add_commands(commands) -> None:
    hang_up = commands.add_parser("lift-phone", help="hang up a lift's emergency phone through the running daemon")
    config_cli.add_option(hang_up)
    hang_up.add_argument("phone")
    hang_up.set_defaults(handler=_hang_up)


def _hang_up(args: argparse.Namespace) -> int:
    answer = control.ask(control.socket_path(load(args.config)), {"op": LiftPhoneOp.HANG_UP, "phone": args.phone}, timeout_s=10)
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 1
