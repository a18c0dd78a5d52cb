"""`python -m hil run [PATHS...]`: play rig scenarios and report.

Exit code 0 only when every scenario passed; 1 when one failed; 2 for bad arguments or a rig
file that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hil import report
from hil.runner import SCENARIOS, run
from hil.scenario import ScenarioError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil", description="The hardware-in-the-loop rig.")
    commands = parser.add_subparsers(dest="command", required=True)
    play = commands.add_parser("run", help="play scenarios against simulators or a physical rig", description=(
        "Start the simulators (or use the rig file's real devices), mosquitto, the reference cloud and "
        "`edge run`, play each scenario and report each expectation with its measured time."))
    play.add_argument("paths", nargs="*", type=Path, default=[SCENARIOS], help="scenario files or directories (default: hil/scenarios/)")
    play.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    play.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON here")
    play.add_argument("--keep", action="store_true", help="keep each scenario's state directory (config, journal, daemon log)")
    play.add_argument("--rig", type=Path, metavar="FILE", help="a rig file: real ports and addresses, and who gives each stimulus")
    play.add_argument("--data", type=Path, metavar="DIR", help="the data root scenarios name images and model files in "
                      "(default: $HIL_DATA); scenarios that need it are skipped without it")
    args = parser.parse_args(argv)
    try:
        results = run(args.paths, rig_path=args.rig, keep=args.keep, data=args.data)
    except ScenarioError as invalid:
        print(invalid, file=sys.stderr)
        return 2
    if not results:
        print("no scenarios found in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    print(report.text(results), flush=True)
    if args.junit:
        report.junit(results, args.junit)
    if args.json:
        report.as_json(results, args.json)
    return 0 if all(r.outcome in ("passed", "skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
