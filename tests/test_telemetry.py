"""Telemetry deadband and maximum interval: pure, time passed in."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.points.transition import Quantity
from edge.points.telemetry import DEFAULT_DEADBAND, DEFAULT_MAX_INTERVAL_S, Deadband, TelemetrySettings


def test_first_reading_is_reported_then_only_changes_beyond_the_deadband():
    band = Deadband(deadband=0.5, max_interval_s=60)
    offered = [(10.0, 0), (10.3, 1), (10.5, 2), (10.51, 3), (9.9, 4), (9.4, 5)]
    assert [band.offer(v, t) for v, t in offered] == [True, False, False, True, True, False]


def test_a_steady_value_is_reported_at_the_maximum_interval():
    band = Deadband(deadband=1.0, max_interval_s=10)
    reported = [t for t in range(0, 35) if band.offer(5.0, float(t))]
    assert reported == [0, 10, 20, 30]


def test_the_reference_moves_only_when_reported_so_a_slow_drift_is_still_seen():
    band = Deadband(deadband=1.0, max_interval_s=1000)
    reported = [round(v, 1) for v in (20 + 0.3 * i for i in range(13)) if band.offer(v, 0.0)]
    assert reported == [20.0, 21.2, 22.4, 23.6]


def test_zero_deadband_reports_every_change_and_no_repeat():
    band = Deadband(deadband=0.0, max_interval_s=100)
    assert [band.offer(v, 0) for v in (1.0, 1.0, 1.5, 1.5)] == [True, False, True, False]


def test_non_finite_values_are_never_reported_and_do_not_move_the_reference():
    band = Deadband(deadband=1.0, max_interval_s=100)
    assert band.offer(5.0, 0)
    assert not band.offer(math.nan, 1) and not band.offer(math.inf, 2)
    assert not band.offer(5.5, 3)


def test_defaults_per_quantity_and_overrides_from_the_config():
    band = Deadband.for_point(Quantity.LEAKAGE_CURRENT, None)
    assert (band.deadband, band.max_interval_s) == (DEFAULT_DEADBAND[Quantity.LEAKAGE_CURRENT], DEFAULT_MAX_INTERVAL_S)
    custom = Deadband.for_point(Quantity.PHASE_CURRENT, TelemetrySettings(deadband=2, max_interval_s=30))
    assert (custom.deadband, custom.max_interval_s) == (2, 30)
    assert set(DEFAULT_DEADBAND) == set(Quantity)


def test_bad_settings_are_errors():
    with pytest.raises(ValueError):
        TelemetrySettings(deadband=-1)
    with pytest.raises(ValueError):
        TelemetrySettings(max_interval_s=0)


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0, 5)), max_size=200), st.floats(0, 100), st.floats(0.1, 50))
def test_reports_are_bounded_and_no_change_beyond_the_band_is_missed(steps, deadband, max_interval):
    band = Deadband(deadband, max_interval)
    now, reference, reported_at = 0.0, None, 0.0
    for value, dt in steps:
        now += dt
        reported = band.offer(value, now)
        if reference is None or abs(value - reference) > deadband or now - reported_at >= max_interval:
            assert reported
        elif value == reference or deadband > 0:
            assert not reported
        if reported:
            reference, reported_at = value, now
