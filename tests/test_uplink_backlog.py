"""A large backlog and a broker's size limits: the drain finishes, every event once, in seq order."""

from __future__ import annotations

import asyncio

from edge.config.building import load
from edge.events import Event, Priority
from edge.journal import Journal, JournalLimits
from edge.uplink.worker import Uplink
from edge.hil.broker import Broker

from uplink_rig import assert_exactly_once_in_order, journaled, open_cloud, open_store, until, uplink_config
from conftest import in_background

B = "test-house"


def reading(n: int) -> Event:
    return Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="f3-monitor", body={"n": n})


async def drain(config_path, broker: Broker, building_dir, events: int, timeout_s: float):
    """Journal `events` while the gateway is off, start it against `broker`, wait for the cloud to hold them all."""
    config = load(config_path)
    journal = await Journal.open(config.journal_path, JournalLimits(telemetry_retention_s=None))
    for start in range(0, events, 5000):
        await asyncio.gather(*(journal.append(reading(n)) for n in range(start, min(events, start + 5000))))
    cloud = open_cloud(building_dir, broker.port)
    await cloud.start()
    store = open_store(config_path)
    uplink = Uplink(config, "cafe", journal, lambda: store)
    try:
        async with in_background(uplink.run()):
            await until(lambda: uplink.pusher.synced_seq >= journal.head_seq, timeout_s=timeout_s)
            await until(lambda: cloud.received >= journal.head_seq, timeout_s=timeout_s)
    finally:
        uplink.close()
        store.close()
        await journal.close()
        await cloud.stop()
    return cloud, uplink


def test_a_40k_event_backlog_drains_to_the_cloud_once_in_order(write_config, building_dir):
    async def scenario():
        with Broker() as broker:
            config_path = uplink_config(write_config, building_dir, broker.port)
            cloud, uplink = await drain(config_path, broker, building_dir, 40_000, timeout_s=60)
            assert_exactly_once_in_order(cloud, B, journaled(config_path))
            assert cloud.duplicates == 0
            assert uplink.pusher.stats.batch_cap_cuts == 0

    asyncio.run(scenario())


def test_a_broker_that_drops_oversized_messages_gets_smaller_batches(write_config, building_dir):
    """mosquitto's message_size_limit drops an MQTT 5 client whose message is too big, without saying why:
    resending the same batch after every reconnect would never end."""

    async def scenario():
        with Broker(message_size_limit=6000) as broker:
            config_path = uplink_config(write_config, building_dir, broker.port, batch_bytes=65536)
            cloud, uplink = await drain(config_path, broker, building_dir, 2000, timeout_s=60)
            assert_exactly_once_in_order(cloud, B, journaled(config_path))
            assert uplink.pusher.stats.batch_cap_cuts >= 1
            assert uplink.pusher.batch_cap <= 6000
            assert uplink.pusher.stats.undeliverable == 0

    asyncio.run(scenario())


def test_a_broker_maximum_packet_size_caps_the_batches_from_the_first_session(write_config, building_dir):
    async def scenario():
        with Broker(max_packet_size=8192) as broker:
            config_path = uplink_config(write_config, building_dir, broker.port, batch_bytes=65536)
            cloud, uplink = await drain(config_path, broker, building_dir, 2000, timeout_s=60)
            assert_exactly_once_in_order(cloud, B, journaled(config_path))
            assert uplink.pusher.batch_cap < 8192
            assert uplink.pusher.stats.batch_cap_cuts == 0

    asyncio.run(scenario())
