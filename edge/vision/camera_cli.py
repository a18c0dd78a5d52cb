"""`edge elevator release|review` and `edge vision export|import|replay|status`: the elevator camera's commands.

`elevator release` and `elevator review` go through the running daemon, which owns the hold relay
and the reviews (audited: who and why are journaled). The others work on files and need no daemon: `export` writes the
collected frames as a YOLO dataset for a labelling tool, `import` reads the labelled result
back as a labels.csv for `edge vision eval`, `replay` runs a camera's pipeline over a clip and
draws it, `status` says whether each camera may hold or only observes, and why.

Exit codes (sysexits): 0 ok, 1 refused, 65 EX_DATAERR (a dataset with bad labels: nothing is
written), 66 EX_NOINPUT (a clip or model file that is not there, for `replay`), 69 EX_UNAVAILABLE
(no daemon, for `release`), 73 EX_CANTCREAT (export into a folder that is not empty, a replay
that cannot be written), 78 EX_CONFIG.
"""

from __future__ import annotations

import argparse
import sys
from os import EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_NOINPUT  # sysexits codes
from pathlib import Path

from edge.config import cli as config_cli
from edge.vision.feature import VisionOp


def add_commands(commands: argparse._SubParsersAction) -> None:
    elevator = commands.add_parser("elevator", help="the elevator e-bike guard, through the running daemon")
    elevator_actions = elevator.add_subparsers(dest="elevator_command", required=True, metavar="ACTION")
    release = elevator_actions.add_parser("release", help="let a held elevator go now (audited)", description=(
        "Ask the running daemon to end an e-bike hold at once. Who and why are journaled. The guard does not hold "
        "that car again until the e-bike has left. Exit 0 when done, 1 when refused, 69 when no daemon runs."))
    release.add_argument("--elevator", help="elevator (or camera) name; default: every guarded car")
    release.add_argument("--operator", required=True, help="your staff id, journaled")
    release.add_argument("--reason", default="", help="why, journaled")
    config_cli.add_option(release)
    release.set_defaults(handler=_release)

    reviewing = elevator_actions.add_parser("review", help="confirm or deny a hold (audited); list holds awaiting review", description=(
        "Every hold awaits an operator's review. Confirm it (an e-bike was there) or deny it, saying what was there. "
        "A hold denied as a wheelchair or a pram, or denials whose false-hold rate is above the site's limit even at "
        "the lower end of its 95% interval, return the camera to observe mode at once until a new eval report "
        "qualifies the model. Without --hold, lists the holds awaiting review. Exit 0 when done, 1 when refused, "
        "69 when no daemon runs."))
    reviewing.add_argument("--hold", type=int, metavar="SEQ", help="the hold's journal seq (alarm.elevator_hold)")
    verdicts = reviewing.add_mutually_exclusive_group()
    verdicts.add_argument("--confirm", action="store_true", help="an e-bike (or another hold class) was there")
    verdicts.add_argument("--deny", metavar="SEEN", help="what was there instead: wheelchair, stroller, bicycle, person, empty, other")
    reviewing.add_argument("--elevator", help="elevator (or camera) name")
    reviewing.add_argument("--operator", help="your staff id, journaled")
    config_cli.add_option(reviewing)
    reviewing.set_defaults(handler=_review)

    vision = _group(commands, "vision", help="elevator camera tools", description="Tools for the elevator e-bike guard.")
    export = vision.add_parser("export", help="collected frames as a YOLO dataset for labelling", description=(
        "Write the frames collect mode saved (STATE_DIR/vision/collect) as OUT/images, empty OUT/labels and "
        "OUT/classes.txt, which CVAT and Label Studio open as a YOLO dataset."))
    export.add_argument("--out", type=Path, required=True, help="a new (or empty) folder")
    config_cli.add_option(export)
    export.set_defaults(handler=_export)
    importing = vision.add_parser("import", help="read a labelled YOLO dataset back for `edge vision eval`", description=(
        "Read DATASET (classes.txt, images/, labels/) as labelled in a tool and write OUT/labels.csv, OUT/images "
        "and OUT/boxes. Every bad label line is listed by file and line and nothing is written."))
    importing.add_argument("dataset", type=Path)
    importing.add_argument("--out", type=Path, required=True)
    importing.set_defaults(handler=_import)
    replay = vision.add_parser("replay", help="the guard's pipeline on a clip, written back annotated", description=(
        "Run a camera's pipeline (analysis rate, motion gate, its model, confirmation) over a video file and write it "
        "with the region, boxes, scores and states drawn, to check the camera's placement. Holds as a qualified model "
        "would; prints frames, analysed frames, confirmations and the holds it would make. Exit 66 when the clip or "
        "model file is missing, 65 when the model's manifest is wrong, 73 when OUT cannot be written."))
    replay.add_argument("--source", type=Path, required=True, metavar="VIDEO")
    replay.add_argument("--out", type=Path, required=True, metavar="FILE", help="annotated clip, .mp4 or .avi")
    replay.add_argument("--camera", help="which configured camera (default: the only one)")
    replay.add_argument("--model", type=Path, metavar="MANIFEST", help="another detector manifest than the camera's")
    replay.add_argument("--model-file", type=Path, metavar="FILE", help="the model file, when it is not beside the manifest")
    replay.add_argument("--threads", type=int, help="onnxruntime threads (default: the camera's)")
    config_cli.add_option(replay)
    replay.set_defaults(handler=_replay)
    status = vision.add_parser("status", help="whether each camera may hold the car, or only observes, and why")
    config_cli.add_option(status)
    status.set_defaults(handler=_status)


