"""Status rule: a device's own word for trouble (a trip bit, a fault code, a CT-break flag).

The device has already judged; the rule only turns its level into raise and clear, so a
bit that stays set is one alarm, not one per poll. What matches is a profile's or the
config's `alarms` entry, turned into a predicate before it gets here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.points.transition import Change, Condition, Quantity, Severity, Transition


class StatusRule:
    """Raised while `matches(value)` holds, cleared on the first reading where it does not."""

    def __init__(
        self, point: str, matches: Callable[[Any], bool], *, severity: Severity, text: str, threshold: float | None = None
    ) -> None:
        self.point = point
        self.matches = matches
        self.severity = severity
        self.text = text
        self.threshold = threshold
        self.active = False

    def observe(self, value: Any, now: float) -> list[Transition]:
        """None (unreadable, or voided by the device) says nothing and leaves the state alone."""
        if value is None:
            return []
        matching = bool(self.matches(value))
        if matching == self.active:
            return []
        self.active = matching
        change = Change.RAISED if matching else Change.CLEARED
        reading = float(value) if isinstance(value, bool | int | float) else float("nan")
        return [
            Transition(self.point, Quantity.DEVICE_STATUS, Condition.STATUS, self.severity, change,
                       reading=reading, threshold=self.threshold, at=now)
        ]

    def tick(self, now: float) -> list[Transition]:
        """A status only moves on readings."""
        return []
