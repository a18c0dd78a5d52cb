"""edge-fleet ingest: real `edge run` gateways, mosquitto with shared subscriptions, PostgreSQL started
here, W worker processes; and the faults: a worker killed mid-drain, the broker restarted, PostgreSQL
stopped for a while, malformed and oversized messages. Nothing lost, nothing stored twice."""

from __future__ import annotations

import json
import signal
import time

import os

import paho.mqtt.client as paho

from edge.hil import waiting
from edge.hil.broker import Broker

from conftest import running
from fleet_rig import (Gateway, Ingest, assert_exactly_once, cloud_keys, postgres, prepared, query, until)  # noqa: F401 - fixtures

PREPARED = 1500


def _drained(dsn: str, gateways: list[Gateway], at_least: int = PREPARED):
    def check() -> bool:
        rows = dict(query(dsn, "SELECT building, watermark FROM buildings"))
        return all(rows.get(g.building, 0) >= at_least for g in gateways)
    return check


def test_gateways_drain_through_shared_workers_once_with_alarms_on_their_lane(tmp_path, postgres, cloud_keys):
    private, public = cloud_keys
    with Broker() as broker:
        gateways = prepared(tmp_path, broker.port, public, PREPARED, *(f"b{i}" for i in range(3)))
        with Ingest(tmp_path, broker.port, postgres.dsn, 2, private), running(*gateways):
            until(_drained(postgres.dsn, gateways), 90, what="every building drained")
            until(lambda: {s for (s,) in query(postgres.dsn, "SELECT state FROM buildings")} == {"online"}, 30)
            gateways[0].stop(signal.SIGTERM)  # a clean stop says offline itself
            until(lambda: query(postgres.dsn, "SELECT state FROM buildings WHERE building='b0'")[0][0] == "offline", 30)
        for g in gateways:
            assert_exactly_once(postgres.dsn, g, PREPARED)
        # every alarm-priority event went out on the alarm lane (power.trip_confirmed once went on "backlog")
        lanes = dict(query(postgres.dsn, "SELECT lane, count(*) FROM events WHERE priority='alarm' GROUP BY lane"))
        assert set(lanes) == {"alarm"}, lanes
        assert query(postgres.dsn, "SELECT count(*) FROM events WHERE NOT valid")[0][0] == 0, \
            query(postgres.dsn, "SELECT kind, problems FROM events WHERE NOT valid LIMIT 5")
        assert query(postgres.dsn, "SELECT count(*) FROM gaps")[0][0] == 0
        assert query(postgres.dsn, "SELECT count(*) FROM quarantine")[0][0] == 0


def test_a_worker_killed_mid_drain_loses_and_duplicates_nothing(tmp_path, postgres, cloud_keys):
    """No key, so no gap repair: what the killed worker held unacknowledged reaches the table only
    because the broker sends it again (to the restarted worker, whose session it kept)."""
    _, public = cloud_keys
    with Broker() as broker:
        gateways = prepared(tmp_path, broker.port, public, 4000, *(f"k{i}" for i in range(2)), bandwidth_bytes_per_s=60000)
        with Ingest(tmp_path, broker.port, postgres.dsn, 2, None, "--batch-messages", "20", "--batch-ms", "100") as ingest, running(*gateways):
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM events")[0][0] > 1000, 60, what="the drain under way")
            victim = ingest.pids()[0]
            os.kill(victim, signal.SIGKILL)
            stored_at_kill = query(postgres.dsn, "SELECT count(*) FROM events")[0][0]
            until(lambda: ingest.pids()[0] != victim, 30, what="the worker restarted")
            until(_drained(postgres.dsn, gateways, 4000), 120, what="every building drained")
        assert stored_at_kill < 8000, "killed in the middle of the drain"
        for g in gateways:
            assert_exactly_once(postgres.dsn, g, 4000)
        assert query(postgres.dsn, "SELECT count(*) FROM gaps")[0][0] == 0


def test_postgres_stopped_for_a_while_nothing_acknowledged_is_uncommitted(tmp_path, postgres, cloud_keys):
    """No key, so no gap repair: a message acknowledged without its COMMIT would be missing for good."""
    _, public = cloud_keys
    with Broker() as broker:
        gateways = prepared(tmp_path, broker.port, public, 3000, *(f"p{i}" for i in range(2)), bandwidth_bytes_per_s=60000)
        with Ingest(tmp_path, broker.port, postgres.dsn, 2) as ingest, running(*gateways):
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM events")[0][0] > 500, 60, what="the drain under way")
            postgres.stop("immediate")  # a crash: whatever was not committed is gone
            time.sleep(10)  # the gateways keep sending; the workers back off and acknowledge nothing
            postgres.start()
            until(_drained(postgres.dsn, gateways, 3000), 120, what="every building drained")
            pids = ingest.pids()
        assert len(pids) == 2 and "exited" not in ingest.log.read_text(), "the workers rode the outage out"
        for g in gateways:
            assert_exactly_once(postgres.dsn, g, 3000)
        assert "database unavailable" in "".join(p.read_text() for p in [ingest.log])


