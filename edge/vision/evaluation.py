"""How well a detector does on a site's labelled frames: per-class recall, false holds, and how sure we are.

A rate without its count means little: 0 false holds in 19 negatives is compatible with a
true rate of 17 %. Every rate here carries its Wilson score interval, and qualification
(the guard may only hold once a model passes) reads the same figures.

Labels are image-level, one row per frame, as ../shared/data/ebike/labels.csv: a `file`
column, one 0/1 column per class named as `VisionClass` (ebike, bicycle, wheelchair, ...),
and optionally `group` (frames of one clip or camera) and `notes`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge.vision.detection import Detection, VisionClass

NEGATIVES = (VisionClass.BICYCLE, VisionClass.WHEELCHAIR, VisionClass.STROLLER, VisionClass.KICK_SCOOTER, VisionClass.MOTORCYCLE, VisionClass.PERSON)


class LabelsError(ValueError):
    """A labels file that cannot be read as one row per frame; says which line."""


@dataclass(frozen=True, slots=True)
class LabelledFrame:
    file: str
    present: frozenset[VisionClass]
    group: str
    line: int


def read_labels(path: Path) -> list[LabelledFrame]:
    """Parse a labels CSV; raises LabelsError naming the file and line of the first bad row."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise LabelsError(f"{path}: cannot read: {error}") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c in set(VisionClass)]
        if "file" not in (reader.fieldnames or []) or not columns:
            raise LabelsError(f"{path}:1: expected a header with `file` and class columns ({', '.join(VisionClass)})")
        frames = []
        for row in reader:
            line = reader.line_num
            present = set()
            for column in columns:
                value = (row.get(column) or "").strip()
                if value not in ("0", "1"):
                    raise LabelsError(f"{path}:{line}: column {column!r} is {value!r}, expected 0 or 1")
                if value == "1":
                    present.add(VisionClass(column))
            if not (row.get("file") or "").strip():
                raise LabelsError(f"{path}:{line}: empty `file`")
            file = row["file"].strip()
            frames.append(LabelledFrame(file, frozenset(present), (row.get("group") or "").strip() or file, line))
    return frames


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) for a binomial rate; (0, 1) with no trials."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Rate:
    """k of n, with its 95 % Wilson interval."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def as_dict(self) -> dict:
        low, high = self.interval
        return {"k": self.k, "n": self.n, "rate": self.value, "ci95": [round(low, 4), round(high, 4)]}

    def __str__(self) -> str:
        if not self.n:
            return "   -   (0 frames)"
        low, high = self.interval
        return f"{self.value:6.3f}  ({self.k}/{self.n}, 95% CI {low:.3f}-{high:.3f})"


@dataclass
class Report:
    """Per-frame outcomes tallied into recalls, false-hold rates and a confusion table."""

    hold_classes: tuple[VisionClass, ...]
    frames: int = 0
    holds: list[bool] = field(default_factory=list)
    recall: dict[VisionClass, Rate] = field(default_factory=dict)
    false_hold: dict[VisionClass, Rate] = field(default_factory=dict)
    ebike_recall: Rate = Rate(0, 0)
    false_hold_rate: Rate = Rate(0, 0)
    confusion: dict[VisionClass | str, dict[VisionClass | str, int]] = field(default_factory=dict)
    cannot_output: tuple[str, ...] = ()  # hold classes the model's class map lacks: their recall is 0 by construction

    @property
    def may_qualify(self) -> bool:
        """A report of a model blind to a hold class qualifies nothing, whatever its figures."""
        return not self.cannot_output

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "hold_classes": [str(c) for c in self.hold_classes],
            "cannot_output": list(self.cannot_output),
            "may_qualify": self.may_qualify,
            "ebike_recall": self.ebike_recall.as_dict(),
            "false_hold_rate": self.false_hold_rate.as_dict(),
            "recall": {str(c): r.as_dict() for c, r in self.recall.items()},
            "false_hold": {str(c): r.as_dict() for c, r in self.false_hold.items()},
            "confusion": {str(t): {str(p): n for p, n in row.items()} for t, row in self.confusion.items()},
        }

    def render(self) -> str:
        lines = [f"{self.frames} frames; a frame holds when the model finds: {', '.join(self.hold_classes)}", ""]
        if self.cannot_output:
            lines += [f"THE MODEL CANNOT OUTPUT {', '.join(self.cannot_output).upper()}: its class map has no such class, so its recall "
                      f"is 0 by construction, not measured; this report qualifies no camera that holds for it", ""]
        lines.append(f"e-bike recall (frames with an e-bike that would hold)   {self.ebike_recall}")
        lines.append(f"false holds (frames without an e-bike that would hold) {self.false_hold_rate}")
        lines += ["", "false holds by what is in the frame (no e-bike):"]
        lines += [f"  {str(c):<13} {r}" for c, r in self.false_hold.items()]
        lines += ["", "recall by class (the model finds the labelled class):"]
        lines += [f"  {str(c):<13} {r}" for c, r in self.recall.items()]
        predicted = sorted({p for row in self.confusion.values() for p in row}, key=str)
        lines += ["", "confusion (frames labelled ROW in which the model found COLUMN):"]
        lines.append("  " + f"{'':<13}" + "".join(f"{str(p):>13}" for p in predicted))
        for truth, row in self.confusion.items():
            lines.append("  " + f"{str(truth):<13}" + "".join(f"{row.get(p, 0):>13}" for p in predicted))
        return "\n".join(lines)


def tally(outcomes: Iterable[tuple[LabelledFrame, list[Detection]]], hold_classes: Iterable[VisionClass] = (VisionClass.EBIKE,)) -> Report:
    """Image-level scoring: a frame holds when any detection is of a hold class.

    A frame showing another class the site holds for (a kick scooter, say) is neither an e-bike
    frame nor a negative: holding there is wanted, so it never counts as a false hold; how often
    the model finds that class is its line in `recall`."""
    hold_classes = tuple(hold_classes)
    report = Report(hold_classes)
    counts: dict[VisionClass, list[int]] = {}
    false: dict[VisionClass, list[int]] = {}
    ebike, negatives = [0, 0], [0, 0]
    for frame, detections in outcomes:
        report.frames += 1
        found = {d.cls for d in detections}
        holds = bool(found & set(hold_classes))
        report.holds.append(holds)
        for cls in frame.present:
            hit = counts.setdefault(cls, [0, 0])
            hit[0] += cls in found
            hit[1] += 1
        if VisionClass.EBIKE in frame.present:
            ebike[0] += holds
            ebike[1] += 1
        elif frame.present & set(hold_classes):
            pass  # another class held for: a wanted hold, not a negative
        else:
            negatives[0] += holds
            negatives[1] += 1
            for cls in frame.present & set(NEGATIVES):
                rate = false.setdefault(cls, [0, 0])
                rate[0] += holds
                rate[1] += 1
            if not frame.present - {VisionClass.PERSON}:
                rate = false.setdefault("person only" if frame.present else "empty", [0, 0])  # type: ignore[arg-type]
                rate[0] += holds
                rate[1] += 1
        truths: list[VisionClass | str] = sorted(frame.present, key=str) or ["empty"]
        for truth in truths:
            row = report.confusion.setdefault(truth, {})
            for predicted in sorted(found, key=str) or ["nothing"]:
                row[predicted] = row.get(predicted, 0) + 1
            if holds:
                row["HOLD"] = row.get("HOLD", 0) + 1
    report.recall = {c: Rate(*counts[c]) for c in sorted(counts, key=str)}
    report.false_hold = {c: Rate(*false[c]) for c in sorted(false, key=str)}
    report.ebike_recall = Rate(*ebike)
    report.false_hold_rate = Rate(*negatives)
    return report


def evaluate(detect: Callable[[object], list[Detection]], frames: list[LabelledFrame], images: Path,
             hold_classes: Iterable[VisionClass] = (VisionClass.EBIKE,)) -> Report:
    """Run `detect` on every labelled frame found in `images` (by the file's name) and tally."""
    import cv2

    def outcomes():
        for frame in frames:
            path = resolve(images, frame.file)
            image = cv2.imread(str(path))
            if image is None:
                raise LabelsError(f"line {frame.line}: cannot read image {path}")
            yield frame, detect(image)

    return tally(outcomes(), hold_classes)


def resolve(images: Path, file: str) -> Path:
    """`file` as written in the labels (images/x.jpg) found in the images folder."""
    direct = images / file
    return direct if direct.exists() else images / Path(file).name
