"""Downlink abuse against a real mosquitto: whatever anyone can publish costs at most a dropped packet.

A payload that would crash the parser, a flood of unsigned messages, an out-of-range pull, a flood of
pulls: each is refused or dropped with a reason, journaled at most once per topic and reason per
window (with a count), and the uplink keeps answering the cloud.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

from edge.config.building import load
from edge.events import Event, Priority
from edge.uplink.kinds import UplinkKind
from edge.uplink.mqtt import BrokerSettings, Connection
from edge.uplink.signing import DownlinkKind

from uplink_rig import B, journaled, online, until

TOPIC = f"edge/v1/{B}"


def nuisances(config_path) -> list:
    """Refusal and drop events as journaled (each stands for `count` messages)."""
    return [e for e in journaled(config_path) if e.kind in (UplinkKind.DOWNLINK_REFUSED, UplinkKind.DOWNLINK_DROPPED)]


def counted(events) -> int:
    return sum(e.body["count"] for e in events)


async def kick(client_id: str, port: int) -> None:
    """Take over the gateway's MQTT session (same client id): the broker drops it and it reconnects."""
    thief = await Connection.open(BrokerSettings(host="127.0.0.1", port=port, client_id=client_id))
    await thief.close()


def test_a_json_bomb_retained_on_a_downlink_topic_is_refused_and_pulls_are_answered_across_a_reconnect(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            await cloud.connection.publish(f"{TOPIC}/commands", b"[" * 100_000, retain=True)
            await cloud.send(B, "credentials", b"[" * 50_000 + b"]" * 50_000)  # the same, closed
            page = await cloud.pull(B, 0, limit=10)  # published after the bombs: answered after them
            assert page["building"] == B and page["after_seq"] == 0  # answered
            assert uplink.downlink.stats.refused == 2
            sessions = uplink.pusher.stats.sessions
            await kick(uplink.settings.client_id, broker.port)  # the retained bomb comes again on resubscribe
            await until(lambda: uplink.pusher.stats.sessions > sessions and uplink.connected.is_set())
            await until(lambda: uplink.downlink.stats.refused == 3)
            page = await cloud.pull(B, 0, limit=10)
            assert page["building"] == B and page["after_seq"] == 0  # answered
            assert not task.done(), "the uplink worker is still running"
        by_reason = {}
        for e in nuisances(config_path):
            key = (e.body["topic"], e.body["reason"])
            by_reason[key] = by_reason.get(key, 0) + e.body["count"]
        assert by_reason == {(f"{TOPIC}/commands", "malformed"): 2, (f"{TOPIC}/credentials", "too_deep"): 1}

    asyncio.run(scenario())


def test_a_10_mb_downlink_is_refused_by_its_size_before_it_is_parsed(write_config, building_dir):
    """MQTT 3.1.1 has no Maximum Packet Size to tell the broker, so the message arrives and is refused
    by its length (on MQTT 5 the broker does not even send it: see the next test)."""

    async def scenario():
        async with online(write_config, building_dir, protocol="3.1.1") as (broker, config_path, cloud, journal, store, uplink, task):
            await cloud.send(B, "credentials", b"{" + b" " * (10 * 2**20) + b"}")
            await until(lambda: uplink.downlink.stats.refused == 1)
        (refused,) = nuisances(config_path)
        assert refused.body["reason"] == "too_large" and refused.body["topic"] == f"{TOPIC}/credentials"
        assert store.version == 0

    asyncio.run(scenario())


def test_on_mqtt_5_the_broker_keeps_a_10_mb_downlink_to_itself(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            await cloud.send(B, "commands", b"{" + b" " * (10 * 2**20) + b"}")
            await cloud.pull(B, 0, limit=1)  # sent after it: once answered, the big one would have come first
            assert uplink.downlink.stats.handled == 1, "only the pull reached the gateway"
        assert nuisances(config_path) == []

    asyncio.run(scenario())


def test_five_thousand_unsigned_messages_cost_a_handful_of_evictable_events_that_count_them_all(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            unsigned = json.loads(cloud.change_set(B, [{"op": "remove", "key": "0" * 64}]))
            unsigned["sig"] = ""
            payload = json.dumps(unsigned).encode()
            await asyncio.gather(*(cloud.send(B, "credentials", payload) for _ in range(5000)))
            stats = uplink.downlink.stats
            await until(lambda: stats.refused + stats.dropped == 5000, timeout_s=60)
            await until(lambda: len(nuisances(config_path)) >= 1)  # the first of the burst is journaled at once
        # the uplink stopped with the block: the counts it held back are journaled
        events = nuisances(config_path)
        assert counted(events) == 5000
        assert len(events) <= 4, f"{len(events)} events for one burst of one kind of garbage"
        assert all(e.priority == Priority.FAULT for e in events), "eviction may take them"
        assert {e.body["reason"] for e in events if e.kind == UplinkKind.DOWNLINK_REFUSED} == {"unsigned"}
        assert store.version == 0

    asyncio.run(scenario())


def test_held_back_refusals_are_journaled_when_their_window_ends(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            uplink.downlink.refusals.throttle.window_s = 2.0  # a test does not wait a minute
            for _ in range(3):
                await cloud.send(B, "commands", b"not json")
            await until(lambda: counted(nuisances(config_path)) == 3)  # 1 at once, then 2 when the window ends
            assert not task.done()
        assert [e.body["count"] for e in nuisances(config_path)] == [1, 2]

    asyncio.run(scenario())


def test_a_pull_past_the_seq_range_is_refused_with_a_reason_and_the_uplink_keeps_answering(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            for after_seq in (2**63, 2**63 - 1 + 2**64, -1):
                bad = cloud.sign(B, DownlinkKind.PULL, {"after_seq": after_seq, "limit": 10})
                await cloud.connection.publish(f"{TOPIC}/pull/request", bad, response_topic=f"{TOPIC}/pull/response/cloud")
            huge_limit = await cloud.pull(B, 0, limit=2**64)  # too many is capped, not an error
            assert huge_limit["more"] is False
            page = await cloud.pull(B, 2**63 - 1, limit=10)  # the largest seq there can be: an empty page
            assert page["events"] == [] and page["more"] is False
            assert not task.done()
        refused = nuisances(config_path)
        assert [(e.body["reason"], e.body["count"]) for e in refused] == [("bad_body", 1), ("bad_body", 2)]
        assert "after_seq" in refused[0].body["detail"]

    asyncio.run(scenario())


def test_a_flood_of_signed_pulls_is_answered_or_dropped_and_every_drop_is_counted_in_the_journal(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            pulls = [cloud.sign(B, DownlinkKind.PULL, {"after_seq": 0, "limit": 1}) for _ in range(3000)]
            await asyncio.gather(*(
                cloud.connection.publish(f"{TOPIC}/pull/request", p, response_topic=f"{TOPIC}/pull/response/flood")
                for p in pulls
            ))
            stats = uplink.downlink.stats
            await until(lambda: stats.handled + stats.dropped == 3000, timeout_s=60)
            assert stats.dropped > 0, "the incoming queue is bounded"
            page = await cloud.pull(B, 0, limit=1)  # still answering
            assert page["building"] == B and page["after_seq"] == 0  # answered
        dropped = [e for e in nuisances(config_path) if e.kind == UplinkKind.DOWNLINK_DROPPED]
        assert counted(dropped) == stats.dropped and len(dropped) <= 2
        assert {e.body["reason"] for e in dropped} == {"queue_full"}

    asyncio.run(scenario())


def test_a_locked_nonce_book_holds_the_command_back_without_stopping_the_loop(write_config, building_dir):
    """The nonce is made durable off the loop, and before the command runs: while another process
    holds the uplink's state file, alarms still reach the cloud and the command waits for its nonce."""

    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            holder = sqlite3.connect(load(config_path).state_path / "uplink.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # a technician's sqlite3 shell, a stuck backup...
            try:
                command = asyncio.create_task(cloud.command(B, "status.snapshot", timeout_s=30))
                await until(lambda: uplink.downlink.stats.handled == 1)  # in, and waiting for its nonce
                alarm = await journal.append(Event(kind="alarm.test", priority=Priority.ALARM, source="f3", body={}))
                await until(lambda: alarm in cloud.seqs(B))  # the loop is not stuck behind the lock
                assert not command.done(), "the command waits until its nonce is durable"
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            result = await command
            assert result["outcome"] == "done"

    asyncio.run(scenario())
