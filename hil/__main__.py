"""`python -m edge.hil run [PATHS...]`: play rig scenarios and report; `python -m edge.hil schema`: the
scenarios' JSON Schema.

Exit code 0 only when every scenario passed or was skipped, and not every one was skipped (a
run that tested nothing is not a pass, unless --allow-skip); 1 when one failed or could not be
played; 2 for bad arguments, a rig file that cannot be read, or nothing to run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.hil import report
from edge.hil.runner import run
from edge.hil.scenario_files import SCENARIOS, listing
from edge.hil.scenario import ScenarioError, json_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil", description="The hardware-in-the-loop rig.")
    commands = parser.add_subparsers(dest="command", required=True)
    play = commands.add_parser("run", help="play scenarios against simulators or a physical rig", description=(
        "Start the simulators (or use the rig file's real devices), mosquitto, the reference cloud and "
        "`edge run`, play each scenario and report each expectation with its measured time."))
    play.add_argument("paths", nargs="*", type=Path, default=[SCENARIOS], help="scenario files or directories (default: hil/scenarios/)")
    play.add_argument("-k", dest="patterns", action="append", default=[], metavar="PATTERN",
                      help="only scenarios whose file stem or name contains PATTERN (case-insensitive, * and ? allowed); repeatable")
    play.add_argument("--list", action="store_true", help="list the scenarios that would run, with their names, and run nothing")
    play.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    play.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON here")
    play.add_argument("--keep", type=Path, metavar="DIR", help="copy each scenario's state (config, journal, daemon log) "
                      "to DIR/SCENARIO, its config pointing there")
    play.add_argument("--allow-skip", action="store_true", help="exit 0 even when every scenario was skipped")
    play.add_argument("--rig", type=Path, metavar="FILE", help="a rig file: real ports and addresses, and who gives each stimulus")
    play.add_argument("--data", type=Path, metavar="DIR", help="the data root scenarios name images and model files in "
                      "(default: $HIL_DATA); scenarios that need it are skipped without it")
    commands.add_parser("schema", help="print the scenarios' JSON Schema", description=(
        "Print the JSON Schema of a rig scenario (the same as hil/scenarios/schema.json, which the shipped scenarios name)."))
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0

    chosen = listing(args.paths, args.patterns)
    if not chosen:
        selected = f" matching -k {' -k '.join(args.patterns)}" if args.patterns else ""
        print(f"no scenarios{selected} in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    if args.list:
        for entry in chosen:
            print(f"{entry.path}  {entry.name}" + (f"\n    cannot be played: {entry.problem}" if entry.problem else ""))
        return 1 if any(entry.problem for entry in chosen) else 0
    try:
        results = run([entry.path for entry in chosen], rig_path=args.rig, keep=args.keep, data=args.data)
    except ScenarioError as invalid:
        print(invalid, file=sys.stderr)
        return 2
    print(report.text(results), flush=True)
    if args.junit:
        report.junit(results, args.junit)
    if args.json:
        report.as_json(results, args.json)
    if not all(r.outcome in ("passed", "skipped") for r in results):
        return 1
    if all(r.outcome == "skipped" for r in results) and not args.allow_skip:
        print(f"every scenario ({len(results)}) was skipped, so nothing was tested: give what they need "
              "(see each one's reason above) or pass --allow-skip", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
