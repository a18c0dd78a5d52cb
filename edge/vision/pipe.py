"""What the vision worker and the guard say to each other over their pipe, one type per message.

Each end matches a message by its type, not by a string tag and the position of its fields, so a
field added to one message cannot shift another's. Pickle carries them (multiprocessing's framing,
edge/vision/channel.py). This module and everything a message holds (the camera driver's
observations, the detector's `Detection`) import without OpenCV or onnxruntime: the daemon reads
a message without loading what the worker runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.drivers.camera.observations import CameraFault, CameraRestored
from edge.vision.detection import Detection


class _Message:
    """Pickled as its class and its fields in order, so reading one is a constructor call: a slots
    dataclass's own pickling runs __getstate__ and __setstate__ in Python, about four times the cost
    of the tuple messages these replaced, on the daemon's loop for every analysed frame."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), tuple(getattr(self, name) for name in self.__match_args__)


# From the worker


@dataclass(frozen=True, slots=True)
class Analysed(_Message):
    """One frame as the worker saw it: detections None when the motion gate kept the model idle;
    `inference_s` how long the model ran on it (None when it did not run)."""

    seq: int
    mono: float
    wall: float
    size: tuple[int, int]  # (height, width)
    detections: list[Detection] | None
    inference_s: float | None = None


@dataclass(frozen=True, slots=True)
class Failed(_Message):
    """The model could not be loaded or failed on a frame (the guard also posts one for a message
    it does not know)."""

    reason: str


FromWorker = Analysed | Failed | CameraFault | CameraRestored  # the stream's observations go as capture made them

# From the guard


@dataclass(frozen=True, slots=True)
class Watch(_Message):
    """Run the model whatever the motion gate says (an object is under watch), or stop doing so."""

    on: bool


@dataclass(frozen=True, slots=True)
class Snapshot(_Message):
    """Save frame `seq` (or the newest) as STATE/vision/snapshots/CAMERA/STEM.jpg."""

    seq: int
    stem: str


@dataclass(frozen=True, slots=True)
class Stop(_Message):
    """Stop capturing and end the process."""


ToWorker = Watch | Snapshot | Stop
