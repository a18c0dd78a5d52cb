"""One ingest worker: MQTT 5 shared subscriptions in, batches into PostgreSQL, PUBACK after COMMIT.

Every worker of a group subscribes to `$share/GROUP/PREFIX/+/events` (and status, command results,
snapshots, credential requests), so the broker spreads the fleet's messages over the workers. The
worker takes up to `batch_messages` messages or `batch_bytes` of them (or what came within `batch_ms` of the first), writes
them in one transaction (edge.fleet.store) and only then acknowledges each. When PostgreSQL is away it
backs off (exponential, with jitter, capped) and tries the same batch again, acknowledging nothing
meanwhile; the broker, held to the worker's Receive Maximum, sends no more than that many
unacknowledged messages, so nothing piles up in the worker. Killed mid-batch, the worker's messages
are sent again by the broker (to the same client id when the supervisor restarts it; the session
outlives the connection) and the duplicates stop at the events' primary key.

Beside the batches, on a connection of its own, the worker advances the watermarks of the buildings
the fleet's batches touched (edge.fleet.store.advance_touched). With the cloud's key it also repairs gaps (edge.fleet.repair) between batches, on its own
connection, with a lease per gap.
"""

from __future__ import annotations

import json
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import structlog

from edge.fleet import db, keys
from edge.fleet.link import BrokerOptions, Link
from edge.fleet.repair import Repairer
from edge.fleet.store import Incoming, Store, WriteStats, advance_touched

log = structlog.get_logger("edge.fleet.worker")

LEAVES = ("events", "status", "commands/result", "snapshots/+", "credentials/request")
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


@dataclass
class WorkerSettings:
    broker: BrokerOptions
    dsn: str
    group: str = "fleet"
    prefix: str = "edge/v1"
    client_id: str = "edge-fleet-0"
    batch_messages: int = 200
    batch_ms: int = 50
    batch_bytes: int = 4 * 2**20  # payload bytes in one batch: bounds what a batch holds parsed in memory
    receive_maximum: int = 256  # unacknowledged messages the broker may send us: bounds the queue (and memory:
    # 256 event batches of the gateways' default 128 KiB are 32 MiB; the full benchmark's workers held 181 MB at 1000)
    max_message_bytes: int = 2 * 2**20  # larger ones are kept aside (their first 64 KiB), not taken
    session_expiry_s: int = 3600  # the broker keeps our unacknowledged messages this long for our return
    key: Path | None = None  # the cloud's private key: with it, gaps are repaired by signed pulls
    gap_grace_s: float = 3.0
    repair_every_s: float = 1.0
    advance_every_s: float = 0.2
    stats_every_s: float = 10.0


@dataclass
class WorkerStats:
    written: WriteStats = field(default_factory=WriteStats)
    batches: int = 0
    acked: int = 0
    stale_acks: int = 0  # committed, but the connection they came on is gone: the broker resends, the store drops them
    db_failures: int = 0
    refused_alone: int = 0  # messages the database refused even one at a time: kept aside