def _group(commands: argparse._SubParsersAction, name: str, **kwargs) -> argparse._SubParsersAction:
    """The ACTION subparsers of command NAME, created here or by another module (`edge vision eval`)."""
    parser = commands.choices.get(name) or commands.add_parser(name, **kwargs)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def _release(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    request = {"op": VisionOp.ELEVATOR_RELEASE, "elevator": args.elevator, "operator": args.operator, "reason": args.reason}

    def done(answer: dict) -> str:
        held = [r["elevator"] or r["camera"] for r in answer.get("released", []) if r.get("was_holding")]
        return f"released by {args.operator}: {', '.join(held)}" if held else "no elevator was held; release journaled"

    return control.command("edge elevator release", config, request, done)


def _review(args: argparse.Namespace) -> int:
    from edge.runtime import control

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    if args.hold is None:
        from edge.vision import review

        waiting = 0
        for camera in config.cameras:
            tally = review.load(config.state_path, camera.name, _report_sha(camera))
            for seq, hold in tally.pending.items():
                waiting += 1
                print(f"hold {seq}: {camera.elevator or camera.name} held ({hold.get('class')}), awaiting review")
            if tally.demoted:
                print(f"{camera.name}: demoted to observe mode: {tally.demoted}")
        if not waiting:
            print("no hold awaits review")
        return 0
    if not args.operator or not (args.confirm or args.deny):
        print("edge elevator review: a review needs --operator and --confirm or --deny SEEN", file=sys.stderr)
        return 2
    request = {"op": VisionOp.ELEVATOR_REVIEW, "elevator": args.elevator, "hold": args.hold, "operator": args.operator, "via": "cli",
               "outcome": "confirm" if args.confirm else "deny", "seen": "ebike" if args.confirm else args.deny}

    def done(answer: dict) -> str:
        tally = answer.get("tally", {})
        said = f"hold {args.hold} {'confirmed' if args.confirm else 'denied'} by {args.operator}: {tally.get('confirmed')} confirmed, {tally.get('denied')} denied"
        return said + (f"; the camera is back in observe mode: {answer['demoted']}" if answer.get("demoted") else "")

    return control.command("edge elevator review", config, request, done)


def _report_sha(camera) -> str | None:
    """The sha256 of the camera's eval report, which the review tally is kept against."""
    from edge.vision.qualification import file_sha256

    report = camera.qualification.report
    try:
        return file_sha256(report) if report is not None else None
    except OSError:
        return None


def _export(args: argparse.Namespace) -> int:
    from edge.vision.collect import DatasetError, export_yolo

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    try:
        exported = export_yolo(config.state_path, args.out)
    except DatasetError as error:
        print(f"edge vision export: {error}", file=sys.stderr)
        return EX_CANTCREAT
    print(f"{exported.images} frames from {', '.join(exported.cameras) or 'no camera'} written to {args.out} (YOLO: images/, labels/, classes.txt)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from edge.vision.collect import DatasetError, import_yolo

    try:
        imported = import_yolo(args.dataset, args.out)
    except DatasetError as error:
        print(error, file=sys.stderr)
        print(f"edge vision import: {args.dataset} has bad labels; nothing was written", file=sys.stderr)
        return EX_DATAERR
    print(f"{imported.labelled} labelled frames written to {imported.labels_csv}"
          + (f"; {imported.unlabelled} images without a label file left out" if imported.unlabelled else ""))
    return 0


def _replay(args: argparse.Namespace) -> int:
    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    cameras = [c for c in config.cameras if args.camera in (None, c.name)]
    if len(cameras) != 1:
        known = ", ".join(c.name for c in config.cameras) or "none"
        which = f"no camera named {args.camera!r}" if args.camera else "name the camera with --camera"
        print(f"edge vision replay: {which}; cameras: {known}", file=sys.stderr)
        return EX_CONFIG
    camera = cameras[0]
    manifest = args.model or camera.model
    if manifest is None:
        print(f"edge vision replay: camera {camera.name} has no model; give --model MANIFEST", file=sys.stderr)
        return EX_CONFIG
    if not args.source.is_file():
        print(f"edge vision replay: no clip {args.source}", file=sys.stderr)
        return EX_NOINPUT
    from edge.vision import manifest as m
    from edge.vision.qualification import verdict
    from edge.vision.replay import ClipUnreadable, ReplayError, replay
    from edge.vision.runtime import load_detector

    try:
        detector = load_detector(manifest, args.threads or camera.threads, model_file=args.model_file)
    except m.ManifestError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EX_NOINPUT if any(p.path == "(file)" for p in error.problems) else EX_DATAERR
    try:
        summary = replay(camera, args.source, args.out, detector)
    except ReplayError as error:
        print(f"edge vision replay: {error}", file=sys.stderr)
        return EX_NOINPUT if isinstance(error, ClipUnreadable) else EX_CANTCREAT
    print(f"{camera.name}: {summary.render()}")
    print(f"written to {args.out}; this camera today: {said(verdict(camera, config.state_path))}")
    return 0


def said(found) -> str:
    """A verdict as the CLI prints it: HOLD and why, or OBSERVE and every reason, one a line."""
    if found.may_hold:
        return f"HOLD: {found.reason}"
    if len(found.reasons) == 1:
        return f"OBSERVE: {found.reasons[0]}"
    return f"OBSERVE, for {len(found.reasons)} reasons:" + "".join(f"\n  - {r}" for r in found.reasons)


def _status(args: argparse.Namespace) -> int:
    from edge.vision.qualification import verdict

    config = config_cli.load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    if not config.cameras:
        print("no camera is configured")
    for camera in config.cameras:
        print(f"{camera.name} ({camera.elevator or 'no elevator'}): {said(verdict(camera, config.state_path))}")
    return 0
