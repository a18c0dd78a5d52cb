"""Power: circuits in the floors' distribution boxes, their monitors, trips and breakers; `edge
points` shows water points too, as both run in the same field points."""

from enum import StrEnum

from edge.feature import Feature

FEATURE = Feature(
    "power", order=20, settings="edge.power.settings", kinds="edge.power.kinds", conditions="edge.power.conditions", wiring="edge.power.wiring",
    wanted=lambda config: bool(config.circuits and config.devices), commands=("edge.power.cli",), tiles="edge.power.tiles",
)


class PowerOp(StrEnum):
    """Power's operations on the control socket: served by wiring.py, asked by cli.py; the uplink
    serves them as signed cloud commands by the same names."""

    BREAKER_CLOSE = "breaker.close"
