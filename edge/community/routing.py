"""Who is told of an alarm, and who next when nobody acknowledges it. Pure: time is passed in.

The table comes from `community.routes`: a route names the alarm kinds that start at it, the
areas it covers, the contacts it tells, and how long it waits for an acknowledgement
before the route it escalates to is told. `Incident` is one alarm's walk along that chain;
the config check has already refused unknown contacts and chains that loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.community.settings import AlarmKind, CommunitySafety, Contact, Route


class RoutingTable:
    def __init__(self, settings: CommunitySafety) -> None:
        self.routes = {r.name: r for r in settings.routes}
        self.contacts = {c.name: c for c in settings.contacts}

    def first(self, kind: AlarmKind, area: str) -> list[Route]:
        """The routes an alarm of `kind` in `area` starts at (several may apply)."""
        return [r for r in self.routes.values() if kind in r.alarms and ("*" in r.areas or area in r.areas)]

    def recipients(self, route: Route) -> list[Contact]:
        return [self.contacts[name] for name in route.notify if name in self.contacts]


@dataclass
class Step:
    """One route told: when, and when it escalates if nobody acknowledges."""

    route: Route
    told_at: float
    escalates_at: float | None


@dataclass
class Incident:
    """One alarm being notified: the routes told so far, and whether it is acknowledged."""

    id: str  # the alarm event's id
    kind: AlarmKind
    area: str
    source: str
    raised_at: float  # monotonic
    detail: str = ""
    steps: list[Step] = field(default_factory=list)
    acknowledged_by: str | None = None

    @property
    def open(self) -> bool:
        return self.acknowledged_by is None

    def tell(self, route: Route, now: float) -> Step:
        step = Step(route, now, None if route.ack_within_s is None or route.escalate_to is None else now + route.ack_within_s)
        self.steps.append(step)
        return step

    def due(self, now: float, table: RoutingTable) -> list[tuple[Route, Route]]:
        """Escalations due at `now`, as (from, to); each step escalates once."""
        if not self.open:
            return []
        due = []
        for step in list(self.steps):
            if step.escalates_at is not None and now >= step.escalates_at:
                step.escalates_at = None
                target = table.routes.get(step.route.escalate_to or "")
                if target is not None:
                    due.append((step.route, target))
        return due

    def next_deadline(self) -> float | None:
        if not self.open:
            return None
        times = [s.escalates_at for s in self.steps if s.escalates_at is not None]
        return min(times) if times else None
