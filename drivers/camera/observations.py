"""What a camera stream reports beside its frames: it broke, it came back.

Plain dataclasses that import no OpenCV, so the vision worker forwards them to the daemon as
they are (edge/vision/pipe.py) and the daemon reads them without loading what capture loads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CameraFault:
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class CameraRestored:
    source: str
    after_s: float  # how long the camera was faulted


CameraObservation = CameraFault | CameraRestored
