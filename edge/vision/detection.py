"""What a detector says about one frame, in the building's classes, whatever model said it.

Every model family (YOLOX, YOLOv5/v8, PicoDet, NanoDet, SSD, already-decoded exports) is
decoded and mapped onto these classes by its manifest, so the confirmation logic and the
hold never learn which model is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the daemon imports this module; numpy is the vision worker's alone
    import numpy as np


class VisionClass(StrEnum):
    """The objects the guard tells apart; a model's own classes are mapped onto these."""

    EBIKE = "ebike"
    BICYCLE = "bicycle"
    KICK_SCOOTER = "kick_scooter"
    MOTORCYCLE = "motorcycle"
    PERSON = "person"
    WHEELCHAIR = "wheelchair"
    STROLLER = "stroller"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Detection:
    """One object in one frame: its class, the model's score (0..1) and its box.

    The box is (x1, y1, x2, y2) in pixels of the frame that was passed to `detect`.
    """

    cls: VisionClass
    score: float
    box: tuple[float, float, float, float]

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        """Pickled as a constructor call: the vision worker sends every detection of every frame,
        and a slots dataclass's own pickling (__getstate__/__setstate__ in Python) costs more."""
        return Detection, (self.cls, self.score, self.box)


class Detector(Protocol):
    """A loaded model: one BGR uint8 frame (H, W, 3) in, detections above its thresholds out.

    Implementations are not thread-safe unless they say so; the vision worker calls one
    detector from one thread.
    """

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]: ...


@runtime_checkable
class StagedDetector(Detector, Protocol):
    """A detector whose work splits in two: `prepare` makes a frame ready for the model
    (resizing, colour order, normalisation; no model, safe from any thread) and `infer` runs
    the model on it. The vision worker prepares the next frame in the capture thread while
    the model runs on this one, so the model's thread does little but inference."""

    def prepare(self, frame_bgr: np.ndarray) -> Any: ...

    def infer(self, prepared: Any) -> list[Detection]: ...
