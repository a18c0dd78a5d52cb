"""`edge`: the command a technician types on site and systemd starts.

Exit codes follow sysexits: 0 ok, 78 (EX_CONFIG) for a config that does not validate,
66 (EX_NOINPUT) for a journal that does not exist or cannot be read, 65 (EX_DATAERR) for a
file that is not a journal (empty, not SQLite, not ours), 69 (EX_UNAVAILABLE) when the daemon
(or its status) is needed and not there, 73 (EX_CANTCREAT) when `edge init` refuses to
overwrite, 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from os import EX_CANTCREAT, EX_CONFIG, EX_UNAVAILABLE  # sysexits codes
from pathlib import Path

from edge import features, logs
from edge.config import building as building_config
from edge.config import cli as config_cli
from edge.config.building import DEFAULT_CONFIG, ConfigError
from edge.version import VERSION

EXIT_GRACE_S = 1.0  # after the gateway's stop (4 s), for calls still running in threads; systemd kills at 10 s


def main(argv: list[str] | None = None) -> int:
    try:
        words = sys.argv[1:] if argv is None else argv
        args = _parser(daemon=words[:1] == ["run"]).parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # `run` executes itself again with these
        code = args.handler(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`edge events | head`): what it wanted was printed; end quietly, as a
        # command killed by SIGPIPE would, and keep the interpreter's last flush off the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13


def _parser(daemon: bool = False) -> argparse.ArgumentParser:
    """Every command; with `daemon`, only `run`: what systemd starts does not import (or keep in
    memory) the technician's commands (docs/performance.md)."""
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Building-safety gateway: door access, breaker and pressure monitoring, event journal.",
    )
    parser.add_argument("--version", action="version", version=f"edge {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the gateway (what systemd starts)", description=(
        "Validate the building config, open the journal and run every configured driver until SIGTERM. "
        "Logs go to stdout: JSON lines under systemd, readable on a terminal."))
    config_cli.add_option(run)
    run.add_argument("--state-dir", type=Path, help="override state_dir from the config (journal and credentials)")
    run.set_defaults(handler=_run)
    if daemon:
        return parser
    from edge.fieldbus import cli as device_cli
    from edge.journal import cli as journal_cli

    check = commands.add_parser("check-config", help="validate a building config and exit", description=(
        "Check a building config without starting anything. Prints every problem as FILE:LINE:COL: path: message "
        "and exits 78 if there is any, 0 if the file is good."))
    check.add_argument("file", type=Path, nargs="?", help=f"config file (default {DEFAULT_CONFIG}); or --config FILE")
    check.add_argument("--config", "-c", dest="config_option", type=Path, metavar="FILE", help="the same, as every other command takes it")
    check.set_defaults(handler=_check_config)

    journal_cli.add_commands(commands)  # `edge events`: the journal read back

    reload = commands.add_parser("reload", help="apply the edited config to the running daemon", description=(
        "Ask the running daemon to check its config file again, exactly as check-config does, and apply it: "
        "thresholds, contacts and door settings change in place; a reader, a camera or a line's settings restart "
        "alone (other doors keep their readers); a device added, a lock, the uplink or the page restarts the daemon "
        "under the same PID. Exit 0 when applied, 78 when the file has a problem (each is printed; nothing changed), "
        "69 when the daemon is not running. `systemctl reload edge` runs this."))
    reload.add_argument("--operator", help="your staff id, journaled with the reload")
    config_cli.add_option(reload)
    reload.set_defaults(handler=_reload)

    init = commands.add_parser("init", help="write a starter building config and a new building secret", description=(
        "Create DIR (0700) with DIR/building.yaml, a starter config to edit, and DIR/secrets/building.key, a new "
        "building secret (32 random bytes, hex), both 0600. Refuses, writing nothing, if either exists. "
        "Exit 0 when written, 73 when refused or the files cannot be created."))
    init.add_argument("dir", type=Path, help="config directory, e.g. /etc/edge")
    init.add_argument("--building", type=_building_id, default="my-building",
                      help="building id (letters, digits, '-', '_'; default my-building): names it upstream")
    init.set_defaults(handler=_init)

    schema = commands.add_parser("schema", help="print the config JSON Schema", description=(
        "Print the JSON Schema of the building config (the same as config/schema.json); with --profile, that of a "
        "Modbus device profile (config/profile.schema.json), for an editor to complete and check profiles."))
    schema.add_argument("--profile", action="store_true", help="the device profile's schema instead of the building config's")
    schema.set_defaults(handler=_schema)

    version = commands.add_parser("version", help="print the version", description="Print the installed version (as edge --version).")
    version.set_defaults(handler=lambda args: print(f"edge {VERSION}") or 0)
    device_cli.add_commands(commands)  # `edge device command|read|show`: any profile command, any point
    for feature in features.every():  # each feature's own commands (edge/feature.py): `edge breaker close`, `edge elevator release`...
        for module in feature.commands:
            importlib.import_module(module).add_commands(commands)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's --help opens with a description: its own, else its one-line help, and for a
    group of commands the commands it holds (`edge breaker --help` said nothing of what it was for)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if not sub.description:
                text = (helps.get(name) or name).rstrip(".")
                inner = next((a for a in sub._actions if isinstance(a, argparse._SubParsersAction)), None)
                held = f" Commands: {', '.join(inner.choices)}; `{sub.prog} COMMAND --help` says more." if inner else ""
                sub.description = text[:1].upper() + text[1:] + "." + held
            _describe(sub)


