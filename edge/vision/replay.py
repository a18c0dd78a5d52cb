"""`edge vision replay`: the guard's whole pipeline on a clip, drawn, for checking a camera's placement.

An installer mounting a camera wants to see what the guard will see: is the region on the
car's floor, does the model find what stands there, when would it hold. The replay runs the
guard's own parts on every frame of a clip (the analysis rate, the motion gate, the camera's
detector, the confirmation machine with the camera's settings) with the clip's own time, and
writes the clip back with the region, each box with its class and score, and the state drawn.
The box the confirmation machine counts carries its count (frames in a row / `min_frames`), the
median of its recent scores and the threshold, so a WATCHING that never confirms says why; a
hold-class box it does not count says why not (off the floor region, explained by a wheelchair,
pram or bicycle box). On frames the motion gate kept the model idle the last analysis's boxes stay,
drawn thin and marked, so boxes do not blink out while the car is still.

It holds as a qualified model would (that is what the installer checks); the summary also says
whether this camera may hold today or only observes, and why.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.vision.settings import Camera
from edge.vision.confirm import SUPPRESSORS, Confirmation, Confirmed, Released, State, box_notes
from edge.vision.detection import Detection, Detector
from edge.vision.guard import confirmation_settings, normalised
from edge.vision.motion import MotionGate

DEFAULT_FPS = 25.0  # a clip whose container names no rate
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

# BGR
HOLD_COLOUR = (0, 0, 255)
SUPPRESSOR_COLOUR = (0, 200, 0)
OTHER_COLOUR = (200, 200, 200)
REGION_COLOUR = (255, 160, 0)  # light blue
STATE_COLOUR = {
    State.IDLE: (200, 200, 200), State.WATCHING: (0, 220, 255), State.CONFIRMED: (0, 140, 255),
    State.HOLDING: (0, 0, 255), State.RELEASING: (255, 0, 255),
}


class ReplayError(Exception):
    """The annotated clip cannot be written."""


class ClipUnreadable(ReplayError):
    """The clip cannot be read."""


@dataclass
class Summary:
    frames: int = 0
    analysed: int = 0  # frames the model ran on
    moved: int = 0  # analysis frames the motion gate let through
    confirmations: int = 0
    holds: int = 0  # confirmations a qualified model would hold the car for
    releases: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    size: tuple[int, int] = (0, 0)  # (width, height)
    gated: int = 0  # frames drawn with the last analysis's boxes, the model idle

    def render(self) -> str:
        released = ", ".join(f"{n} {why}" for why, n in sorted(self.releases.items())) or "none"
        return (f"frames {self.frames} ({self.seconds:.1f} s, {self.size[0]}x{self.size[1]}), analysed {self.analysed}, "
                f"motion {self.moved}, confirmations {self.confirmations}, holds it would make {self.holds}, "
                f"releases: {released}")


@dataclass(frozen=True, slots=True)
class Drawn:
    """What one written frame shows: the state, and each box's label as drawn."""

    index: int
    state: State
    gated: bool  # the motion gate kept the model idle: the boxes are the last analysis's
    labels: tuple[str, ...]


