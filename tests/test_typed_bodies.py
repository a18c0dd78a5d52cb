"""Typed event bodies and the code that writes them say the same thing.

Two checks meet here. What the source says: every field an emitter names in its `Event(kind=..., body={...})`
is a field its kind's model declares, with a JSON type the model admits (read by the fleet contract's
body_sites, no gateway run). What the gateway writes: bodies_rig checks, after each test of the modules
in its EMITTING list, every typed event those tests' gateways journaled; these tests hold that check to
its word (it names each kind of mismatch, and each module it relies on is still there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from bodies_rig import EMITTING, TYPED, disagreements
from edge.events import kinds
from edge.fleet.body_sites import body_sites

TESTS = Path(__file__).resolve().parent


def _admits(model: type[BaseModel]) -> dict[str, set[str] | None]:
    """Field (by its wire name) -> the JSON types the model's schema admits (None: any)."""
    admitted: dict[str, set[str] | None] = {}
    for name, schema in model.model_json_schema()["properties"].items():
        options = schema.get("anyOf", [schema])
        if any("type" not in option for option in options):
            admitted[name] = None
            continue
        types = {t for option in options for t in ([option["type"]] if isinstance(option["type"], str) else option["type"])}
        admitted[name] = types | {"integer"} if "number" in types else types
    return admitted


def test_every_field_an_emitter_names_is_declared_with_a_type_its_model_admits():
    sites = body_sites()
    problems = []
    for kind in TYPED:
        model = kinds.body(kind)
        admitted = _admits(model)
        found = sites.get(kind, {"fields": {}, "sites": set()})
        for name, types in sorted(found["fields"].items()):
            where = ", ".join(sorted(found["sites"]))
            if name not in admitted:
                problems.append(f"{kind}: {where} writes {name!r}, which {model.__name__} does not declare")
            elif types is not None and admitted[name] is not None and not types <= admitted[name]:
                problems.append(f"{kind}: {where} writes {name!r} as {sorted(types)}, {model.__name__} admits {sorted(admitted[name])}")
    assert not problems, "\n".join(problems)


def test_the_kinds_that_matter_to_the_cloud_and_the_property_manager_are_typed():
    wanted = {"access.decision", "alarm.door_forced", "alarm.door_held_open", "door.closed", "alarm.fire_release", "alarm.fire_reset",
              "fault.reader", "fault.reader_restored", "alarm.pin_lockout", "access.remote_unlock", "power.trip_sent",
              "power.trip_confirmed", "alarm.trip_unconfirmed", "power.trip_refused", "power.trip_withdrawn", "power.reclose_confirmed",
              "alarm.raised", "alarm.cleared", "alarm.ended", "telemetry.point", "alarm.smoke", "alarm.panic", "alarm.intrusion",
              "alarm.inactivity", "alarm.elevator_hold", "elevator.released", "vision.ebike_observed", "vision.mode",
              "uplink.up", "fault.uplink_down"}
    assert wanted <= set(TYPED), sorted(wanted - set(TYPED))


def test_a_body_that_keeps_to_its_model_passes_and_each_kind_of_mismatch_is_named():
    decision = {"door": "lobby", "reader": "lobby-in", "reason": "granted", "granted": True, "credential": "3f1c0e9a2b7d",
                "frame_to_decision_ms": 2.5}
    assert disagreements("access.decision", decision) == []
    assert disagreements("access.decision", {**decision, "credential": None, "store": "unavailable"}) == []
    assert disagreements("access.decision", {**decision, "frame_to_decision_ms": 2}) == []  # JSON 2 is a number
    assert disagreements("gateway.started", {"anything": 1}) == []  # not typed: nothing to hold it to

    missing = {k: v for k, v in decision.items() if k != "granted"}
    assert disagreements("access.decision", missing) == ["granted: Field required"]
    assert disagreements("access.decision", {**decision, "granted": "yes"}) == ["granted: Input should be a valid boolean"]
    assert disagreements("access.decision", {**decision, "door_name": "lobby"}) == ["door_name: not declared by DecisionBody"]
    # the wire name, not the Python one: a hold's `class`
    hold = {"camera": "lift-a", "elevator": "A", "class": "ebike", "score": 0.91, "box": [0.1, 0.2, 0.5, 0.9],
            "relay_confirmed": True, "review": "pending", "snapshot": "vision/snapshots/lift-a/1.jpg"}
    assert disagreements("alarm.elevator_hold", hold) == []
    assert disagreements("alarm.elevator_hold", {**hold, "cls": "ebike"}) == ["cls: not declared by HoldBody"]


@pytest.mark.parametrize("module", EMITTING)
def test_each_module_whose_gateways_are_checked_is_there(module):
    assert (TESTS / f"{module}.py").is_file(), f"bodies_rig.EMITTING names {module}, which is gone: name its successor"