def _check_config(args: argparse.Namespace) -> int:
    if args.file is not None and args.config_option is not None and args.file != args.config_option:
        print(f"edge check-config: two files given ({args.file} and --config {args.config_option}); give one", file=sys.stderr)
        return 2
    args.file = args.file or args.config_option or DEFAULT_CONFIG
    config = config_cli.load_or_report(args.file, summary=True)
    if config is None:
        return EX_CONFIG
    print(
        f"{args.file}: ok: building {config.building.id}, {len(config.buses)} buses, {len(config.devices)} devices, "
        f"{len(config.readers)} readers, {len(config.doors)} doors, {len(config.circuits)} circuits, "
        f"{len(config.pressure_points)} pressure points, {len(config.cameras)} cameras"
    )
    for name, path in building_config.shadowed_profiles(config).items():
        print(f"{args.file}: profile {name!r} is read from {path}, not the built-in one")
    return 0


def _run(args: argparse.Namespace) -> int:
    from edge.config import files as config_files

    rolled_back = config_files.at_start(args.config)  # a config from the fleet that keeps the daemon falling over is undone first
    if rolled_back:
        print(rolled_back, file=sys.stderr)
    config = config_cli.load_or_report(args.config, summary=True)
    if config is None:
        return _previous_config(args, [], EX_CONFIG)
    if args.state_dir is not None:
        config = config.model_copy(update={"state_dir": args.state_dir.resolve()})
    logs.configure(config.logging.format, config.logging.level)
    from edge.runtime import shutdown
    from edge.gateway import Gateway  # the daemon's imports are not paid by quick commands

    gateway = Gateway(config, args.config, overrides={"state_dir": config.state_dir} if args.state_dir is not None else None)
    try:
        stuck = shutdown.run(gateway.run(), EXIT_GRACE_S)
    except ConfigError as error:  # found only with the hardware in view (a udev identity matching two devices)
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return _previous_config(args, [str(problem) for problem in error.problems], EX_CONFIG)
    if gateway.reexec:  # a reload that needs a restart: the same command again, under the same PID
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "edge.cli", *args.argv])
    if stuck:  # the journal is closed: only a call stuck in a library is left, and it must not hold the stop
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _previous_config(args: argparse.Namespace, problems: list[str], code: int) -> int:
    """A config from the fleet that does not start is rolled back and the daemon started again on the
    previous one (an exit 78 would leave the building down: systemd does not restart it)."""
    from edge.config import files as config_files

    line, restored = config_files.failed_start(args.config, problems)
    if line is not None:
        print(line, file=sys.stderr)
    if not restored:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "edge.cli", *args.argv])


def _reload(args: argparse.Namespace) -> int:
    from edge.runtime import control

    request = {"op": control.GatewayOp.CONFIG_RELOAD} | ({"operator": args.operator} if args.operator else {})
    try:
        answer = control.ask(control.socket_for_file(args.config), request)
    except control.DaemonUnavailable as error:
        print(f"edge reload: {error}; nothing was done", file=sys.stderr)
        return EX_UNAVAILABLE
    if not answer.get("ok"):
        for problem in answer.get("problems") or [answer.get("error", "refused")]:
            print(problem, file=sys.stderr)
        print(f"{answer.get('file', args.config)}: refused; the running config ({answer.get('digest')}) is unchanged", file=sys.stderr)
        return EX_CONFIG
    for line in answer.get("applied", []):
        print(line)
    what = "restarting for it" if answer.get("restart") else "applied" if answer.get("applied") else "nothing changed"
    print(f"{answer.get('file', args.config)}: config {answer.get('digest')} {what}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from edge.config import starter

    try:
        config, secret = starter.write(args.dir, args.building)
    except starter.StarterExists as refused:
        print(f"edge init: {refused}", file=sys.stderr)
        return EX_CANTCREAT
    except OSError as error:
        print(f"edge init: cannot create {error.filename or args.dir}: {error.strerror}", file=sys.stderr)
        return EX_CANTCREAT
    print(f"wrote {config} (edit it) and {secret} (the building secret: back it up, never share it)")
    print(f"next: edge check-config {config}")
    return 0


def _building_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a building id: letters, digits, '-' and '_', at most 64")
    return text


def _schema(args: argparse.Namespace) -> int:
    if args.profile:
        from edge.drivers.modbus.profile import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    print(json.dumps(building_config.json_schema(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
