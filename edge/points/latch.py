"""The raise/clear state machine shared by every value-based rule.

One latch per severity: it raises only after the value has stayed beyond the threshold
for `raise_after_s`, and clears only after it has stayed back past the threshold by the
hysteresis for `clear_after_s`. A reading that is missing or not trusted (None) resets
the run in progress but never changes the latched state: a gap is no evidence either way.
"""

from __future__ import annotations

from enum import Enum

from edge.points.transition import Change


class Direction(Enum):
    ABOVE = "above"
    BELOW = "below"


class Latch:
    def __init__(
        self,
        direction: Direction,
        threshold: float,
        *,
        hysteresis: float = 0.0,
        raise_after_s: float = 0.0,
        clear_after_s: float = 0.0,
    ) -> None:
        if hysteresis < 0 or raise_after_s < 0 or clear_after_s < 0:
            raise ValueError("hysteresis and durations must not be negative")
        self.direction = direction
        self.threshold = threshold
        self.hysteresis = hysteresis
        self.raise_after_s = raise_after_s
        self.clear_after_s = clear_after_s
        self.active = False
        self._run_since: float | None = None

    def _beyond(self, value: float) -> bool:
        if self.direction is Direction.ABOVE:
            return value > self.threshold
        return value < self.threshold

    def _back(self, value: float) -> bool:
        if self.direction is Direction.ABOVE:
            return value <= self.threshold - self.hysteresis
        return value >= self.threshold + self.hysteresis

    def observe(self, value: float | None, now: float) -> Change | None:
        """Feed one reading; return the change of state it completes, if any."""
        if value is None:
            self._run_since = None
            return None
        heading_out = self._back(value) if self.active else self._beyond(value)
        if not heading_out:
            self._run_since = None
            return None
        if self._run_since is None:
            self._run_since = now
        hold = self.clear_after_s if self.active else self.raise_after_s
        if now - self._run_since < hold:
            return None
        self.active = not self.active
        self._run_since = None
        return Change.RAISED if self.active else Change.CLEARED
