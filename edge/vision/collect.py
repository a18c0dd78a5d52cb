"""Collect mode: the elevator camera's own frames, saved for labelling, and the dataset round trip.

No e-bike model trained elsewhere knows this car's light, angle and lens; the frames that
teach it and qualify it come from the car itself. While collecting, each frame in which the
motion gate saw something is saved (at most one per `every_s`, the folder capped) as
STATE_DIR/vision/collect/CAMERA/UNIXMS.jpg. `export_yolo` writes them as a YOLO dataset
(images/, empty labels/, classes.txt) that CVAT or Label Studio open; `import_yolo` reads the
labelled result back into a labels.csv in the form `edge vision eval` reads.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge.drivers.camera.capture import Frame
from edge.vision.detection import VisionClass
from edge.vision.stills import FrameFolder

CLASSES = [c.value for c in VisionClass]  # YOLO class ids are positions in this list
LABEL_COLUMNS = ["ebike", "bicycle", "motorcycle", "stroller", "wheelchair", "person"]


def collect_dir(state_dir: Path, camera: str | None = None) -> Path:
    base = state_dir / "vision" / "collect"
    return base / camera if camera else base


class Collector:
    """Saves motion frames, rate-limited; runs in the vision worker thread."""

    def __init__(self, directory: Path, every_s: float, cap_bytes: int) -> None:
        self.folder = FrameFolder(directory, cap_bytes)
        self.every_s = every_s
        self._last = float("-inf")

    def offer(self, frame: Frame) -> Path | None:
        if frame.mono - self._last < self.every_s:
            return None
        self._last = frame.mono
        return self.folder.save(frame.image, f"{round(frame.wall * 1000):013d}")


class DatasetError(Exception):
    """A labelled dataset that cannot be read back; every problem is listed, nothing is written."""


@dataclass(frozen=True, slots=True)
class Exported:
    images: int
    cameras: list[str]


def export_yolo(state_dir: Path, out: Path) -> Exported:
    """Every collected frame as OUT/images/CAMERA_UNIXMS.jpg with its label file: empty, or the box an
    operator labelled on the page (edge/vision/labels.py); the would-hold snapshots labelled there too.
    The page's labels are also written as OUT/labels.csv, the form `edge vision eval` reads."""
    from edge.vision import labels as page_labels

    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} is not empty: export into a new folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    cameras, count, rows = [], 0, []
    base = collect_dir(state_dir)
    names = {c.name for c in base.iterdir() if c.is_dir()} if base.is_dir() else set()
    snapshots = state_dir / "vision" / "snapshots"
    names |= {p.stem for p in (state_dir / "vision" / "labels").glob("*.json")} if (state_dir / "vision" / "labels").is_dir() else set()
    for camera in sorted(names):
        cameras.append(camera)
        labelled = page_labels.read(state_dir, camera)
        images = [("collect", p) for p in sorted((base / camera).glob("*.jpg"))]
        images += [("snapshot", snapshots / camera / key.partition("/")[2]) for key in sorted(labelled)
                   if key.startswith("snapshot/") and (snapshots / camera / key.partition("/")[2]).is_file()]
        for kind, image in images:
            name = f"{camera}_{image.stem}"
            shutil.copyfile(image, out / "images" / f"{name}.jpg")
            given = labelled.get(f"{kind}/{image.name}")
            line = ""
            if given and given.get("box") and page_labels.LABELS.get(given["label"]):
                x1, y1, x2, y2 = given["box"]
                cls = CLASSES.index(page_labels.LABELS[given["label"]])
                line = f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}\n"
            (out / "labels" / f"{name}.txt").write_text(line)
            if given:
                present = {page_labels.LABELS[given["label"]]} - {None}
                rows.append([f"images/{name}.jpg", *[int(c in present) for c in LABEL_COLUMNS], 1, camera,
                             f"labelled {given['label']} on the gateway by {given.get('by')}"])
            count += 1
    if rows:
        with open(out / "labels.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", *LABEL_COLUMNS, "in_elevator", "group", "notes"])
            writer.writerows(rows)
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (out / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames: {CLASSES}\n")
    return Exported(count, cameras)


@dataclass(frozen=True, slots=True)
class Imported:
    labelled: int
    unlabelled: int  # images without a label file: left out, not counted as negatives
    labels_csv: Path


def import_yolo(dataset: Path, out: Path) -> Imported:
    """A labelled YOLO dataset (classes.txt, images/, labels/) into OUT/labels.csv, OUT/images/
    and OUT/boxes/. The class names are read from the dataset's classes.txt, so a labelling tool
    that reordered them changes nothing; names outside our classes are refused."""
    problems: list[str] = []
    classes_file = dataset / "classes.txt"
    if not classes_file.is_file():
        raise DatasetError(f"{classes_file}: missing (the class names, one a line)")
    names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
    for name in names:
        if name not in CLASSES:
            problems.append(f"{classes_file}: unknown class {name!r}; known: {', '.join(CLASSES)}")
    rows, unlabelled = [], 0
    images = sorted(p for p in (dataset / "images").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for image in images:
        label = dataset / "labels" / f"{image.stem}.txt"
        if not label.is_file():
            unlabelled += 1
            continue
        present: set[str] = set()
        for number, line in enumerate(label.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                index = int(fields[0])
                box = [float(v) for v in fields[1:]]
                if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or not 0 <= index < len(names):
                    raise ValueError
            except ValueError:
                problems.append(f"{label}:{number}: expected 'CLASS CX CY W H' with a known class and values in 0..1, got {line.strip()!r}")
                continue
            present.add(names[index])
        camera = image.stem.rsplit("_", 1)[0]
        rows.append((image, label, present, camera))
    if problems:
        raise DatasetError("\n".join(problems))
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "boxes").mkdir(exist_ok=True)
    shutil.copyfile(classes_file, out / "boxes" / "classes.txt")  # the boxes keep the dataset's class ids
    labels_csv = out / "labels.csv"
    with open(labels_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *LABEL_COLUMNS, "in_elevator", "group", "notes"])
        for image, label, present, camera in rows:
            shutil.copyfile(image, out / "images" / image.name)
            shutil.copyfile(label, out / "boxes" / label.name)
            flags = [int(c in present) for c in LABEL_COLUMNS]
            writer.writerow([f"images/{image.name}", *flags, 1, camera, "site frame"])
    return Imported(len(rows), unlabelled, labels_csv)
