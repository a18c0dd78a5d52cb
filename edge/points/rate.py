"""Rate-of-drop rule: a value falling faster than a limit, measured over a window.

The rate is taken between the newest reading and the newest reading at least one window
older, so a single noisy sample moves it by only (noise / window). Memory is bounded by
the window: readings older than that anchor are dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from edge.points.latch import Direction
from edge.points.threshold import ThresholdRule
from edge.points.transition import Condition, Quantity, Severity, Transition


class DropRateRule:
    """Raises `rate_of_change` when the value falls faster than a limit (units/second).

    The reading and threshold in its transitions are drop rates (positive = falling).
    A gap (None) or a reading not later than the previous one restarts the window, so no
    rate is ever computed across readings that were missing or not trusted.
    """

    def __init__(
        self,
        point: str,
        quantity: Quantity,
        limits: Mapping[Severity, float],
        *,
        window_s: float,
        hysteresis: float = 0.0,
        duration_s: float = 0.0,
        clear_duration_s: float = 0.0,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"{point}: window_s must be positive, got {window_s}")
        self.window_s = window_s
        self._history: deque[tuple[float, float]] = deque()
        self._limit = ThresholdRule(
            point,
            quantity,
            Direction.ABOVE,
            limits,
            hysteresis=hysteresis,
            duration_s=duration_s,
            clear_duration_s=clear_duration_s,
            condition=Condition.RATE_OF_CHANGE,
        )

    def _drop_rate(self, value: float | None, now: float) -> float | None:
        """Record the reading; return the drop rate over the window once it is covered."""
        if value is None or (self._history and now <= self._history[-1][0]):
            self._history.clear()
            if value is None:
                return None
        self._history.append((now, value))
        while len(self._history) >= 2 and self._history[1][0] <= now - self.window_s:
            self._history.popleft()
        anchor_at, anchor_value = self._history[0]
        if now - anchor_at < self.window_s:
            return None
        return (anchor_value - value) / (now - anchor_at)

    @property
    def condition(self) -> Condition:
        return self._limit.condition

    def take_over(self, previous: DropRateRule, reading: float, now: float) -> list[Transition]:
        """Keep `previous`'s raised levels under the new limits, and its window of readings."""
        self._history = previous._history
        return self._limit.take_over(previous._limit, reading, now)

    def ended(self, reading: float, now: float) -> list[Transition]:
        return self._limit.ended(reading, now)

    def observe(self, value: float | None, now: float) -> list[Transition]:
        return self._limit.observe(self._drop_rate(value, now), now)

    def tick(self, now: float) -> list[Transition]:
        """A rate only moves on readings."""
        return []
