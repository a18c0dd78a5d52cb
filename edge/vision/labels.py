"""Labelling on the gateway: the frames the guard collected, listed for the status page, and the
labels an operator gives them there, one key a frame.

What a site's model is trained and qualified on are this car's own frames; a technician should not
need a laptop and a labelling tool to say "that was a pram". The frames are collect mode's motion
samples (STATE_DIR/vision/collect/CAMERA/) and the snapshots of what observe mode would have held
(STATE_DIR/vision/snapshots/CAMERA/, with the detector's box, which a label may accept). A label is
one of LABELS, with at most one box in 0..1 of the frame (drawn on the page, or the detector's);
each is journaled (`vision.frame_labelled`, who and when) and kept in
STATE_DIR/vision/labels/CAMERA.json, which `edge vision export` writes into the YOLO dataset and its
labels.csv. Blocking file work: call it in the files or reads pool.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

# label -> the class (edge.vision.detection.VisionClass) it names; None: nothing a box marks
LABELS: dict[str, str | None] = {
    "ebike": "ebike", "bicycle": "bicycle", "stroller": "stroller", "wheelchair": "wheelchair",
    "kick_scooter": "kick_scooter", "person": "person", "empty": None,
}
FRAME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.jpg")
MAX_LISTED = 100


class LabelError(ValueError):
    """A label the store refuses: says why."""


def labels_path(state_dir: Path, camera: str) -> Path:
    return Path(state_dir) / "vision" / "labels" / f"{camera}.json"


def frame_path(state_dir: Path, camera: str, kind: str, name: str) -> Path | None:
    """Where a listed frame lives (collect/ or snapshots/), or None for a name that is not one of ours."""
    if kind not in ("collect", "snapshot") or not FRAME_NAME.fullmatch(name):
        return None
    folder = "collect" if kind == "collect" else "snapshots"
    return Path(state_dir) / "vision" / folder / camera / name


def read(state_dir: Path, camera: str) -> dict[str, dict[str, Any]]:
    """frame key ("collect/NAME" or "snapshot/NAME") -> {label, box, by, at}."""
    try:
        data = json.loads(labels_path(state_dir, camera).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def listing(state_dir: Path, camera: str, observed: dict[str, dict[str, Any]] | None = None,
            limit: int = MAX_LISTED) -> list[dict[str, Any]]:
    """The newest collected frames and would-hold snapshots, each with its label (if any) and the
    detector's box where the guard journaled one (`observed`: snapshot name -> {class, box})."""
    labelled = read(state_dir, camera)
    found = []
    for kind, folder in (("collect", "collect"), ("snapshot", "snapshots")):
        directory = Path(state_dir) / "vision" / folder / camera
        if not directory.is_dir():
            continue
        for path in directory.glob("*.jpg"):
            if kind == "snapshot" and not path.stem.endswith("-ebike_observed"):
                continue  # a hold's own snapshot is reviewed (edge elevator review), not labelled here
            key = f"{kind}/{path.name}"
            detector = (observed or {}).get(path.name) if kind == "snapshot" else None
            found.append({"frame": key, "kind": kind, "name": path.name, "stem": path.stem, "detector": detector,
                          **({"label": labelled[key]} if key in labelled else {})})
    found.sort(key=lambda f: f["stem"], reverse=True)  # names start with the unix ms
    return found[:limit]


def write(state_dir: Path, camera: str, frame: str, label: str, box: list[float] | None, by: str, at: float) -> dict[str, Any]:
    """Record one frame's label (a later label of the same frame replaces it); returns what was kept."""
    if label not in LABELS:
        raise LabelError(f"label is one of {', '.join(LABELS)}, not {label!r}")
    kind, _, name = frame.partition("/")
    path = frame_path(state_dir, camera, kind, name)
    if path is None or not path.is_file():
        raise LabelError(f"no collected frame {frame!r} of camera {camera}")
    if box is not None:
        if LABELS[label] is None:
            raise LabelError("an empty frame has no box")
        if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int | float) and 0 <= v <= 1 for v in box)
                or box[0] >= box[2] or box[1] >= box[3]):
            raise LabelError("a box is [x1, y1, x2, y2] in 0..1 of the frame, x1 < x2 and y1 < y2")
    labelled = read(state_dir, camera)
    kept = {"label": label, "box": [round(float(v), 4) for v in box] if box else None, "by": by, "at": round(at, 3)}
    labelled[frame] = kept
    target = labels_path(state_dir, camera)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{camera}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(labelled, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return kept
