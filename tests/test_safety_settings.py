"""Safety settings: bounds, ordering and reachability are errors, never clamped."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from edge.points import CircuitSafety, LevelPointSafety, PowerCutPolicy, Severity, WaterPointSafety

WATER = TypeAdapter(WaterPointSafety)


def riser(**overrides) -> dict:
    base = {
        "measures": "pressure",
        "sensor": {"value_at_4ma": 0, "value_at_20ma": 16},
        "low_pressure": {"warning": 3.0, "alarm": 2.0, "hysteresis": 0.5},
    }
    return base | overrides


def test_circuit_settings_round_trip_with_defaults():
    circuit = CircuitSafety.model_validate(
        {
            "over_current_a": {"warning": 50, "alarm": 63, "duration_s": 5, "hysteresis": 3},
            "leakage_ma": {"alarm": 300},
            "over_temperature_c": {"warning": 70, "alarm": 90, "clear_duration_s": 60},
            "power_cut": "trip",
        }
    )
    assert circuit.power_cut is PowerCutPolicy.TRIP
    assert circuit.leakage_ma.limits() == {Severity.ALARM: 300.0}
    assert circuit.stale.after_intervals == 3
    assert CircuitSafety.model_validate(circuit.model_dump(mode="json")) == circuit


def test_level_point_is_chosen_by_measures():
    tank = WATER.validate_python(
        {
            "measures": "level",
            "sensor": {"value_at_4ma": 0, "value_at_20ma": 100, "fault_severity": "alarm"},
            "low_level": {"warning": 60, "alarm": 40},
            "drop_rate": {"warning": 0.5, "window_s": 30},
        }
    )
    assert isinstance(tank, LevelPointSafety)
    assert tank.sensor.to_value(12.0) == 50.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"power_cut": "trip"}, "no alarm limit"),
        ({"power_cut": "trip", "leakage_ma": {"warning": 30}}, "no alarm limit"),
        ({"power_cut": "maybe"}, "power_cut"),
        ({}, "power_cut"),
        ({"power_cut": "warn", "surprise": 1}, "surprise"),
        ({"power_cut": "warn", "leakage_ma": {}}, "warning limit, an alarm limit or both"),
        ({"power_cut": "warn", "leakage_ma": {"warning": 100, "alarm": 30}}, "must be below alarm"),
        ({"power_cut": "warn", "leakage_ma": {"alarm": -5}}, "greater than 0"),
        ({"power_cut": "warn", "leakage_ma": {"alarm": 30, "hysteresis": 30}}, "could never clear"),
        ({"power_cut": "warn", "over_current_a": {"alarm": 63, "duration_s": -1}}, "duration_s"),
        ({"power_cut": "warn", "over_current_a": {"alarm": float("nan")}}, "finite"),
        ({"power_cut": "warn", "stale": {"after_intervals": 0}}, "after_intervals"),
    ],
)
def test_bad_circuit_settings_are_refused(data, message):
    with pytest.raises(ValidationError, match=message):
        CircuitSafety.model_validate(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (riser(low_pressure={"warning": 2.0, "alarm": 3.0}), "must be above alarm"),
        (riser(low_pressure={"alarm": 20.0}), "outside the sensor span"),
        (riser(low_pressure={"alarm": 15.8, "hysteresis": 0.5}), "limit \\+ hysteresis"),
        (riser(sensor={"value_at_4ma": 5, "value_at_20ma": 5}), "must differ"),
        (
            riser(sensor={"value_at_4ma": 0, "value_at_20ma": 16, "fault_below_ma": 4.2}),
            "fault_below_ma",
        ),
        (riser(drop_rate={"alarm": 0.1, "window_s": 0}), "window_s"),
        (riser(measures="flow"), "measures"),
        (riser(low_level={"alarm": 2.0}), "low_level"),
    ],
)
def test_bad_water_settings_are_refused(data, message):
    with pytest.raises(ValidationError, match=message):
        WATER.validate_python(data)


def test_json_schema_documents_every_limit_field():
    schema = CircuitSafety.model_json_schema()
    leakage = schema["$defs"]["LeakageLimits"]["properties"]
    assert all("description" in field for field in leakage.values())
    assert schema["$defs"]["LeakageLimits"]["additionalProperties"] is False
