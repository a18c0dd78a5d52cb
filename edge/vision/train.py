"""`edge vision train`: a site's crop-level head, fitted on the gateway's CPU in minutes.

The base detector stays frozen; what is trained is the head of edge/vision/crops.py on each
candidate box of the labelled frames (the site's own and any base set given with them). A box is
an e-bike when it overlaps a labelled e-bike box (IoU >= 0.3, from the YOLO `boxes/` folder
`edge vision import` writes); a frame labelled e-bike without boxes trains nothing but is scored.

Never tuned to what is scored: the hold threshold is chosen by grouped cross-validation on the
training side only (frames of one group never on both sides of a fold), as the highest frame score
that still keeps 95 % of the training e-bike frames; the site's latest frames (`--test-fraction` of
its group, by file name: by time for timestamped names) are held out of everything and the eval
report is made on them alone, by the very files the gateway will load. Qualification then decides.

Writes, in OUT: NAME.onnx (the base graph with its class-branch feature maps as extra outputs),
NAME.head.npz, NAME.yaml (the detector manifest: both sha256s, the base it needs, the data it saw)
and NAME.eval.json (the held-out report, as `edge vision eval --json` writes it). Needs the `onnx`
package to expose the feature maps (the vision_bench extra).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.vision import crops, evaluation
from edge.vision.detection import VisionClass

# The class-branch feature maps (before the class convolution) of the exports we know, by the base file's sha256.
KNOWN_FEATURES = {
    "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14": ("1044", "1086", "1128"),  # YOLOX-Nano COCO
}
MATCH_IOU = 0.3
TARGET_RECALL = 0.95
FOLDS = 5
HEAD_C = 0.1  # fixed in advance, as the image-level bench head's


class TrainError(Exception):
    """Training cannot start or finish; says why."""


@dataclass
class Sample:
    """One labelled frame: its candidate boxes' features, and which are e-bikes (None: no boxes labelled)."""

    file: str
    group: str
    present: frozenset[VisionClass]
    x: np.ndarray
    y: np.ndarray | None
    line: int = 0

    @property
    def ebike(self) -> bool:
        return VisionClass.EBIKE in self.present


@dataclass
class Result:
    head: crops.Head
    samples: list[Sample]
    train: list[int]
    test: list[int]
    thresholds: list[float] = field(default_factory=list)
    train_s: float = 0.0


def expose(model_file: Path, names: tuple[str, ...]) -> bytes:
    """The model's graph with `names` added as outputs after its own (needs the onnx package)."""
    try:
        import onnx
    except ImportError:
        raise TrainError("training needs the onnx package to expose the detector's feature maps: "
                         "pip install 'building-edge[vision_bench]'") from None
    graph = onnx.load(str(model_file))
    known = {o.name for o in graph.graph.output}
    nodes = {out for node in graph.graph.node for out in node.output}
    missing = [n for n in names if n not in nodes]
    if missing:
        raise TrainError(f"{model_file} has no tensors {missing}: give the feature map names with --features")
    for name in names:
        if name not in known:
            graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return graph.SerializeToString()


def ebike_boxes(boxes_dir: Path | None, file: str, width: int, height: int) -> list[tuple[float, float, float, float]] | None:
    """The labelled e-bike boxes of a frame in frame pixels (YOLO class 0, or ebike's line in the folder's
    classes.txt); None when it has no box file."""
    if boxes_dir is None:
        return None
    path = boxes_dir / (Path(file).stem + ".txt")
    if not path.is_file():
        return None
    names = boxes_dir / "classes.txt"  # `edge vision import` keeps the labelling tool's class order here
    ebike = "0"
    if names.is_file():
        listed = [n.strip() for n in names.read_text().splitlines() if n.strip()]
        ebike = str(listed.index("ebike")) if "ebike" in listed else "-"
    found = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == ebike:
            xc, yc, w, h = (float(v) for v in parts[1:])
            found.append(((xc - w / 2) * width, (yc - h / 2) * height, (xc + w / 2) * width, (yc + h / 2) * height))
    return found


