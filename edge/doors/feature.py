"""Doors: readers, locks, access decisions, the credential store and the fire release."""

from edge.feature import Feature

FEATURE = Feature(
    "doors", order=10, settings="edge.doors.settings", kinds="edge.doors.kinds", conditions="edge.doors.conditions",
    wiring="edge.doors.wiring", wanted=lambda config: bool(config.doors or config.readers), commands=("edge.doors.cli",), tiles="edge.doors.tiles",
)
