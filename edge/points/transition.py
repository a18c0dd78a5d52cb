"""What a safety rule says when a condition on a point starts or stops.

A rule speaks only in transitions (raised, cleared), never in levels, so the journal
holds one event per change of state and not one per reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Quantity(StrEnum):
    """What a point measures; it decides which limits apply and what a trip is for."""

    PHASE_CURRENT = "phase_current"
    LEAKAGE_CURRENT = "leakage_current"
    CABLE_TEMPERATURE = "cable_temperature"
    WATER_PRESSURE = "water_pressure"
    WATER_LEVEL = "water_level"
    DEVICE_STATUS = "device_status"  # a device's own status bit, code or limit (a trip bit, a fault code)


class Condition(StrEnum):
    """Why a transition happened."""

    OVER_THRESHOLD = "over_threshold"
    UNDER_THRESHOLD = "under_threshold"
    RATE_OF_CHANGE = "rate_of_change"
    SENSOR_FAULT = "sensor_fault"
    STALE = "stale"
    STATUS = "status"  # a device says so itself: a profile's or the config's alarm on a point
    INVALID = "invalid"  # the device says the reading is not valid now (a CT-break bit)


class Severity(StrEnum):
    WARNING = "warning"
    ALARM = "alarm"


class Change(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition on one point was raised or cleared at `at` (monotonic seconds).

    `reading` and `threshold` share a unit, which depends on the condition: the point's
    engineering unit for over/under threshold, that unit per second for rate of change,
    the raw signal (mA for a 4-20 mA loop) for sensor faults, seconds since the last
    reading for staleness, and the raw value for a device status.
    """

    point: str
    quantity: Quantity
    condition: Condition
    severity: Severity
    change: Change
    reading: float
    threshold: float | None  # None for a status that matches values, not a limit
    at: float
