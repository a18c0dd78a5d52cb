"""Confirmation: when one frame's e-bike becomes a decision to hold the elevator, and when it ends.

A detector flickers: one frame calls a pram an e-bike, the next misses the e-bike behind the
rider. So nothing acts on one frame. An object of a hold class (e-bike by default) standing
on the car's floor (the bottom centre of its box inside the region) is *watched*; it is
*confirmed* only once it has been there for `min_frames` frames in a row and the median of
its last `window` scores passes `threshold`. A wheelchair, pram or bicycle whose box
explains the same object (IoU at least `suppress_iou`) takes the candidate away in that frame.

States: IDLE (nothing under watch), WATCHING (a candidate is counted), CONFIRMED (confirmed
but not holding: observe mode, a hold that ran out or was released from outside; no new hold
until the object has left), HOLDING (the elevator is held), RELEASING (held, the object has
not been seen since `releasing_since`; released once it stays away `leave_s`).

A hold never lasts longer than `max_hold_s` (never trap people). Pure: time is passed in,
no I/O; the guard turns the returned actions into relay writes, voice and journal events.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from edge.vision.detection import Detection, VisionClass

Point = tuple[float, float]
Box = tuple[float, float, float, float]

SUPPRESSORS = frozenset({VisionClass.WHEELCHAIR, VisionClass.STROLLER, VisionClass.BICYCLE})


class State(StrEnum):
    IDLE = "idle"
    WATCHING = "watching"
    CONFIRMED = "confirmed"
    HOLDING = "holding"
    RELEASING = "releasing"


class Release(StrEnum):
    """Why a hold ended."""

    LEFT = "left"  # the object stayed out of the region for leave_s
    TIME_LIMIT = "time_limit"  # the hold reached max_hold_s
    FIRE = "fire"
    OPERATOR = "operator"
    CAMERA_FAULT = "camera_fault"
    DEMOTED = "demoted"  # the operators' reviews returned the camera to observe mode


@dataclass(frozen=True, slots=True)
class Confirmed:
    """An object of a hold class is confirmed in the car; `hold` says whether the guard holds."""

    cls: VisionClass
    score: float  # the median of its recent scores
    box: Box
    hold: bool
    since: float = 0.0  # when the frames that confirmed it began (the first of the run)


@dataclass(frozen=True, slots=True)
class Released:
    reason: Release
    held_s: float


@dataclass(frozen=True, slots=True)
class Left:
    """A confirmed object that was not held (observe mode, or after a release) has left."""


Action = Confirmed | Released | Left


@dataclass(frozen=True, slots=True)
class Settings:
    region: Sequence[Point]  # polygon in the frame's pixels (or any unit the boxes use)
    hold_classes: frozenset[VisionClass] = frozenset({VisionClass.EBIKE})
    threshold: float = 0.5
    min_frames: int = 3
    window: int = 5
    suppress_iou: float = 0.5
    leave_s: float = 5.0
    max_hold_s: float = 120.0
    may_hold: bool = False  # observe mode until the model is qualified

    def __post_init__(self) -> None:
        if len(self.region) < 3:
            raise ValueError("the region needs at least 3 corners")
        if not 1 <= self.min_frames <= self.window:
            raise ValueError("min_frames must be between 1 and window")
        if self.leave_s <= 0 or self.max_hold_s <= 0:
            raise ValueError("leave_s and max_hold_s must be positive")


@dataclass
class Confirmation:
    """The state machine of one camera. Feed it each analysed frame with `observe`, and `tick`
    it when no frame comes (the motion gate closed), so time limits still run."""

    settings: Settings
    state: State = State.IDLE
    scores: deque[float] = field(init=False)
    run: int = 0  # frames in a row with a candidate
    run_since: float = 0.0  # the time of the run's first frame
    last_seen: float = float("-inf")
    held_since: float = 0.0
    candidate: Detection | None = None
    suspended: bool = False  # set while the building is fire-released: confirm, never hold

    def __post_init__(self) -> None:
        self.scores = deque(maxlen=self.settings.window)

    @property
    def under_watch(self) -> bool:
        """True while inference must run whatever the motion gate says."""
        return self.state is not State.IDLE

    def observe(self, now: float, detections: Iterable[Detection]) -> list[Action]:
        candidate = pick_candidate(self.settings, detections)
        actions: list[Action] = []
        if candidate is not None:
            self.candidate = candidate
            self.last_seen = now
            self.run += 1
            if self.run == 1:
                self.run_since = now
            self.scores.append(candidate.score)
        else:
            self.run = 0
            self.scores.append(0.0)
        if self.state is State.IDLE and candidate is not None:
            self.state = State.WATCHING
        if self.state is State.WATCHING:
            if candidate is None and not any(self.scores):
                self._reset()
            elif candidate is not None and self.run >= self.settings.min_frames:
                median = statistics.median(self.scores)
                if median >= self.settings.threshold:
                    hold = self.settings.may_hold and not self.suspended
                    actions.append(Confirmed(candidate.cls, median, candidate.box, hold, self.run_since))
                    self.state = State.HOLDING if hold else State.CONFIRMED
                    self.held_since = now
        elif self.state is State.RELEASING and candidate is not None:
            self.state = State.HOLDING
        elif self.state is State.HOLDING and candidate is None:
            self.state = State.RELEASING
        return actions + self.tick(now)

    def tick(self, now: float) -> list[Action]:
        """Time-based transitions: the hold's limit and an object that has left."""
        gone = now - self.last_seen >= self.settings.leave_s
        if self.state in (State.HOLDING, State.RELEASING):
            if now - self.held_since >= self.settings.max_hold_s:
                return [self._stop_holding(now, Release.TIME_LIMIT)]
            if self.state is State.RELEASING and gone:
                released = Released(Release.LEFT, now - self.held_since)
                self._reset()
                return [released]
        elif self.state is State.CONFIRMED and gone:
            self._reset()
            return [Left()]
        elif self.state is State.WATCHING and gone:
            self._reset()
        return []

    def release(self, now: float, reason: Release) -> list[Action]:
        """An outside release (fire, operator, camera fault). A camera fault forgets everything
        (nothing seen can be trusted); otherwise no new hold until the object has left."""
        actions: list[Action] = []
        if self.state in (State.HOLDING, State.RELEASING):
            actions.append(self._stop_holding(now, reason))
        if reason is Release.CAMERA_FAULT:
            self._reset()
        return actions

    def _stop_holding(self, now: float, reason: Release) -> Released:
        self.state = State.CONFIRMED
        return Released(reason, now - self.held_since)

    def _reset(self) -> None:
        self.state = State.IDLE
        self.scores.clear()
        self.run = 0
        self.candidate = None
        self.last_seen = float("-inf")


