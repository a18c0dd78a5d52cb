"""The SQLite side of the journal, used only from the writer thread.

It writes the seqs it is given (the journal numbers events as they arrive), opens the file
with care (a file that is not ours or not whole is moved aside, never written into or
deleted), keeps the seq high-water mark beside the file, and applies the disk cap and
telemetry retention. Environment faults (a full or read-only disk, a lock) are raised to
the journal untouched: they say nothing about the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import structlog

from edge.events import Event, Kind, Priority
from edge.journal.faults import JournalDamaged, is_damage
from edge.journal.reading import Gap
from edge.journal.seqmark import Reservation, SeqMark

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
CREATE TABLE IF NOT EXISTS gaps (
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    events    INTEGER NOT NULL
);
"""

_INSERT = "INSERT INTO events (seq, id, wall_ns, mono_ns, kind, priority, source, body) VALUES (?,?,?,?,?,?,?,?)"
_SET_NEXT_SEQ = (
    "INSERT INTO meta (key, value) VALUES ('next_seq', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
)


@dataclass(frozen=True, slots=True)
class JournalLimits:
    """How big the journal may grow, how long telemetry is kept, and what memory may hold."""

    cap_bytes: int = 512 * 1024 * 1024
    telemetry_retention_s: float | None = 30 * 86400
    max_batch: int = 8192
    max_pending: int = 65536
    maintenance_every_s: float = 5.0
    buffer_events: int = 16384  # held in memory while the disk refuses writes; beyond it the least important go
    retry_initial_s: float = 0.5  # first retry of a refused disk; doubles (jittered) up to retry_max_s
    retry_max_s: float = 30.0
    stall_s: float = 5.0  # a commit slower than this (a dying SD card) degrades the journal until it ends


@dataclass(slots=True)
class Store:
    """One journal file and its seq mark."""

    path: Path
    limits: JournalLimits
    mark: SeqMark = field(init=False)
    conn: sqlite3.Connection | None = field(init=False, default=None)
    next_seq: int = field(init=False, default=1)
    over_capacity: bool = False
    last_maintenance: float = 0.0
    commits: int = 0
    skipped: tuple[int, int] | None = None  # seqs the last open jumped over (the mark above the file's head)
    _notes: list[Event] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.mark = SeqMark.beside(self.path)

    @property
    def is_open(self) -> bool:
        return self.conn is not None

    def open(self, floor: int | None = None) -> list[Event]:
        """Open or create the file; returns events that opening itself must journal.

        `floor` is the lowest seq the journal has already handed out and not written (None
        when it has handed out none): a new file starts there, else above the seq mark.
        Damage is dealt with here; an environment fault is raised, and what was learnt before
        it (a file moved aside) is kept for the next attempt."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last_maintenance = time.monotonic()  # the first pass comes one interval after opening
        mark = self.mark.load()
        existed = self.path.exists()
        was_empty = existed and self.path.stat().st_size == 0
        try:
            conn, had_tables = self._connect()
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            moved = _move_aside(self.path)
            log.error("journal damaged, moved aside", path=str(self.path), moved_to=str(moved), error=str(error))
            self._notes.append(Event(Kind.JOURNAL_CORRUPT, Priority.ALARM, "journal", {"moved_to": str(moved), "error": str(error)}))
            conn, had_tables = self._connect()
        try:
            self._number(conn, mark, floor, gone="empty" if was_empty and not had_tables else None if existed else "missing")
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        notes, self._notes = self._notes, []
        return notes

    def _number(self, conn: sqlite3.Connection, mark: Reservation | None, floor: int | None, gone: str | None) -> None:
        """Where seq continues: the file's own counter, or, for a new file, above everything ever handed out."""
        row = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        if row is not None or top is not None:
            # The stored counter survives eviction of the newest rows; max(seq) guards an old file.
            self.next_seq = max(row[0] if row else 1, (top or 0) + 1)
            if mark is None or mark.reserved < self.next_seq - 1:
                self.mark.cover(self.next_seq - 1)  # a journal from before the mark existed
            elif mark.reserved >= self.next_seq:
                # Not closed cleanly (a refusing disk at the stop, a crash): the seqs up to the mark
                # may have been handed out and never written. The mark wins; the range is a gap.
                self.skipped = (self.next_seq, mark.reserved)
                _record_gap(conn, Gap(self.next_seq, mark.reserved, "unclean_stop", 0))
                conn.execute(_SET_NEXT_SEQ, (mark.reserved + 1,))  # the jump is made once, not at every open
                self.next_seq = mark.reserved + 1
            return
        start = floor if floor is not None else (mark.reserved + 1 if mark else 1)
        # The notes come first: if the disk refuses what follows, the next attempt still has them.
        lost = {"lost_first_seq": mark.base if mark else 1, "lost_last_seq": start - 1} if start > 1 else {}
        for note in self._notes:
            note.body.update(lost, first_seq=start)
        if not self._notes and (gone == "empty" or (gone == "missing" and mark is not None)):
            # A journal that existed and is now empty or gone: someone or something removed a history.
            body = {"path": str(self.path), "found": gone, **lost, "first_seq": start}
            log.error("journal found " + gone + "; a new one is started", **body)
            self._notes.append(Event(Kind.JOURNAL_MISSING, Priority.ALARM, "journal", body))
        conn.execute(_SET_NEXT_SEQ, (start,))
        self.next_seq = start
        self.mark.start(start)

    def _connect(self) -> tuple[sqlite3.Connection, bool]:
        """Connect, check the file is ours and whole, then set it up; returns (connection, had tables)."""
        if not self.path.exists():
            # Born 0640 whatever the umask (SQLite gives its -wal and -shm the same mode).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
            if has_tables and app_id != APPLICATION_ID:
                raise JournalDamaged(f"not an edge journal (application_id {app_id:#x})")
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise JournalDamaged(f"quick_check: {verdict}")
            # Only now, when the file is known to be ours and whole, may we change it.
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn, has_tables

    def peek_next_seq(self) -> int | None:
        """While the file cannot be opened for writing: the seq it would continue with, read without
        changing anything; else the one above the seq mark; None when neither can be read."""
        wal = Path(f"{self.path}-wal")
        ways = ["mode=ro"]
        with contextlib.suppress(OSError):
            if not wal.exists() or wal.stat().st_size == 0:
                # Everything is in the main file, so it can be read without the shared memory a
                # read-only WAL reader needs (which a full or read-only disk cannot give).
                ways.append("immutable=1")
        for way in ways:
            with contextlib.suppress(sqlite3.Error, OSError):
                with closing(sqlite3.connect(f"file:{self.path}?{way}", uri=True)) as conn:
                    row = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
                    top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
                    if row is not None or top is not None:
                        found = max(row[0] if row else 1, (top or 0) + 1)
                        with contextlib.suppress(OSError):
                            mark = self.mark.load()
                            if mark is not None and mark.reserved >= found:
                                return mark.reserved + 1  # the mark wins, as in open
                        return found
        with contextlib.suppress(OSError):
            mark = self.mark.load()
            return mark.reserved + 1 if mark else None
        return None

    def write(self, batch: Sequence[tuple[int, Event]], again: bool = False, gaps: Sequence[Gap] = ()) -> None:
        """Commit numbered events (in seq order) in one transaction, after making sure the mark covers them.

        `gaps` are seq ranges the journal knows will never be written (lost in memory, never used),
        recorded in the same transaction so a reader can explain them."""
        last = batch[-1][0]
        self.mark.cover(last)
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if again:
                batch = _not_yet_stored(conn, batch)
            conn.executemany(_INSERT, _numbered_rows(batch))
            conn.execute(_SET_NEXT_SEQ, (last + 1,))
            for gap in gaps:
                _record_gap(conn, gap)
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise
        self.next_seq = last + 1
        self.commits += 1

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise sqlite3.OperationalError("journal is not open")
        return self.conn

    def used_bytes(self) -> int:
        conn = self._connection()
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
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
            count = self._connection().execute("SELECT count(*) FROM events").fetchone()[0] or 1
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
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            stats = conn.execute(
                f"SELECT count(*), min(seq), max(seq) FROM events WHERE {where}", params
            ).fetchone()
            if stats[0]:
                conn.execute(f"DELETE FROM events WHERE {where}", params)
                _record_gap(conn, Gap(stats[1], stats[2], reason, stats[0]))
            # Ranges wholly below the oldest event left are explained by first_retained_seq alone.
            conn.execute("DELETE FROM gaps WHERE last_seq < (SELECT min(seq) FROM events)")
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise
        if not stats[0]:
            return []
        body = {"reason": reason, "evicted": stats[0], "first_seq": stats[1], "last_seq": stats[2]}
        if used is not None:
            body |= {"used_bytes": used, "cap_bytes": self.limits.cap_bytes}
        return [Event(kind=Kind.JOURNAL_EVICTED, priority=Priority.FAULT, source="journal", body=body)]

    def disconnect(self) -> None:
        """Drop the connection after a fault, so the next attempt opens (and checks) the file again."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def close(self, clean: bool = False) -> None:
        """Checkpoint and close; `clean` (every seq handed out is written) draws the seq mark back to the head."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        if clean:
            self.mark.tighten(self.next_seq - 1)


