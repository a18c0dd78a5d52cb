"""A feature's tiles on the page: its part of the building as the journal tells it.

The page, `/metrics` and `edge status` fold the journal into one `BuildingView`
(edge/status/view.py), which holds only what is shared (the building, devices, field points'
conditions, what is active). Each feature folds its own events into its own `Tiles` (its
`tiles` module, named by its `Feature`) and gives its keys of the snapshot, so a feature's
tile is written once, in its package, and the page needs no change for a new one.

`PointView` and `point_state` are the field points' tile parts, shared by circuits and water
points as their monitors are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edge.events import Kind

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.events import StoredEvent
    from edge.status.view import BuildingView

HISTORY_POINTS = 240  # per chart series kept in memory: the page asks the journal for longer ranges


class Tiles(Protocol):
    """A feature's fold of the journal. Built from the config (`Tiles(config)`); `apply` takes each
    stored event in seq order at its wall time; `keep` takes over what an older fold had seen of
    what the new config still has (a reload); `snapshot` gives plain JSON under its own keys."""

    def apply(self, event: StoredEvent, at: float) -> None: ...

    def keep(self, older: Any) -> None: ...

    def snapshot(self, now: float, view: BuildingView) -> dict[str, Any]: ...


def tiles_of(config: BuildingConfig) -> dict[str, Tiles]:
    """Every feature's tiles for this building, by feature name."""
    from edge import features

    return {feature.name: feature.module("tiles").Tiles(config) for feature in features.every() if feature.tiles}


@dataclass
class PointView:
    """One field point of a circuit or water point: the newest telemetry and a short history."""

    point: str
    quantity: str = ""
    unit: str = ""
    value: float | None = None
    title: str = ""  # what a manager calls it ("Roof tank water level"), from the config
    group: str = ""  # what it belongs to ("Circuit f1-c1, floor 1, box F1")
    at: float | None = None
    limits: dict[str, Any] | None = None  # warning and alarm, and whether low is bad: the chart's band
    history: list[tuple[float, float]] = field(default_factory=list)

    def add(self, at: float, value: float) -> None:
        self.value, self.at = value, at
        self.history.append((round(at, 1), value))
        if len(self.history) > HISTORY_POINTS:
            del self.history[: len(self.history) - HISTORY_POINTS]

    def reading(self, body: dict[str, Any], at: float) -> None:
        """A `telemetry.point` for this point."""
        if isinstance(body.get("value"), int | float):
            self.quantity, self.unit = body.get("quantity", ""), body.get("unit") or self.unit
            self.add(at, float(body["value"]))

    def row(self, owner: str, kind: str, state: str, now: float) -> dict[str, Any]:
        """The page's and `edge status`'s row of it."""
        return {"owner": owner, "kind": kind, "point": self.point, "title": self.title, "group": self.group,
                "quantity": self.quantity, "unit": self.unit, "value": self.value,
                "age_s": None if self.at is None else round(max(0.0, now - self.at), 1), "state": state,
                "limits": self.limits, "history": self.history}


class PointTiles:
    """The tiles of one feature's field points (circuits, water points): owner -> point -> view,
    set up by the feature from its config; readings folded here, rows given by the feature."""

    def __init__(self) -> None:
        self.points: dict[str, dict[str, PointView]] = {}

    def keep(self, older: PointTiles) -> None:
        """After a reload: each point still configured keeps its readings, with the new config's names and limits."""
        for owner, views in self.points.items():
            for ref, view in views.items():
                kept = older.points.get(owner, {}).get(ref)
                if kept is not None:
                    view.quantity, view.value, view.at, view.history = kept.quantity, kept.value, kept.at, kept.history

    def apply(self, event: StoredEvent, at: float) -> None:
        if event.kind == Kind.POINT_READING:
            view = self.points.get(event.source, {}).get(event.body.get("point", ""))
            if view is not None:
                view.reading(event.body, at)


def point_state(view: BuildingView, owner: str, point: str) -> str:
    """ok, warning, alarm, or why it cannot be judged (sensor_fault, stale), from the raised conditions."""
    raised = [c for (source, ref, _), c in view.conditions.items() if source == owner and ref == point]
    unjudged = [c["condition"] for c in raised if c.get("condition") in ("sensor_fault", "stale")]
    if unjudged:
        return unjudged[0]
    if any(c.get("severity") == "alarm" for c in raised):
        return "alarm"
    return "warning" if raised else "ok"


def label(spec: Any) -> str | None:
    """A name the config gives a thing for people, where it has one."""
    given = getattr(spec, "label", None)
    return str(given) if given else None


def band(limits: Any, low: bool) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {"warning": limits.warning, "alarm": limits.alarm, "low": low}
