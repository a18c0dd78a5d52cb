"""The `edge` command as a technician uses it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.events import Event, Priority
from edge.journal import Journal

from conftest import building, edge


def _fill(path: Path) -> None:
    async def fill():
        journal = await Journal.open(path)
        await journal.append(Event(kind="alarm.over_current", priority=Priority.ALARM, source="f3-monitor", body={"amps": 41.5}))
        await journal.append(Event(kind="access.decision", priority=Priority.ACCESS, source="door-main", body={"reason": "granted"}))
        await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="f3-monitor", body={"amps": 12.0}))
        await journal.append(Event(kind="alarm.low_pressure", priority=Priority.ALARM, source="riser-1", wall_ns=1_600_000_000 * 10**9))
        await journal.close()

    asyncio.run(fill())


def test_events_table_json_and_filters(write_config, building_dir):
    config = write_config(building())
    _fill(building_dir / "state" / "journal.db")

    table = edge("events", "--config", str(config))
    assert table.returncode == 0
    assert "alarm.over_current" in table.stdout and "amps=41.5" in table.stdout
    assert table.stdout.splitlines()[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]

    alarms = edge("events", "--config", str(config), "--kind", "alarm.*", "--json")
    assert [json.loads(line)["kind"] for line in alarms.stdout.splitlines()] == ["alarm.over_current", "alarm.low_pressure"]

    recent = edge("events", "--config", str(config), "--since", "1h", "--source", "f3-monitor", "--json")
    assert [json.loads(line)["seq"] for line in recent.stdout.splitlines()] == [1, 3]

    old = edge("events", "--config", str(config), "--until", "2021-01-01", "--json")
    assert [json.loads(line)["kind"] for line in old.stdout.splitlines()] == ["alarm.low_pressure"]

    after = edge("events", "--config", str(config), "--after-seq", "2", "--limit", "1", "--json")
    assert [json.loads(line)["seq"] for line in after.stdout.splitlines()] == [3]

    important = edge("events", "--config", str(config), "--priority", "access", "--json")
    assert [json.loads(line)["kind"] for line in important.stdout.splitlines()] == ["alarm.over_current", "access.decision", "alarm.low_pressure"]

    newest = edge("events", "--config", str(config), "--limit", "2", "--json")
    assert [json.loads(line)["seq"] for line in newest.stdout.splitlines()] == [3, 4]


def test_events_errors_are_clear(write_config, building_dir):
    config = write_config(building())
    missing = edge("events", "--config", str(config))
    assert missing.returncode == 66 and "no journal at" in missing.stderr
    bad_time = edge("events", "--config", str(config), "--since", "yesterday-ish")
    assert bad_time.returncode == 2 and "is not a time" in bad_time.stderr


def test_help_and_version():
    for command in ("run", "check-config", "events", "schema"):
        result = edge(command, "--help")
        assert result.returncode == 0 and "usage: edge" in result.stdout
    assert edge("events", "--help").stdout.count("--kind") >= 1
    version = edge("version")
    assert version.returncode == 0 and version.stdout.startswith("edge ")


def test_events_on_a_file_that_is_not_a_journal_is_one_line_and_a_distinct_code(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "notes.db").write_text("not a journal\n")
    (tmp_path / "a-dir.db").mkdir()
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE things (x)")
    other.commit()
    other.close()
    cases = {
        "empty.db": (65, "is empty (0 bytes), not a journal"),
        "notes.db": (65, "is not a journal (not an SQLite file)"),
        "other.db": (65, "is not a journal this gateway wrote: no such table: events"),
        "a-dir.db": (66, "is a directory, not a journal"),
        # cannot be opened (as EACCES would be; these tests may run as root, who reads anything)
        "notes.db/journal.db": (66, "cannot read the journal"),
    }
    for name, (code, message) in cases.items():
        result = edge("events", "--journal", str(tmp_path / name))
        assert (result.returncode, result.stdout) == (code, ""), (name, result)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (name, result.stderr)
    assert (tmp_path / "empty.db").stat().st_size == 0  # looked at, not turned into a database


def test_events_on_a_journal_that_holds_none_says_so(tmp_path):
    async def create():
        journal = await Journal.open(tmp_path / "journal.db")
        await journal.close()

    asyncio.run(create())
    result = edge("events", "--journal", str(tmp_path / "journal.db"))
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "(no events match)", result


def test_points_on_a_broken_status_file_is_one_line(write_config, building_dir):
    config = write_config(building())
    status = building_dir / "state" / "points.json"
    status.parent.mkdir()
    status.write_text(json.dumps({"written_at": 1.0, "points": [
        {"name": 1, "point": 2, "quantity": 3, "value": "x", "unit": 5, "read_at": "yesterday", "state": "ok"}]}))
    wrong_types = edge("points", "--config", str(config))
    assert wrong_types.returncode == 69 and "points snapshot is malformed" in wrong_types.stderr, wrong_types
    status.unlink()
    status.mkdir()
    a_directory = edge("points", "--config", str(config))
    assert a_directory.returncode == 69 and "cannot read the status" in a_directory.stderr, a_directory
    assert "Traceback" not in wrong_types.stderr + a_directory.stderr


def test_init_writes_a_starter_config_and_a_new_owner_only_secret(tmp_path):
    edge_dir = tmp_path / "etc" / "edge"
    result = edge("init", str(edge_dir), "--building", "hillside-court-7")
    assert result.returncode == 0, result.stderr
    config, secret = edge_dir / "building.yaml", edge_dir / "secrets" / "building.key"
    assert {path: oct(path.stat().st_mode & 0o777) for path in (edge_dir, edge_dir / "secrets", config, secret)} == {
        edge_dir: "0o700", edge_dir / "secrets": "0o700", config: "0o600", secret: "0o600"}
    key = secret.read_text().strip()
    assert len(bytes.fromhex(key)) == 32
    checked = edge("check-config", str(config))
    assert checked.returncode == 0 and "ok: building hillside-court-7" in checked.stdout, checked.stderr

    other = edge("init", str(tmp_path / "other"))
    assert other.returncode == 0 and (tmp_path / "other" / "secrets" / "building.key").read_text().strip() != key


def test_init_never_overwrites_a_config_or_a_secret(tmp_path):
    for existing in ("building.yaml", "secrets/building.key"):
        edge_dir = tmp_path / existing.replace("/", "-")
        (edge_dir / existing).parent.mkdir(parents=True)
        (edge_dir / existing).write_text("someone's work\n")
        before = sorted(p.relative_to(edge_dir) for p in edge_dir.rglob("*"))
        result = edge("init", str(edge_dir))
        assert result.returncode == 73, result
        assert f"{edge_dir / existing} already exists; nothing was written" in result.stderr
        assert sorted(p.relative_to(edge_dir) for p in edge_dir.rglob("*")) == before
        assert (edge_dir / existing).read_text() == "someone's work\n"


def test_init_refuses_a_building_id_that_is_not_a_name(tmp_path):
    result = edge("init", str(tmp_path / "edge"), "--building", "block 7: east")
    assert result.returncode == 2 and "is not a building id" in result.stderr
    assert not (tmp_path / "edge").exists()


def test_credentials_import_of_a_device_or_a_directory_is_refused_without_reading_it(write_config, building_dir):
    config = write_config(building())
    (building_dir / "tenants.csv").mkdir()
    for source, message in (("/dev/zero", "unknown import format ''"), (str(building_dir / "tenants.csv"), "not a regular file")):
        result = subprocess.run([sys.executable, "-m", "edge.cli", "credentials", "import", source, "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, result
