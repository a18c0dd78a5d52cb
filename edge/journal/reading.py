"""Readers of the journal file: `edge events`, the uplink's push and pull, the status page.

Each read opens a short-lived read-only connection, off the loop, so a running writer is
never disturbed and a reader never holds the writer's connection.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from edge.events import Priority, StoredEvent

_COLUMNS = "seq, id, wall_ns, mono_ns, kind, priority, source, body"


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
    return sorted(_stored(rows), key=lambda e: e.seq)


def _reader(path: Path) -> closing[sqlite3.Connection]:
    """A short-lived read-only connection; a missing file is an error, not a new journal.

    Reading needs no write: a reader that may not write the journal's directory (a technician in
    the daemon's group, a stopped daemon's files) cannot make the shared-memory file a WAL reader
    wants. When everything is in the main file (no WAL content), it reads that file as it is."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no journal at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA schema_version")  # opens the WAL index: fails here when it cannot be made
        return closing(conn)
    except sqlite3.OperationalError:
        conn.close()
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise  # commits still in the WAL: reading the main file alone would miss them
    return closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True))


def _stored(rows) -> list[StoredEvent]:
    return [
        StoredEvent(seq, id_, wall, mono, kind, Priority(prio), source, json.loads(body))
        for seq, id_, wall, mono, kind, prio, source, body in rows
    ]


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
    return _stored(rows)


def events_naming(path: Path, field: str, after_seq: int, through_seq: int, limit: int) -> list[StoredEvent]:
    """Up to `limit` events in (after_seq, through_seq] whose body has `field`, oldest first: the
    uplink's snapshots follow the events that name them."""
    if not field.isidentifier():
        raise ValueError(f"not a body field name: {field!r}")
    sql = (f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ? AND json_extract(body, '$.{field}') IS NOT NULL "
           "ORDER BY seq LIMIT ?")
    with _reader(path) as conn:
        rows = conn.execute(sql, (after_seq, through_seq, limit)).fetchall()
    return _stored(rows)


@dataclass(frozen=True, slots=True)
class Gap:
    """Seqs in first_seq..last_seq that are absent will never come: evicted, lost in memory, or never used.

    A range may also hold events that are still there (eviction takes telemetry from between
    access decisions): it explains the absent seqs inside it, it does not say every one is absent."""

    first_seq: int
    last_seq: int
    reason: str  # disk_cap, telemetry_retention, buffer_full, write_refused, never_used
    events: int

    def as_dict(self) -> dict[str, int | str]:
        return {"first_seq": self.first_seq, "last_seq": self.last_seq, "reason": self.reason, "events": self.events}


def gaps_between(path: Path, after_seq: int, through_seq: int, limit: int = 1000) -> list[Gap]:
    """Up to `limit` recorded gaps overlapping after_seq+1..through_seq, oldest first (what a pull page explains)."""
    with _reader(path) as conn:
        try:
            rows = conn.execute(
                "SELECT first_seq, last_seq, reason, events FROM gaps WHERE last_seq > ? AND first_seq <= ? "
                "ORDER BY first_seq LIMIT ?",
                (after_seq, through_seq, limit),
            ).fetchall()
        except sqlite3.OperationalError:  # a journal from before gaps were kept
            return []
    return [Gap(*row) for row in rows]


def first_retained_seq(path: Path) -> int | None:
    """The oldest seq still in the journal (None when empty): below it, events were evicted or lost."""
    with _reader(path) as conn:
        return conn.execute("SELECT min(seq) FROM events").fetchone()[0]
