"""Point alarms the last run left open, judged again on this run's fresh readings.

Each is cleared with `condition_gone_across_restart` unless its monitor, fed fresh readings for as
long as the rule takes to raise, raises it again; one on a cut circuit stays until the re-close; one
whose point is no longer configured is cleared at once (`edge/carryover.py` hands them over).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.points.device_status import StatusPoint
from edge.events import Event, Kind, Priority
from edge.fieldbus.devices import PointKey

if TYPE_CHECKING:
    from edge.power.breakers import Breakers
    from edge.power.points import FieldPoint

GONE_ACROSS_RESTART = "condition_gone_across_restart"


@dataclass
class _Recheck:
    """An alarm the last run left open, waiting for its point's first fresh reading and the rule's time."""

    clear: Event  # journaled if the condition is gone once judged
    watched: FieldPoint | StatusPoint
    since: float  # monotonic, when this run took it over
    settle_s: float  # the rule's own duration and two polls: how long a condition that holds takes to raise
    fresh: float | None = None  # the first reading after `since`


class Rechecks:
    """The carried alarms still waiting for their judgement."""

    def __init__(self, settle_s: dict[str, float], poll_interval: Callable[[PointKey], float], emit: Callable[[Event], None]) -> None:
        self.settle_s = settle_s  # owner -> the longest duration of its rules (a reload replaces it)
        self._poll_interval, self._emit = poll_interval, emit
        self._waiting: dict[tuple[str, str, str], _Recheck] = {}  # open last run: (owner, point, condition)

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def take(self, carried: list[Any], points: list[FieldPoint], status: dict[PointKey, StatusPoint],
             breakers: Breakers, started: float) -> None:
        """Take over the `edge.conditions.Active` point alarms a previous run left open."""
        by_place = {(p.owner, str(p.key)): p for p in points}
        statuses = {(s.owner, str(s.key)): s for s in status.values()}
        for condition in carried:
            where = (condition.source, str(condition.body.get("point")))
            clear = Event(Kind.CONDITION_CLEARED, Priority.ALARM, condition.source, {**condition.body, "reason": GONE_ACROSS_RESTART})
            watched = by_place.get(where) or statuses.get(where)
            if watched is None:
                self._emit(Event(clear.kind, clear.priority, clear.source, {**condition.body, "reason": "source_gone_from_config"}))
            elif not isinstance(watched, StatusPoint) and watched.circuit is not None and watched.circuit.name in breakers.cuts:
                breakers.hold_until_reclose(watched.circuit.name, where[1], str(condition.body.get("condition")), clear)
            else:
                settle_s = self.settle_s.get(where[0], 0.0) + 2 * self._poll_interval(watched.key)
                self._waiting[(*where, str(condition.body.get("condition")))] = _Recheck(clear, watched, started, settle_s)

    def judge(self, now: float) -> None:
        """Clear each carried alarm whose point, read fresh for its rule's time, did not raise it again."""
        for key, recheck in list(self._waiting.items()):
            condition, watched = key[2], recheck.watched
            if watched.read_at is None or watched.read_at < recheck.since:
                continue  # not read since the start: nothing to judge by yet
            if recheck.fresh is None:
                recheck.fresh = watched.read_at
            if isinstance(watched, StatusPoint):
                active = {"status"} if watched.active else set()
            else:
                active = {str(c) for c in watched.active}
            if condition not in active and now - recheck.fresh < recheck.settle_s:
                continue  # a rule that takes its time to raise gets it
            del self._waiting[key]
            if condition not in active:
                self._emit(recheck.clear)  # otherwise its monitor has raised it again in this run


def longest_duration(settings: Any) -> float:
    """The longest `duration_s` anywhere in a point's safety settings: how long its rules may take
    to raise an alarm that still holds."""
    found = [0.0]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name == "duration_s" and isinstance(inner, int | float):
                    found.append(float(inner))
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(settings.model_dump() if hasattr(settings, "model_dump") else {})
    return max(found)
