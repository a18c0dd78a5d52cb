"""The elevator's e-bike guard: cameras, detection, holds, and the tools that qualify it at a site."""

from enum import StrEnum

from edge.feature import Feature, Stage

FEATURE = Feature(
    "vision", order=50, settings="edge.vision.settings", kinds="edge.vision.kinds", conditions="edge.vision.conditions",
    wiring="edge.vision.wiring", wanted=lambda config: bool(config.cameras), stage=Stage.LATER,
    commands=("edge.vision.cli", "edge.vision.camera_cli"), tiles="edge.vision.tiles",
)


class VisionOp(StrEnum):
    """The elevator guard's operations on the control socket: served by wiring.py, asked by
    camera_cli.py; the uplink serves them as signed cloud commands by the same names."""

    ELEVATOR_RELEASE = "elevator.release"
    ELEVATOR_REVIEW = "elevator.review"
