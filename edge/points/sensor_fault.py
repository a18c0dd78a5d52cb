"""Sensor-fault rule: a raw signal outside what a working sensor can produce.

On a 4-20 mA loop, below 3.8 mA means a broken wire or dead transmitter and above
20.5 mA a short: the value then says nothing about the water, so it is a fault of the
sensor and never a low-pressure alarm.
"""

from __future__ import annotations

from edge.points.transition import Change, Condition, Quantity, Severity, Transition


class SensorFaultRule:
    """Raised on the first raw reading outside [low, high], cleared on the first inside."""

    def __init__(
        self,
        point: str,
        quantity: Quantity,
        *,
        low: float,
        high: float,
        severity: Severity,
    ) -> None:
        if not low < high:
            raise ValueError(f"{point}: sensor fault range needs low < high, got {low}..{high}")
        self.point = point
        self.quantity = quantity
        self.low = low
        self.high = high
        self.severity = severity
        self.faulted = False
        self._crossed: float = low

    def take_over(self, previous: SensorFaultRule) -> None:
        """Keep a raised fault raised (a reload's new range judges the next reading)."""
        self.faulted, self._crossed = previous.faulted, previous._crossed

    def observe(self, value: float | None, now: float) -> list[Transition]:
        """None (unreadable) says nothing about the sensor and leaves the state alone."""
        if value is None:
            return []
        out_of_range = value < self.low or value > self.high
        if out_of_range == self.faulted:
            return []
        self.faulted = out_of_range
        if out_of_range:
            self._crossed = self.low if value < self.low else self.high
        change = Change.RAISED if out_of_range else Change.CLEARED
        return [
            Transition(
                self.point, self.quantity, Condition.SENSOR_FAULT, self.severity, change,
                reading=value, threshold=self._crossed, at=now,
            )
        ]

    def tick(self, now: float) -> list[Transition]:
        """A fault only moves on readings."""
        return []
