"""`edge run` with simulated field devices: alarms land in the journal, `edge points` shows them,
and `edge breaker close` reaches the daemon over its control socket."""

from __future__ import annotations

import json

from edge.journal import EventQuery, read_events

from conftest import building, edge
from field_rig import journal_until, points_daemon


def test_daemon_trips_on_over_current_shows_points_and_recloses_only_on_a_valid_request(write_config):
    with points_daemon(write_config, stop_s=10, strict=True) as ((monitor, breaker, tank), config, _):
        journal = config.parent / "state" / "journal.db"
        journal_until(lambda: journal.exists() and read_events(journal, EventQuery(kinds=("alarm.raised",))))
        low = journal_until(lambda: [e for e in read_events(journal, EventQuery(kinds=("alarm.raised",), limit=None))
                             if e.body.get("condition") == "under_threshold" and e.body["severity"] == "alarm"])
        assert low[0].source == "tank-roof" and low[0].body["tank"] == "roof"

        monitor.set_value("current_a", 45.0)
        journal_until(lambda: read_events(journal, EventQuery(kinds=("power.trip_confirmed",))))
        assert breaker.value_of("closed") is False
        monitor.set_value("current_a", 0.0)  # the breaker is open: no current

        def points_when_tank_alarms():
            listed = edge("points", "--config", str(config), "--json")
            rows = {p["point"]: p for p in map(json.loads, listed.stdout.splitlines())} if listed.returncode == 0 else {}
            return rows if rows.get("ai.ch1_ma", {}).get("state") == "alarm" else None

        by_point = journal_until(points_when_tank_alarms)  # the snapshot is rewritten every 2 s
        assert by_point["ai.ch1_ma"]["value"] == 1.25  # 8 mA of 0-5 m
        assert by_point["mon.current_a"]["state"] == "cut", "a circuit the gateway cut is cut, not ok at 0 A"
        assert by_point["brk.closed"]["state"] == "cut"
        assert not read_events(journal, EventQuery(kinds=("alarm.cleared",))), "the cut's own zero clears nothing"
        assert by_point["ai.ch1_ma"]["unit"] == "m" and by_point["ai.ch1_ma"]["age_s"] is not None
        table = edge("points", "--config", str(config))
        assert table.returncode == 0 and "tank-roof" in table.stdout and "STATE" in table.stdout.splitlines()[0]

        refused = edge("breaker", "close", "f2-c1", "--operator", "tech-7", "--reason", "short", "--config", str(config))
        assert refused.returncode == 1 and "reason" in refused.stderr
        unknown = edge("breaker", "close", "f9-c9", "--operator", "tech-7", "--reason", "cable replaced and tested",
                        "--config", str(config))
        assert unknown.returncode == 1 and "no circuit" in unknown.stderr
        assert breaker.value_of("closed") is False

        closed = edge("breaker", "close", "f2-c1", "--operator", "tech-7", "--reason", "cable replaced and tested",
                       "--config", str(config))
        assert closed.returncode == 0, closed.stderr
        assert breaker.value_of("closed") is True
        journal_until(lambda: read_events(journal, EventQuery(kinds=("alarm.cleared",))))  # the held clear, after the re-close
        socket_mode = (config.parent / "state" / "control.sock").stat().st_mode & 0o777
        assert socket_mode == 0o600
    events = read_events(journal, EventQuery(limit=None))
    kinds = [e.kind for e in events]
    assert kinds.count("power.trip_sent") == 1
    refusals = [e.body for e in events if e.kind == "power.reclose_refused"]
    assert len(refusals) == 2 and refusals[0]["operator"] == "tech-7"
    (request,) = [e for e in events if e.kind == "power.reclose_requested"]
    assert request.body == {"circuit": "f2-c1", "breaker": "brk", "operator": "tech-7", "reason": "cable replaced and tested"}
    (result,) = [e for e in events if e.kind == "power.reclose_confirmed"]
    assert result.body["request_seq"] == request.seq and result.seq > request.seq
    (trip,) = [e for e in events if e.kind == "power.trip_confirmed"]
    assert trip.body["point"] == "mon.current_a" and trip.body["reading"] == 45.0 and trip.body["unit"] == "A"
    cleared = [e for e in events if e.kind == "alarm.cleared" and e.body["point"] == "mon.current_a"]
    assert cleared and all(e.seq > result.seq and e.body["after"] == "reclose" for e in cleared)


def test_breaker_close_without_a_daemon_says_so_and_exits_69(write_config):
    config = write_config(building())
    result = edge("breaker", "close", "f1-c1", "--operator", "tech-7", "--reason", "cable replaced and tested",
                   "--config", str(config))
    assert result.returncode == 69
    assert "not running" in result.stderr and "nothing was done" in result.stderr
    points = edge("points", "--config", str(config))
    assert points.returncode == 69 and "no status" in points.stderr
