"""`edge models install|fetch|list` and `edge vision eval`: putting a model on a gateway and measuring it.

Nothing of the vision package is imported until a command runs: a gateway without a camera
never loads numpy, OpenCV or onnxruntime (tests/test_daemon.py).

Exit codes (sysexits): 0 ok, 65 EX_DATAERR (a manifest, model file or labels file that is
wrong), 66 EX_NOINPUT (a file that is not there), 77 EX_NOPERM (a licence not accepted),
74 EX_IOERR (the state directory cannot be written), 78 EX_CONFIG (the building config),
69 EX_UNAVAILABLE (a download that failed or stopped: run it again to resume).
"""

from __future__ import annotations

import argparse
import json
import sys
from os import EX_CONFIG, EX_DATAERR, EX_IOERR, EX_NOINPUT, EX_NOPERM, EX_UNAVAILABLE  # sysexits codes
from pathlib import Path


def add_commands(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="install and list detection models", description=(
        "Models live in STATE_DIR/models/NAME/ as a manifest and its weights. The repository ships manifests "
        "(models/*.yaml), never weights: bring the file and install it with its manifest."))
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="check a model file against its manifest and install both", description=(
        "Refuses a file whose sha256 is not the manifest's, and weights whose licence is not a known permissive "
        "one unless it is accepted by name with --accept-licence."))
    install.add_argument("manifest", type=Path, metavar="MANIFEST")
    install.add_argument("--from", dest="source", type=Path, metavar="FILE", help="the model file (default: the manifest's `file` beside it)")
    install.add_argument("--accept-licence", metavar="SPDX", help="accept a non-permissive licence by its SPDX id (e.g. AGPL-3.0)")
    _state_options(install)
    install.set_defaults(handler=_install)
    fetch = actions.add_parser("fetch", help="download a model its manifest names by url, check it and install it", description=(
        "Downloads the manifest's `url:` into STATE_DIR/models/.downloads/ (resuming a download that stopped), checks its "
        "size and sha256 before anything is moved into place, then installs it as `install` does, readable by the "
        "service (group edge, 0640) whoever runs it. NAME is a shipped manifest (edge/shipped/models: yolox_nano, ...) "
        "or a manifest file."))
    fetch.add_argument("manifest", metavar="NAME", help="a shipped manifest's name or a manifest file")
    fetch.add_argument("--accept-licence", metavar="SPDX", help="accept a non-permissive licence by its SPDX id (e.g. AGPL-3.0)")
    _state_options(fetch)
    fetch.set_defaults(handler=_fetch)
    listing = actions.add_parser("list", help="list installed models and check their files")
    _state_options(listing)
    listing.set_defaults(handler=_list)

    vision = _group(commands, "vision", help="elevator camera tools: evaluate a model on labelled frames",
                    description="Tools for the elevator e-bike guard.")
    evaluate = vision.add_parser("eval", help="recall and false-hold rates of a model on labelled frames", description=(
        "Runs the model on every frame of a labels CSV (file, ebike, bicycle, ..., group; 1 present, 0 absent) and prints "
        "e-bike recall, false holds by what is in the frame, recall per class and the confusion table, each rate with "
        "its 95% Wilson interval: a rate is only as good as the number of frames behind it."))
    evaluate.add_argument("--model", type=Path, required=True, metavar="MANIFEST", help="detector manifest (its file beside it, or --model-file)")
    evaluate.add_argument("--model-file", type=Path, metavar="FILE", help="the model file, when it is not beside the manifest")
    evaluate.add_argument("--images", type=Path, required=True, metavar="DIR")
    evaluate.add_argument("--labels", type=Path, required=True, metavar="CSV")
    evaluate.add_argument("--hold-class", action="append", default=[], metavar="CLASS",
                          help="a class whose detection holds the elevator (repeatable; default ebike)")
    evaluate.add_argument("--threads", type=_positive, default=1, help="onnxruntime intra-op threads (default 1)")
    evaluate.add_argument("--json", action="store_true", help=(
        "print the figures as one JSON object, with the manifest's sha256: the report a camera's qualification names"))
    evaluate.set_defaults(handler=_eval)
    training = vision.add_parser("train", help="fit a crop-level e-bike head on the site's labelled frames", description=(
        "Fit a head on the frozen base detector's features of each candidate box (RoI-pooled feature maps, the box's "
        "geometry and the detector's class scores), on the site's labelled frames plus any base set in the same labels "
        "CSV. Its threshold is chosen by grouped cross-validation on the training side only; the site group's latest "
        "frames (--test-fraction, by file name) are held out and the eval report is made on them alone. Writes "
        "OUT/NAME.onnx, NAME.head.npz, NAME.yaml (the manifest: sha256s, the base it needs, the data it saw) and "
        "NAME.eval.json (the report a camera's qualification names). YOLOX bases only; needs the onnx package."))
    training.add_argument("--base", type=Path, required=True, metavar="MANIFEST", help="the base detector's manifest (YOLOX)")
    training.add_argument("--model-file", type=Path, metavar="FILE", help="the base model file, when it is not beside the manifest")
    training.add_argument("--images", type=Path, required=True, metavar="DIR")
    training.add_argument("--labels", type=Path, required=True, metavar="CSV")
    training.add_argument("--boxes", type=Path, metavar="DIR", help="YOLO box files per image (class 0 e-bike); default DIR/../boxes")
    training.add_argument("--site-group", metavar="GROUP", help="the labels' group of this site's frames (default: every frame is the site's)")
    training.add_argument("--test-fraction", type=float, default=0.4, help="the site's latest frames held out for the report (default 0.4)")
    training.add_argument("--features", metavar="NAMES", help="comma-separated feature map tensors, one per stride (known for yolox_nano)")
    training.add_argument("--out", type=Path, required=True, metavar="DIR")
    training.add_argument("--name", default="site-ebike", help="the trained model's name (default site-ebike)")
    training.add_argument("--threads", type=_positive, default=1, help="onnxruntime intra-op threads (default 1)")
    training.set_defaults(handler=_train)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _group(commands: argparse._SubParsersAction, name: str, **kwargs) -> argparse._SubParsersAction:
    """The ACTION subparsers of command NAME, created here or by another module (the camera's `vision` tools)."""
    parser = commands.choices.get(name) or commands.add_parser(name, **kwargs)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def _state_options(parser: argparse.ArgumentParser) -> None:
    from edge.config.building import DEFAULT_CONFIG

    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG, help=f"building config, for its state_dir (default {DEFAULT_CONFIG})")
    parser.add_argument("--state-dir", type=Path, help="the state directory (instead of the config's)")