def subscriptions(settings: WorkerSettings) -> tuple[str, ...]:
    shared = tuple(f"$share/{settings.group}/{settings.prefix}/+/{leaf}" for leaf in LEAVES)
    return shared + (f"{settings.prefix}/+/pull/response/{settings.client_id}",)


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.stats = WorkerStats()
        self.validate = _validator()
        self._pages: dict[bytes, queue.Queue] = {}
        self._pages_lock = threading.Lock()
        self.link = Link(
            settings.broker, settings.client_id, subscriptions=subscriptions(settings), manual_ack=True,
            session_expiry_s=settings.session_expiry_s, receive_maximum=settings.receive_maximum,
            max_message_bytes=settings.max_message_bytes, on_message=self._page_arrived,
        )
        self.conn: psycopg.Connection | None = None
        self.key = keys.load(settings.key) if settings.key else None

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        db.migrate_with_retry(self.settings.dsn, self.stop)
        self.link.start(timeout_s=30)
        threading.Thread(target=self._advance_loop, name="fleet-advance", daemon=True).start()
        if self.key:
            threading.Thread(target=self._repair_loop, name="fleet-repair", daemon=True).start()
        log.info("worker started", client_id=self.settings.client_id, group=self.settings.group)
        next_stats = time.monotonic() + self.settings.stats_every_s
        try:
            while not self.stop.is_set():
                batch = self._collect()
                if batch:
                    if self._write(batch):
                        self._ack(batch)
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.settings.stats_every_s
                    self._report()
        finally:
            self._report()
            self.link.close()
            if self.conn is not None:
                self.conn.close()

    def _collect(self) -> list[Incoming]:
        first = self.link.get(0.5)
        if first is None:
            return []
        batch = [first]
        size = len(first.payload)
        deadline = time.monotonic() + self.settings.batch_ms / 1000
        while len(batch) < self.settings.batch_messages and size < self.settings.batch_bytes:
            more = self.link.get(deadline - time.monotonic())
            if more is None:
                break
            batch.append(more)
            size += len(more.payload)
        return batch

    def _write(self, batch: list[Incoming]) -> bool:
        """Commit the batch; retries with backoff while the database is away. False only when stopping."""
        delay = BACKOFF_MIN_S
        while True:
            try:
                conn = self._connection()
                self.stats.written.add(Store(conn, self.settings.prefix, self.validate).write(batch))
                self.stats.batches += 1
                return True
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                log.info("batch retried", error=type(error).__name__)
                continue
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                self.stats.db_failures += 1
                self._drop_connection()
                log.warning("database unavailable; batch kept unacknowledged", error=str(error)[:200], retry_in_s=round(delay, 2))
            except psycopg.Error as error:  # the data, not the database: each message alone, the refused ones aside
                log.error("batch refused; taking its messages one at a time", error=str(error)[:200])
                if self._write_alone(batch):
                    return True
                continue
            if self.stop.wait(delay * random.uniform(0.5, 1.0)):
                return False
            delay = min(BACKOFF_MAX_S, delay * 2)

    def _write_alone(self, batch: list[Incoming]) -> bool:
        try:
            conn = self._connection()
            for message in batch:
                store = Store(conn, self.settings.prefix, self.validate)
                try:
                    self.stats.written.add(store.write([message]))
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise
                except psycopg.Error as error:
                    self.stats.refused_alone += 1
                    refused = Incoming(message.topic, message.payload, message.tag, True)
                    with conn.transaction():
                        conn.execute("INSERT INTO quarantine (topic, reason, size, payload) VALUES (%s,%s,%s,%s)",
                                     (refused.topic.replace("\x00", "?"), f"database refused: {error}"[:300],
                                      len(message.payload), message.payload[:64 * 1024]))
                    self.stats.written.quarantined += 1
            return True
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._drop_connection()
            return False

    def _ack(self, batch: list[Incoming]) -> None:
        for message in batch:
            if self.link.ack(message.tag):
                self.stats.acked += 1
            else:
                self.stats.stale_acks += 1

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(self.settings.dsn, autocommit=True)
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
        self.conn = None

    def _report(self) -> None:
        w = self.stats.written
        log.info("worker stats", client_id=self.settings.client_id, batches=self.stats.batches, acked=self.stats.acked,
                 events_new=w.events_new, events_duplicate=w.events_duplicate, events_flagged=w.events_flagged,
                 quarantined=w.quarantined, db_failures=self.stats.db_failures, stale_acks=self.stats.stale_acks)

    # --- gap repair, on its own thread and connection --------------------------------------

    def _page_arrived(self, message: Incoming) -> bool:
        if "/pull/response/" not in message.topic:
            return False
        self.link.ack(message.tag)  # a lost page is pulled again
        with self._pages_lock:
            waiter = self._pages.get(message.correlation or b"")
        if waiter is not None:
            try:
                waiter.put_nowait(message.payload)
            except queue.Full:
                pass
        return True

    def _publish_request(self, topic: str, payload: bytes, response_topic: str, correlation: bytes) -> None:
        with self._pages_lock:
            self._pages[correlation] = queue.Queue(1)
        self.link.publish(topic, payload, response_topic=response_topic, correlation=correlation)

    def _await_page(self, correlation: bytes, timeout_s: float):
        with self._pages_lock:
            waiter = self._pages.get(correlation)
        try:
            return json.loads(waiter.get(timeout=timeout_s)) if waiter else None
        except (queue.Empty, ValueError):
            return None
        finally:
            with self._pages_lock:
                self._pages.pop(correlation, None)

    def _advance_loop(self) -> None:
        """Watermarks and gaps of the buildings this fleet's batches touched, on a connection of its own."""
        delay = BACKOFF_MIN_S
        while not self.stop.is_set():
            try:
                with db.connect(self.settings.dsn, autocommit=True) as conn:
                    while not self.stop.is_set():
                        if advance_touched(conn) == 0:
                            self.stop.wait(self.settings.advance_every_s)
                        delay = BACKOFF_MIN_S
            except Exception as error:  # noqa: BLE001 - the database away: try again later
                log.warning("watermarks paused", error=f"{type(error).__name__}: {error}"[:200], retry_in_s=round(delay, 2))
                self.stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(BACKOFF_MAX_S, delay * 2)

    def _repair_loop(self) -> None:
        delay = BACKOFF_MIN_S
        while not self.stop.is_set():
            try:
                with db.connect(self.settings.dsn, autocommit=True) as conn:
                    repairer = Repairer(conn, Store(conn, self.settings.prefix, self.validate), self.settings.client_id,
                                        self._publish_request, self._await_page, self.key, self.settings.prefix,
                                        self.settings.client_id, grace_s=self.settings.gap_grace_s)
                    while not self.stop.is_set():
                        if repairer.run_once() == 0:
                            self.stop.wait(self.settings.repair_every_s)
                        delay = BACKOFF_MIN_S
            except Exception as error:  # noqa: BLE001 - the database or the broker away: try again later
                log.warning("gap repair paused", error=f"{type(error).__name__}: {error}"[:200], retry_in_s=round(delay, 2))
                self.stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(BACKOFF_MAX_S, delay * 2)


def _validator():
    try:
        from edge.fleet.contract import event_validator
    except ImportError:  # pragma: no cover - the contract module ships with the package
        return None
    return event_validator()


def serve(settings: WorkerSettings) -> None:
    """Run a worker until SIGTERM or SIGINT: the batch in hand is finished (committed and acknowledged) first."""
    worker = Worker(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop.set())
    worker.run()
