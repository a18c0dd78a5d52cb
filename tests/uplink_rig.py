"""Shared pieces of the uplink tests: a building with the uplink on, a real mosquitto, the reference cloud."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from edge.access.credentials import CredentialStore
from edge.config import load
from edge.journal import EventQuery, read_events
from hil.cloud import Cloud, generate_keys

from conftest import MINIMAL


def uplink_config(write_config, building_dir: Path, port: int, extra: str = "") -> Path:
    if not (building_dir / "cloud.pub").exists():
        generate_keys(building_dir)
    return write_config(
        MINIMAL
        + f"""
uplink:
  enabled: true
  host: 127.0.0.1
  port: {port}
  batch_events: 200
  batch_ms: 10
  keepalive_s: 5
  cloud_public_key: cloud.pub
{extra}"""
    )


def cloud_key(building_dir: Path):
    return serialization.load_pem_private_key((building_dir / "cloud.key").read_bytes(), None)


def open_cloud(building_dir: Path, port: int) -> Cloud:
    return Cloud("127.0.0.1", port, building_dir / "cloud.db", cloud_key(building_dir))


def open_store(config_path: Path) -> CredentialStore:
    config = load(config_path)
    return CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())


async def until(predicate, timeout_s: float = 20.0, step_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step_s)


def journaled(config_path: Path) -> list:
    return read_events(load(config_path).journal_path, EventQuery(limit=None))


def assert_exactly_once_in_order(cloud: Cloud, building: str, journal_events: list) -> None:
    """Every journaled event reached the cloud once (after dedup by id), in seq order."""
    got = cloud.events(building)
    assert [e["seq"] for e in got] == [e.seq for e in journal_events]
    assert [e["id"] for e in got] == [e.id for e in journal_events]
