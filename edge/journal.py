"""The journal: every event, durable before anything else sees it.

SQLite in WAL mode with synchronous=FULL, because gateways lose power (a fire, a
tripped breaker) and a committed event must survive that, not only a crash. One writer
owns the connection and runs in its own thread; producers hand it events and await the
commit of the batch their event is in (group commit: whatever arrived while the previous
commit was syncing goes into the next one). The queue in front of it is bounded: when it
is full, producers wait (back-pressure), nothing is dropped.

A disk cap evicts the oldest, lowest-priority events first and never alarms or access
decisions; each eviction is itself journaled. A file that is not a journal, or is damaged,
is moved aside under a timestamped name, never deleted, and an alarm says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import structlog

from edge.events import Event, Kind, Priority, StoredEvent

log = structlog.get_logger("edge.journal")

# "EDGJ": marks a file as ours, so a foreign SQLite file is moved aside, not written into.
APPLICATION_ID = 0x4544474A
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,
    id       TEXT    NOT NULL UNIQUE,
    wall_ns  INTEGER NOT NULL,
    mono_ns  INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    source   TEXT    NOT NULL,
    body     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_priority ON events (priority, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (wall_ns);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_INSERT = "INSERT INTO events (seq, id, wall_ns, mono_ns, kind, priority, source, body) VALUES (?,?,?,?,?,?,?,?)"
_COLUMNS = "seq, id, wall_ns, mono_ns, kind, priority, source, body"


class JournalError(RuntimeError):
    """The journal could not make an event durable."""


@dataclass(frozen=True, slots=True)
class JournalLimits:
    """How big the journal may grow and how long telemetry is kept."""

    cap_bytes: int = 512 * 1024 * 1024
    telemetry_retention_s: float | None = 30 * 86400
    max_batch: int = 8192
    max_pending: int = 65536
    maintenance_every_s: float = 5.0


@dataclass(slots=True)
class _Batch:
    """Events committed together, and the futures of the producers waiting for them."""

    events: list[Event] = field(default_factory=list)
    waiters: list[asyncio.Future[int]] = field(default_factory=list)

    def settle(self, first_seq: int | None, failure: Exception | None = None) -> None:
        """Wake each producer with its own seq (or the failure); a cancelled producer is skipped."""
        for offset, waiter in enumerate(self.waiters):
            if waiter.done():
                continue
            if failure is None:
                waiter.set_result(first_seq + offset)  # type: ignore[operator]
            else:
                waiter.set_exception(failure)


@dataclass(slots=True)
class _Store:
    """The SQLite side, used only from the writer thread."""

    path: Path
    limits: JournalLimits
    conn: sqlite3.Connection = field(init=False)
    next_seq: int = field(init=False)
    over_capacity: bool = False
    last_maintenance: float = 0.0
    commits: int = 0

    def open(self) -> list[Event]:
        """Open or create the file; returns events that opening itself must journal."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last_maintenance = time.monotonic()  # the first pass comes one interval after opening
        notes: list[Event] = []
        try:
            self._connect()
        except sqlite3.DatabaseError as damage:
            moved = _move_aside(self.path)
            log.error("journal damaged, moved aside", path=str(self.path), moved_to=str(moved), error=str(damage))
            notes.append(
                Event(
                    kind=Kind.JOURNAL_CORRUPT,
                    priority=Priority.ALARM,
                    source="journal",
                    body={"moved_to": str(moved), "error": str(damage)},
                )
            )
            self._connect()
        return notes

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
            if has_tables and app_id != APPLICATION_ID:
                raise sqlite3.DatabaseError(f"not an edge journal (application_id {app_id:#x})")
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")
            # Only now, when the file is known to be ours and whole, may we change it.
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            row = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            top = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        except sqlite3.DatabaseError:
            conn.close()
            raise
        self.conn = conn
        # The stored counter survives eviction of the newest rows; max(seq) guards an old file.
        self.next_seq = max(row[0] if row else 1, top + 1)

    def write(self, events: Sequence[Event]) -> int:
        """Commit events in one transaction; returns the seq of the first."""
        first = self.next_seq
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, _rows(events, first))
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (first + len(events),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.next_seq = first + len(events)
        self.commits += 1
        return first

    def used_bytes(self) -> int:
        pages, free, size = (
            self.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size")
        )
        return (pages - free) * size

    def maintain(self, now_wall_ns: int) -> list[Event]:
        """Apply retention and the disk cap; returns the events that record what was done."""
        notes: list[Event] = []
        limits = self.limits
        if limits.telemetry_retention_s is not None:
            horizon = now_wall_ns - int(limits.telemetry_retention_s * 1e9)
            notes += self._delete(
                "priority = ? AND wall_ns < ?", (int(Priority.TELEMETRY), horizon), "telemetry_retention", None
            )
        used = self.used_bytes()
        if used > limits.cap_bytes:
            count = self.conn.execute("SELECT count(*) FROM events").fetchone()[0] or 1
            target = int(limits.cap_bytes * 0.9)
            rows = max(1, int((used - target) / (used / count)) + 1)
            notes += self._delete(
                f"seq IN (SELECT seq FROM events WHERE priority < {int(Priority.ACCESS)} "
                "ORDER BY priority, seq LIMIT ?)",
                (rows,),
                "disk_cap",
                used,
            )
            used = self.used_bytes()
        over = used > limits.cap_bytes
        if over and not self.over_capacity:
            notes.append(
                Event(
                    kind=Kind.JOURNAL_OVER_CAPACITY,
                    priority=Priority.ALARM,
                    source="journal",
                    body={"used_bytes": used, "cap_bytes": limits.cap_bytes, "kept": "protected events are never evicted"},
                )
            )
        self.over_capacity = over
        return notes

    def _delete(self, where: str, params: tuple, reason: str, used: int | None) -> list[Event]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            stats = conn.execute(
                f"SELECT count(*), min(seq), max(seq) FROM events WHERE {where}", params
            ).fetchone()
            if stats[0]:
                conn.execute(f"DELETE FROM events WHERE {where}", params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not stats[0]:
            return []
        body = {"reason": reason, "evicted": stats[0], "first_seq": stats[1], "last_seq": stats[2]}
        if used is not None:
            body |= {"used_bytes": used, "cap_bytes": self.limits.cap_bytes}
        return [Event(kind=Kind.JOURNAL_EVICTED, priority=Priority.FAULT, source="journal", body=body)]

    def close(self) -> None:
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()


def _rows(events: Iterable[Event], first: int):
    for offset, e in enumerate(events):
        yield (first + offset, e.id, e.wall_ns, e.mono_ns, str(e.kind), int(e.priority), e.source, e.body_json())


def _consume(future: asyncio.Future[int]) -> None:
    """Retrieve a result nobody awaits, so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()


def _move_aside(path: Path) -> Path:
    """Rename a damaged journal (and its WAL) out of the way; never delete evidence."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(target) + suffix))
    return target


class Journal:
    """The gateway's outbox. Use `await Journal.open(...)`, then `await journal.append(event)`."""

    def __init__(self, path: Path, limits: JournalLimits) -> None:
        self.path = Path(path)
        self.limits = limits
        self._store = _Store(self.path, limits)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._batches: deque[_Batch] = deque()
        self._queued = 0
        self._work = asyncio.Event()
        self._space = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._committed = asyncio.Event()  # set and replaced after each commit (see wait_beyond)

    @classmethod
    async def open(cls, path: Path, limits: JournalLimits = JournalLimits()) -> "Journal":
        journal = cls(path, limits)
        loop = asyncio.get_running_loop()
        notes = await loop.run_in_executor(journal._thread, journal._store.open)
        journal._writer = asyncio.create_task(journal._write_forever(), name="journal-writer")
        for note in notes:
            await journal.append(note)
        return journal

    @property
    def head_seq(self) -> int:
        """The seq the last committed event got (0 for an empty journal)."""
        return self._store.next_seq - 1

    @property
    def commits(self) -> int:
        """Transactions committed since open: events per commit is the group-commit factor."""
        return self._store.commits

    async def append(self, event: Event) -> int:
        """Queue an event and wait until it is durable; returns its seq."""
        while self._queued >= self.limits.max_pending:
            self._space.clear()
            await self._space.wait()
        if self._closing:
            raise JournalError("journal is closed")
        waiter = self._loop.create_future()
        self._enqueue(event, waiter)
        return await waiter

    def _enqueue(self, event: Event, waiter: asyncio.Future[int]) -> None:
        if not self._batches or len(self._batches[-1].events) >= self.limits.max_batch:
            self._batches.append(_Batch())
        batch = self._batches[-1]
        batch.events.append(event)
        batch.waiters.append(waiter)
        self._queued += 1
        self._work.set()

    async def _write_forever(self) -> None:
        loop = asyncio.get_running_loop()
        store = self._store
        while True:
            await self._work.wait()
            batch = self._batches.popleft()
            if not self._batches:
                self._work.clear()
            try:
                first = await loop.run_in_executor(self._thread, store.write, batch.events)
            except Exception as failure:  # disk full, I/O error: every producer of the batch learns it
                log.error("journal write failed", error=str(failure), events=len(batch.events))
                batch.settle(None, JournalError(str(failure)))
            else:
                batch.settle(first)
                self._committed.set()
                self._committed = asyncio.Event()
            finally:
                self._queued -= len(batch.events)
                self._space.set()
            if time.monotonic() - store.last_maintenance >= self.limits.maintenance_every_s:
                await self._maintain()

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        self._store.last_maintenance = time.monotonic()
        try:
            notes = await loop.run_in_executor(self._thread, self._store.maintain, time.time_ns())
        except sqlite3.Error as failure:
            log.error("journal maintenance failed", error=str(failure))
            return
        for note in notes:
            log.warning("journal maintenance", event_id=note.id, kind=str(note.kind), **note.body)
            waiter = self._loop.create_future()
            waiter.add_done_callback(_consume)  # nobody awaits a maintenance note
            self._enqueue(note, waiter)

    async def wait_beyond(self, seq: int, timeout_s: float) -> bool:
        """Wait until an event above `seq` is committed, or `timeout_s` passes; True if one was.

        Readers of the journal (the uplink's push) wake on this instead of polling the file."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.head_seq <= seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            committed = self._committed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await committed.wait()
        return True

    async def maintain_now(self) -> None:
        """Apply retention and the cap now (the writer also does it every few seconds)."""
        await self.flush()
        await self._maintain()
        await self.flush()

    async def flush(self) -> None:
        """Wait until everything queued so far is durable."""
        if self._batches:
            last = self._loop.create_future()
            self._batches[-1].waiters.append(last)  # settled with the last batch, in order
            await asyncio.gather(last, return_exceptions=True)

    async def close(self) -> None:
        """Flush, stop the writer and checkpoint the WAL."""
        self._closing = True
        await self.flush()
        if self._writer:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._store.close)
        self._thread.shutdown(wait=True)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A slice of the journal, as a technician or the cloud asks for it."""

    since_ns: int | None = None
    until_ns: int | None = None
    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    after_seq: int | None = None
    min_priority: Priority = Priority.TELEMETRY
    limit: int | None = 100
    newest_first: bool = False


def read_events(path: Path, query: EventQuery) -> list[StoredEvent]:
    """Read events from a journal file without disturbing a running writer."""
    where, params = [], []
    if query.since_ns is not None:
        where.append("wall_ns >= ?")
        params.append(query.since_ns)
    if query.until_ns is not None:
        where.append("wall_ns < ?")
        params.append(query.until_ns)
    if query.after_seq is not None:
        where.append("seq > ?")
        params.append(query.after_seq)
    if query.min_priority > Priority.TELEMETRY:
        where.append("priority >= ?")
        params.append(int(query.min_priority))
    for column, values in (("kind", query.kinds), ("source", query.sources)):
        if values:
            # A trailing '*' matches a prefix, so `--kind alarm.*` finds every alarm.
            where.append("(" + " OR ".join(f"{column} GLOB ?" for _ in values) + ")")
            params.extend(values)
    sql = f"SELECT {_COLUMNS} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC" if query.newest_first else " ORDER BY seq"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit)
    with _reader(path) as conn:
        rows = conn.execute(sql, params).fetchall()
    events = [
        StoredEvent(seq, id_, wall, mono, kind, Priority(prio), source, json.loads(body))
        for seq, id_, wall, mono, kind, prio, source, body in rows
    ]
    return sorted(events, key=lambda e: e.seq)


def _reader(path: Path) -> closing[sqlite3.Connection]:
    """A short-lived read-only connection; a missing file is an error, not a new journal."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no journal at {path}")
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def events_after(path: Path, after_seq: int, limit: int, min_priority: Priority = Priority.TELEMETRY) -> list[StoredEvent]:
    """Up to `limit` events with seq > after_seq (and at least `min_priority`), oldest first: what sync sends next."""
    sql = f"SELECT {_COLUMNS} FROM events WHERE seq > ?"
    params: list[int] = [after_seq]
    if min_priority > Priority.TELEMETRY:
        sql += " AND priority >= ?"
        params.append(int(min_priority))
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    with _reader(path) as conn:
        rows = conn.execute(sql, params).fetchall()
    return [
        StoredEvent(seq, id_, wall, mono, kind, Priority(prio), source, json.loads(body))
        for seq, id_, wall, mono, kind, prio, source, body in rows
    ]


def first_retained_seq(path: Path) -> int | None:
    """The oldest seq still in the journal (None when empty): below it, events were evicted."""
    with _reader(path) as conn:
        return conn.execute("SELECT min(seq) FROM events").fetchone()[0]
