"""Signed downlink against a real mosquitto: credential versions, commands, pulls, and refusals."""

from __future__ import annotations

import asyncio
import base64
import json

from edge.events import Event, Priority
from edge.community.kinds import CommunityKind
from edge.uplink.kinds import UplinkKind
from edge.journal import JournalLimits
from edge.uplink.signing import DownlinkKind

from uplink_rig import B, cloud_online, journaled, online, start_gateway, stop_gateway, until


def credential(n: int) -> dict:
    return {"key": f"{n:064x}", "tenant": f"t{n}", "valid_from": "2025-01-01", "valid_until": "2026-01-01", "paid_through": "2025-06-30"}


def refusals(config_path) -> list[str]:
    return [e.body["reason"] for e in journaled(config_path) if e.kind == UplinkKind.DOWNLINK_REFUSED]


def test_change_sets_out_of_order_twice_with_a_gap_unsigned_or_badly_signed(write_config, building_dir):
    async def scenario():
        async with online(write_config, building_dir) as (broker, config_path, cloud, journal, store, uplink, task):
            v1 = cloud.change_set(B, [{"op": "upsert", "credential": credential(1)}])
            v2 = cloud.change_set(B, [{"op": "upsert", "credential": credential(2)}])
            v3 = cloud.change_set(B, [{"op": "remove", "key": credential(1)["key"]}])
            await cloud.send(B, "credentials", v1)
            await until(lambda: store.version == 1)
            await cloud.send(B, "credentials", v1)  # twice: refused as a replay, changes nothing
            await cloud.send(B, "credentials", v3)  # out of order, a gap: the gateway asks for a snapshot
            await until(lambda: store.version == 3)
            assert cloud.book(B).snapshot_requests == 1
            await cloud.send(B, "credentials", v2)  # late: older than the store, ignored
            unsigned = json.loads(v2)
            unsigned["sig"] = ""
            await cloud.send(B, "credentials", json.dumps(unsigned).encode())
            forged = json.loads(cloud.change_set(B, [{"op": "upsert", "credential": credential(9)}]))
            inner = json.loads(base64.b64decode(forged["signed"]))
            inner["body"]["changes"][0]["credential"]["tenant"] = "intruder"
            forged["signed"] = base64.b64encode(json.dumps(inner).encode()).decode()
            await cloud.send(B, "credentials", json.dumps(forged).encode())
            await cloud.send(B, "credentials", b"{not json")
            await until(lambda: len(refusals(config_path)) >= 4)
            await until(lambda: cloud.book(B).status.get("credential_version") == 3)
            assert sorted(c.key for c in store.list()) == [credential(2)["key"]]
            assert store.version == 3
        assert sorted(refusals(config_path)) == ["bad_signature", "malformed", "replayed", "unsigned"]

    asyncio.run(scenario())


def test_commands_are_verified_run_once_and_journaled_with_their_result(write_config, building_dir):
    async def scenario():
        async with cloud_online(write_config, building_dir) as (broker, config_path, cloud):
            journal, store, uplink, task = await start_gateway(config_path)
            await until(lambda: uplink.connected.is_set())
            result = await cloud.command(B, "status.snapshot")
            assert result["outcome"] == "done" and result["detail"]["credential_version"] == 0
            await journal.append(Event(CommunityKind.SMOKE_ALARM, Priority.ALARM, "room-301", {"area": "unit-301"}))
            state = await cloud.command(B, "state")
            assert state["outcome"] == "done"
            assert [(a["kind"], a["source"], a["severity"]) for a in state["detail"]["active"]] == [("alarm.smoke", "room-301", "alarm")]
            unknown = await cloud.command(B, "door.unlock", {"door": "lobby"})
            assert unknown["outcome"] == "unknown_command"
            expired = cloud.sign(B, DownlinkKind.COMMAND, {"command": "status.snapshot", "args": {}}, ttl_s=10, now=0)
            await cloud.send(B, "commands", expired)
            replayed = cloud.sign(B, DownlinkKind.COMMAND, {"command": "status.snapshot", "args": {}})
            await cloud.send(B, "commands", replayed)
            await until(lambda: len(cloud.book(B).command_results) == 4)
            await stop_gateway(journal, store, uplink, task)
            # a restart does not forget the nonce: the same message is still a replay
            journal, store, uplink, task = await start_gateway(config_path)
            await until(lambda: uplink.connected.is_set())
            await cloud.send(B, "commands", replayed)
            await until(lambda: "replayed" in refusals(config_path))
            await stop_gateway(journal, store, uplink, task)
            await cloud.stop()
            executed = [e.body["command"] for e in journaled(config_path) if e.kind == UplinkKind.COMMAND_EXECUTED]
            assert executed == ["status.snapshot", "state", "door.unlock", "status.snapshot"]
            assert sorted(refusals(config_path)) == ["expired", "replayed"]

    asyncio.run(scenario())


def test_pull_pages_say_where_the_journal_was_evicted(write_config, building_dir):
    async def scenario():
        limits = JournalLimits(telemetry_retention_s=3600)
        async with online(write_config, building_dir, limits=limits) as (broker, config_path, cloud, journal, store, uplink, task):
            old = [Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", body={"n": n}, wall_ns=1) for n in range(50)]
            for event in old:
                await journal.append(event)
            for n in range(30):
                await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", body={"n": n}))
            await journal.maintain_now()  # the 50 old readings are past retention
            page = await cloud.pull(B, 0, limit=10)
            assert page["first_retained_seq"] > 1, "old readings are gone and the page says so"
            assert page["events"][0]["seq"] == page["first_retained_seq"]
            assert len(page["events"]) == 10 and page["more"] is True
            await until(lambda: uplink.pusher.synced_seq >= journal.head_seq)
            cloud.db.execute("DELETE FROM events WHERE seq % 7 = 0")  # the cloud lost some
            await cloud.fill_gaps(B, journal.head_seq)
            assert cloud.gaps(B, journal.head_seq) == []
        kept = journaled(config_path)
        assert {e.id for e in kept} <= {e["id"] for e in cloud.events(B)}

    asyncio.run(scenario())
