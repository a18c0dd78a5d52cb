"""Entry-trail search: `edge trail` on site (daemon stopped) and the signed cloud command through
the daemon; an operator is required and every search is journaled."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

from edge.community.trail import TrailRequest, parse_request
from edge.config.building import load
from edge.hil.broker import Broker
from edge.hil.cloud import generate_keys

import pytest

from community_rig import DOORS, events, trail_building, until
from conftest import Daemon, building, edge
from uplink_rig import open_cloud, uplink_section

B = "test-house"


def test_edge_trail_on_site_finds_one_tenants_passes_in_order_paged_and_journals_the_search(write_config):
    config_path = write_config(building(DOORS))
    keys = asyncio.run(trail_building(config_path))
    first = edge("trail", "--config", str(config_path), "--tenant", "elder-7", "--operator", "officer-12", "--limit", "2", "--json")
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert [(r["door"], r["credential"]) for r in page["rows"]] == [("gate", keys["elder-7"][:12]), ("unit-301", keys["elder-7"][:12])]
    rest = json.loads(edge("trail", "--config", str(config_path), "--tenant", "elder-7", "--operator", "officer-12",
                            "--after-seq", str(page["next_after_seq"]), "--json").stdout)
    assert [r["door"] for r in rest["rows"]] == ["gate"] and rest["next_after_seq"] is None
    searched = events(load(config_path).journal_path, "privacy.trail_searched")
    assert [(e.body["operator"], e.body["tenant"], e.body["rows"], e.body["via"]) for e in searched] == [
        ("officer-12", "elder-7", 2, "site"), ("officer-12", "elder-7", 1, "site")]
    assert searched[0].priority.name == "ACCESS", "an audit record is never evicted"


def test_a_trail_search_without_an_operator_is_refused_and_searches_nothing(write_config):
    config_path = write_config(building(DOORS))
    asyncio.run(trail_building(config_path))
    refused = edge("trail", "--config", str(config_path), "--tenant", "elder-7")
    assert refused.returncode == 2 and "--operator" in refused.stderr
    with pytest.raises(ValueError, match="operator: Field required"):
        parse_request({"tenant": "elder-7"})
    with pytest.raises(ValueError, match="a door search needs a time window"):
        parse_request({"operator": "x", "door": "gate"})
    with pytest.raises(ValueError, match="say whose trail"):
        parse_request({"operator": "x"})
    assert TrailRequest(operator="x", door="gate", since="2026-11-29T00:00:00+08:00").since is not None
    assert not events(load(config_path).journal_path, "privacy.trail_searched")


def test_a_signed_cloud_trail_request_is_answered_from_the_journal_journaled_and_its_command_record_keeps_only_a_count(write_config, building_dir):
    generate_keys(building_dir)

    async def scenario():
        with Broker() as broker:
            config_path = write_config(building(DOORS, uplink_section(broker.port)))
            keys = await trail_building(config_path)
            cloud = open_cloud(building_dir, broker.port)
            await cloud.start()
            daemon = Daemon(config_path, log=building_dir / "daemon.log").start()
            try:
                await until(lambda: cloud.book(B).status.get("state") == "online", timeout_s=30, what="the gateway online")
                refused = await cloud.command(B, "trail.search", {"tenant": "child-9"})
                answer = await cloud.command(B, "trail.search", {"tenant": "child-9", "operator": "police-desk-2", "via": "cloud"})
                by_door = await cloud.command(B, "trail.search", {"door": "gate", "since": "2020-01-01T00:00:00+00:00", "operator": "police-desk-2"})
                assert daemon.stop(timeout_s=15) == 0
            finally:
                daemon.kill()
                await cloud.stop()
            return config_path, keys, refused, answer, by_door

    config_path, keys, refused, answer, by_door = asyncio.run(scenario())
    assert refused["detail"]["ok"] is False and "operator" in refused["detail"]["error"]
    rows = answer["detail"]["rows"]
    assert [r["door"] for r in rows] == ["gate", "unit-301"] and {r["credential"] for r in rows} == {keys["child-9"][:12]}
    assert [r["kind"] for r in by_door["detail"]["rows"]] == ["card", "card", "card", "exit"]
    searched = events(load(config_path).journal_path, "privacy.trail_searched")
    assert [(e.body["operator"], e.body["rows"]) for e in searched] == [("police-desk-2", 2), ("police-desk-2", 4)]
    executed = [e for e in events(load(config_path).journal_path, "command.executed") if e.body["command"] == "trail.search"]
    assert [e.body["detail"].get("rows") for e in executed] == [None, 2, 4], "the record counts the rows, never copies them"
    assert keys["child-9"][:12] not in json.dumps([e.body for e in executed])


def _as_a_reader(*args: str) -> subprocess.CompletedProcess[str]:
    """`edge ARGS` as root without capabilities: file modes bind it like any user that may read, not write."""
    return subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m", "edge.cli", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv to drop its capabilities")
def test_edge_trail_as_a_user_who_cannot_write_the_journal_shows_no_rows_and_says_why(write_config):
    config_path = write_config(building(DOORS))
    asyncio.run(trail_building(config_path))
    journal = load(config_path).journal_path
    files = [p for p in journal.parent.iterdir() if p.name.startswith(journal.name)]
    for path in files:
        path.chmod(0o444)
    journal.parent.chmod(0o555)
    try:
        searched = _as_a_reader("trail", "--config", str(config_path), "--tenant", "elder-7", "--operator", "officer-12", "--json")
        listed = _as_a_reader("events", "--config", str(config_path), "--kind", "access.*", "--json")
    finally:
        journal.parent.chmod(0o755)
        for path in files:
            path.chmod(0o644)
    assert searched.returncode == os.EX_NOPERM and searched.stdout == "", "no rows without their audit record"
    assert "cannot write the journal" in searched.stderr and "nothing was searched" in searched.stderr
    assert not events(journal, "privacy.trail_searched")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 6, "reading needs no write"


def test_edge_trail_with_the_daemon_running_but_not_answering_refuses_and_never_writes_its_journal(write_config):
    config_path = write_config(building(DOORS))
    keys = asyncio.run(trail_building(config_path))
    config = load(config_path)
    daemon = Daemon(config_path, log=config_path.parent / "daemon.log").start()
    try:
        socket = asyncio.run(_socket_up(config, daemon))
        moved = socket.with_name("moved-away.sock")
        socket.rename(moved)  # as a technician's mistake, or a tmpfs cleaner, would
        refused = edge("trail", "--config", str(config_path), "--tenant", "elder-7", "--operator", "officer-12", "--json")
        moved.rename(socket)
        answered = edge("trail", "--config", str(config_path), "--tenant", "elder-7", "--operator", "officer-12", "--json")
        assert daemon.stop(timeout_s=15) == 0
    finally:
        daemon.kill()
    assert refused.returncode == os.EX_UNAVAILABLE and refused.stdout == ""
    assert "holds the journal" in refused.stderr and "nothing was searched" in refused.stderr
    assert answered.returncode == 0, answered.stderr
    assert {r["credential"] for r in json.loads(answered.stdout)["rows"]} == {keys["elder-7"][:12]}
    searched = events(config.journal_path, "privacy.trail_searched")
    assert [e.body["operator"] for e in searched] == ["officer-12"], "only the daemon's search is journaled"
    seqs = [e.seq for e in events(config.journal_path)]
    assert seqs == sorted(set(seqs)), "no seq given twice"
    assert "UNIQUE constraint" not in (config_path.parent / "daemon.log").read_text()


async def _socket_up(config, daemon):
    from edge.runtime.control import socket_path

    def up():
        if daemon.poll() is not None:
            raise AssertionError("the daemon exited")
        path = socket_path(config)
        return path if path.is_socket() else None

    await until(up, timeout_s=30, what="the control socket")
    return socket_path(config)


def test_edge_alarm_ack_without_a_daemon_says_nothing_was_done(write_config):
    config_path = write_config(building(DOORS))
    answer = edge("alarm", "ack", "--config", str(config_path), "--area", "*", "--operator", "guard-7")
    assert answer.returncode == 69 and "nothing was done" in answer.stderr
    assert edge("alarm", "ack", "--config", str(config_path), "--area", "*").returncode == 2, "--operator is required"
