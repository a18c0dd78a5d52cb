"""Safety settings for circuits and water points, embeddable in the building config.

Every field has bounds and a description so the exported JSON Schema documents itself.
Nothing is clamped: a value out of bounds is an error, reported with its path.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from edge.points.power_cut import PowerCutPolicy
from edge.config.settings import Strict
from edge.points.transition import Severity

_DURATION = dict(ge=0, le=3600, allow_inf_nan=False)


class Limits(Strict):
    """A warning and/or alarm limit, raised after `duration_s`, cleared with hysteresis."""

    warning: float | None
    alarm: float | None
    duration_s: float = Field(
        0.0, **_DURATION,
        description="Seconds the value must stay beyond a limit before it is raised; "
        "shorter spikes are ignored.",
    )
    hysteresis: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description="How far back past the limit the value must return before it clears, "
        "so a value hovering at the limit does not chatter.",
    )
    clear_duration_s: float = Field(
        0.0, **_DURATION,
        description="Seconds the value must stay back past limit and hysteresis before it clears.",
    )

    def limits(self) -> dict[Severity, float]:
        levels = {Severity.WARNING: self.warning, Severity.ALARM: self.alarm}
        return {severity: limit for severity, limit in levels.items() if limit is not None}

    @model_validator(mode="after")
    def _at_least_one(self) -> Limits:
        if self.warning is None and self.alarm is None:
            raise ValueError("set a warning limit, an alarm limit or both")
        return self


class _UpperLimits(Limits):
    """Raised above the limit; the warning limit must come before the alarm limit."""

    floor: ClassVar[float | None] = None

    @model_validator(mode="after")
    def _ordered(self) -> _UpperLimits:
        if self.warning is not None and self.alarm is not None and self.warning >= self.alarm:
            raise ValueError(f"warning ({self.warning}) must be below alarm ({self.alarm})")
        lowest = min(self.limits().values())
        if self.floor is not None and lowest - self.hysteresis <= self.floor:
            raise ValueError(
                f"hysteresis ({self.hysteresis}) must be below the lowest limit ({lowest}) "
                f"minus {self.floor}, or the condition could never clear"
            )
        return self


_Amperes = Annotated[float, Field(gt=0, le=6300, allow_inf_nan=False)]
_MilliAmperes = Annotated[float, Field(gt=0, le=3000, allow_inf_nan=False)]
_Celsius = Annotated[float, Field(ge=-20, le=250, allow_inf_nan=False)]
_PerSecond = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]


class OverCurrentLimits(_UpperLimits):
    floor: ClassVar[float | None] = 0.0
    warning: _Amperes | None = Field(None, description="Phase current warning limit, A.")
    alarm: _Amperes | None = Field(None, description="Phase current alarm limit, A.")


class LeakageLimits(_UpperLimits):
    floor: ClassVar[float | None] = 0.0
    warning: _MilliAmperes | None = Field(None, description="Residual current warning limit, mA.")
    alarm: _MilliAmperes | None = Field(None, description="Residual current alarm limit, mA.")


class OverTemperatureLimits(_UpperLimits):
    warning: _Celsius | None = Field(None, description="Cable temperature warning limit, °C.")
    alarm: _Celsius | None = Field(None, description="Cable temperature alarm limit, °C.")


class DropRateLimits(_UpperLimits):
    floor: ClassVar[float | None] = 0.0
    warning: _PerSecond | None = Field(
        None, description="Warn when the value falls faster than this, sensor units per second."
    )
    alarm: _PerSecond | None = Field(
        None, description="Alarm when the value falls faster than this, sensor units per second."
    )
    window_s: float = Field(
        10.0, gt=0, le=3600, allow_inf_nan=False,
        description="The rate is measured over this many seconds, which smooths out noise.",
    )


class LowLimits(Limits):
    """Raised below the limit; the warning limit must come before (above) the alarm limit."""

    warning: float | None = Field(
        None, allow_inf_nan=False, description="Warn below this, in the sensor's unit."
    )
    alarm: float | None = Field(
        None, allow_inf_nan=False, description="Alarm below this, in the sensor's unit."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LowLimits:
        if self.warning is not None and self.alarm is not None and self.warning <= self.alarm:
            raise ValueError(f"warning ({self.warning}) must be above alarm ({self.alarm})")
        return self


class Staleness(Strict):
    """A point with no reading for this many poll intervals is stale: the gateway is blind."""

    after_intervals: int = Field(
        3, ge=1, le=1000, description="Missed poll intervals before the point is stale."
    )
    severity: Severity = Field(Severity.WARNING, description="Severity of the stale condition.")


class CircuitSafety(Strict):
    """Limits for one floor distribution circuit and what to do on an alarm."""

    over_current_a: OverCurrentLimits | None = Field(
        None, description="Applies to every phase current point of the circuit."
    )
    leakage_ma: LeakageLimits | None = Field(None, description="Residual (leakage) current.")
    over_temperature_c: OverTemperatureLimits | None = Field(
        None, description="Cable or terminal temperature."
    )
    power_cut: PowerCutPolicy = Field(
        description="`trip` opens the breaker on an alarm of current, leakage or temperature; "
        "`warn` only raises it. The gateway never re-closes."
    )
    stale: Staleness = Field(default_factory=Staleness)

    @model_validator(mode="after")
    def _trip_needs_an_alarm(self) -> CircuitSafety:
        limits = (self.over_current_a, self.leakage_ma, self.over_temperature_c)
        if self.power_cut is PowerCutPolicy.TRIP and all(
            limit is None or limit.alarm is None for limit in limits
        ):
            raise ValueError("power_cut is `trip` but no alarm limit is set: it could never trip")
        return self


class LoopSensor(Strict):
    """A 4-20 mA transmitter: its span in engineering units and its fault band."""

    unit: str = Field("", max_length=16, description="Engineering unit of the span, e.g. MPa, bar, m.")
    value_at_4ma: float = Field(allow_inf_nan=False, description="Reading at 4 mA, e.g. 0 bar.")
    value_at_20ma: float = Field(allow_inf_nan=False, description="Reading at 20 mA, e.g. 16 bar.")
    fault_below_ma: float = Field(
        3.8, ge=0, lt=4, allow_inf_nan=False,
        description="Below this the loop is open or the transmitter dead (NAMUR NE 43 style).",
    )
    fault_above_ma: float = Field(
        20.5, gt=20, le=24, allow_inf_nan=False,
        description="Above this the loop is shorted or the transmitter failed high.",
    )
    fault_severity: Severity = Field(Severity.WARNING, description="Severity of a sensor fault.")

    @model_validator(mode="after")
    def _span(self) -> LoopSensor:
        if self.value_at_4ma == self.value_at_20ma:
            raise ValueError("value_at_4ma and value_at_20ma must differ")
        return self

    def to_value(self, milliamperes: float) -> float:
        """Scale a loop current to the sensor's engineering unit."""
        span = self.value_at_20ma - self.value_at_4ma
        return self.value_at_4ma + (milliamperes - 4.0) * span / 16.0

    def contains(self, value: float) -> bool:
        low, high = sorted((self.value_at_4ma, self.value_at_20ma))
        return low <= value <= high


