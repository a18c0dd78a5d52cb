"""The water points' tiles on the page: each hydrant pressure and tank level, its low limits and a
short history (edge/tiles.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.tiles import PointTiles, PointView, band, label, point_state

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.status.view import BuildingView


class Tiles(PointTiles):
    def __init__(self, config: BuildingConfig) -> None:
        super().__init__()  # water point -> its one point -> view
        for water in config.pressure_points:
            limits = getattr(water.safety, "low_pressure", None) or getattr(water.safety, "low_level", None)
            self.points[water.name] = {water.point: PointView(water.point, unit=water.safety.sensor.unit, title=_title(water),
                                                              group="Fire water", limits=band(limits, low=True))}

    def snapshot(self, now: float, view: BuildingView) -> dict[str, Any]:
        return {"points": [point.row(owner, "pressure_point", point_state(view, owner, ref), now)
                           for owner, points in self.points.items() for ref, point in points.items()]}


def _title(water: Any) -> str:
    """"Roof tank water level", "Riser 1 water pressure": the point named by what it measures, not its wire."""
    if (given := label(water)) is not None:
        return given
    measures = "water level" if water.safety.measures == "level" else "water pressure"
    if water.tank:
        return f"{str(water.tank).capitalize()} tank {measures}"
    if water.riser:
        return f"Riser {water.riser} {measures}"
    return f"{water.name.replace('-', ' ').capitalize()} ({measures})"
