"""What the base model (plus a small head) honestly reaches on the labelled frames we have.

Two questions, answered without ever tuning to the frames that are scored:

- **Grouped cross-validation** over every labelled frame: frames of one clip or camera (the
  labels' `group`) never sit on both sides of a fold, so a head cannot pass by recognising the
  car instead of the e-bike.
- **Leave one source out** (detail only): a whole source (one repository: mostly one building or
  one kind of photo) is held out at a time, the stricter test of a building never seen.
- **Time split within one car** (batch 5, car 89): train on the car's earlier frames (plus all
  other data), test on its later ones, as a site that collected its own frames would.

Two detectors are scored, image by image (a frame "holds" when the detector says e-bike):

- `base`: YOLOX-Nano COCO with its motorcycle and bicycle classes standing in for e-bike, at
  the manifest's own score threshold (nothing is fitted).
- `head`: a logistic regression on YOLOX-Nano's frozen, pooled classification-branch features
  (mean and max of each channel on each of the three levels, plus the maximum score of each
  COCO class). Its regularisation is fixed in advance; its threshold is chosen on the training
  side only, by an inner grouped cross-validation, as the highest score that still keeps 95 %
  of the training e-bikes (the product's recall target).

- `crop`: the crop-level head `edge vision train` fits (edge/vision/crops.py): a logistic
  regression (the same C) on each candidate box's RoI-pooled class-branch features, its geometry and
  its COCO scores; a frame holds when its best box reaches the threshold, chosen the same way on
  the training side only. Scored on the very same outer splits as `head` (`crop_vs_image`), and
  `train_s` is the CPU time of `edge vision train`'s extraction and fit on 300 frames.

Every rate comes with its 95 % Wilson interval. Needs scikit-learn and onnx (the `bench`
extra); the data folder is read in place (EDGE_SHARED_DATA, default ../shared/data).
Run alone: python -m edge.hil.bench.vision_quality; `python -m edge.hil.bench.vision` adds these keys to
the camera pipeline's.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.vision import evaluation
from edge.vision.detection import VisionClass

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
SITE_GROUP = "x112_car89"
SITE_TRAIN_FRACTION = 0.6  # fixed before looking at any result
TARGET_RECALL = 0.95
FOLDS = 5
HEAD_C = 0.1  # logistic regression's inverse regularisation, fixed in advance
CLASS_FEATURES = ("1044", "1086", "1128")  # YOLOX-Nano's class-branch features before the class conv, strides 8/16/32
COCO_BICYCLE, COCO_MOTORCYCLE = 1, 3


@dataclass(frozen=True, slots=True)
class Frame:
    file: str
    ebike: bool
    present: frozenset[VisionClass]
    group: str
    in_elevator: bool


def frames(data: Path) -> list[Frame]:
    """Labelled frames; a kick scooter (box class 7) is added to what the frame shows."""
    import csv

    with open(data / "labels.csv", newline="", encoding="utf-8") as handle:
        elevator = {row["file"]: row.get("in_elevator") == "1" for row in csv.DictReader(handle)}
    found = []
    for row in evaluation.read_labels(data / "labels.csv"):
        present = set(row.present)
        boxes = data / "boxes" / (Path(row.file).stem + ".txt")
        if boxes.exists() and any(line.split()[:1] == ["7"] for line in boxes.read_text().splitlines()):
            present.add(VisionClass.KICK_SCOOTER)
        found.append(Frame(row.file, VisionClass.EBIKE in present, frozenset(present), row.group, elevator.get(row.file, False)))
    return found


def source_of(file: str) -> str:
    """The source prefix of a frame's name (x112, etoiles, rash, ...), as SOURCES.md lists them."""
    return Path(file).name.split("_")[0]


def feature_session(model: Path, threads: int = 1):
    """YOLOX-Nano with its class-branch features exposed as extra outputs."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(model))
    known = {o.name for o in graph.graph.output}
    for name in CLASS_FEATURES:
        if name not in known:
            graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def features(session, manifest, image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Pooled features of one frame, and the base model's best motorcycle and bicycle scores."""
    from edge.vision.runtime import preprocess

    tensor, _ = preprocess(image, manifest.input)
    outputs = session.run(["output", *CLASS_FEATURES], {session.get_inputs()[0].name: tensor})
    rows = outputs[0][0]
    class_scores = (rows[:, 5:] * rows[:, 4:5]).max(axis=0)
    pooled = [np.concatenate([f[0].mean(axis=(1, 2)), f[0].max(axis=(1, 2))]) for f in outputs[1:]]
    return np.concatenate([*pooled, class_scores]).astype(np.float32), float(class_scores[COCO_MOTORCYCLE]), float(class_scores[COCO_BICYCLE])


def head():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, class_weight="balanced", max_iter=5000))


