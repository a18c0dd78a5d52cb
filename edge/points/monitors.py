"""Build PointMonitors from settings: the one place settings become rules."""

from __future__ import annotations

from edge.points.latch import Direction
from edge.points.point import PointMonitor, Rule
from edge.points.rate import DropRateRule
from edge.points.sensor_fault import SensorFaultRule
from edge.points.settings import (
    CircuitSafety,
    LevelPointSafety,
    Limits,
    PressurePointSafety,
    Staleness,
)
from edge.points.staleness import StaleRule
from edge.points.threshold import ThresholdRule
from edge.points.transition import Quantity


def _stale_rule(
    point: str, quantity: Quantity, stale: Staleness, poll_interval_s: float, started_at: float
) -> StaleRule:
    return StaleRule(
        point,
        quantity,
        after_s=stale.after_intervals * poll_interval_s,
        severity=stale.severity,
        started_at=started_at,
    )


def _threshold(
    point: str, quantity: Quantity, direction: Direction, limits: Limits
) -> ThresholdRule:
    return ThresholdRule(
        point,
        quantity,
        direction,
        limits.limits(),
        hysteresis=limits.hysteresis,
        duration_s=limits.duration_s,
        clear_duration_s=limits.clear_duration_s,
    )


def circuit_point_monitor(
    point: str,
    quantity: Quantity,
    circuit: CircuitSafety,
    *,
    poll_interval_s: float,
    started_at: float,
) -> PointMonitor:
    """Monitor one circuit point (a phase current, the leakage or the temperature)."""
    limits_by_quantity = {
        Quantity.PHASE_CURRENT: circuit.over_current_a,
        Quantity.LEAKAGE_CURRENT: circuit.leakage_ma,
        Quantity.CABLE_TEMPERATURE: circuit.over_temperature_c,
    }
    if quantity not in limits_by_quantity:
        raise ValueError(f"{point}: a circuit has no {quantity} point")
    limits = limits_by_quantity[quantity]
    rules: list[Rule] = []
    if limits is not None:
        rules.append(_threshold(point, quantity, Direction.ABOVE, limits))
    return PointMonitor(
        point,
        stale=_stale_rule(point, quantity, circuit.stale, poll_interval_s, started_at),
        value_rules=rules,
    )


def water_point_monitor(
    point: str,
    water: PressurePointSafety | LevelPointSafety,
    *,
    poll_interval_s: float,
    started_at: float,
) -> PointMonitor:
    """Monitor a riser pressure or tank level point whose readings are loop currents in mA."""
    if isinstance(water, PressurePointSafety):
        quantity, low = Quantity.WATER_PRESSURE, water.low_pressure
    else:
        quantity, low = Quantity.WATER_LEVEL, water.low_level
    rules: list[Rule] = [_threshold(point, quantity, Direction.BELOW, low)]
    if water.drop_rate is not None:
        rules.append(
            DropRateRule(
                point,
                quantity,
                water.drop_rate.limits(),
                window_s=water.drop_rate.window_s,
                hysteresis=water.drop_rate.hysteresis,
                duration_s=water.drop_rate.duration_s,
                clear_duration_s=water.drop_rate.clear_duration_s,
            )
        )
    sensor = water.sensor
    return PointMonitor(
        point,
        stale=_stale_rule(point, quantity, water.stale, poll_interval_s, started_at),
        fault=SensorFaultRule(
            point,
            quantity,
            low=sensor.fault_below_ma,
            high=sensor.fault_above_ma,
            severity=sensor.fault_severity,
        ),
        scale=sensor.to_value,
        value_rules=rules,
    )
