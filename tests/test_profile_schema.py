"""The profile schema (issue 21, item 6): `edge schema --profile` prints it, config/profile.schema.json
is current, every shipped profile names it for the editor and passes it, and the fields the profile
docs (docs/profiles.md) only showed by example are described in it."""

from __future__ import annotations

import json

import jsonschema
import yaml

from edge.drivers.modbus.profile import json_schema

from conftest import REPO, edge

SHIPPED = sorted((REPO / "drivers" / "modbus" / "profiles").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../../../config/profile.schema.json"


def _as_json(value):
    """YAML data as JSON sees it (mapping keys are strings there)."""
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def test_edge_schema_profile_prints_the_committed_schema():
    printed = edge("schema", "--profile")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == json_schema() == json.loads((REPO / "config" / "profile.schema.json").read_text()), \
        "run: edge schema --profile > config/profile.schema.json"
    assert json.loads(edge("schema").stdout)["title"] != "Modbus device profile", "without --profile: the building's"


def test_every_shipped_profile_names_the_schema_and_passes_it():
    schema = json.loads((REPO / "config" / "profile.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        text = path.read_text()
        assert MODELINE in text.splitlines(), f"{path.name} lacks the $schema line"
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(_as_json(yaml.safe_load(text)))]
        assert problems == [], f"{path.name}: {problems}"


def test_the_fields_shown_only_by_example_are_described():
    defs = json_schema()["$defs"]
    for model, field in (("Point", "bit_count"), ("Point", "byte"), ("Point", "length"), ("Point", "enum"),
                         ("Result", "pending"), ("Result", "settle_s"), ("Command", "raw_word"), ("Variant", "drop"),
                         ("ReadBack", "expect"), ("Argument", "enum")):
        assert defs[model]["properties"][field].get("description"), f"{model}.{field} has no description"


def test_the_profile_docs_list_the_commands_each_feature_needs():
    readme = (REPO / "docs" / "profiles.md").read_text()
    table = readme[readme.index("**Commands a feature needs of a profile.**"):]
    table = table[: table.index("**The profile schema.**")]
    for needed in ("`trip`, `close`", "`release`, `secure`, `pulse`", "`release_all`", "`hold`, `resume`", "`cloud_commands`"):
        assert needed in table, needed
