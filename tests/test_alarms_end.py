"""Alarms end: one open when the gateway stopped (SIGKILL or SIGTERM) is judged on the first fresh
readings after the restart, and a cut circuit stays cut across a restart until its re-close."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from edge.conditions import ActiveConditions
from edge.journal import EventQuery, read_events

from conftest import building, edge
from field_rig import journal_until, points_daemon

pytestmark = pytest.mark.timeout(180)


def _tank_alarm(journal: Path) -> list:
    return journal.exists() and [e for e in read_events(journal, EventQuery(kinds=("alarm.raised",), limit=None))
                                 if e.source == "tank-roof" and e.body["severity"] == "alarm"]


def _open(journal: Path) -> list:
    conditions = ActiveConditions()
    for event in read_events(journal, EventQuery(limit=None)):
        conditions.apply(event)
    return conditions.now(time.time())


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_an_alarm_open_at_a_stop_ends_after_the_restart_when_its_condition_is_gone(write_config, how):
    with points_daemon(write_config, stop_s=15) as ((monitor, breaker, tank), config, daemon):
        journal = config.parent / "state" / "journal.db"
        journal_until(lambda: _tank_alarm(journal))
        daemon.stop(how)
        tank.set_value("ch1_ma", 16.0)  # refilled while the gateway was down: 3.75 m
        daemon.start()
        cleared = journal_until(lambda: [e for e in read_events(journal, EventQuery(kinds=("alarm.cleared",), limit=None))
                                 if e.source == "tank-roof" and e.body.get("reason") == "condition_gone_across_restart"], 60)
        still = [c for c in _open(journal) if c.source == "tank-roof"]
    assert cleared and cleared[0].body["condition"] == "under_threshold"
    assert still == [], "no alarm of the tank is left without an end"


def test_a_cut_circuit_stays_cut_across_a_sigkill_and_an_alarm_whose_source_left_the_config_ends(write_config):
    with points_daemon(write_config, stop_s=15) as ((monitor, breaker, tank), config, daemon):
        journal = config.parent / "state" / "journal.db"
        journal_until(lambda: _tank_alarm(journal))
        monitor.set_value("current_a", 45.0)
        journal_until(lambda: read_events(journal, EventQuery(kinds=("power.trip_confirmed",))))
        monitor.set_value("current_a", 0.0)
        daemon.stop(signal.SIGKILL)
        text = config.read_text()
        config.write_text(text[:text.index("pressure_points:")])  # the tank is taken out of the config
        daemon.start()
        gone = journal_until(lambda: [e for e in read_events(journal, EventQuery(kinds=("alarm.cleared",), limit=None))
                              if e.source == "tank-roof" and e.body.get("reason") == "source_gone_from_config"], 60)

        def cut_rows():
            listed = edge("points", "--config", str(config), "--json")
            rows = {p["point"]: p for p in map(json.loads, listed.stdout.splitlines())} if listed.returncode == 0 else {}
            return rows if rows.get("mon.current_a", {}).get("state") == "cut" and (rows["mon.current_a"].get("age_s") is not None and rows["mon.current_a"]["age_s"] < 5) else None

        rows = journal_until(cut_rows, 30)
        cut_open = [c.kind for c in _open(journal) if c.source == "f2-c1"]
        closed = edge("breaker", "close", "f2-c1", "--operator", "tech-7", "--reason", "cable replaced and tested",
                      "--config", str(config))
        after = [c.kind for c in _open(journal) if c.source == "f2-c1"]
    assert gone and rows["brk.closed"]["state"] == "cut"
    assert "power.trip_confirmed" in cut_open and "alarm.raised" in cut_open, "the cut and its cause outlived the kill"
    assert closed.returncode == 0, closed.stderr
    assert after == [], "the re-close ended the cut and, with it, the alarm held by it"


def test_the_carry_over_never_ends_a_condition_this_run_raised(write_config, tmp_path: Path):
    """The uplink of this run went down before the carry-over read the journal: only what came before
    this run's gateway.started is the last run's to settle."""
    import asyncio

    from edge.carryover import carry_over
    from edge.config.building import load
    from edge.events import Event, Kind, Priority
    from edge.doors.kinds import DoorKind
    from edge.uplink.kinds import UplinkKind
    from edge.journal import Journal

    config = load(write_config(building()))

    async def scenario():
        journal = await Journal.open(config.journal_path)
        await journal.append(Event(UplinkKind.UPLINK_DOWN, Priority.FAULT, "uplink", {"detail": "last run"}))
        await journal.append(Event(DoorKind.DOOR_HELD_OPEN, Priority.ALARM, "front", {"door": "front"}))
        started = await journal.append(Event(Kind.GATEWAY_STARTED, Priority.FAULT, "gateway", {}))
        await journal.append(Event(UplinkKind.UPLINK_DOWN, Priority.FAULT, "uplink", {"detail": "this run"}))
        await carry_over(journal, config, before_seq=started)
        await journal.close()

    asyncio.run(scenario())
    ended = read_events(config.journal_path, EventQuery(kinds=(Kind.ALARM_ENDED,), limit=None))
    assert [(e.body["alarm"], e.body["reason"]) for e in ended] == [("alarm.door_held_open", "source_gone_from_config")]
    assert [c.body["detail"] for c in _open(config.journal_path) if c.kind == UplinkKind.UPLINK_DOWN] == ["this run"]
