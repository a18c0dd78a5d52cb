"""Stale rule: no reading for too long means the gateway is blind on that point."""

from __future__ import annotations

from edge.points.transition import Change, Condition, Quantity, Severity, Transition


class StaleRule:
    """Raised when no reading arrived for `after_s`; cleared by the next reading.

    Any reading that arrived counts, even one outside the sensor range: that sensor is
    talking, and its fault is the sensor-fault rule's to report. None means unreadable.
    The clock starts at `started_at`, so a point that never answers goes stale too.
    """

    def __init__(
        self,
        point: str,
        quantity: Quantity,
        *,
        after_s: float,
        severity: Severity,
        started_at: float,
    ) -> None:
        if after_s <= 0:
            raise ValueError(f"{point}: stale limit must be positive, got {after_s}")
        self.point = point
        self.quantity = quantity
        self.after_s = after_s
        self.severity = severity
        self.stale = False
        self._last_reading_at = started_at

    def take_over(self, previous: StaleRule) -> None:
        """Keep when the point last answered and whether it is stale (a reload's new limit)."""
        self.stale, self._last_reading_at = previous.stale, previous._last_reading_at

    def _transition(self, change: Change, now: float) -> Transition:
        return Transition(
            self.point, self.quantity, Condition.STALE, self.severity, change,
            reading=now - self._last_reading_at, threshold=self.after_s, at=now,
        )

    def observe(self, value: float | None, now: float) -> list[Transition]:
        if value is None:
            return self.tick(now)
        transitions = [self._transition(Change.CLEARED, now)] if self.stale else []
        self.stale = False
        self._last_reading_at = now
        return transitions

    def tick(self, now: float) -> list[Transition]:
        if self.stale or now - self._last_reading_at < self.after_s:
            return []
        self.stale = True
        return [self._transition(Change.RAISED, now)]
