"""The elevator camera's event kinds: e-bike holds, what observe mode would have done, releases,
reviews and camera faults, with their words on the page.

Imports nothing of OpenCV or onnxruntime: every gateway's registry reads it.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
"""

from __future__ import annotations

from enum import StrEnum

from edge.events import Kinds


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
}, bodies="edge.vision.bodies")
