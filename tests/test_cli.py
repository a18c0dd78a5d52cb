"""The `edge` command as a technician uses it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from edge.events import Event, Priority
from edge.journal import Journal

from conftest import MINIMAL


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=60)


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
    config = write_config(MINIMAL)
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
    config = write_config(MINIMAL)
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
