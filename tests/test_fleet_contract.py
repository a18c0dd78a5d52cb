"""The AsyncAPI document is what the code generates, its examples keep to its schemas, and the ingest's
validator flags an event that breaks its kind's schema."""

from __future__ import annotations

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from edge.events import kinds
from edge.fleet.contract import DOCUMENT, _body_name, document, event_validator, render


def test_the_asyncapi_document_is_generated_from_the_code():
    assert DOCUMENT.read_text() == render(), (
        "docs/uplink.asyncapi.yaml is not what the code generates (a kind, a body field or an envelope changed): "
        "run `python -m edge.fleet.contract` and commit the document with the change")


def test_the_document_is_asyncapi_3_with_every_kind_and_examples_that_keep_to_their_schemas():
    doc = yaml.safe_load(DOCUMENT.read_text())
    assert doc["asyncapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    assert set(schemas["Event"]["properties"]["kind"]["enum"]) == {str(k) for k in kinds.every()}
    assert all(_body_name(str(k)) in schemas for k in kinds.every())
    assert {c["address"] for c in doc["channels"].values()} >= {"edge/v1/{building}/events", "edge/v1/{building}/status",
                                                                  "edge/v1/{building}/commands/result"}
    registry = Registry().with_resource("urn:uplink", Resource.opaque(doc))
    checked = 0
    for message in doc["components"]["messages"].values():
        schema = {"$ref": "urn:uplink" + message["payload"]["$ref"]}
        for example in message.get("examples", []):
            errors = [e.message for e in Draft202012Validator(schema, registry=registry).iter_errors(example["payload"])]
            assert not errors, (message["name"], errors[:3])
            checked += 1
    assert checked >= 6
    # the document's Event schema, with its per-kind bodies, refuses what the ingest's validator flags
    bad = dict(doc["components"]["messages"]["eventBatch"]["examples"][0]["payload"]["events"][1])
    bad["body"] = {**bad["body"], "outcome": 3}
    event = Draft202012Validator({"$ref": "urn:uplink#/components/schemas/Event"}, registry=registry)
    assert not event.is_valid(bad)


def test_the_ingest_validator_flags_what_breaks_the_schema_and_passes_what_keeps_to_it():
    validate = event_validator()
    good = document()["components"]["messages"]["eventBatch"]["examples"][0]["payload"]["events"][0]
    assert validate(good) == []
    assert validate(dict(good)) == []  # the remembered shape: the same answer
    assert validate({**good, "seq": 0}) == ["seq: 0 is less than the minimum of 1"]
    assert validate({**good, "id": "not-a-uuid"}) == ["id: 'not-a-uuid' is not a 'uuid'"]
    assert any("kind" in p for p in validate({**good, "kind": "power.made_up"}))
    assert validate({**good, "body": {**good["body"], "reason": 5}}) == ["body/reason: 5 is not of type 'string'"]
    assert any("extra" in p for p in validate({**good, "extra": 1}))
