"""The uplink in-process against a real mosquitto and the reference cloud: push, pull, faults."""

from __future__ import annotations

import asyncio

from edge.config.building import load
from edge.events import Event, Priority
from edge.journal import Journal
from edge.uplink.worker import Uplink
from edge.hil.broker import Broker, SlowLink

from uplink_rig import B, assert_exactly_once_in_order, cloud_online, journaled, open_cloud, open_store, reading, start_gateway, stop_gateway, until, uplink_config


def test_backlog_survives_broker_outage_and_clean_restart_exactly_once_in_order(write_config, building_dir):
    async def scenario():
        async with cloud_online(write_config, building_dir) as (broker, config_path, cloud):
            journal, store, uplink, task = await start_gateway(config_path)
            for n in range(300):
                await journal.append(reading(n))
            await until(lambda: uplink.pusher.synced_seq >= journal.head_seq)
            assert cloud.book(B).status["state"] == "online"

            broker.stop()  # down for a while: the journal keeps growing, nothing is lost
            await until(lambda: not uplink.connected.is_set())
            await asyncio.gather(*(journal.append(reading(n)) for n in range(300, 1300)))
            await journal.append(Event(kind="alarm.test", priority=Priority.ALARM, source="f3", body={}))
            broker.start()  # back, with a clean state: the cloud missed whatever the broker held
            await until(lambda: uplink.pusher.synced_seq >= journal.head_seq, timeout_s=30)

            broker.restart()  # restarted under load: in-flight batches are resent from the cursor
            await asyncio.gather(*(journal.append(reading(n)) for n in range(1300, 1800)))
            await until(lambda: uplink.pusher.synced_seq >= journal.head_seq, timeout_s=30)
            await until(lambda: cloud.connection is not None and not cloud.connection.lost.is_set())
            await cloud.fill_gaps(B, journal.head_seq)
            await stop_gateway(journal, store, uplink, task)
            await cloud.stop()
            assert_exactly_once_in_order(cloud, B, journaled(config_path))
            assert uplink.pusher.stats.sessions >= 3
            link = [e.kind for e in journaled(config_path) if e.kind in ("fault.uplink_down", "uplink.up")]
            assert link[:2] == ["fault.uplink_down", "uplink.up"], "the outage and the return are journaled"
            assert all(a != b for a, b in zip(link, link[1:])), "once per change, not at every retry"

    asyncio.run(scenario())


def test_alarms_jump_ahead_of_a_paced_backlog_on_a_slow_link(write_config, building_dir):
    async def scenario():
        with Broker() as broker:
            link = await SlowLink("127.0.0.1", broker.port, 40_000).start()
            config_path = uplink_config(write_config, building_dir, link.port, bandwidth_bytes_per_s=20000)
            cloud = open_cloud(building_dir, broker.port)
            await cloud.start()
            config = load(config_path)
            journal = await Journal.open(config.journal_path)
            for n in range(2000):  # ~300 kB of backlog: 15 s at the cap
                await journal.append(reading(n))
            store = open_store(config_path)
            uplink = Uplink(config, "cafe", journal, lambda: store)
            task = asyncio.create_task(uplink.run())
            await until(lambda: cloud.received > 0)
            alarm_seq = await journal.append(Event(kind="alarm.raised", priority=Priority.ALARM, source="f3", body={}))
            await until(lambda: alarm_seq in cloud.seqs(B))
            assert cloud.received < 1500, "the alarm did not wait for the backlog"
            # the gateway is cut off mid-drain (the cloud keeps its broker) and comes back
            await stop_gateway(journal, store, uplink, task)
            uplink_config(write_config, building_dir, broker.port)  # back on a fast link
            journal, store, uplink, task = await start_gateway(config_path)
            await until(lambda: uplink.pusher.synced_seq >= journal.head_seq, timeout_s=60)
            await until(lambda: len(cloud.seqs(B)) >= journal.head_seq - 3, timeout_s=30)
            await cloud.fill_gaps(B, journal.head_seq)
            await stop_gateway(journal, store, uplink, task)
            await link.stop()
            await cloud.stop()
            assert_exactly_once_in_order(cloud, B, journaled(config_path))

    asyncio.run(scenario())
