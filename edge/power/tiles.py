"""The circuits' tiles on the page: each current, leakage and cable temperature with its limits
and a short history, and the circuits the gateway cut (edge/tiles.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.power.kinds import PowerKind
from edge.tiles import PointTiles, PointView, band, label, point_state

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.status.view import BuildingView


class Tiles(PointTiles):
    def __init__(self, config: BuildingConfig) -> None:
        super().__init__()  # circuit -> point -> view
        for circuit in config.circuits:
            safety = circuit.safety
            owned = [(ref, safety.over_current_a, _phase(circuit.currents, n), "A") for n, ref in enumerate(circuit.currents)]
            owned += [(circuit.leakage, safety.leakage_ma, "Leakage current", "mA")] if circuit.leakage else []
            owned += [(ref, safety.over_temperature_c, "Cable temperature" + (f" {n + 1}" if len(circuit.temperatures) > 1 else ""), "°C")
                      for n, ref in enumerate(circuit.temperatures)]
            group = label(circuit) or f"Circuit {circuit.name}, floor {circuit.floor}, box {circuit.box}"
            self.points[circuit.name] = {ref: PointView(ref, unit=unit, title=title, group=group, limits=band(limits, low=False))
                                         for ref, limits, title, unit in owned}

    def snapshot(self, now: float, view: BuildingView) -> dict[str, Any]:
        cut = {c.key: c.as_json() for c in view.active.now(now) if c.kind == PowerKind.TRIP_CONFIRMED}
        rows = [point.row(owner, "circuit", "cut" if owner in cut else point_state(view, owner, ref), now)
                for owner, points in self.points.items() for ref, point in points.items()]  # cut: no power, the currents read zero because of it
        return {"points": rows, "cut_circuits": list(cut.values())}


def _phase(currents: list[Any], n: int) -> str:
    return "Current" if len(currents) == 1 else f"Current, phase {'ABC'[n] if n < 3 else n + 1}"
