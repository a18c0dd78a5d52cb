"""Power-cut policy, trip confirmation and audited reclose requests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.points import (
    BreakerState,
    Change,
    Condition,
    PowerCutPolicy,
    Quantity,
    RecloseCommand,
    Severity,
    Transition,
    TripCommand,
    TripOutcome,
    TripReason,
    confirm_trip,
    decide_power_cut,
    reclose_request,
)


def transition(
    quantity=Quantity.LEAKAGE_CURRENT,
    condition=Condition.OVER_THRESHOLD,
    severity=Severity.ALARM,
    change=Change.RAISED,
) -> Transition:
    return Transition("floor3/leak", quantity, condition, severity, change, 120.0, 100.0, 42.0)


@pytest.mark.parametrize(
    ("policy", "cause", "reason"),
    [
        (PowerCutPolicy.TRIP, transition(), TripReason.LEAKAGE),
        (PowerCutPolicy.TRIP, transition(Quantity.PHASE_CURRENT), TripReason.OVER_CURRENT),
        (PowerCutPolicy.TRIP, transition(Quantity.CABLE_TEMPERATURE), TripReason.OVER_TEMPERATURE),
        (PowerCutPolicy.WARN, transition(), None),
        (PowerCutPolicy.WARN, transition(Quantity.PHASE_CURRENT), None),
        (PowerCutPolicy.TRIP, transition(severity=Severity.WARNING), None),
        (PowerCutPolicy.TRIP, transition(change=Change.CLEARED), None),
        (PowerCutPolicy.TRIP, transition(condition=Condition.SENSOR_FAULT), None),
        (PowerCutPolicy.TRIP, transition(condition=Condition.STALE), None),
        (PowerCutPolicy.TRIP, transition(Quantity.WATER_PRESSURE, Condition.UNDER_THRESHOLD), None),
    ],
)
def test_power_cut_policy(policy, cause, reason):
    command = decide_power_cut("floor3", "Q3", policy, cause)
    if reason is None:
        assert command is None
    else:
        assert command == TripCommand("floor3", "Q3", reason, cause)


@given(
    policy=st.sampled_from(PowerCutPolicy),
    quantity=st.sampled_from(Quantity),
    condition=st.sampled_from(Condition),
    severity=st.sampled_from(Severity),
)
def test_a_clear_never_leads_to_any_breaker_command(policy, quantity, condition, severity):
    cleared = transition(quantity, condition, severity, Change.CLEARED)
    assert decide_power_cut("floor3", "Q3", policy, cleared) is None


TRIP = TripCommand("floor3", "Q3", TripReason.LEAKAGE, transition())


@pytest.mark.parametrize(
    ("readback", "outcome", "severity"),
    [
        (BreakerState.OPEN, TripOutcome.CONFIRMED, None),
        (None, TripOutcome.UNCONFIRMED, Severity.ALARM),
        (BreakerState.CLOSED, TripOutcome.FAILED, Severity.ALARM),
    ],
)
def test_a_trip_that_cannot_be_confirmed_is_an_alarm(readback, outcome, severity):
    report = confirm_trip(TRIP, readback, 43.0)
    assert (report.outcome, report.severity, report.readback, report.trip, report.at) == (
        outcome, severity, readback, TRIP, 43.0,
    )


def test_reclose_request_is_validated_and_stripped():
    command = reclose_request(
        " tech-07 ",
        "Cable replaced, insulation tested 500 MΩ",
        circuit="floor3",
        breaker="Q3",
        now=99.0,
    )
    assert command == RecloseCommand(
        circuit="floor3", breaker="Q3", operator="tech-07",
        reason="Cable replaced, insulation tested 500 MΩ", requested_at=99.0,
    )


@pytest.mark.parametrize(
    ("operator", "reason", "now", "field"),
    [
        ("", "Cable replaced and tested", 1.0, "operator"),
        ("   ", "Cable replaced and tested", 1.0, "operator"),
        ("tech 07", "Cable replaced and tested", 1.0, "operator"),
        ("x" * 65, "Cable replaced and tested", 1.0, "operator"),
        ("tech-07", "", 1.0, "reason"),
        ("tech-07", "ok", 1.0, "reason"),
        ("tech-07", "fixed\nreally fixed", 1.0, "reason"),
        ("tech-07", "y" * 501, 1.0, "reason"),
        ("tech-07", "Cable replaced and tested", float("nan"), "requested_at"),
    ],
)
def test_bad_reclose_requests_are_refused_with_the_field_named(operator, reason, now, field):
    with pytest.raises(ValidationError) as error:
        reclose_request(operator, reason, circuit="floor3", breaker="Q3", now=now)
    assert [e["loc"] for e in error.value.errors()] == [(field,)]
