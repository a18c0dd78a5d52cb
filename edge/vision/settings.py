"""The `cameras:` section of the building config: each elevator camera, its hold relay, its
spoken warning, what qualifies its model to hold, and frame collection; and the checks of its
references (the hold relay's commands) and of the camera extra being installed.

Imports neither OpenCV nor onnxruntime: the building config reads this on every gateway.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from edge.config.settings import LocalPath, Name, Plugged, Problem, ReadableFile, References, Strict

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig


class HoldRelay(Strict):
    """The relay to the elevator controller's door-hold input, as named commands of its IO module's profile."""

    device: Name
    hold: str = Field(min_length=1, description="Profile command that holds the car (doors open), e.g. release_7.")
    resume: str = Field(min_length=1, description="Profile command that lets the car go again, e.g. secure_7.")


class VoiceWarning(Strict):
    command: list[str] = Field(min_length=1, description="Program and arguments that play the sound file (appended last), e.g. [aplay, -q].")
    sound: ReadableFile = Field(description="The spoken warning, a sound file the command plays.")


class Qualification(Strict):
    """What `edge vision eval` on the site's own labelled frames must show before the model may hold."""

    report: LocalPath | None = Field(None, description="The eval report (JSON) of this model on this site's frames; without it: observe mode.")
    min_recall: float = Field(0.95, gt=0, le=1)
    max_false_hold: float = Field(0.01, ge=0, lt=1, description="False holds on wheelchairs, prams and bicycles, as a fraction.")
    min_ebike_frames: int = Field(300, ge=1, description="Labelled e-bike frames the report must count.")
    min_negative_frames: int = Field(300, ge=1, description="Labelled frames without one (300 cannot show 1 %; use more).")


class Collect(Strict):
    """Motion-triggered frames saved in STATE_DIR/vision/collect for labelling (`edge vision export`)."""

    enabled: bool = False
    every_s: float = Field(10, ge=0.5, description="At most one frame per this many seconds.")
    cap_mb: int = Field(500, ge=1, description="The oldest frames are deleted beyond this.")


Corner = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]


class Camera(Strict):
    name: Name
    source: str = Field(description="Analysis stream (an IP camera's substream): V4L2 device, RTSP URL or a video file (for the rig).")
    snapshot_source: str | None = Field(None, description="Main stream, opened only for a snapshot; default: the analysis frame.")
    elevator: Name | None = None
    region: list[Corner] = Field(
        [(0, 0), (1, 0), (1, 1), (0, 1)], min_length=3, description="The car's floor inside the door: polygon corners as fractions of width and height."
    )
    analysis_fps: float = Field(5, ge=0.2, le=30)
    stall_s: float = Field(5, ge=0.5, le=120, description="No frame for this long is a camera fault (and releases a hold).")
    model: LocalPath | None = Field(None, description="Detector manifest (installed by `edge models install`); none: the camera only collects.")
    threads: int = Field(1, ge=1, le=8, description="Inference threads (they run at a lower priority than the doors).")
    hold_classes: list[Literal["ebike", "kick_scooter", "motorcycle"]] = Field(
        ["ebike"], min_length=1, description="Classes whose confirmed detection holds the car (a motorcycle is held like an e-bike).")
    hold: HoldRelay | None = None
    warning: VoiceWarning | None = None
    leave_s: float = Field(5, gt=0, le=300, description="The hold ends once the e-bike has been out of the region this long.")
    max_hold_s: float = Field(120, gt=0, le=900, description="A hold never lasts longer (never trap people).")
    qualification: Qualification = Qualification()
    collect: Collect = Collect()


def check(config: BuildingConfig, refs: References) -> list[Problem]:
    """Each camera's hold relay names commands its IO module's profile has."""
    problems: list[Problem] = []
    for index, camera in enumerate(config.cameras):
        if camera.hold is not None:
            problems += refs.commands(camera.hold.device, (camera.hold.hold, camera.hold.resume), ("cameras", index, "hold"))
    return problems


CAMERA_LIBRARIES = {"cv2": "opencv-python-headless", "onnxruntime": "onnxruntime", "numpy": "numpy"}
"""What the camera extra installs (setup.cfg, `camera`), by import name: only the camera and vision modules use them."""


def missing_extras(config: BuildingConfig) -> list[Problem]:
    """A camera on a gateway installed without the camera extra: a problem at each camera that names the
    extra, found without importing anything (so `edge check-config` says it before `edge run` fails)."""
    if not config.cameras:
        return []
    missing = [distribution for module, distribution in CAMERA_LIBRARIES.items() if find_spec(module) is None]
    if not missing:
        return []
    return [(("cameras", index), f"camera {camera.name!r} needs the camera extra, which is not installed here "
             f"({', '.join(missing)} missing): pip install 'building-edge[camera]'")
            for index, camera in enumerate(config.cameras)]


SECTIONS = {"cameras": (list[Camera], Field(default_factory=list))}
"""The building config's sections this feature owns (edge/feature.py)."""


def hardware(config: BuildingConfig) -> list[Plugged]:
    """Its cameras: one name space with every device; followed by udev identity on a `udev:NAME` source."""
    return [Plugged("cameras", i, c, "source", "video4linux", lambda links, c=c: f"camera:{c.name}") for i, c in enumerate(config.cameras)]
