"""Safety rules for circuits and fire-water points: pure state machines, time passed in.

Readings (point, value or None, monotonic now) go into a PointMonitor; Transitions come
out; `decide_power_cut` turns a raised alarm into a TripCommand when the circuit's policy
says so, and `confirm_trip` judges the breaker's read-back.
"""

from edge.safety.monitors import circuit_point_monitor, water_point_monitor
from edge.safety.point import PointMonitor
from edge.safety.power_cut import (
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
from edge.safety.settings import (
    CircuitSafety,
    LevelPointSafety,
    LoopSensor,
    PressurePointSafety,
    WaterPointSafety,
)
from edge.safety.transition import Change, Condition, Quantity, Severity, Transition

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
