"""Community safety's pure parts: the detector's bits, the SMS cap, escalation, and the config checks."""

from __future__ import annotations

import pytest

from edge.config import building as building_config
from edge.community.routing import Incident, RoutingTable
from edge.community.settings import AlarmKind, CommunitySafety
from edge.community.smoke import Change, DetectorState, Finding, Trouble
from edge.community.sms_cap import SmsCap

from community_rig import community_config

BITS = ("alarm", "fault", "low_battery", "test", "tamper")


def _bits(**on: bool) -> dict[str, bool]:
    return {name: on.get(name, False) for name in BITS}


@pytest.mark.parametrize("bits, changes", [
    (_bits(alarm=True), [Change(Finding.SMOKE)]),
    (_bits(alarm=True, test=True), [Change(Finding.TROUBLE, Trouble.TEST)]),
    (_bits(alarm=True, fault=True), [Change(Finding.SMOKE), Change(Finding.TROUBLE, Trouble.ALARM_AND_FAULT), Change(Finding.TROUBLE, Trouble.FAULT)]),
    (_bits(low_battery=True, tamper=True), [Change(Finding.TROUBLE, Trouble.LOW_BATTERY), Change(Finding.TROUBLE, Trouble.TAMPER)]),
    ({"alarm": True, "fault": None, "low_battery": None, "test": None, "tamper": None}, []),  # test bit unread: wait for it
    (_bits(), []),
])
def test_a_detector_poll_gives_these_changes(bits, changes):
    assert DetectorState().judge(bits) == changes


def test_an_alarm_stays_one_alarm_until_it_clears_and_an_unread_poll_changes_nothing():
    state = DetectorState()
    assert state.judge(_bits(alarm=True)) == [Change(Finding.SMOKE)]
    assert state.judge(_bits(alarm=True)) == []
    assert state.judge(dict.fromkeys(BITS)) == []
    assert state.judge(_bits()) == [Change(Finding.SMOKE_CLEARED)]


def test_the_sms_cap_holds_a_flapping_sensor_but_never_the_first_of_a_new_kind():
    cap = SmsCap(per_hour=3)
    assert [cap.allow("landlord", "intrusion", t) for t in (0, 1, 2, 3, 4)] == [True, True, True, False, False]
    assert cap.allow("landlord", "smoke", 5), "the first smoke of the hour goes over the cap"
    assert not cap.allow("landlord", "smoke", 6)
    assert cap.allow("tenant", "intrusion", 6), "per recipient"
    assert cap.allow("landlord", "intrusion", 3601), "an hour later the window has moved"


def test_an_incident_escalates_once_per_step_and_not_after_acknowledgement():
    settings = CommunitySafety.model_validate({
        "contacts": [{"name": "a", "role": "landlord", "channels": ["cloud"]}, {"name": "b", "role": "micro_fire_station", "channels": ["cloud"]}],
        "routes": [{"name": "one", "alarms": ["smoke"], "areas": ["unit-1"], "notify": ["a"], "ack_within_s": 60, "escalate_to": "two"},
                   {"name": "two", "notify": ["b"], "ack_within_s": 60, "escalate_to": "one"}],
    })
    table = RoutingTable(settings)
    assert [r.name for r in table.first(AlarmKind.SMOKE, "unit-1")] == ["one"]
    assert table.first(AlarmKind.SMOKE, "unit-2") == [] and table.first(AlarmKind.PANIC, "unit-1") == []
    incident = Incident("id", AlarmKind.SMOKE, "unit-1", "d", raised_at=0.0)
    incident.tell(table.routes["one"], 0.0)
    assert incident.due(59.9, table) == []
    assert [(a.name, b.name) for a, b in incident.due(60.0, table)] == [("one", "two")]
    assert incident.due(61.0, table) == [], "each step escalates once"
    incident.tell(table.routes["two"], 61.0)
    incident.acknowledged_by = "guard"
    assert incident.due(500.0, table) == [] and incident.next_deadline() is None


def _problems(write_config, config: dict) -> list[str]:
    with pytest.raises(building_config.ConfigError) as error:
        building_config.load(write_config(config))
    return [str(p) for p in error.value.problems]


def test_an_unknown_recipient_and_an_escalation_loop_are_config_errors_at_their_lines(write_config, building_dir):
    routes = [{"name": "first", "alarms": ["smoke"], "notify": ["landlord", "janitor"], "ack_within_s": 60, "escalate_to": "station"},
              {"name": "station", "notify": ["micro-fire-station"], "ack_within_s": 60, "escalate_to": "first"}]
    problems = _problems(write_config, community_config(1502, None, routes=routes))
    assert any("community.routes.0.notify.1: unknown recipient 'janitor'" in p for p in problems), problems
    assert any("community.routes.1.escalate_to: escalation loops back: station -> first -> station" in p for p in problems), problems
    janitor = next(p for p in problems if "janitor" in p)
    assert janitor.startswith(str(building_dir / "building.yaml")), "FILE:LINE:COL: path: message"
    line = int(janitor.split(":")[1])
    assert "janitor" in (building_dir / "building.yaml").read_text().splitlines()[line - 1]


def test_bad_community_references_are_config_errors(write_config):
    config = community_config(1502, None)
    community = config["community"]
    community["charging_areas"][0].update(detectors=["nobody"], circuits=["no-such-circuit"])
    community["detectors"][0]["device"] = "io"  # room-301
    del community["contacts"][0]["phone"]  # the landlord's
    problems = _problems(write_config, config)
    joined = "\n".join(problems)
    assert "community.charging_areas.0.detectors.0: no detector named 'nobody'" in joined
    assert "community.charging_areas.0.circuits.0: no circuit named 'no-such-circuit'" in joined
    assert "community.detectors.0.device: device 'io' (generic-dio8) has no point 'alarm'" in joined
    assert "community.contacts.0.phone: the sms channel needs a phone number" in joined