def extract(manifest, model_bytes: bytes, features: tuple[str, ...], frames: list[evaluation.LabelledFrame], images: Path,
            boxes_dir: Path | None, threads: int = 1) -> list[Sample]:
    """Every frame's candidate boxes through the frozen model, their features and their labels."""
    import cv2
    import onnxruntime as ort

    from edge.vision.confirm import iou
    from edge.vision.runtime import preprocess

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    spec, strides = manifest.input, tuple(manifest.output.strides)
    samples = []
    for frame in frames:
        image = cv2.imread(str(evaluation.resolve(images, frame.file)))
        if image is None:
            raise TrainError(f"line {frame.line}: cannot read image {frame.file} in {images}")
        h, w = image.shape[:2]
        tensor, placement = preprocess(image, spec)
        outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: tensor})))
        candidates = crops.yolox_candidates(outputs[names[0]], strides, spec.width, spec.height)
        maps = [outputs[n] for n in features]
        x = (np.stack([crops.box_features(c, maps, strides, spec.width, spec.height) for c in candidates])
             if candidates else np.zeros((0, 0), np.float32))
        truth = ebike_boxes(boxes_dir, frame.file, w, h)
        y = None
        if VisionClass.EBIKE not in frame.present:
            y = np.zeros(len(candidates), int)
        elif truth is not None:
            framed = placement.to_frame(np.array([c.box for c in candidates], np.float32).reshape(-1, 4), w, h)
            y = np.array([int(any(iou(tuple(b), t) >= MATCH_IOU for t in truth)) for b in framed], int)
        samples.append(Sample(frame.file, frame.group, frame.present, x, y, frame.line))
    return samples


def group_folds(groups: list[str], k: int) -> list[tuple[list[int], list[int]]]:
    """k folds that never split a group: the largest groups first, each into the smallest fold."""
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    k = max(2, min(k, len(members)))
    folds: list[list[int]] = [[] for _ in range(k)]
    for g in sorted(members, key=lambda g: (-len(members[g]), g)):
        min(folds, key=len).extend(members[g])
    every = set(range(len(groups)))
    return [(sorted(every - set(f)), sorted(f)) for f in folds if f]


def _boxes(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    xs = [s.x for s in samples if s.y is not None and len(s.y)]
    ys = [s.y for s in samples if s.y is not None and len(s.y)]
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, int)
    return np.concatenate(xs), np.concatenate(ys)


def frame_scores(head: crops.Head, samples: list[Sample]) -> np.ndarray:
    """Each frame's best box probability (0 for a frame with no candidate): a frame holds at or above the threshold."""
    return np.array([float(head.probability(s.x).max()) if len(s.x) else 0.0 for s in samples])


def fit_with_threshold(samples: list[Sample], folds: int = FOLDS, target_recall: float = TARGET_RECALL,
                       c: float = HEAD_C) -> crops.Head:
    """A head fitted on every box of `samples`, its threshold chosen by an inner grouped CV on them alone."""
    x, y = _boxes(samples)
    if len(set(y.tolist())) < 2:
        raise TrainError("the training frames need boxes of both kinds: e-bikes (labelled boxes) and other candidates")
    scores = np.full(len(samples), np.nan)
    for train, held in group_folds([s.group for s in samples], folds):
        tx, ty = _boxes([samples[i] for i in train])
        if len(set(ty.tolist())) == 2:
            scores[held] = frame_scores(crops.fit(tx, ty, c), [samples[i] for i in held])
    # e-bike frames the base proposes no box for are missed whatever the threshold: the recall target is
    # kept on the ones the head can judge, or a few unreachable frames would drive the threshold to 0
    reachable = np.array([s.ebike and len(s.x) > 0 for s in samples])
    positives = np.sort(scores[reachable & ~np.isnan(scores)])
    keep = int(math.floor((1 - target_recall) * len(positives)))
    head = crops.fit(x, y, c)
    head.threshold = float(min(1.0, max(1e-6, positives[keep]))) if len(positives) else 0.5
    return head


