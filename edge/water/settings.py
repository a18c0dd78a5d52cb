"""The `pressure_points:` section of the building config (hydrant risers and fire-water tanks), and
the check of its references: each loop current a point names is one its device's profile has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from edge.points.settings import WaterPointSafety
from edge.config.settings import Name, PointRef, Problem, References, Strict, unique
from edge.points.telemetry import TelemetrySettings

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig


class PressurePoint(Strict):
    """A hydrant riser pressure or a fire-water tank level on a 4-20 mA loop."""

    name: Name
    label: str | None = Field(None, min_length=1, max_length=80, description="What the page and the alarms call it, e.g. 'Roof tank, block B'; default: what it measures and where.")
    point: PointRef = Field(description="The loop current in mA, as DEVICE.POINT.")
    riser: str | None = Field(None, max_length=64)
    tank: str | None = Field(None, max_length=64)
    safety: WaterPointSafety
    telemetry: TelemetrySettings | None = Field(None, description="Upstream reporting of the loop current.")


def check(config: BuildingConfig, refs: References) -> list[Problem]:
    problems = unique(("pressure_points",), config.pressure_points, "pressure point")
    for index, point in enumerate(config.pressure_points):
        problems += refs.point(point.point, ("pressure_points", index, "point"))
    return problems


SECTIONS = {"pressure_points": (list[PressurePoint], Field(default_factory=list))}
"""The building config's sections this feature owns (edge/feature.py)."""
