"""A deadline handed down a stop: each part takes a share of the time left, not a constant of its own.

The daemon's stop is one budget (the README promises 5 s; systemd kills at TimeoutStopSec).
Parts nest: the workers get the budget less what the journal keeps for its flush; inside a
worker each step on the way out (the uplink's session loops, its goodbye, its last journal
writes) takes its proportional share of what is left when it starts. So the parts always end
before the whole must, and a step that ends early leaves its time to the steps after it.
Outside a stop (`Deadline.never()`) every step keeps its own limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float  # time.monotonic() by which the stop must be done; inf: no stop in progress

    @classmethod
    def within(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def never(cls) -> Deadline:
        return cls(math.inf)

    def left(self) -> float:
        """Seconds left (0 once passed; inf outside a stop)."""
        return max(0.0, self.at - time.monotonic())

    def keeping(self, reserve_s: float) -> Deadline:
        """This deadline less `reserve_s` kept for what comes after (the journal's flush)."""
        return Deadline(self.at - reserve_s)

    def share(self, own_s: float, after_s: float = 0.0) -> float:
        """The time for a step that would take at most `own_s`, followed by steps that would take
        `after_s`: its proportional part of what is left, never more than `own_s`."""
        left = self.left()
        if math.isinf(left):
            return own_s
        return min(own_s, left * own_s / (own_s + after_s)) if own_s > 0 else 0.0
