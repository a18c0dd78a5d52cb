"""Power-cut decisions: when to trip a circuit's breaker, and what a trip's outcome means.

The gateway may open a breaker on its own, never close one: re-energising a floor after
a fault is an operator's call, made through `reclose_request` and journaled with who and
why. A trip that cannot be confirmed is an alarm, because the fault may still be live.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from edge.config.settings import Strict
from edge.points.transition import Change, Condition, Quantity, Severity, Transition


class PowerCutPolicy(StrEnum):
    """Per circuit: `warn` only raises alarms; `trip` also opens the breaker on an alarm."""

    WARN = "warn"
    TRIP = "trip"


class TripReason(StrEnum):
    OVER_CURRENT = "over_current"
    LEAKAGE = "leakage"
    OVER_TEMPERATURE = "over_temperature"
    SMOKE = "smoke"  # a charging area's smoke detector (edge/community/), through FieldPoints.cut_power


_TRIP_REASONS = {
    Quantity.PHASE_CURRENT: TripReason.OVER_CURRENT,
    Quantity.LEAKAGE_CURRENT: TripReason.LEAKAGE,
    Quantity.CABLE_TEMPERATURE: TripReason.OVER_TEMPERATURE,
}


@dataclass(frozen=True, slots=True)
class TripCommand:
    """Open `breaker` to de-energise `circuit`, because of `cause`."""

    circuit: str
    breaker: str
    reason: TripReason
    cause: Transition


def decide_power_cut(
    circuit: str, breaker: str, policy: PowerCutPolicy, transition: Transition
) -> TripCommand | None:
    """Trip only on a raised over-threshold alarm of current, leakage or temperature.

    Warnings, clears, sensor faults and stale data never cut power: a broken sensor or a
    lost bus must not black out a floor. Clearing never re-closes.
    """
    reason = _TRIP_REASONS.get(transition.quantity)
    if (
        policy is PowerCutPolicy.TRIP
        and reason is not None
        and transition.condition is Condition.OVER_THRESHOLD
        and transition.severity is Severity.ALARM
        and transition.change is Change.RAISED
    ):
        return TripCommand(circuit, breaker, reason, transition)
    return None


class BreakerState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class TripOutcome(StrEnum):
    CONFIRMED = "confirmed"
    UNCONFIRMED = "unconfirmed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TripReport:
    """What to journal after reading a tripped breaker back.

    `severity` is None for a confirmed trip (a record) and ALARM otherwise.
    """

    trip: TripCommand
    outcome: TripOutcome
    severity: Severity | None
    readback: BreakerState | None
    at: float


def confirm_trip(trip: TripCommand, readback: BreakerState | None, now: float) -> TripReport:
    """Judge a trip by its read-back: open is confirmed, no answer or still closed is an alarm."""
    if readback is BreakerState.OPEN:
        return TripReport(trip, TripOutcome.CONFIRMED, None, readback, now)
    outcome = TripOutcome.UNCONFIRMED if readback is None else TripOutcome.FAILED
    return TripReport(trip, outcome, Severity.ALARM, readback, now)


_Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$"),
]
_Reason = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=10, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class RecloseCommand(Strict):
    """An operator's audited request to close a breaker the gateway (or anyone) opened."""

    circuit: _Name = Field(description="Circuit to re-energise.")
    breaker: _Name = Field(description="Breaker to close.")
    operator: _Name = Field(description="Staff id of the person who takes responsibility.")
    reason: _Reason = Field(description="Why re-energising is safe (10-500 characters, one line).")
    requested_at: float = Field(
        allow_inf_nan=False, description="Monotonic time of the request, seconds."
    )


def reclose_request(
    operator: str, reason: str, *, circuit: str, breaker: str, now: float
) -> RecloseCommand:
    """Validate an operator's reclose request; pydantic.ValidationError lists every problem."""
    return RecloseCommand(
        circuit=circuit, breaker=breaker, operator=operator, reason=reason, requested_at=now
    )
