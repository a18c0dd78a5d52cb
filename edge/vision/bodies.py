"""Typed bodies of the e-bike guard's kinds (edge/vision/kinds.py): the fields each emitter writes, for the fleet
contract's schema and the tests that hold the emitters to them. Named by its `Kinds` and imported
only by what reads bodies (the contract, the ingest, the tests): never on the gateway's start or
hot path, where no event is built through a model."""

from __future__ import annotations

from pydantic import Field

from edge.events.bodies import Body
from edge.vision.confirm import Release
from edge.vision.detection import VisionClass
from edge.vision.kinds import VisionKind


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


BODIES = {
    VisionKind.ELEVATOR_HOLD: HoldBody,
    VisionKind.ELEVATOR_OBSERVED: ObservedBody,
    VisionKind.ELEVATOR_RELEASED: ReleasedBody,
    VisionKind.VISION_MODE: ModeBody,
    VisionKind.ELEVATOR_RELAY_UNCONFIRMED: RelayUnconfirmedBody,
}