def pick_candidate(settings: Settings, detections: Iterable[Detection]) -> Detection | None:
    """The best-scoring hold-class object standing in the region that nothing else explains."""
    detections = list(detections)
    suppressors = [d for d in detections if d.cls in SUPPRESSORS and d.cls not in settings.hold_classes]
    best: Detection | None = None
    for detection in detections:
        if detection.cls not in settings.hold_classes or not inside(settings.region, footpoint(detection.box)):
            continue
        if any(iou(detection.box, s.box) >= settings.suppress_iou for s in suppressors):
            continue
        if best is None or detection.score > best.score:
            best = detection
    return best


def box_notes(settings: Settings, detections: Sequence[Detection]) -> list[str | None]:
    """Why each hold-class box is not the candidate ('outside the region', 'explained by a
    wheelchair', 'a better box is counted'); None for the candidate and for other classes. The
    replay draws these so a technician sees why WATCHING never confirms."""
    candidate = pick_candidate(settings, detections)
    suppressors = [d for d in detections if d.cls in SUPPRESSORS and d.cls not in settings.hold_classes]
    notes: list[str | None] = []
    for detection in detections:
        if detection.cls not in settings.hold_classes or detection is candidate:
            notes.append(None)
        elif not inside(settings.region, footpoint(detection.box)):
            notes.append("not on the floor region")
        elif (by := next((s for s in suppressors if iou(detection.box, s.box) >= settings.suppress_iou), None)) is not None:
            notes.append(f"explained by the {by.cls} box")
        else:
            notes.append("a better box is counted")
    return notes


def footpoint(box: Box) -> Point:
    """Where an object stands: the bottom centre of its box."""
    return ((box[0] + box[2]) / 2, box[3])


def inside(polygon: Sequence[Point], point: Point) -> bool:
    """Even-odd ray casting; points on an edge may fall either way."""
    x, y = point
    result = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
        j = i
    return result


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    overlap = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0
