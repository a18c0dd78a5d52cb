"""The view's display fields for the manager's page: names and units from the config before any
reading, the building's zone, each alarm row named by its point, a camera's last snapshot."""

from __future__ import annotations

from edge.config import building as building_config
from edge.events import Priority, StoredEvent
from edge.status.view import BuildingView

from conftest import building, modbus_tcp, riser_pressure, tank_level

T0 = 1_800_000_000.0


def _building() -> dict:
    """A circuit, the roof tank and a riser on a bus no one answers, and a camera: names before any reading."""
    return building(modbus_tcp(9, name="site-bus"), {
        "devices": [{"name": "mon", "bus": "site-bus", "address": 1, "profile": "generic-efm8"},
                    {"name": "water-ai", "bus": "site-bus", "address": 3, "profile": "generic-ai8"}],
        "circuits": [{"name": "f1-c1", "floor": 1, "box": "F1", "currents": ["mon.current_a", "mon.current_b", "mon.current_c"],
                      "leakage": "mon.leakage_ma", "temperatures": ["mon.cable_temp_1"],
                      "safety": {"over_current_a": {"warning": 28, "alarm": 32, "duration_s": 5, "hysteresis": 2}, "power_cut": "warn"}}],
        "pressure_points": [tank_level("roof-tank-level", "water-ai.ch3_ma"), riser_pressure("riser-1-pressure", "water-ai.ch1_ma")],
        "cameras": [{"name": "lift-1-cam", "elevator": "lift-1", "source": "/dev/null"}]})


def _event(seq: int, kind: str, source: str, body: dict, at: float, priority: Priority = Priority.ALARM) -> StoredEvent:
    return StoredEvent(seq, f"id-{seq}", int(at * 1e9), 0, kind, priority, source, body)


def test_points_are_named_by_what_they_measure_with_their_units_before_any_reading(write_config):
    snapshot = BuildingView(building_config.load(write_config(_building()))).snapshot(T0)
    assert snapshot["building"]["timezone"] == "Asia/Shanghai"
    shown = {p["point"]: (p["title"], p["group"], p["unit"]) for p in snapshot["points"]}
    assert shown == {
        "mon.current_a": ("Current, phase A", "Circuit f1-c1, floor 1, box F1", "A"),
        "mon.current_b": ("Current, phase B", "Circuit f1-c1, floor 1, box F1", "A"),
        "mon.current_c": ("Current, phase C", "Circuit f1-c1, floor 1, box F1", "A"),
        "mon.leakage_ma": ("Leakage current", "Circuit f1-c1, floor 1, box F1", "mA"),
        "mon.cable_temp_1": ("Cable temperature", "Circuit f1-c1, floor 1, box F1", "°C"),
        "water-ai.ch3_ma": ("Roof tank water level", "Fire water", "m"),
        "water-ai.ch1_ma": ("Riser 1 water pressure", "Fire water", "MPa"),
    }


def test_an_alarm_row_carries_its_points_name_and_a_camera_its_last_snapshot(write_config):
    view = BuildingView(building_config.load(write_config(_building())))
    view.apply(_event(1, "alarm.raised", "roof-tank-level", {"point": "water-ai.ch3_ma", "condition": "sensor_fault",
                                                             "severity": "warning"}, T0))
    view.apply(_event(2, "alarm.smoke", "smoke-301", {"area": "unit-301"}, T0 + 1))
    view.apply(_event(3, "vision.mode", "lift-1-cam", {"mode": "observe", "reason": "no report"}, T0 + 2, Priority.FAULT))
    view.apply(_event(4, "vision.ebike_observed", "lift-1-cam", {"class": "ebike", "snapshot": "vision/snapshots/lift-1-cam/a.jpg"}, T0 + 3))
    view.apply(_event(5, "vision.mode", "lift-1-cam", {"mode": "observe", "reason": "no report"}, T0 + 4, Priority.FAULT))
    snapshot = view.snapshot(T0 + 5)
    titles = {a["kind"]: (a["severity"], a["title"]) for a in snapshot["alarms"]}
    assert titles == {"alarm.raised": ("warning", "Roof tank water level (Fire water)"), "alarm.smoke": ("alarm", None)}
    camera = snapshot["cameras"][0]
    assert camera["snapshot"] == {"at": T0 + 3, "path": "vision/snapshots/lift-1-cam/a.jpg", "class": "ebike"}, "kept across a new run's mode"
    tank = next(p for p in snapshot["points"] if p["owner"] == "roof-tank-level")
    assert tank["state"] == "sensor_fault"


def test_a_label_in_the_config_names_the_circuit_and_the_water_point(write_config):
    labelled = _building()
    labelled["circuits"][0]["label"] = "Flats 101-104"
    labelled["pressure_points"][0]["label"] = "Roof tank, block B"  # roof-tank-level
    snapshot = BuildingView(building_config.load(write_config(labelled))).snapshot(T0)
    shown = {p["point"]: (p["title"], p["group"]) for p in snapshot["points"]}
    assert shown["mon.current_a"] == ("Current, phase A", "Flats 101-104")
    assert shown["water-ai.ch3_ma"] == ("Roof tank, block B", "Fire water")