def test_a_broker_restart_is_repaired_by_signed_pulls(tmp_path, postgres, cloud_keys):
    """mosquitto without persistence loses what it had acknowledged to the gateways and not yet handed
    to a worker: the gateways' status says how far they are synced, the gap is pulled and filled."""
    private, public = cloud_keys
    with Broker() as broker:
        gateways = prepared(tmp_path, broker.port, public, 3000, *(f"r{i}" for i in range(2)), bandwidth_bytes_per_s=80000)
        with Ingest(tmp_path, broker.port, postgres.dsn, 2, private), running(*gateways):
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM events")[0][0] > 1000, 60, what="the drain under way")
            broker.restart()
            until(_drained(postgres.dsn, gateways, 3000), 120, what="every building drained")
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM gaps")[0][0] == 0, 60, what="no gap left")
        for g in gateways:
            assert_exactly_once(postgres.dsn, g, 3000)


def test_malformed_oversized_and_schema_breaking_messages_are_kept_aside_and_the_worker_goes_on(tmp_path, postgres):
    with Broker() as broker:
        with Ingest(tmp_path, broker.port, postgres.dsn, 1, None, "--max-message-bytes", "100000"):
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM information_schema.tables WHERE table_name='quarantine'")[0][0], 30)
            client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="stranger", protocol=paho.MQTTv5)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            good = {"seq": 1, "id": "019aeb3c-1f40-7c2a-9d3e-5b8f0a1c2d3e", "time": "2026-12-01T09:20:00.000000Z", "mono_ns": 5,
                    "kind": "telemetry.point", "priority": "telemetry", "source": "m",
                    "body": {"point": "m.p", "quantity": "water_pressure", "value": 1.5, "unit": "MPa"}}
            odd = {**good, "seq": 2, "id": "019aeb3c-1f40-7c2a-9d3e-5b8f0a1c2d3f", "kind": "power.trip_confirmed", "priority": "alarm",
                   "body": {"reason": 7, "note": "bad\u0000byte"}}
            batch = lambda *events: json.dumps({"v": 1, "building": "x1", "lane": "alarm", "events": list(events)})  # noqa: E731
            messages = [
                ("edge/v1/x1/events", b"{not json"),
                ("edge/v1/x1/events", b"[" * 50_000 + b"]" * 50_000),
                ("edge/v1/x1/events", json.dumps({"v": 1, "building": "someone-else", "events": [good]})),
                ("edge/v1/x1/events", b"x" * 300_000),
                ("edge/v1/x1/snapshots/abc", json.dumps({"v": 1, "building": "x1", "event_id": "abc", "seq": 1, "file": "f.jpg",
                                                        "sha256": "0" * 64, "jpeg": "aGVsbG8="})),
                ("edge/v1/x1/events", batch(odd)),
                ("edge/v1/x1/events", batch(good)),
            ]
            for topic, payload in messages:
                client.publish(topic, payload, qos=1).wait_for_publish(10)
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM events")[0][0] == 2, 30, what="both events stored")
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM quarantine")[0][0] == 5, 30, what="five kept aside")
            client.loop_stop()
            client.disconnect()
        reasons = sorted(r for (r,) in query(postgres.dsn, "SELECT reason FROM quarantine"))
        assert "too_large" in reasons and "sha256 does not match the bytes" in reasons
        assert "the building in the payload is not the topic's" in reasons
        assert sum(r.startswith("malformed") for r in reasons) == 2
        big = query(postgres.dsn, "SELECT size, length(payload) FROM quarantine WHERE reason='too_large'")[0]
        assert big == (300_000, 64 * 1024)
        flagged = query(postgres.dsn, "SELECT seq, valid, problems, body->>'note' FROM events ORDER BY seq")
        assert flagged[0][1] is True
        assert flagged[1][1] is False and "body/reason" in flagged[1][2] and "NUL" in flagged[1][2]
        assert flagged[1][3] == "bad\ufffdbyte"


