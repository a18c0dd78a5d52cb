"""The elevator camera's event kinds: e-bike holds, what observe mode would have done, releases,
reviews and camera faults, with their words on the page.

Imports nothing of OpenCV or onnxruntime: every gateway's registry reads it.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from edge.events.words import Body
from edge.events import Kinds
from edge.vision.confirm import Release
from edge.vision.detection import VisionClass


class VisionKind(StrEnum):
    ELEVATOR_HOLD = "alarm.elevator_hold"  # a confirmed e-bike: the car is held, the rider warned; body names the snapshot
    ELEVATOR_OBSERVED = "vision.ebike_observed"  # observe mode (or fire): what the guard would have done, with the snapshot
    ELEVATOR_RELEASED = "elevator.released"  # a hold ended: left, time_limit, fire, operator or camera_fault
    ELEVATOR_RELEASE_REQUESTED = "elevator.release_requested"  # an operator's release (audited)
    ELEVATOR_RELAY_UNCONFIRMED = "alarm.elevator_relay_unconfirmed"  # the hold relay did not confirm a write
    VISION_MODE = "vision.mode"  # at start: observe or hold, and why
    VISION_FAULT = "fault.vision"  # the model cannot be loaded or fails: the camera does not guard
    CAMERA_FAULT = "fault.camera"  # the stream ended, broke or stopped delivering (a hold is released)
    CAMERA_RESTORED = "fault.camera_restored"
    ELEVATOR_REVIEWED = "elevator.hold_reviewed"  # an operator confirmed or denied a hold: who, via what, what was there
    FRAME_LABELLED = "vision.frame_labelled"  # an operator labelled a collected frame on the page: who, which, what
    VISION_DEMOTED = "alarm.vision_demoted"  # reviews showed the model holds what it must not: back to observe mode, why


class CameraBody(Body):
    """What the guard of one car's camera journals (edge/vision/guard.py): the camera and its car."""

    camera: str
    elevator: str | None = Field(description="The car it watches, as configured (null: not named).")


class _Sighting(CameraBody):
    cls: str = Field(alias="class", description=f"What the model confirmed: {', '.join(VisionClass)}.")
    score: float
    box: list[float] = Field(description="x1, y1, x2, y2, normalised to the frame (0..1).")
    snapshot: str = Field(description="The frame's JPEG, relative to the state dir; sent after the event when it can be.")


class HoldBody(_Sighting):
    """A confirmed e-bike: the car held and the rider warned."""

    relay_confirmed: bool = Field(description="The hold relay confirmed the write (false: also alarm.elevator_relay_unconfirmed).")
    review: str = Field(description="pending: an operator reviews it (edge elevator review, the page, the cloud).")


class ObservedBody(_Sighting):
    """Observe mode (or a fire): what the guard would have done."""

    would_hold: bool
    why_not: str = Field(description="Why it did not hold: fire release, or why the model may not hold.")


class ReleasedBody(Body):
    """A hold ended."""

    reason: str = Field(description=f"Why: {', '.join(Release)}, or camera_removed (a reload took the camera away).")
    elevator: str | None
    camera: str | None = Field(None, description="Absent when a reload removed the camera.")
    held_s: float | None = Field(None, description="How long it held; absent when a reload removed the camera.")


class ModeBody(CameraBody):
    """At start: whether the guard holds or only observes, and why."""

    mode: str = Field(description="hold or observe.")
    reason: str = Field(description="Every reason in one line.")
    reasons: list[str] = Field(description="Each reason it does not hold; empty when it may.")


class RelayUnconfirmedBody(CameraBody):
    """The hold relay did not confirm a write."""

    device: str
    command: str


KINDS = Kinds("vision", VisionKind, {
    VisionKind.ELEVATOR_HOLD: "Lift held for an e-bike",
    VisionKind.ELEVATOR_OBSERVED: "E-bike seen in the lift (not held)",
    VisionKind.ELEVATOR_RELEASED: "Lift let go",
    VisionKind.ELEVATOR_RELEASE_REQUESTED: "Lift release requested",
    VisionKind.ELEVATOR_RELAY_UNCONFIRMED: "Lift hold relay did not confirm",
    VisionKind.VISION_MODE: "Lift camera started",
    VisionKind.VISION_FAULT: "E-bike detection not working",
    VisionKind.CAMERA_FAULT: "Camera cannot see",
    VisionKind.CAMERA_RESTORED: "Camera sees again",
    VisionKind.ELEVATOR_REVIEWED: "Lift hold reviewed by an operator",
    VisionKind.FRAME_LABELLED: "Lift camera picture labelled",
    VisionKind.VISION_DEMOTED: "Lift camera stopped holding: operators' reviews showed wrong holds",
}, bodies={
    VisionKind.ELEVATOR_HOLD: HoldBody,
    VisionKind.ELEVATOR_OBSERVED: ObservedBody,
    VisionKind.ELEVATOR_RELEASED: ReleasedBody,
    VisionKind.VISION_MODE: ModeBody,
    VisionKind.ELEVATOR_RELAY_UNCONFIRMED: RelayUnconfirmedBody,
})
