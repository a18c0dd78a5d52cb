"""Measured field points: the machinery power's circuits and water's pressure points run on.

The rules are pure state machines, time passed in: readings (point, value or None, monotonic
now) go into a PointMonitor (`point`, built by `monitors` from `threshold`, `rate`,
`staleness`, `sensor_fault` and `latch`); Transitions come out (`transition`);
`decide_power_cut` turns a raised alarm into a TripCommand when the circuit's policy says so,
and `confirm_trip` judges the breaker's read-back (`power_cut`). Beside the rules: their config
models (`settings`), what a device says of itself (`status_rule`, `device_status`), when a
reading is worth sending (`telemetry`), the rows `edge points` shows (`status_file`) and the
conditions the points raise (`conditions`). Community safety's detectors share the transitions.
"""

from edge.points.monitors import circuit_point_monitor, water_point_monitor
from edge.points.point import PointMonitor
from edge.points.power_cut import (
    BreakerState,
    PowerCutPolicy,
    RecloseCommand,
    TripCommand,
    TripOutcome,
    TripReason,
    TripReport,
    confirm_trip,
    decide_power_cut,
    reclose_request,
)
from edge.points.settings import (
    CircuitSafety,
    LevelPointSafety,
    LoopSensor,
    PressurePointSafety,
    WaterPointSafety,
)
from edge.points.transition import Change, Condition, Quantity, Severity, Transition

__all__ = [
    "BreakerState",
    "Change",
    "CircuitSafety",
    "Condition",
    "LevelPointSafety",
    "LoopSensor",
    "PointMonitor",
    "PowerCutPolicy",
    "PressurePointSafety",
    "Quantity",
    "RecloseCommand",
    "Severity",
    "Transition",
    "TripCommand",
    "TripOutcome",
    "TripReason",
    "TripReport",
    "WaterPointSafety",
    "circuit_point_monitor",
    "confirm_trip",
    "decide_power_cut",
    "reclose_request",
    "water_point_monitor",
]
