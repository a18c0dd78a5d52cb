"""Doors: readers, locks, access decisions, the credential store and the fire release."""

from enum import StrEnum

from edge.feature import Feature

FEATURE = Feature(
    "doors", order=10, settings="edge.doors.settings", kinds="edge.doors.kinds", conditions="edge.doors.conditions",
    wiring="edge.doors.wiring", wanted=lambda config: bool(config.doors or config.readers), commands=("edge.doors.cli",), tiles="edge.doors.tiles",
)


class DoorOp(StrEnum):
    """The doors' operations on the control socket: served by wiring.py, asked by cli.py; the
    uplink serves them as signed cloud commands by the same names."""

    UNLOCK = "door.unlock"
    FIRE_RESET = "fire.reset"
    CREDENTIALS_RELOAD = "credentials.reload"