def _record_gap(conn: sqlite3.Connection, gap: Gap) -> None:
    """Keep a seq range that will never be filled, with why. A range that follows the newest
    one for the same reason extends it (telemetry retention every few seconds stays one row)."""
    newest = conn.execute("SELECT rowid, last_seq, reason FROM gaps ORDER BY rowid DESC LIMIT 1").fetchone()
    if newest is not None and newest[2] == gap.reason and newest[1] < gap.first_seq:
        conn.execute("UPDATE gaps SET last_seq = ?, events = events + ? WHERE rowid = ?", (gap.last_seq, gap.events, newest[0]))
    else:
        conn.execute("INSERT INTO gaps (first_seq, last_seq, reason, events) VALUES (?,?,?,?)",
                     (gap.first_seq, gap.last_seq, gap.reason, gap.events))


def _not_yet_stored(conn: sqlite3.Connection, batch: Sequence[tuple[int, Event]]) -> list[tuple[int, Event]]:
    """A batch written again after an I/O error may have reached the disk the first time: skip
    exactly the rows already there (same seq, same id); anything else still meets the constraints."""
    stored = set(conn.execute("SELECT seq, id FROM events WHERE seq BETWEEN ? AND ?", (batch[0][0], batch[-1][0])))
    return [(seq, e) for seq, e in batch if (seq, e.id) not in stored]


def _roll_back(conn: sqlite3.Connection) -> None:
    """Undo a failed transaction; SQLite may already have rolled it back (a full disk at COMMIT)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _rows(events: Iterable[Event], first: int):
    """Rows for consecutive seqs from `first` (the benchmark's raw baseline uses it)."""
    return _numbered_rows((first + offset, e) for offset, e in enumerate(events))


def _numbered_rows(batch: Iterable[tuple[int, Event]]):
    for seq, e in batch:
        yield (seq, e.id, e.wall_ns, e.mono_ns, str(e.kind), int(e.priority), e.source, e.body_json())


def _move_aside(path: Path) -> Path:
    """Rename a damaged journal (and its WAL) out of the way; never delete evidence."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(target) + suffix))
    return target
