"""The elevator's e-bike guard: cameras, detection, holds, and the tools that qualify it at a site."""

from edge.feature import Feature, Stage

FEATURE = Feature(
    "vision", order=50, settings="edge.vision.settings", kinds="edge.vision.kinds", conditions="edge.vision.conditions",
    wiring="edge.vision.wiring", wanted=lambda config: bool(config.cameras), stage=Stage.LATER,
    commands=("edge.vision.cli", "edge.vision.camera_cli"), tiles="edge.vision.tiles",
)