def time_split(frames: list[evaluation.LabelledFrame], site_group: str | None, test_fraction: float) -> tuple[list[int], list[int]]:
    """(train, test): the site group's latest frames (by file name) are the test side; every other frame trains."""
    site = sorted((i for i, f in enumerate(frames) if site_group is None or f.group == site_group), key=lambda i: frames[i].file)
    if not site:
        raise TrainError(f"no labelled frame is in the site group {site_group!r}")
    cut = int(round((1 - test_fraction) * len(site)))
    test = set(site[cut:])
    return [i for i in range(len(frames)) if i not in test], sorted(test)


def train(base_manifest: Path, model_file: Path | None, labels: Path, images: Path, boxes_dir: Path | None, out: Path,
          name: str, site_group: str | None, test_fraction: float = 0.4, features: tuple[str, ...] | None = None,
          threads: int = 1, hold_classes: tuple[VisionClass, ...] = (VisionClass.EBIKE,)) -> tuple[Path, dict]:
    """Fit, write NAME.onnx, NAME.head.npz, NAME.yaml, NAME.eval.json in `out`; (the manifest, the report)."""
    from edge.vision import manifest as m

    started = time.process_time()
    base = m.load(base_manifest)
    if not isinstance(base, m.DetectorManifest) or not isinstance(base.output, m.Yolox):
        raise TrainError(f"{base_manifest}: a crop head is trained on a YOLOX detector's features (output.family yolox)")
    model_file = Path(model_file or Path(base_manifest).parent / base.file)
    m.verify_file(base, model_file, str(base_manifest))
    features = tuple(features or KNOWN_FEATURES.get(base.sha256, ()))
    if not features:
        raise TrainError(f"the feature maps of {base.name} are not known: name them with --features (one per stride)")
    frames = evaluation.read_labels(labels)
    train_side, test_side = time_split(frames, site_group, test_fraction)
    graph = expose(model_file, features)
    samples = extract(base, graph, features, frames, images, boxes_dir, threads)
    training = [samples[i] for i in train_side]
    head = fit_with_threshold(training)
    train_s = time.process_time() - started

    out.mkdir(parents=True, exist_ok=True)
    model_out, head_out, manifest_out = out / f"{name}.onnx", out / f"{name}.head.npz", out / f"{name}.yaml"
    model_out.write_bytes(graph)
    head.save(head_out, base=base.name, features=",".join(features))
    import yaml

    document = yaml.safe_load(Path(base_manifest).read_text())
    document = {k: v for k, v in document.items() if k not in ("url", "size", "second_stage", "head", "trained")}
    x, _ = _boxes(training)
    document |= {
        "name": name, "file": model_out.name, "sha256": m.sha256_of(model_out),
        "source": f"edge vision train: {base.name} with a crop head fitted on {len(training)} labelled frames",
        "head": {"file": head_out.name, "sha256": m.sha256_of(head_out), "features": list(features),
                 "threshold": round(head.threshold, 6), "holds_as": "ebike"},
        "trained": {"base": base.name, "base_sha256": base.sha256, "frames": len(training),
                    "ebike_frames": sum(s.ebike for s in training), "boxes": int(len(x)),
                    "groups": len({s.group for s in training}), "labels_sha256": hashlib.sha256(labels.read_bytes()).hexdigest(),
                    "site_group": site_group, "held_out": len(test_side), "train_s": round(train_s, 1)},
    }
    document["classes"] = {int(k): str(v) for k, v in dict(document["classes"]).items()}
    manifest_out.write_text("# written by edge vision train; the head file and the model file beside it\n"
                            + yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    m.load(manifest_out)  # what was written must load

    from edge.vision.qualification import blind_classes
    from edge.vision.runtime import load_detector

    detector = load_detector(manifest_out, threads)
    held = [frames[i] for i in test_side]
    report = evaluation.evaluate(detector.detect, held, images, hold_classes)
    report.cannot_output = tuple(blind_classes(manifest_out, hold_classes))
    body = {"model": str(manifest_out), "manifest_sha256": m.sha256_of(manifest_out), **report.as_dict(),
            "split": {"site_group": site_group, "held_out_from": Path(frames[test_side[0]].file).stem if test_side else None,
                      "train_frames": len(training), "test_frames": len(test_side)},
            "train_s": round(train_s, 1)}
    (out / f"{name}.eval.json").write_text(json.dumps(body, ensure_ascii=False, indent=1))
    return manifest_out, body