def _folds(groups: np.ndarray, n: int):
    from sklearn.model_selection import GroupKFold

    return GroupKFold(n_splits=min(n, len(set(groups)))).split(np.zeros(len(groups)), groups=groups)


def fit_with_threshold(x: np.ndarray, y: np.ndarray, groups: np.ndarray):
    """A head fitted on all of x, and the threshold an inner grouped CV on x picks for 95 % recall.

    When every training e-bike is in one group, no inner fold can score them and the threshold is 0.5.
    """
    scores = np.full(len(y), np.nan)
    for train, held in _folds(groups, FOLDS):
        if len(set(y[train])) == 2:  # a fold whose training side lacks e-bikes cannot score its held frames
            scores[held] = head().fit(x[train], y[train]).predict_proba(x[held])[:, 1]
    positives = np.sort(scores[(y == 1) & ~np.isnan(scores)])
    keep = int(np.floor((1 - TARGET_RECALL) * len(positives)))
    threshold = float(positives[keep]) if len(positives) else 0.5
    return head().fit(x, y), threshold


def rates(holds: np.ndarray, items: list[Frame]) -> dict:
    """Recall, false holds overall and by what a negative frame shows, with Wilson intervals."""
    ebike = np.array([f.ebike for f in items])
    out = {
        "ebike_recall": evaluation.Rate(int(holds[ebike].sum()), int(ebike.sum())).as_dict(),
        "false_hold_rate": evaluation.Rate(int(holds[~ebike].sum()), int((~ebike).sum())).as_dict(),
        "false_hold_by_class": {},
    }
    for cls in (VisionClass.WHEELCHAIR, VisionClass.STROLLER, VisionClass.BICYCLE, VisionClass.KICK_SCOOTER, VisionClass.MOTORCYCLE):
        mask = np.array([not f.ebike and cls in f.present for f in items])
        if mask.any():
            out["false_hold_by_class"][str(cls)] = evaluation.Rate(int(holds[mask].sum()), int(mask.sum())).as_dict()
    mask = np.array([not f.ebike and f.in_elevator for f in items])
    if mask.any():  # a head that fires here has learned "elevator", not "e-bike"
        out["false_hold_in_elevator"] = evaluation.Rate(int(holds[mask].sum()), int(mask.sum())).as_dict()
    return out


def quality(data: Path | None = None, model: Path | None = None, threads: int = 1) -> dict:
    """The issue's quality keys (`ebike_recall`, `false_alarm_rate`, `site_*`) plus the detail behind them."""
    import cv2

    from edge.vision import manifest as m

    data = Path(data or SHARED / "ebike")
    model = Path(model or SHARED / "models" / "yolox_nano.onnx")
    base_manifest = m.load(REPO / "models" / "yolox_nano.yaml")
    m.verify_file(base_manifest, model)
    items = frames(data)
    session = feature_session(model, threads)
    x, moto, bike = [], [], []
    for frame in items:
        image = cv2.imread(str(evaluation.resolve(data / "images", frame.file)))
        if image is None:
            raise FileNotFoundError(f"cannot read {frame.file} in {data / 'images'}")
        f, mo, bi = features(session, base_manifest, image)
        x.append(f), moto.append(mo), bike.append(bi)
    x, moto, bike = np.stack(x), np.array(moto), np.array(bike)
    y = np.array([f.ebike for f in items], int)
    groups = np.array([f.group for f in items])
    base_threshold = base_manifest.thresholds.score
    base_holds = np.maximum(moto, bike) >= base_threshold

    # grouped cross-validation: every frame is scored by a head that never saw its group
    holds = np.zeros(len(y), bool)
    thresholds = []
    for train, test in _folds(groups, FOLDS):
        fitted, threshold = fit_with_threshold(x[train], y[train], groups[train])
        holds[test] = fitted.predict_proba(x[test])[:, 1] >= threshold
        thresholds.append(round(threshold, 4))

    # leave one source out: a source (a repository, mostly one building or one kind of photo) is never on both sides
    sources = np.array([source_of(f.file) for f in items])
    source_holds = np.zeros(len(y), bool)
    for held_source in sorted(set(sources)):
        test = np.flatnonzero(sources == held_source)
        train = np.flatnonzero(sources != held_source)
        fitted, threshold = fit_with_threshold(x[train], y[train], groups[train])
        source_holds[test] = fitted.predict_proba(x[test])[:, 1] >= threshold

    # time split within one car: earlier frames of the car (and all other data) train, later ones test
    site = sorted((i for i, f in enumerate(items) if f.group == SITE_GROUP), key=lambda i: items[i].file)
    cut = int(round(SITE_TRAIN_FRACTION * len(site)))
    site_test = np.array(site[cut:], int)
    train = np.array([i for i in range(len(items)) if i not in set(site_test)], int)
    # the site's earlier frames are one group, so the inner CV cannot learn the car from them
    fitted, site_threshold = fit_with_threshold(x[train], y[train], groups[train])
    site_holds = fitted.predict_proba(x[site_test])[:, 1] >= site_threshold
    site_items = [items[i] for i in site_test]

    grouped, site_rates = rates(holds, items), rates(site_holds, site_items)
    crop = crop_comparison(data, model, items, list(_folds(groups, FOLDS)), sources, site_test, threads)
    crop["image_level"] = {"grouped_cv": grouped, "leave_one_source_out": rates(source_holds, items), "site_time_split": site_rates}
    return {
        "train_s": crop.pop("train_s"),
        "crop_vs_image": crop,
        "ebike_recall": grouped["ebike_recall"]["rate"],
        "false_alarm_rate": grouped["false_hold_rate"]["rate"],
        "site_ebike_recall": site_rates["ebike_recall"]["rate"],
        "site_false_alarm_rate": site_rates["false_hold_rate"]["rate"],
        "quality": {
            "frames": len(items),
            "ebike_frames": int(y.sum()),
            "groups": len(set(groups)),
            "method": f"logistic head (C={HEAD_C}) on pooled frozen YOLOX-Nano class features; threshold by inner grouped {FOLDS}-fold CV for {TARGET_RECALL} training recall",
            "grouped_cv": {**grouped, "folds": FOLDS, "thresholds": thresholds},
            "leave_one_source_out": {**rates(source_holds, items), "sources": sorted(set(sources))},
            "site_time_split": {**site_rates, "group": SITE_GROUP, "train_frames_of_site": cut,
                                "test_from": Path(items[site[cut]].file).stem if cut < len(site) else None, "threshold": round(site_threshold, 4)},
            "base_detector": {"rule": f"COCO motorcycle or bicycle score >= {base_threshold} (manifest threshold, not fitted)",
                              **rates(base_holds, items),
                              "site_later_frames": rates(base_holds[site_test], site_items)},
        },
    }


