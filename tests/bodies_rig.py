"""Typed event bodies held to their emitters, in the tests that already make those events.

A feature declares a kind's body as a pydantic model (`edge.events.kinds.body`); the fleet contract publishes
its schema and the ingest checks arriving events against it. Nothing on the gateway checks a body it
writes (a door decision pays no validation), so the tests do it: after each test of the modules in
EMITTING (those whose gateways make the typed events: card decisions, door alarms, fire, points, trips and
re-closes, smoke and panic, the elevator guard, the uplink), each journal the test left under its tmp_path
is read and every event of a typed kind is checked against its model, strictly (its JSON as the cloud gets
it, no coercion) and with no field the model does not declare. An emitter that drops, renames, retypes or
adds a field fails the test that made the event; so does a model that asks for a field its emitter does not
write. Other modules write made-up events of these kinds on purpose (a page's view, the ingest's flagging):
they are not checked.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.events import kinds
from edge.journal import EventQuery, read_events

TYPED: tuple[str, ...] = tuple(str(k) for k in kinds.every() if kinds.body(str(k)) is not None)

EMITTING: tuple[str, ...] = (
    "test_access_e2e", "test_access_lock", "test_fire", "test_field_points", "test_power_refusals", "test_alarms_end",
    "test_community_daemon", "test_community_alarms", "test_community_zones", "test_vision_guard",
)
"""The test modules whose gateways journal typed events and whose journals hold only what a gateway wrote, or
events made to look exactly like it (tests/test_typed_bodies.py checks that each is still there). Between them
they journal every typed kind but fault.lock_unconfirmed, power.reclose_unconfirmed, fault.detector_cleared,
alarm.inactivity and uplink.up, whose emitters test_typed_bodies checks by their source alone."""


def disagreements(kind: str, body: dict) -> list[str]:
    """What is wrong with `body` for `kind`'s model (none when the kind has no typed body)."""
    model = kinds.body(kind)
    if model is None:
        return []
    declared = {field.alias or name for name, field in model.model_fields.items()}
    undeclared = [f"{name}: not declared by {model.__name__}" for name in sorted(set(body) - declared)]
    try:
        model.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as invalid:
        return [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in invalid.errors()] + undeclared
    return undeclared


def journal_disagreements(path: Path) -> list[str]:
    """Every typed event in the journal at `path` that breaks its model, as `seq kind source: problem`;
    a file that is no readable journal (a test's damaged one, another SQLite file) holds none."""
    try:
        events = read_events(path, EventQuery(kinds=TYPED, limit=None))
    except (sqlite3.Error, OSError, ValueError):
        return []
    return [f"{path.name} seq {e.seq} {e.kind} from {e.source}: {problem}  body={e.body}"
            for e in events for problem in disagreements(e.kind, e.body)]


@pytest.fixture(autouse=True)
def typed_bodies_keep_to_their_models(request: pytest.FixtureRequest):
    """After the test: the journals it left in its tmp_path keep to the typed bodies."""
    yield
    if request.module is None or request.module.__name__.rpartition(".")[2] not in EMITTING:
        return
    root = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if root is None or not Path(root).is_dir():
        return
    problems = [p for path in sorted(Path(root).rglob("*.db")) for p in journal_disagreements(path)]
    if problems:
        pytest.fail("events whose body breaks its kind's model (edge/<feature>/kinds.py):\n" + "\n".join(problems[:20]), pytrace=False)
