"""Threshold rule: a value above (or below) a warning and/or an alarm limit."""

from __future__ import annotations

from collections.abc import Mapping

from edge.points.latch import Direction, Latch
from edge.points.transition import Change, Condition, Quantity, Severity, Transition


class ThresholdRule:
    """Over- or under-threshold on one point, one independent latch per severity.

    A value that jumps straight past the alarm limit raises both the warning and the
    alarm once their durations have passed; each clears on its own hysteresis.
    """

    def __init__(
        self,
        point: str,
        quantity: Quantity,
        direction: Direction,
        limits: Mapping[Severity, float],
        *,
        hysteresis: float = 0.0,
        duration_s: float = 0.0,
        clear_duration_s: float = 0.0,
        condition: Condition | None = None,
    ) -> None:
        """`condition` defaults to over/under threshold; a derived value names its own."""
        if not limits:
            raise ValueError(f"{point}: a threshold rule needs at least one limit")
        self.point = point
        self.quantity = quantity
        if condition is None:
            condition = (
                Condition.OVER_THRESHOLD
                if direction is Direction.ABOVE
                else Condition.UNDER_THRESHOLD
            )
        self.condition = condition
        self._latches = {
            severity: Latch(
                direction,
                limit,
                hysteresis=hysteresis,
                raise_after_s=duration_s,
                clear_after_s=clear_duration_s,
            )
            for severity, limit in sorted(limits.items(), key=lambda item: _ORDER[item[0]])
        }

    def take_over(self, previous: ThresholdRule, reading: float, now: float) -> list[Transition]:
        """Carry `previous`'s raised levels into these limits (a reload retuned them): a level both
        have stays raised, to clear by the new limit and hysteresis; a raised level these limits no
        longer have clears now (`reading` is the point's last value)."""
        for severity, latch in self._latches.items():
            old = previous._latches.get(severity)
            latch.active = old is not None and old.active
        return previous.ended(reading, now, keep=set(self._latches))

    def ended(self, reading: float, now: float, keep: set[Severity] = set()) -> list[Transition]:
        """The clears of every raised level but those in `keep` (their rule leaves the point)."""
        return [Transition(self.point, self.quantity, self.condition, severity, Change.CLEARED,
                           reading=reading, threshold=latch.threshold, at=now)
                for severity, latch in self._latches.items() if latch.active and severity not in keep]

    def observe(self, value: float | None, now: float) -> list[Transition]:
        transitions = []
        for severity, latch in self._latches.items():
            change = latch.observe(value, now)
            if change is not None and value is not None:
                transitions.append(
                    Transition(
                        self.point, self.quantity, self.condition, severity, change,
                        reading=value, threshold=latch.threshold, at=now,
                    )
                )
        return transitions

    def tick(self, now: float) -> list[Transition]:
        """A threshold only moves on readings; time alone proves nothing about the value."""
        return []


_ORDER = {Severity.WARNING: 0, Severity.ALARM: 1}