def _state_dir(args: argparse.Namespace) -> Path | None:
    if args.state_dir is not None:
        return args.state_dir
    from edge.config import building as building_config

    try:
        return building_config.load(args.config).state_path
    except building_config.ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{args.config}: {len(error.problems)} problem(s); give --state-dir or fix the config", file=sys.stderr)
        return None


def _print_problems(error) -> None:
    for problem in error.problems:
        print(problem, file=sys.stderr)


def _install(args: argparse.Namespace) -> int:
    from edge.vision import install
    from edge.vision import manifest as m

    state_dir = _state_dir(args)
    if state_dir is None:
        return EX_CONFIG
    try:
        if args.source is None and not _beside(args.manifest).is_file() and _names_url(args.manifest):
            done = install.fetch(args.manifest, state_dir, args.accept_licence, install.progress_line(args.manifest.name))
        else:
            done = install.install(args.manifest, state_dir, args.source, args.accept_licence)
    except m.ManifestError as error:
        _print_problems(error)
        print(f"edge models install: {args.manifest}: not installed", file=sys.stderr)
        return EX_NOINPUT if any(p.path == "(file)" for p in error.problems) else EX_DATAERR
    except install.InstallError as error:
        print(f"edge models install: {error}; nothing was installed", file=sys.stderr)
        return EX_NOPERM if isinstance(error, install.LicenceNotAccepted) else EX_NOINPUT
    except OSError as error:
        print(f"edge models install: cannot write {install.models_dir(state_dir)}: {error}", file=sys.stderr)
        return EX_IOERR
    print(f"installed {done.name} ({done.licence}): {done.model}")
    return 0


def _beside(manifest_path: Path) -> Path:
    """Where `install` looks for the model file without --from: the manifest's `file` beside it."""
    from edge.vision import manifest as m

    try:
        return Path(manifest_path).parent / m.load(manifest_path).file
    except m.ManifestError:
        return Path(manifest_path)  # install reports the manifest's problems


def _names_url(manifest_path: Path) -> bool:
    from edge.vision import manifest as m

    try:
        return m.load(manifest_path).url is not None
    except m.ManifestError:
        return False


def shipped_manifest(name: str) -> Path:
    """A manifest file given by path, or by the name of one the package ships (models/NAME.yaml)."""
    given = Path(name)
    if given.suffix in (".yaml", ".yml") or given.exists():
        return given
    from edge import shipped

    return Path(str(shipped.file("models", f"{name}.yaml")))


