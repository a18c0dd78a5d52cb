"""Shared pieces of the fleet tests: a throwaway PostgreSQL, mosquitto, real `edge run` gateways with
journals prepared in advance, and `edge-fleet ingest` as a subprocess. Nothing binds a fixed port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.config.building import load
from edge.events import Event, Kind, Priority
from edge.power.kinds import PowerKind
from edge.journal import EventQuery, Journal, JournalLimits, read_events
from edge.fleet import keys
from edge.fleet.localdb import LocalPostgres
from edge.hil.waiting import until_sync

from conftest import Daemon, as_yaml
from conftest import building as house  # `building` is this gateway's id here
from uplink_rig import uplink_section


@pytest.fixture
def postgres():
    with LocalPostgres() as pg:
        yield pg


@pytest.fixture
def cloud_keys(tmp_path: Path) -> tuple[Path, Path]:
    return keys.generate(tmp_path / "cloud")


def until(predicate, timeout_s: float = 60.0, what: str = "condition"):
    """The rig's wait (edge.hil.waiting), asked every 0.1 s: the fleet's conditions are database queries."""
    return until_sync(predicate, timeout_s, what, every_s=0.1)


def event_for(n: int) -> Event:
    """Mostly telemetry; every 7th an alarm-priority power event (which must travel on the alarm lane)."""
    if n % 7 == 3:
        return Event(kind=PowerKind.TRIP_CONFIRMED, priority=Priority.ALARM, source=f"c{n % 5}",
                     body={"circuit": f"c{n % 5}", "breaker": "cb", "reason": "over_current", "outcome": "confirmed",
                           "readback": "open", "severity": None, "detail": "confirmed", "point": "m1.phase_a_current",
                           "reading": 41.2, "threshold": 32.0, "unit": "A"})
    return Event(kind=Kind.POINT_READING, priority=Priority.TELEMETRY, source="m1",
                 body={"point": "m1.phase_a_current", "quantity": "phase_current", "value": round(10 + n % 13 * 0.1, 2), "unit": "A",
                       "n": n})


class Gateway(Daemon):
    """One building: a config in its own folder, a journal written before it starts, `edge run` as a subprocess."""

    def __init__(self, root: Path, building: str, broker_port: int, public_key: Path, batch_events: int = 200, **uplink: Any) -> None:
        """`uplink`: more of its uplink section (bandwidth_bytes_per_s=..., batch_bytes=...)."""
        self.building = building
        self.dir = root / building
        (self.dir / "secrets").mkdir(parents=True, exist_ok=True)
        (self.dir / "secrets" / "building.key").write_text(os.urandom(32).hex())
        super().__init__(self.dir / "building.yaml", log=self.dir / "daemon.log", stop_s=15)
        config = house(uplink_section(broker_port), {"http": {"port": 0}})  # its page on a free port, as write_config does
        config["building"]["id"] = building
        config["uplink"].update(batch_events=batch_events, cloud_public_key=str(public_key), **uplink)
        self.config.write_text(as_yaml(config))

    def prepare(self, events: int) -> None:
        async def write() -> None:
            journal = await Journal.open(load(self.config).journal_path, JournalLimits(telemetry_retention_s=None))
            for start in range(0, events, 1000):
                await asyncio.gather(*(journal.append(event_for(n)) for n in range(start, min(events, start + 1000))))
            await journal.close()

        asyncio.run(write())

    def journaled(self) -> list:
        return read_events(load(self.config).journal_path, EventQuery(limit=None))


def prepared(root: Path, broker_port: int, public_key: Path, events: int, *buildings: str, **options: Any) -> list[Gateway]:
    """A Gateway for each of `buildings` (in folders under `root`, its uplink to the mosquitto at
    `broker_port`; `options` as Gateway takes them), each with `events` journaled before it starts."""
    gateways = [Gateway(root, building, broker_port, public_key, **options) for building in buildings]
    for gateway in gateways:
        gateway.prepare(events)
    return gateways


class Ingest:
    """`edge-fleet ingest` as a subprocess; the workers' pids come from its lines on stderr."""

    def __init__(self, root: Path, broker_port: int, dsn: str, workers: int, key: Path | None = None, *extra: str) -> None:
        self.workers = workers
        self.log = root / f"ingest-{time.monotonic_ns()}.log"
        argv = [sys.executable, "-m", "edge.fleet.cli", "--broker", f"127.0.0.1:{broker_port}", "--db", dsn]
        if key is not None:
            argv += ["--key", str(key)]
        argv += ["ingest", "--workers", str(workers), "--gap-grace-s", "1", *extra]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    def pids(self) -> dict[int, int]:
        found = {}
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if "pid" in record:
                    found[record["worker"]] = record["pid"]
        return found

    def ready(self, workers: int) -> bool:
        """At least `workers` workers have their subscriptions (a message published before any has is lost)."""
        return self.log.read_text().count('"worker started"') >= workers

    def __enter__(self) -> Ingest:
        """Once every worker has its subscriptions; `stop` on the way out."""
        try:
            until(lambda: self.ready(self.workers), 30)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def query(dsn: str, sql: str, *params):
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def stored(dsn: str, building: str) -> list[tuple[int, str]]:
    """(seq, id) of the building's stored events, in seq order."""
    return query(dsn, "SELECT seq, id FROM events WHERE building=%s ORDER BY seq", building)


def assert_exactly_once(dsn: str, gateway: Gateway, at_least: int) -> None:
    """Every journaled event up to the highest stored seq (at least `at_least`) is stored, once: the
    primary key is the id, and no seq is stored twice either. (The gateway's last words, journaled
    after its uplink stopped, may not have left it.)"""
    got = stored(dsn, gateway.building)
    assert len({seq for seq, _ in got}) == len(got), "a seq stored twice"
    top = got[-1][0] if got else 0
    assert top >= at_least
    journal = [(e.seq, e.id) for e in gateway.journaled() if e.seq <= top]
    assert got == journal


def holds_everything(dsn: str, gateway: Gateway, through: int) -> bool:
    rows = query(dsn, "SELECT count(*) FROM events WHERE building=%s AND seq <= %s", gateway.building, through)
    return rows[0][0] >= through
