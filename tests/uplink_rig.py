"""Shared pieces of the uplink tests: a building with the uplink on, a real mosquitto, the reference cloud."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization

from edge.doors.credentials.store import CredentialStore
from edge.config.building import load
from edge.events import Event, Priority
from edge.journal import EventQuery, Journal, JournalLimits, read_events
from edge.uplink.worker import Uplink
from edge.hil import waiting
from edge.hil.broker import Broker
from edge.hil.cloud import Cloud, generate_keys

from conftest import building

B = "test-house"  # MINIMAL's building id, as the cloud keeps its book


def uplink_section(port: int) -> dict:
    """The `uplink:` section for the mosquitto at `port`, the cloud's key (`generate_keys`) beside the config."""
    return {"uplink": {"enabled": True, "host": "127.0.0.1", "port": port, "batch_events": 200, "batch_ms": 10,
                       "keepalive_s": 5, "cloud_public_key": "cloud.pub"}}


def uplink_config(write_config, building_dir: Path, port: int, extra: dict | None = None, **uplink: Any) -> Path:
    """A building whose uplink (`uplink_section`, `uplink` added to it: batch_bytes=65536) goes to the
    mosquitto at `port`, the sections of `extra` merged in (see conftest's `merged`)."""
    if not (building_dir / "cloud.pub").exists():
        generate_keys(building_dir)
    section = uplink_section(port)
    section["uplink"].update(uplink)
    return write_config(building(section, extra or {}))


def cloud_key(building_dir: Path):
    return serialization.load_pem_private_key((building_dir / "cloud.key").read_bytes(), None)


def open_cloud(building_dir: Path, port: int) -> Cloud:
    return Cloud("127.0.0.1", port, building_dir / "cloud.db", cloud_key(building_dir))


def open_store(config_path: Path) -> CredentialStore:
    config = load(config_path)
    return CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())


async def until(predicate, timeout_s: float = 20.0, step_s: float = 0.02):
    """`edge.hil.waiting.until` with the uplink tests' patience (20 s) and pace (every 20 ms)."""
    return await waiting.until(predicate, timeout_s, every_s=step_s)


def journaled(config_path: Path) -> list:
    return read_events(load(config_path).journal_path, EventQuery(limit=None))


def assert_exactly_once_in_order(cloud: Cloud, building: str, journal_events: list) -> None:
    """Every journaled event reached the cloud once (after dedup by id), in seq order."""
    got = cloud.events(building)
    assert [e["seq"] for e in got] == [e.seq for e in journal_events]
    assert [e["id"] for e in got] == [e.id for e in journal_events]


def reading(n: int) -> Event:
    """Telemetry event `n`, padded to a realistic size."""
    return Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="f3-monitor", body={"n": n, "pad": "x" * 100})


async def start_gateway(config_path, limits=JournalLimits()):
    """The journal, credential store and a running uplink of the config at `config_path`."""
    config = load(config_path)
    journal = await Journal.open(config.journal_path, limits)
    store = open_store(config_path)
    uplink = Uplink(config, "cafe", journal, lambda: store)
    task = asyncio.create_task(uplink.run())
    return journal, store, uplink, task


async def stop_gateway(journal, store, uplink, task):
    """Undo `start_gateway`: the uplink stops first, the journal closes last."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    uplink.close()
    store.close()
    await journal.close()


class Cloudside(NamedTuple):
    broker: Broker
    config_path: Path
    cloud: Any


@contextlib.asynccontextmanager
async def cloud_online(write_config, building_dir, extra: dict | None = None, **uplink: Any) -> AsyncIterator[Cloudside]:
    """A mosquitto, the reference cloud on it and a building config whose uplink points there (`extra`
    and `uplink` as `uplink_config` takes them); the cloud stops when the block ends, also when the test
    failed, then the broker."""
    with Broker() as broker:
        config_path = uplink_config(write_config, building_dir, broker.port, extra, **uplink)
        cloud = open_cloud(building_dir, broker.port)
        await cloud.start()
        try:
            yield Cloudside(broker, config_path, cloud)
        finally:
            await cloud.stop()


class Online(NamedTuple):
    broker: Broker
    config_path: Path
    cloud: Any
    journal: Journal
    store: Any
    uplink: Uplink
    task: asyncio.Task


@contextlib.asynccontextmanager
async def online(write_config, building_dir, extra: dict | None = None, limits=JournalLimits(), **uplink: Any) -> AsyncIterator[Online]:
    """A mosquitto, the reference cloud and the gateway's uplink connected to it. When the block
    ends the uplink stops first (what it journals on its way out is then in the journal), then
    the cloud, then the broker; the journal stays on disk for the test's assertions."""
    async with cloud_online(write_config, building_dir, extra, **uplink) as (broker, config_path, cloud):
        journal, store, uplink, task = await start_gateway(config_path, limits)
        try:
            await until(lambda: uplink.connected.is_set())
            yield Online(broker, config_path, cloud, journal, store, uplink, task)
        finally:
            await stop_gateway(journal, store, uplink, task)
