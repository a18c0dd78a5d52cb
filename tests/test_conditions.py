"""One model of what is active: every alarm kind the code can raise is shown active in every view,
then ends (edge/conditions.py and each feature's CONDITIONS)."""

from __future__ import annotations

from edge.config import building as building_config
from edge.events import kinds
from edge.conditions import ActiveConditions, all_rules, ending_kinds, raising_kinds
from edge.events import Kind, Priority, StoredEvent
from edge.power.kinds import PowerKind
from edge.doors.kinds import DoorKind
from edge.status.report import render
from edge.status.view import BuildingView

from conftest import building, egress_door, modbus_tcp

T0 = 1_800_000_000.0
BODY = {"door": "front", "circuit": "f1-c1", "breaker": "brk", "point": "mon.current_a", "condition": "over_threshold",
        "severity": "alarm", "reading": 41.2, "threshold": 32.0, "unit": "A", "reason": "over_current", "area": "unit-301",
        "scope": "credential", "attempts": 3, "lockout_s": 60, "inputs": ["panel.fire still reads active"], "file": "zones.json",
        "first_seq": 5, "last_seq": 9, "count": 5, "command": "hold", "detail": "no answer", "source": "panel",
        "incident": "id-0"}


def _event(seq: int, kind: str, body: dict, at: float, source: str = "f1-c1") -> StoredEvent:
    return StoredEvent(seq, f"id-{seq}", int(at * 1e9), 0, kind, Priority.ALARM, source, body)


def _view(write_config) -> BuildingView:
    return BuildingView(building_config.load(write_config(building(egress_door("front")))))


def test_every_alarm_kind_the_code_names_is_raised_or_ended_by_a_feature():
    rules = all_rules()
    alarm_kinds = set(kinds.ALARMS)
    assert alarm_kinds - raising_kinds(rules) - ending_kinds(rules) == set()
    assert len({rule.raised_by for rule in rules}) == len(rules), "one rule per raising kind"


def test_each_condition_is_active_in_the_page_state_and_edge_status_then_ends(write_config):
    for rule in all_rules():
        view = _view(write_config)
        raised = _event(1, rule.raised_by, dict(BODY), T0)
        view.apply(raised)
        snapshot = view.snapshot(T0 + 1)
        shown = [row for row in snapshot["alarms"] + snapshot["faults"] if row["kind"] == rule.raised_by]
        assert len(shown) == 1, (rule.raised_by, snapshot["alarms"], snapshot["faults"])
        row = shown[0]
        assert row["severity"] in ("alarm", "warning", "fault") and row["text"]
        text = render(view.config, {**snapshot, "source": "journal"})
        assert row["text"] in text, (rule.raised_by, text)
        if rule.ended_by:
            view.apply(_event(2, rule.ended_by[0], {**BODY, "incident": row["key"]}, T0 + 2))
        else:
            view.apply(_event(2, Kind.ALARM_ENDED, {"alarm": rule.raised_by, "key": row["key"], "reason": "condition_gone_across_restart"}, T0 + 2))
        after = view.snapshot(T0 + 3)
        assert not [r for r in after["alarms"] + after["faults"] if r["kind"] == rule.raised_by], rule.raised_by
        assert row["text"] not in render(view.config, {**after, "source": "journal"})


def test_one_shot_alarms_end_by_themselves():
    conditions = ActiveConditions()
    conditions.apply(_event(1, DoorKind.ACCESS_FLAGGED, {"door": "front", "credential": "ab12"}, T0, source="front-reader"))
    conditions.apply(_event(2, DoorKind.PIN_LOCKOUT, {"scope": "credential", "lockout_s": 60, "attempts": 3}, T0, source="front-reader"))
    assert sorted(c.kind for c in conditions.now(T0 + 30)) == sorted([DoorKind.ACCESS_FLAGGED, DoorKind.PIN_LOCKOUT])
    assert [c.kind for c in conditions.now(T0 + 61)] == [DoorKind.ACCESS_FLAGGED], "the lockout ended with its time"
    assert conditions.now(T0 + 3601) == []


def test_a_cut_circuit_is_active_until_the_reclose_is_confirmed_and_its_points_read_cut(write_config):
    view = BuildingView(building_config.load(write_config(building(modbus_tcp(5020, timeout_s=None), {
        "devices": [{"name": "mon", "bus": "box", "address": 1, "profile": "generic-efm8"},
                    {"name": "brk", "bus": "box", "address": 2, "profile": "generic-breaker"}],
        "circuits": [{"name": "f1-c1", "floor": 1, "box": "B1", "currents": ["mon.current_a"], "breaker": "brk",
                      "safety": {"over_current_a": {"warning": 28, "alarm": 32, "duration_s": 0.3}, "power_cut": "trip"}}]}))))
    view.apply(_event(1, Kind.CONDITION_RAISED, dict(BODY), T0))
    view.apply(_event(2, PowerKind.TRIP_CONFIRMED, {"circuit": "f1-c1", "breaker": "brk", "reason": "over_current",
                                                "point": "mon.current_a", "reading": 41.2, "unit": "A"}, T0 + 1))
    view.apply(_event(3, Kind.POINT_READING, {"point": "mon.current_a", "value": 0.0, "unit": "A"}, T0 + 2))
    cut = view.snapshot(T0 + 3)
    assert [c["text"] for c in cut["cut_circuits"]] == [
        "Circuit f1-c1 cut by the gateway: over current 41.2 A; no power until a technician re-closes it"]
    assert {p["point"]: p["state"] for p in cut["points"]} == {"mon.current_a": "cut"}
    assert [a["kind"] for a in cut["alarms"]] == ["power.trip_confirmed", "alarm.raised"], "the cause stays active"
    assert "CUT CIRCUITS (1)" in render(view.config, {**cut, "source": "journal"})
    view.apply(_event(4, PowerKind.RECLOSE_CONFIRMED, {"circuit": "f1-c1", "breaker": "brk"}, T0 + 4))
    view.apply(_event(5, Kind.CONDITION_CLEARED, {**BODY, "after": "reclose"}, T0 + 4))
    closed = view.snapshot(T0 + 5)
    assert closed["cut_circuits"] == [] and closed["alarms"] == [] and closed["points"][0]["state"] == "ok"