def test_evicted_ranges_are_pulled_once_and_recorded_absent_never_asked_for_again(tmp_path, postgres, cloud_keys):
    """The gateway's journal lost old telemetry to retention before it could send it: the holes below its head
    are pulled, the page says why they are gone, and they are recorded absent; the watermark passes them."""
    import asyncio

    from edge.config.building import load
    from edge.events import Event, Kind, Priority
    from edge.community.kinds import CommunityKind
    from edge.journal import Journal, JournalLimits

    private, public = cloud_keys
    with Broker() as broker:
        gateway = Gateway(tmp_path, "e1", broker.port, public)

        async def prepare() -> None:
            journal = await Journal.open(load(gateway.config).journal_path,
                                         JournalLimits(telemetry_retention_s=86400, maintenance_every_s=0.2))
            old = time.time_ns() - 40 * 86400 * 10**9
            for n in range(600):  # old telemetry between alarms: retention leaves holes in the middle
                if n % 10 == 0:
                    await journal.append(Event(kind=CommunityKind.SMOKE_ALARM, priority=Priority.ALARM, source="room-1", body={"area": "a"}))
                else:
                    await journal.append(Event(kind=Kind.POINT_READING, priority=Priority.TELEMETRY, source="m",
                                               body={"point": "p", "value": 1.0}, wall_ns=old + n))

            async def evicted() -> bool:
                if sum(e.seq <= 600 for e in gateway.journaled()) < 300:
                    return True
                # maintenance runs with a commit once due: give it one (an alarm, kept)
                await journal.append(Event(kind=CommunityKind.SMOKE_ALARM, priority=Priority.ALARM, source="room-2", body={"area": "b"}))
                return False

            await waiting.until(evicted, 60, "retention evicting the old telemetry", every_s=0.3)
            await journal.close()

        asyncio.run(prepare())
        retained = gateway.journaled()
        assert sum(e.seq <= 600 for e in retained) < 300, "retention evicted the old telemetry"
        with Ingest(tmp_path, broker.port, postgres.dsn, 2, private), gateway:
            kept = {e.seq for e in retained if e.seq <= 600}
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM gaps")[0][0] == 0 and
                  query(postgres.dsn, "SELECT watermark FROM buildings WHERE building='e1'") and
                  query(postgres.dsn, "SELECT watermark FROM buildings WHERE building='e1'")[0][0] >= 600 and
                  kept <= {seq for (seq,) in query(postgres.dsn, "SELECT seq FROM events WHERE building='e1'")}, 60,
                  what="the holes recorded absent and everything kept stored")
            absent_then = query(postgres.dsn, "SELECT first_seq, last_seq, reason FROM absent ORDER BY 1")
            pulls_then = query(postgres.dsn, "SELECT count(*) FROM events WHERE lane='pull'")[0][0]
            time.sleep(3)  # longer than the gap grace: nothing is asked for again
            absent = query(postgres.dsn, "SELECT reason, sum(last_seq - first_seq + 1) FROM absent GROUP BY reason")
        assert query(postgres.dsn, "SELECT count(*) FROM events WHERE lane='pull'")[0][0] == pulls_then
        assert query(postgres.dsn, "SELECT first_seq, last_seq, reason FROM absent ORDER BY 1") == absent_then
        # every seq up to the head is stored once or recorded absent, for the reason the gateway gave
        # (a page names each range it evicted; below its first retained seq everything was evicted);
        # what the gateway still holds is stored (it may evict more old telemetry after it was sent)
        stored = dict(query(postgres.dsn, "SELECT seq, id FROM events WHERE building='e1' AND seq <= 600"))
        gone = {seq for first, last, _ in absent_then for seq in range(first, last + 1)}
        assert set(stored) | gone >= set(range(1, 601))
        assert sum(count for _, count in absent) >= 600 - len(stored)
        assert {reason for reason, _ in absent} <= {"telemetry_retention", "evicted"} and "telemetry_retention" in dict(absent)
        assert all(stored[e.seq] == e.id for e in gateway.journaled() if e.seq <= 600)
        assert set(stored) >= {e.seq for e in retained if e.seq <= 600}


def test_command_results_and_snapshots_are_stored_once_with_their_sha256(tmp_path, postgres, cloud_keys):
    import subprocess
    import sys

    from edge.events import Priority, StoredEvent
    from edge.uplink.snapshots import envelope

    private, public = cloud_keys
    with Broker() as broker:
        (gateway,) = prepared(tmp_path, broker.port, public, 50, "m1")
        with Ingest(tmp_path, broker.port, postgres.dsn, 2, private), gateway:
            done = subprocess.run([sys.executable, "-m", "edge.fleet.cli", "--broker", f"127.0.0.1:{broker.port}", "--key", str(private),
                                   "command", "m1", "status.snapshot"], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            nonce = json.loads(done.stdout)["nonce"]
            jpeg = b"\xff\xd8\xff\xe0" + os.urandom(2000) + b"\xff\xd9"
            event = StoredEvent(7, "019aeb3c-1f40-7c2a-9d3e-5b8f0a1c2d3e", time.time_ns(), 1, "alarm.elevator_hold", Priority.ALARM,
                                "lift-1", {"snapshot": "vision/snapshots/cam/1.jpg"})
            client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="camera-lane", protocol=paho.MQTTv5)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            for _ in range(2):  # a lost PUBACK: the gateway sends it again
                client.publish(f"edge/v1/m1/snapshots/{event.id}", envelope("m1", event, "vision/snapshots/cam/1.jpg", jpeg),
                               qos=1).wait_for_publish(10)
            until(lambda: query(postgres.dsn, "SELECT count(*) FROM snapshots")[0][0] == 1 and
                  query(postgres.dsn, "SELECT count(*) FROM command_results")[0][0] == 1, 30)
            client.loop_stop()
            client.disconnect()
    assert query(postgres.dsn, "SELECT building, nonce, command, outcome FROM command_results") == \
        [("m1", nonce, "status.snapshot", "done")]
    import hashlib
    assert query(postgres.dsn, "SELECT event_id, seq, bytes, sha256, jpeg FROM snapshots") == \
        [(event.id, 7, len(jpeg), hashlib.sha256(jpeg).hexdigest(), jpeg)]
