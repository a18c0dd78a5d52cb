"""PointMonitor: every rule on one point, fed in the order that keeps them honest.

Staleness sees every reading; the sensor-fault rule sees the raw signal; value rules
see the scaled value only while the sensor is trusted. A faulted or unreadable reading
reaches value rules as None, so they neither raise nor clear on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

from edge.safety.sensor_fault import SensorFaultRule
from edge.safety.staleness import StaleRule
from edge.safety.transition import Transition


class Rule(Protocol):
    def observe(self, value: float | None, now: float) -> list[Transition]: ...

    def tick(self, now: float) -> list[Transition]: ...


class PointMonitor:
    """All safety rules of one named point; `rejected` counts non-finite readings dropped."""

    def __init__(
        self,
        point: str,
        *,
        stale: StaleRule,
        value_rules: Sequence[Rule],
        fault: SensorFaultRule | None = None,
        scale: Callable[[float], float] | None = None,
    ) -> None:
        self.point = point
        self.stale = stale
        self.fault = fault
        self.value_rules = tuple(value_rules)
        self._scale = scale
        self.rejected = 0

    def observe(self, value: float | None, now: float) -> list[Transition]:
        """Feed one poll result (None when the device could not be read)."""
        if value is not None and not math.isfinite(value):
            self.rejected += 1
            value = None
        transitions = self.stale.observe(value, now)
        trusted = value
        if value is not None and self.fault is not None:
            transitions += self.fault.observe(value, now)
            if self.fault.faulted:
                trusted = None
        if trusted is not None and self._scale is not None:
            trusted = self._scale(trusted)
        for rule in self.value_rules:
            transitions += rule.observe(trusted, now)
        return transitions

    def tick(self, now: float) -> list[Transition]:
        """Advance time without a reading, so a silent point still goes stale."""
        transitions = self.stale.tick(now)
        for rule in self.value_rules:
            transitions += rule.tick(now)
        return transitions
