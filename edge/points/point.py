"""PointMonitor: every rule on one point, fed in the order that keeps them honest.

Staleness sees every reading; the sensor-fault rule sees the raw signal; value rules
see the scaled value only while the sensor is trusted. A faulted or unreadable reading
reaches value rules as None, so they neither raise nor clear on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from edge.points.sensor_fault import SensorFaultRule
from edge.points.staleness import StaleRule
from edge.points.transition import Change, Condition, Transition


class Rule(Protocol):
    condition: Condition

    def observe(self, value: float | None, now: float) -> list[Transition]: ...

    def tick(self, now: float) -> list[Transition]: ...

    def take_over(self, previous: Any, reading: float, now: float) -> list[Transition]: ...

    def ended(self, reading: float, now: float) -> list[Transition]: ...


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
        self.invalid = False  # the device said the last reading was not valid

    def take_over(self, previous: PointMonitor, reading: float, now: float) -> list[Transition]:
        """Carry `previous`'s state into this monitor of the same point with a reload's new limits:
        what is raised stays raised and clears by the new rules; a rule or level that is gone ends
        its alarm now (the transitions returned). `reading` is the point's last value."""
        self.stale.take_over(previous.stale)
        self.invalid, self.rejected = previous.invalid, previous.rejected
        ended: list[Transition] = []
        if self.fault is not None and previous.fault is not None:
            self.fault.take_over(previous.fault)
        elif previous.fault is not None and previous.fault.faulted:
            ended += [Transition(self.point, previous.fault.quantity, Condition.SENSOR_FAULT, previous.fault.severity,
                                 Change.CLEARED, reading=reading, threshold=None, at=now)]
        rules = {rule.condition: rule for rule in self.value_rules}
        for old in previous.value_rules:
            new = rules.get(old.condition)
            if new is not None and type(new) is type(old):
                ended += new.take_over(old, reading, now)
            else:  # the rule is gone: each level it had raised ends
                ended += old.ended(reading, now)
        return ended

    def observe_void(self, now: float) -> list[Transition]:
        """The device says its reading is not valid now (a CT-break bit voids the leakage, which
        then reads 0 as if all were fine). The device is talking, so the point is not stale, but
        it is blind: INVALID is raised at the stale rule's severity, and value rules see nothing,
        so a 0 from a broken CT never clears a leakage alarm."""
        transitions = self.stale.observe(0.0, now)  # any value: only its arrival counts
        if not self.invalid:
            self.invalid = True
            transitions.append(self._invalid(Change.RAISED, now))
        for rule in self.value_rules:
            transitions += rule.observe(None, now)
        return transitions

    def _invalid(self, change: Change, now: float) -> Transition:
        return Transition(self.point, self.stale.quantity, Condition.INVALID, self.stale.severity, change,
                          reading=0.0, threshold=None, at=now)

    def observe(self, value: float | None, now: float) -> list[Transition]:
        """Feed one poll result (None when the device could not be read)."""
        if value is not None and not math.isfinite(value):
            self.rejected += 1
            value = None
        transitions = self.stale.observe(value, now)
        if self.invalid and value is not None:
            self.invalid = False
            transitions.append(self._invalid(Change.CLEARED, now))
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