def replay(camera: Camera, source: Path, out: Path, detector: Detector,
           progress: Callable[[int], None] | None = None, drawn: Callable[[Drawn], None] | None = None) -> Summary:
    """Run the guard's pipeline over `source` and write it, annotated, to `out`; `drawn` hears
    what each frame shows."""
    reader = cv2.VideoCapture(str(source))
    if not reader.isOpened():
        raise ClipUnreadable(f"OpenCV cannot open {source} as a video")
    fps = reader.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    fps = fps if 0 < fps < 1000 else DEFAULT_FPS
    writer = None
    summary = Summary()
    gate = MotionGate(camera.region)
    machine = Confirmation(confirmation_settings(camera, may_hold=True))
    period = 1.0 / camera.analysis_fps
    next_at = 0.0
    shown: list[Detection] = []  # the last analysis, drawn until the next one
    labels: list[str] = []  # their labels, as of that analysis
    gated = False  # the last analysis time found the car still: `shown` is older
    try:
        while True:
            ok, frame = reader.read()
            if not ok:
                break
            t = summary.frames / fps
            h, w = frame.shape[:2]
            if writer is None:
                writer = _writer(out, fps, (w, h))
                summary.size = (w, h)
            analysed = False
            if t >= next_at:  # the worker takes the newest frame at the analysis rate
                next_at = max(next_at + period, t)
                moved = gate.moved(frame)
                summary.moved += moved
                if moved or machine.under_watch:
                    analysed, gated = True, False
                    summary.analysed += 1
                    shown = detector.detect(frame)
                    boxes = [normalised(d, w, h) for d in shown]
                    notes = box_notes(machine.settings, boxes)
                    actions = machine.observe(t, boxes)
                    labels = [_box_label(d, note, machine, camera) for d, note in zip(shown, notes)]
                else:
                    gated = True
                    actions = machine.tick(t)
            else:
                actions = machine.tick(t)
            for action in actions:
                if isinstance(action, Confirmed):
                    summary.confirmations += 1
                    summary.holds += action.hold
                elif isinstance(action, Released):
                    summary.releases[str(action.reason)] += 1
            summary.gated += gated and bool(shown)
            writer.write(annotate(frame, camera, shown, machine.state, t, analysed, gate.last_fraction, labels, gated))
            if drawn is not None:
                drawn(Drawn(summary.frames, machine.state, gated, tuple(labels)))
            summary.frames += 1
            if progress is not None:
                progress(summary.frames)
    finally:
        reader.release()
        if writer is not None:
            writer.release()
    if summary.frames == 0:
        raise ClipUnreadable(f"{source} has no frame OpenCV can read")
    summary.seconds = summary.frames / fps
    return summary


def _writer(out: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = FOURCC.get(out.suffix.lower())
    if fourcc is None:
        raise ReplayError(f"{out}: write .mp4 or .avi (the suffix chooses the codec)")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise ReplayError(f"OpenCV cannot write {out} ({fourcc})")
    return writer


def _box_label(detection: Detection, note: str | None, machine: Confirmation, camera: Camera) -> str:
    """A box's label: class and score; the counted box's frames, median and threshold; why another is not counted."""
    text = f"{detection.cls} {detection.score:.2f}"
    if detection.cls not in set(camera.hold_classes):
        return text
    if note is not None:
        return f"{text}: {note}"
    settings = machine.settings
    median = statistics.median(machine.scores) if machine.scores else 0.0
    verdict = ">=" if median >= settings.threshold else "<"
    return (f"{text}: {min(machine.run, settings.min_frames)}/{settings.min_frames} frames, "
            f"median {median:.2f} {verdict} {settings.threshold:.2f}")


def annotate(frame: np.ndarray, camera: Camera, detections: list[Detection], state: State, t: float,
             analysed: bool, motion: float, labels: list[str] | None = None, gated: bool = False) -> np.ndarray:
    """The frame with the region, each detection (hold classes red, what suppresses them green) with its
    label, and the state; `gated`: the boxes are the last analysis's (drawn thin, marked)."""
    image = frame.copy()
    h, w = image.shape[:2]
    scale = max(0.8, w / 800)  # labels readable on a 640x360 substream and on 1080p
    corners = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in camera.region], dtype=np.int32)
    cv2.polylines(image, [corners], isClosed=True, color=REGION_COLOUR, thickness=max(2, round(2 * scale)))
    holds = set(camera.hold_classes)
    for i, detection in enumerate(detections):
        colour = HOLD_COLOUR if detection.cls in holds else SUPPRESSOR_COLOUR if detection.cls in SUPPRESSORS else OTHER_COLOUR
        x1, y1, x2, y2 = (round(v) for v in detection.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 1 if gated else max(1, round(2 * scale)))
        text = labels[i] if labels and i < len(labels) else f"{detection.cls} {detection.score:.2f}"
        _label(image, f"{text} (last analysis)" if gated else text, (x1, max(y1, round(14 * scale))), colour, scale)
    shown = "model" if analysed else "gate idle: last boxes" if gated and detections else "-"
    line = f"{t:6.1f}s  {state.upper()}  motion {motion:.0%}  {shown}"
    _label(image, line, (4, round(18 * scale) + 4), STATE_COLOUR[state], scale)
    return image


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    font, size, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, max(1, round(scale))
    (tw, th), base = cv2.getTextSize(text, font, size, thick)
    x, y = origin
    cv2.rectangle(image, (x, y - th - base), (x + tw, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), font, size, colour, thick, cv2.LINE_AA)
