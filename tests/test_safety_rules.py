"""Each safety rule kind raises and clears as specified; properties over random readings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.points.latch import Direction
from edge.points.rate import DropRateRule
from edge.points.sensor_fault import SensorFaultRule
from edge.points.staleness import StaleRule
from edge.points.threshold import ThresholdRule
from edge.points.transition import Change, Condition, Quantity, Severity, Transition

W, A = Severity.WARNING, Severity.ALARM
RAISED, CLEARED = Change.RAISED, Change.CLEARED


def run(rule, readings) -> list[Transition]:
    """Feed (now, value) pairs; return every transition in order."""
    out: list[Transition] = []
    for now, value in readings:
        out += rule.observe(value, now)
    return out


def summary(transitions) -> list[tuple]:
    return [(t.at, t.severity, t.change) for t in transitions]


def over_current(duration_s=0.0, hysteresis=0.0, clear_duration_s=0.0) -> ThresholdRule:
    return ThresholdRule(
        "floor3/L1", Quantity.PHASE_CURRENT, Direction.ABOVE, {W: 50.0, A: 63.0},
        duration_s=duration_s, hysteresis=hysteresis, clear_duration_s=clear_duration_s,
    )


def low_pressure(duration_s=0.0, hysteresis=0.0) -> ThresholdRule:
    return ThresholdRule(
        "riser/B", Quantity.WATER_PRESSURE, Direction.BELOW, {W: 3.0, A: 2.0},
        duration_s=duration_s, hysteresis=hysteresis,
    )


@pytest.mark.parametrize(
    ("rule", "readings", "expected"),
    [
        pytest.param(
            over_current(), [(0, 40), (1, 55), (2, 70), (3, 60), (4, 45)],
            [(1, W, RAISED), (2, A, RAISED), (3, A, CLEARED), (4, W, CLEARED)],
            id="above-no-duration",
        ),
        pytest.param(
            over_current(), [(0, 50), (1, 63)], [(1, W, RAISED)],
            id="above-is-strict",
        ),
        pytest.param(
            over_current(duration_s=5),
            [(0, 70), (2, 70), (4, 70), (5, 70), (6, 10)],
            [(5, W, RAISED), (5, A, RAISED), (6, W, CLEARED), (6, A, CLEARED)],
            id="sustained-for-duration-raises",
        ),
        pytest.param(
            over_current(duration_s=5),
            [(0, 70), (2, 70), (4, 40), (5, 70), (9, 70), (10, 70)],
            [(10, W, RAISED), (10, A, RAISED)],
            id="dip-restarts-duration",
        ),
        pytest.param(
            over_current(duration_s=5),
            [(0, 70), (2, 70), (3, None), (4, 70), (8, 70), (9, 70)],
            [(9, W, RAISED), (9, A, RAISED)],
            id="gap-restarts-duration",
        ),
        pytest.param(
            over_current(hysteresis=5),
            [(0, 70), (1, 49), (2, 46), (3, 45)],
            [(0, W, RAISED), (0, A, RAISED), (1, A, CLEARED), (3, W, CLEARED)],
            id="clears-past-hysteresis",
        ),
        pytest.param(
            over_current(clear_duration_s=3),
            [(0, 55), (1, 40), (2, 55), (3, 40), (5, 40), (6, 40)],
            [(0, W, RAISED), (6, W, CLEARED)],
            id="clear-duration",
        ),
        pytest.param(
            over_current(), [(0, 55), (1, None), (2, None), (3, 55)], [(0, W, RAISED)],
            id="gap-never-clears",
        ),
        pytest.param(
            low_pressure(hysteresis=0.5),
            [(0, 4.0), (1, 2.5), (2, 1.9), (3, 2.4), (4, 2.6), (5, 3.4), (6, 3.5)],
            [(1, W, RAISED), (2, A, RAISED), (4, A, CLEARED), (6, W, CLEARED)],
            id="below-with-hysteresis",
        ),
    ],
)
def test_threshold_table(rule, readings, expected):
    assert summary(run(rule, readings)) == expected


def test_threshold_transition_carries_reading_threshold_and_condition():
    (warning,) = run(low_pressure(), [(0, 5.0), (7.5, 2.5)])
    assert warning == Transition(
        "riser/B", Quantity.WATER_PRESSURE, Condition.UNDER_THRESHOLD, W, RAISED,
        reading=2.5, threshold=3.0, at=7.5,
    )


def test_single_spike_shorter_than_duration_never_raises():
    rule = over_current(duration_s=2)
    readings = [(t / 10, 40.0) for t in range(100)]
    readings[50] = (5.0, 500.0)
    readings[51] = (5.1, 500.0)
    assert run(rule, readings) == []


optional_levels = st.lists(st.one_of(st.none(), st.floats(0, 10)), min_size=60, max_size=60)
times = st.lists(st.floats(0.01, 3.0), min_size=1, max_size=60).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))]
)


@given(
    times=times,
    values=st.lists(st.one_of(st.none(), st.floats(0, 120)), min_size=60, max_size=60),
    duration=st.floats(0, 10),
)
def test_every_raise_follows_a_run_beyond_threshold_for_the_duration(times, values, duration):
    rule = ThresholdRule(
        "p", Quantity.PHASE_CURRENT, Direction.ABOVE, {A: 63.0}, duration_s=duration
    )
    readings = list(zip(times, values))
    for i, (now, value) in enumerate(readings):
        for t in rule.observe(value, now):
            if t.change is RAISED:
                run_start = i
                while run_start > 0 and (v := readings[run_start - 1][1]) is not None and v > 63.0:
                    run_start -= 1
                assert all(v is not None and v > 63.0 for _, v in readings[run_start : i + 1])
                assert now - readings[run_start][0] >= duration


@given(
    times=times,
    values=st.lists(st.one_of(st.none(), st.floats(-10, 200)), min_size=60, max_size=60),
    hysteresis=st.floats(0, 20),
    clear_duration=st.floats(0, 5),
)
def test_raises_and_clears_alternate_per_severity(times, values, hysteresis, clear_duration):
    rule = over_current(hysteresis=hysteresis, clear_duration_s=clear_duration)
    last = {W: CLEARED, A: CLEARED}
    for t in run(rule, zip(times, values)):
        assert t.change is not last[t.severity]
        last[t.severity] = t.change


@given(
    times=times,
    offsets=st.lists(st.floats(-0.999, 0.999), min_size=60, max_size=60),
    hysteresis=st.floats(0.1, 10),
)
def test_oscillation_within_hysteresis_band_raises_at_most_once(times, offsets, hysteresis):
    rule = ThresholdRule(
        "p", Quantity.LEAKAGE_CURRENT, Direction.ABOVE, {A: 30.0}, hysteresis=hysteresis
    )
    transitions = run(rule, [(t, 30.0 + o * hysteresis) for t, o in zip(times, offsets)])
    assert len(transitions) <= 1
    assert all(t.change is RAISED for t in transitions)


# --- rate of drop -------------------------------------------------------------------


def drop_rule(**kwargs) -> DropRateRule:
    return DropRateRule("tank", Quantity.WATER_LEVEL, {W: 0.0625, A: 0.125}, window_s=10, **kwargs)


def test_drop_rate_needs_a_full_window_then_raises_and_clears():
    falling = [(t, 10.0 - 0.25 * t) for t in range(0, 21)]
    steady = [(t, 5.0) for t in range(21, 40)]
    transitions = run(drop_rule(), falling + steady)
    # Over [now-10, now] the drop rate is 0.25 * (30 - now) / 10 once the level holds.
    assert summary(transitions) == [
        (10, W, RAISED), (10, A, RAISED), (25, A, CLEARED), (28, W, CLEARED),
    ]
    alarm = transitions[1]
    assert (alarm.condition, alarm.reading, alarm.threshold) == (
        Condition.RATE_OF_CHANGE, 0.25, 0.125,
    )


def test_drop_rate_duration_ignores_a_single_dip():
    readings = [(t, 5.0) for t in range(12)] + [(12, 1.0)] + [(t, 5.0) for t in range(13, 30)]
    assert summary(run(drop_rule(), readings)) == [
        (12, W, RAISED), (12, A, RAISED), (13, W, CLEARED), (13, A, CLEARED),
    ]
    assert run(drop_rule(duration_s=2), readings) == []


def test_slow_drop_and_rise_never_raise():
    rule = drop_rule()
    slow_drop = [(t, 5.0 - 0.005 * t) for t in range(100)]
    fast_rise = [(t, 4.5 + 0.5 * (t - 100)) for t in range(100, 120)]
    readings = slow_drop + fast_rise
    assert run(rule, readings) == []


def test_drop_rate_is_never_computed_across_a_gap():
    rule = drop_rule()
    readings = [(t, 5.0) for t in range(10)] + [(10, None)] + [(t, 1.0) for t in range(11, 20)]
    assert run(rule, readings) == []


@given(times=times, values=optional_levels)
def test_drop_rate_history_stays_within_one_window(times, values):
    rule = drop_rule()
    for now, value in zip(times, values):
        rule.observe(value, now)
        history = rule._history
        assert all(t >= now - rule.window_s for t, _ in list(history)[1:])


# --- sensor fault -------------------------------------------------------------------


def loop_fault() -> SensorFaultRule:
    return SensorFaultRule("riser/B", Quantity.WATER_PRESSURE, low=3.8, high=20.5, severity=W)


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        ([(0, 12.0), (1, 3.7), (2, 3.0), (3, 4.0)], [(1, RAISED, 3.8), (3, CLEARED, 3.8)]),
        ([(0, 21.0), (1, None), (2, 20.5)], [(0, RAISED, 20.5), (2, CLEARED, 20.5)]),
        ([(0, 3.8), (1, 20.5), (2, None)], []),
    ],
)
def test_sensor_fault_table(readings, expected):
    transitions = run(loop_fault(), readings)
    assert [(t.at, t.change, t.threshold) for t in transitions] == expected
    assert all(t.condition is Condition.SENSOR_FAULT for t in transitions)


# --- staleness ----------------------------------------------------------------------


def stale_rule(started_at=0.0) -> StaleRule:
    return StaleRule(
        "riser/B", Quantity.WATER_PRESSURE, after_s=3.0, severity=W, started_at=started_at
    )


def test_stale_after_n_intervals_of_ticks_and_clears_on_next_reading():
    rule = stale_rule()
    assert rule.observe(10.0, 1.0) == []
    assert rule.tick(2.0) == [] and rule.tick(3.9) == []
    (raised,) = rule.tick(4.0)
    assert (raised.condition, raised.change, raised.reading, raised.threshold) == (
        Condition.STALE, RAISED, 3.0, 3.0,
    )
    assert rule.tick(5.0) == [] and rule.observe(None, 6.0) == []
    (cleared,) = rule.observe(11.0, 7.5)
    assert (cleared.change, cleared.reading, cleared.at) == (CLEARED, 6.5, 7.5)
    assert rule.tick(10.0) == []


def test_unreadable_polls_count_toward_stale():
    rule = stale_rule()
    transitions = run(rule, [(1, None), (2, None), (3, None)])
    assert summary(transitions) == [(3, W, RAISED)]


def test_point_that_never_answers_goes_stale_from_start():
    rule = stale_rule(started_at=100.0)
    assert rule.tick(102.0) == []
    assert summary(rule.tick(103.0)) == [(103.0, W, RAISED)]


@given(times=times, values=optional_levels)
def test_stale_raised_iff_gap_reaches_limit(times, values):
    rule = stale_rule()
    last_reading = 0.0
    for now, value in zip(times, values):
        transitions = rule.observe(value, now)
        if value is None:
            assert rule.stale == (now - last_reading >= 3.0)
        else:
            assert not rule.stale
            last_reading = now
        assert len(transitions) <= 1


# --- device status and validity (issue 9, items 1 and 2) -------------------------------------

from edge.drivers.modbus.points import PointAlarm  # noqa: E402
from edge.points.point import PointMonitor  # noqa: E402
from edge.points.status_rule import StatusRule  # noqa: E402


@pytest.mark.parametrize(
    ("alarm", "readings", "expected"),
    [
        ({"when": True}, [(0, False), (1, True), (2, True), (3, None), (4, False)], [(1, A, RAISED), (4, A, CLEARED)]),
        ({"when": [1, 2]}, [(0, 0), (1, 2), (2, 1), (3, 3)], [(1, A, RAISED), (3, A, CLEARED)]),
        ({"above": 70}, [(0, 70), (1, 70.5), (2, 69)], [(1, A, RAISED), (2, A, CLEARED)]),
        ({"below": 3.8}, [(0, 4.0), (1, 3.7), (2, 3.7)], [(1, A, RAISED)]),
    ],
)
def test_a_status_rule_raises_while_the_device_says_so(alarm, readings, expected):
    spec = PointAlarm.model_validate({**alarm, "text": "t"})
    rule = StatusRule("dev.p", spec.predicate(None), severity=A, text="t")
    transitions = run(rule, readings)
    assert summary(transitions) == expected
    assert all(t.condition is Condition.STATUS and t.quantity is Quantity.DEVICE_STATUS for t in transitions)


def test_a_voided_reading_is_invalid_not_stale_and_reaches_no_value_rule():
    stale = StaleRule("mon.leakage", Quantity.LEAKAGE_CURRENT, after_s=5, severity=W, started_at=0)
    leakage = ThresholdRule("mon.leakage", Quantity.LEAKAGE_CURRENT, Direction.ABOVE, {A: 500.0})
    monitor = PointMonitor("mon.leakage", stale=stale, value_rules=[leakage])
    assert summary(monitor.observe(800, 1)) == [(1, A, RAISED)]
    voided = monitor.observe_void(2)
    assert [(t.condition, t.change) for t in voided] == [(Condition.INVALID, RAISED)]
    assert monitor.observe_void(3) == [] and monitor.tick(7) == [], "the device is talking: not stale"
    # Only the invalid condition clears: the leakage alarm stood throughout (no clear, no second raise).
    assert [(t.condition, t.change) for t in monitor.observe(810, 8)] == [(Condition.INVALID, CLEARED)]
