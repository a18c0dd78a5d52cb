"""Telemetry downsampling: a point's readings reach the journal on change, or at least every so often.

Breaker monitors are polled every second or faster; journaling every reading would fill the
SD card and the uplink with numbers nobody reads. A reading is reported when it moved more
than the point's deadband since the last report, or when the last report is older than the
maximum interval (so the cloud can tell "steady" from "silent"). Pure: time is passed in.
"""

from __future__ import annotations

import math

from pydantic import Field

from edge.points.transition import Quantity
from edge.config.settings import Strict


class TelemetrySettings(Strict):
    """How a point's readings are reported upstream; unset fields take the quantity's default."""

    deadband: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Report when the value moved more than this since the last report, in the point's unit "
        "(mA of loop current for pressure and level points). 0 reports every change.",
    )
    max_interval_s: float | None = Field(
        None, gt=0, le=86400, allow_inf_nan=False, description="Report at least this often, seconds."
    )


# Defaults per quantity (and so per unit): about 1-2 % of a typical full scale.
DEFAULT_DEADBAND: dict[Quantity, float] = {
    Quantity.PHASE_CURRENT: 0.5,  # A
    Quantity.LEAKAGE_CURRENT: 5.0,  # mA of residual current
    Quantity.CABLE_TEMPERATURE: 1.0,  # degC
    Quantity.WATER_PRESSURE: 0.16,  # mA of loop current: 1 % of the 4-20 mA span
    Quantity.WATER_LEVEL: 0.16,  # mA of loop current
    Quantity.DEVICE_STATUS: 0.0,  # a status or code: every change
}
DEFAULT_MAX_INTERVAL_S = 300.0


class Deadband:
    """Decides, reading by reading, whether one point's value is worth journaling."""

    def __init__(self, deadband: float, max_interval_s: float) -> None:
        if deadband < 0 or max_interval_s <= 0:
            raise ValueError(f"deadband must be >= 0 and max interval > 0, got {deadband}, {max_interval_s}")
        self.deadband = deadband
        self.max_interval_s = max_interval_s
        self._reported: float | None = None
        self._reported_at = 0.0

    @classmethod
    def for_point(cls, quantity: Quantity, settings: TelemetrySettings | None) -> "Deadband":
        settings = settings or TelemetrySettings()
        deadband = DEFAULT_DEADBAND[quantity] if settings.deadband is None else settings.deadband
        return cls(deadband, settings.max_interval_s or DEFAULT_MAX_INTERVAL_S)

    def offer(self, value: float, now: float) -> bool:
        """True when `value` read at `now` should be reported (and is then the new reference).

        Non-finite values are never reported: they are not readings.
        """
        if not math.isfinite(value):
            return False
        due = (
            self._reported is None
            or abs(value - self._reported) > self.deadband
            or (self.deadband == 0 and value != self._reported)
            or now - self._reported_at >= self.max_interval_s
        )
        if due:
            self._reported, self._reported_at = value, now
        return due