class _WaterPointSafety(Strict):
    """A hydrant riser or fire-water tank sensor on a 4-20 mA loop; readings arrive in mA."""

    sensor: LoopSensor
    drop_rate: DropRateLimits | None = Field(
        None, description="Alarm when the value falls fast, e.g. a burst pipe or a draining tank."
    )
    stale: Staleness = Field(default_factory=Staleness)

    def _check_low(self, low: LowLimits) -> None:
        for severity, limit in low.limits().items():
            for value, what in ((limit, "limit"), (limit + low.hysteresis, "limit + hysteresis")):
                if not self.sensor.contains(value):
                    raise ValueError(
                        f"{severity} {what} ({value}) is outside the sensor span "
                        f"{self.sensor.value_at_4ma}..{self.sensor.value_at_20ma}"
                    )


class PressurePointSafety(_WaterPointSafety):
    measures: Literal["pressure"]
    low_pressure: LowLimits = Field(description="Low-pressure limits, in the sensor's unit.")

    @model_validator(mode="after")
    def _reachable(self) -> PressurePointSafety:
        self._check_low(self.low_pressure)
        return self


class LevelPointSafety(_WaterPointSafety):
    measures: Literal["level"]
    low_level: LowLimits = Field(description="Low-level limits, in the sensor's unit.")

    @model_validator(mode="after")
    def _reachable(self) -> LevelPointSafety:
        self._check_low(self.low_level)
        return self


WaterPointSafety = Annotated[
    PressurePointSafety | LevelPointSafety, Field(discriminator="measures")
]
