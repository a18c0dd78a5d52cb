"""The technician's commands for a building in the field: `edge status`, `edge doctor`, `edge udev-rules`."""

from __future__ import annotations

import argparse
import os
import json
import sys
from os import EX_CONFIG, EX_UNAVAILABLE  # sysexits codes

from edge.config import cli as config_cli
from edge.config.building import ConfigError, load


def add_commands(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser("status", help="one screen: every bus, device, door, point, alarm, uplink, clock, disk", description=(
        "Show the building at a glance. Through the running daemon's local status server when it runs; otherwise from "
        "the journal and the config alone, and the first line says so. Exit 69 when there is neither a daemon nor a journal."))
    config_cli.add_option(status)
    status.add_argument("--json", action="store_true", help="the status as one JSON object")
    status.set_defaults(handler=_status)

    doctor = commands.add_parser("doctor", help="check an installation before trusting it", description=(
        "Check the config, the state directory and disk, each serial port (present, usable by the service user), each Modbus "
        "device (answers), the broker (reachable, TLS verified) and the clock (synchronised). Each check prints PASS or FAIL "
        "with the exact fix. Exit 0 when every check passed, 1 otherwise. While the daemon runs, devices are judged by it."))
    config_cli.add_option(doctor)
    doctor.set_defaults(handler=_doctor)

    rules = commands.add_parser("udev-rules", help="print udev rules giving each configured USB device a stable /dev/edge/ name",
                                description="Print udev rules for the config's udev: identities: each gets /dev/edge/NAME and the "
                                "group the service is in (dialout for serial adapters, video for cameras).")
    config_cli.add_option(rules)
    rules.set_defaults(handler=_udev_rules)


def _status(args: argparse.Namespace) -> int:
    from edge.status import report

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    status = report.from_daemon(config) or report.from_journal(config)
    if status is None:
        print(f"edge status: the daemon is not running and there is no journal at {config.journal_path}", file=sys.stderr)
        return EX_UNAVAILABLE
    if args.json:
        print(json.dumps(status, ensure_ascii=False, default=str))
    else:
        print(report.render(config, status))
    return 0


def _udev_rules(args: argparse.Namespace) -> int:
    from edge.hotplug import udev_rules

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    print(udev_rules(config))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    import logging

    from edge.status import doctor, report

    # The doctor's lines are its report; the libraries' own logs (pymodbus's "Failed to connect" per
    # retry) would bury them, and every failure they describe is one of the doctor's lines already.
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL + 1)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # read when cv2 is first imported (a camera's frame grab)

    try:
        live = report.from_daemon(load(args.config))
    except ConfigError:
        live = None  # the config check below says what is wrong
    results = doctor.run(args.config, live)
    for result in results:
        print(result)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed" + ("" if failed else ": this installation can be trusted"))
    return 1 if failed else 0