def _fetch(args: argparse.Namespace) -> int:
    from edge.vision import install
    from edge.vision import manifest as m

    manifest_path = shipped_manifest(args.manifest)
    if not manifest_path.is_file():
        print(f"edge models fetch: no manifest {args.manifest!r} (a file, or one of the shipped: "
              f"{', '.join(sorted(p.stem for p in shipped_manifest('x').parent.glob('*.yaml')))})", file=sys.stderr)
        return EX_NOINPUT
    state_dir = _state_dir(args)
    if state_dir is None:
        return EX_CONFIG
    try:
        done = install.fetch(manifest_path, state_dir, args.accept_licence, install.progress_line(manifest_path.stem))
    except m.ManifestError as error:
        _print_problems(error)
        print(f"edge models fetch: {manifest_path}: not installed (the download was deleted)", file=sys.stderr)
        return EX_DATAERR
    except install.InstallError as error:
        print(f"edge models fetch: {error}; nothing was installed", file=sys.stderr)
        return EX_NOPERM if isinstance(error, install.LicenceNotAccepted) else EX_UNAVAILABLE
    except OSError as error:
        print(f"edge models fetch: cannot write {install.models_dir(state_dir)}: {error}", file=sys.stderr)
        return EX_IOERR
    print(f"installed {done.name} ({done.licence}): {done.model}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from edge.vision import install
    from edge.vision import manifest as m

    state_dir = _state_dir(args)
    if state_dir is None:
        return EX_CONFIG
    found = install.installed(state_dir)
    if not found:
        print(f"(no models installed in {install.models_dir(state_dir)})")
    status = 0
    for path in found:
        try:
            manifest = m.load(path)
            m.verify_file(manifest, path.parent / manifest.file, str(path))
        except m.ManifestError as error:
            print(f"{path.parent.name:<24} BROKEN  {error.problems[0].message}")
            status = EX_DATAERR
            continue
        print(f"{manifest.name:<24} {manifest.kind:<10} {manifest.licence}")
    return status


def _eval(args: argparse.Namespace) -> int:
    from edge.vision import evaluation
    from edge.vision import manifest as m
    from edge.vision.detection import VisionClass

    try:
        hold = tuple(VisionClass(c) for c in args.hold_class) or (VisionClass.EBIKE,)
    except ValueError as error:
        print(f"edge vision eval: {error}; classes are {', '.join(VisionClass)}", file=sys.stderr)
        return 2
    if not args.images.is_dir():
        print(f"edge vision eval: no images folder {args.images}", file=sys.stderr)
        return EX_NOINPUT
    try:
        frames = evaluation.read_labels(args.labels)
    except evaluation.LabelsError as error:
        print(f"edge vision eval: {error}", file=sys.stderr)
        return EX_DATAERR
    missing = [f for f in frames if not evaluation.resolve(args.images, f.file).is_file()]
    if missing:
        for frame in missing[:10]:
            print(f"{args.labels}:{frame.line}: no image {frame.file} in {args.images}", file=sys.stderr)
        print(f"edge vision eval: {len(missing)} labelled frame(s) have no image; nothing was evaluated", file=sys.stderr)
        return EX_NOINPUT
    from edge.vision.runtime import load_detector

    try:
        detector = load_detector(args.model, args.threads, model_file=args.model_file)
    except m.ManifestError as error:
        _print_problems(error)
        return EX_DATAERR
    from edge.vision.qualification import blind_classes

    blind = blind_classes(args.model, hold)
    try:
        report = evaluation.evaluate(detector.detect, frames, args.images, hold)
    except evaluation.LabelsError as error:
        print(f"edge vision eval: {args.labels}: {error}", file=sys.stderr)
        return EX_DATAERR
    report.cannot_output = tuple(blind)
    if blind:
        print(f"edge vision eval: {args.model} cannot output {', '.join(blind)} (not in its class map); "
              f"this report cannot qualify a camera that holds for it", file=sys.stderr)
    if args.json:
        # manifest_sha256 ties the figures to the manifest measured (and so to its weights): qualification reads it
        print(json.dumps({"model": str(args.model), "manifest_sha256": m.sha256_of(args.model), **report.as_dict()}, ensure_ascii=False))
    else:
        print(f"model {args.model}, labels {args.labels}")
        print(report.render())
    return 0


def _train(args: argparse.Namespace) -> int:
    from edge.vision import evaluation
    from edge.vision import manifest as m
    from edge.vision.train import TrainError, train

    if not 0 < args.test_fraction < 1:
        print("edge vision train: --test-fraction is between 0 and 1", file=sys.stderr)
        return 2
    if not args.images.is_dir():
        print(f"edge vision train: no images folder {args.images}", file=sys.stderr)
        return EX_NOINPUT
    boxes = args.boxes or (args.labels.parent / "boxes")
    try:
        manifest, report = train(args.base, args.model_file, args.labels, args.images, boxes if boxes.is_dir() else None, args.out,
                                 args.name, args.site_group, args.test_fraction,
                                 tuple(args.features.split(",")) if args.features else None, args.threads)
    except m.ManifestError as error:
        _print_problems(error)
        return EX_DATAERR
    except (TrainError, evaluation.LabelsError) as error:
        print(f"edge vision train: {error}", file=sys.stderr)
        return EX_DATAERR
    except OSError as error:
        print(f"edge vision train: cannot write {args.out}: {error}", file=sys.stderr)
        return EX_IOERR
    recall, false = evaluation.Rate(report["ebike_recall"]["k"], report["ebike_recall"]["n"]), \
        evaluation.Rate(report["false_hold_rate"]["k"], report["false_hold_rate"]["n"])
    print(f"trained {manifest} in {report['train_s']} s of CPU on {report['split']['train_frames']} frames")
    print(f"held-out site frames ({report['split']['test_frames']}, from {report['split']['held_out_from']}):")
    print(f"  e-bike recall {recall}\n  false holds   {false}")
    print(f"report: {args.out / (args.name + '.eval.json')} (name it as the camera's qualification.report once it is installed)")
    return 0