def crop_comparison(data: Path, model: Path, items: list[Frame], folds: list, sources: np.ndarray, site_test: np.ndarray,
                    threads: int = 1) -> dict:
    """The crop-level head on the image-level head's own splits (grouped CV, leave one source out, car 89's
    time split), and the CPU time `edge vision train` takes to extract and fit 300 frames."""
    import time

    from edge.vision import manifest as m
    from edge.vision import train

    base = m.load(REPO / "models" / "yolox_nano.yaml")
    features = train.KNOWN_FEATURES[base.sha256]
    graph = train.expose(model, features)
    labelled = evaluation.read_labels(data / "labels.csv")
    by_file = {f.file: f for f in labelled}
    frames_in_order = [by_file[f.file] for f in items]
    started = time.process_time()
    timed = (frames_in_order * 2)[:300]  # 300 frames, as a site's first labelling round
    train.fit_with_threshold(train.extract(base, graph, features, timed, data / "images", data / "boxes", threads))
    train_s = time.process_time() - started
    samples = train.extract(base, graph, features, frames_in_order, data / "images", data / "boxes", threads)

    def judged(train_side, test_side) -> np.ndarray:
        head = train.fit_with_threshold([samples[i] for i in train_side])
        return train.frame_scores(head, [samples[i] for i in test_side]) >= head.threshold

    grouped = np.zeros(len(items), bool)
    for train_side, test_side in folds:
        grouped[test_side] = judged(train_side, test_side)
    by_source = np.zeros(len(items), bool)
    for held in sorted(set(sources)):
        test_side = np.flatnonzero(sources == held)
        if any(samples[i].ebike for i in np.flatnonzero(sources != held)):
            by_source[test_side] = judged(np.flatnonzero(sources != held), test_side)
    site_train = np.array([i for i in range(len(items)) if i not in set(site_test)], int)
    site_holds = judged(site_train, site_test)
    reachable = np.array([s.ebike and len(s.x) > 0 for s in samples])
    return {
        "train_s": round(train_s, 1),
        "crop_level": {"grouped_cv": rates(grouped, items), "leave_one_source_out": rates(by_source, items),
                       "site_time_split": rates(site_holds, [items[i] for i in site_test]),
                       "ebike_frames_with_a_candidate": evaluation.Rate(int(reachable.sum()), int(sum(s.ebike for s in samples))).as_dict(),
                       "candidates": {"classes": "COCO bicycle, motorcycle", "floor": train.crops.CANDIDATE_FLOOR,
                                      "per_frame_max": train.crops.MAX_CANDIDATES}},
        "train_frames": len(timed),
    }


def quality_keys() -> dict:
    """What `edge.hil.bench.vision` adds to its JSON: the four quality keys and their detail."""
    return quality()


def main() -> int:
    if not (SHARED / "ebike" / "labels.csv").exists() or not (SHARED / "models" / "yolox_nano.onnx").exists():
        print(f"shared data absent under {SHARED}: set EDGE_SHARED_DATA", file=sys.stderr)
        return 66
    print(json.dumps(quality(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
