"""PointMonitors built from settings: a faulted sensor never produces a value alarm."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from edge.points import (
    Change,
    CircuitSafety,
    Condition,
    Quantity,
    Severity,
    WaterPointSafety,
    circuit_point_monitor,
    water_point_monitor,
)

RISER = TypeAdapter(WaterPointSafety).validate_python(
    {
        "measures": "pressure",
        "sensor": {"value_at_4ma": 0, "value_at_20ma": 16},
        "low_pressure": {"warning": 3.0, "alarm": 2.0, "hysteresis": 0.5},
        "drop_rate": {"alarm": 0.2, "window_s": 5},
        "stale": {"after_intervals": 3},
    }
)
VALUE_CONDITIONS = {Condition.UNDER_THRESHOLD, Condition.OVER_THRESHOLD, Condition.RATE_OF_CHANGE}


def ma_for_bar(bar: float) -> float:
    return 4.0 + bar * 16.0 / 16.0


def riser():
    return water_point_monitor("riser/B/7F", RISER, poll_interval_s=1.0, started_at=0.0)


def feed(monitor, readings):
    out = []
    for now, value in readings:
        out += monitor.observe(value, now)
    return out


def kinds(transitions):
    return [(t.at, t.condition, t.severity, t.change) for t in transitions]


def test_loop_current_is_scaled_to_bar_before_thresholds():
    transitions = feed(riser(), [(0, ma_for_bar(6.0)), (1, ma_for_bar(2.5)), (2, ma_for_bar(3.5))])
    assert kinds(transitions) == [
        (1, Condition.UNDER_THRESHOLD, Severity.WARNING, Change.RAISED),
        (2, Condition.UNDER_THRESHOLD, Severity.WARNING, Change.CLEARED),
    ]
    assert transitions[0].reading == 2.5 and transitions[0].threshold == 3.0


def test_broken_loop_is_a_sensor_fault_not_low_pressure():
    transitions = feed(riser(), [(0, ma_for_bar(6.0)), (1, 0.0), (2, 3.0), (3, ma_for_bar(6.0))])
    assert kinds(transitions) == [
        (1, Condition.SENSOR_FAULT, Severity.WARNING, Change.RAISED),
        (3, Condition.SENSOR_FAULT, Severity.WARNING, Change.CLEARED),
    ]


def test_fault_neither_clears_a_raised_low_pressure_alarm():
    monitor = riser()
    transitions = feed(monitor, [(0, ma_for_bar(1.0)), (1, 22.0), (2, ma_for_bar(1.0))])
    assert kinds(transitions) == [
        (0, Condition.UNDER_THRESHOLD, Severity.WARNING, Change.RAISED),
        (0, Condition.UNDER_THRESHOLD, Severity.ALARM, Change.RAISED),
        (1, Condition.SENSOR_FAULT, Severity.WARNING, Change.RAISED),
        (2, Condition.SENSOR_FAULT, Severity.WARNING, Change.CLEARED),
    ]


def test_silent_point_goes_stale_on_ticks_and_non_finite_readings_are_counted():
    monitor = riser()
    assert monitor.observe(math.nan, 1.0) == []
    assert monitor.tick(2.0) == []
    assert kinds(monitor.tick(3.0)) == [(3.0, Condition.STALE, Severity.WARNING, Change.RAISED)]
    assert monitor.rejected == 1
    assert kinds(monitor.observe(ma_for_bar(6.0), 4.0)) == [
        (4.0, Condition.STALE, Severity.WARNING, Change.CLEARED)
    ]


fault_ma = st.one_of(st.floats(-5.0, 3.8, exclude_max=True), st.floats(20.5, 40, exclude_min=True))
any_ma = st.one_of(fault_ma, st.floats(3.8, 20.5), st.none())
times = st.lists(st.floats(0.01, 2.0), min_size=1, max_size=80).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))]
)


@given(times=times, values=st.lists(st.one_of(fault_ma, st.none()), min_size=80, max_size=80))
def test_fault_band_readings_never_produce_value_alarms(times, values):
    transitions = feed(riser(), zip(times, values))
    assert not [t for t in transitions if t.condition in VALUE_CONDITIONS]


@given(times=times, values=st.lists(any_ma, min_size=80, max_size=80))
def test_value_transitions_only_happen_on_trusted_readings(times, values):
    monitor = riser()
    for now, value in zip(times, values):
        for t in monitor.observe(value, now):
            if t.condition in VALUE_CONDITIONS:
                assert value is not None and 3.8 <= value <= 20.5
            if t.condition is Condition.UNDER_THRESHOLD:
                assert t.change is not Change.RAISED or t.reading < t.threshold


def test_circuit_monitor_uses_the_limits_of_its_quantity():
    circuit = CircuitSafety.model_validate(
        {
            "over_current_a": {"alarm": 63, "duration_s": 5},
            "leakage_ma": {"warning": 30, "alarm": 100},
            "power_cut": "trip",
        }
    )
    leakage = circuit_point_monitor(
        "floor3/leak", Quantity.LEAKAGE_CURRENT, circuit, poll_interval_s=1, started_at=0
    )
    phase = circuit_point_monitor(
        "floor3/L1", Quantity.PHASE_CURRENT, circuit, poll_interval_s=1, started_at=0
    )
    temperature = circuit_point_monitor(
        "floor3/temp", Quantity.CABLE_TEMPERATURE, circuit, poll_interval_s=1, started_at=0
    )
    assert kinds(feed(leakage, [(0, 5), (1, 150)])) == [
        (1, Condition.OVER_THRESHOLD, Severity.WARNING, Change.RAISED),
        (1, Condition.OVER_THRESHOLD, Severity.ALARM, Change.RAISED),
    ]
    assert feed(phase, [(0, 150), (1, 150), (2, 20)]) == []
    assert feed(temperature, [(0, 500), (1, 500)]) == []


def test_circuit_monitor_refuses_a_water_quantity():
    circuit = CircuitSafety(power_cut="warn")
    with pytest.raises(ValueError, match="water_level"):
        circuit_point_monitor("x", Quantity.WATER_LEVEL, circuit, poll_interval_s=1, started_at=0)


def circuit(limits: dict) -> object:
    safety = CircuitSafety.model_validate({"over_current_a": limits | {"hysteresis": 1.0}, "power_cut": "warn"})
    return circuit_point_monitor("f1-c1/L1", Quantity.PHASE_CURRENT, safety, poll_interval_s=1.0, started_at=0.0)


def test_a_retuned_monitor_keeps_a_raised_alarm_clears_it_by_the_new_limit_and_ends_a_level_that_is_gone():
    old = circuit({"warning": 20.0, "alarm": 30.0})
    raised = old.observe(35.0, 1.0)
    assert {(t.severity, t.change) for t in raised} == {(Severity.WARNING, Change.RAISED), (Severity.ALARM, Change.RAISED)}

    new = circuit({"alarm": 40.0})  # the warning level is dropped, the alarm's limit raised
    ended = new.take_over(old, 35.0, 2.0)
    assert [(t.severity, t.change, t.threshold) for t in ended] == [(Severity.WARNING, Change.CLEARED, 20.0)]
    assert new.observe(39.5, 3.0) == [], "still raised (not back by the hysteresis), and raised once only"
    cleared = new.observe(38.5, 4.0)  # below 40 by the 1 A hysteresis
    assert [(t.severity, t.change, t.threshold) for t in cleared] == [(Severity.ALARM, Change.CLEARED, 40.0)]


def test_a_retuned_monitor_that_was_quiet_raises_by_the_new_limit_and_keeps_the_stale_clock():
    old = circuit({"alarm": 30.0})
    assert old.observe(25.0, 1.0) == []
    new = circuit({"alarm": 20.0})
    assert new.take_over(old, 25.0, 2.0) == []
    assert [(t.condition, t.change) for t in new.observe(25.0, 3.0)] == [(Condition.OVER_THRESHOLD, Change.RAISED)]
    stale = new.tick(3.0 + 3 * 5.0)  # the default stale limit counts from the last reading the old monitor saw
    assert [t.condition for t in stale] == [Condition.STALE]
