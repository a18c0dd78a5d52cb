"""The sync cursor: which journaled events the cloud has acknowledged, kept on disk.

Two numbers' worth of state: a watermark (every seq at or below it is acknowledged, or
was never there) and the few seqs above it acknowledged early because they were alarms
that jumped the backlog. A restart resumes at the watermark and skips the early ones.
Losing the last write (power cut) only means a batch is sent twice; the cloud drops
duplicates by event id, so synchronous=NORMAL is enough here.

Saving runs in one thread that owns the connection, off the loop; closing goes through the
same thread, so it waits for a save in progress instead of closing the connection under it
(which crashed the process once, a save being stuck behind a locked file at shutdown).

A state disk that refuses the file (full, read-only, no uplink.db yet) never stops the uplink,
let alone the gateway (it once ended `edge run` at start): the cursor then keeps its progress in
memory, seeded from whatever of the file can be read, and says so (log and `fault.state_file`).
The cost is only that a restart resends what the cloud already has; it drops duplicates by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from edge.journal.faults import describe
from edge.runtime.state_files import StateFile

log = structlog.get_logger("edge.uplink")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sync_ahead (seq INTEGER PRIMARY KEY);
"""


@dataclass(slots=True)
class Progress:
    """Pure bookkeeping of acknowledgements; `SyncCursor` persists it.

    The backlog lane acknowledges contiguous ranges (`backlog_through`); the alarm lane
    acknowledges single seqs (`ahead`). The watermark may pass an alarm only once that
    alarm itself is acknowledged, so an alarm in flight when the link drops is sent again.
    """

    watermark: int = 0
    ahead: set[int] = field(default_factory=set)
    backlog_through: int = 0
    alarms_in_flight: set[int] = field(default_factory=set)

    def restart(self) -> None:
        """After a lost connection: everything unacknowledged is to be sent again."""
        self.backlog_through = self.watermark
        self.alarms_in_flight.clear()

    def skip(self, seq: int) -> bool:
        """True when the backlog lane must not send this seq (acknowledged or in flight as an alarm)."""
        return seq in self.ahead or seq in self.alarms_in_flight

    def ack_backlog(self, through: int) -> None:
        self.backlog_through = max(self.backlog_through, through)
        self._advance()

    def ack_alarms(self, seqs: list[int]) -> None:
        self.alarms_in_flight.difference_update(seqs)
        self.ahead.update(s for s in seqs if s > self.watermark)
        self._advance()

    def _advance(self) -> None:
        limit = min(self.alarms_in_flight) - 1 if self.alarms_in_flight else self.backlog_through
        target = min(self.backlog_through, limit)
        if target > self.watermark:
            self.watermark = target
            self.ahead = {s for s in self.ahead if s > target}


class SyncCursor:
    """`Progress` loaded from and saved to the uplink's state file."""

    def __init__(self, path: Path, journal: Any = None) -> None:
        self.path = path
        self.state = StateFile(path, "the uplink's sync position (a restart resends what the cloud has)", journal)
        self._unreported: BaseException | None = None
        self._conn: sqlite3.Connection | None = None  # opened on the cursor's thread (`open`), never on the loop
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uplink-cursor")

    async def open(self) -> None:
        """Open the state file on the cursor's thread (the uplink's first step; an open on a slow or
        refusing disk must not hold the loop); a disk that refuses it leaves a cursor in memory."""
        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._open)

    def _open(self) -> None:
        try:
            self._conn = _open(self.path)
        except (sqlite3.Error, OSError) as refused:
            log.error("uplink state file unavailable; sync progress kept in memory", path=str(self.path), **describe(refused))
            self._conn = _in_memory(self.path)
            self._unreported = refused

    def opened(self) -> sqlite3.Connection:
        """Blocking: the connection, opened first where a caller (a test, a tool) did not `open` it."""
        if self._conn is None:
            self._open()
        assert self._conn is not None
        return self._conn

    async def report(self) -> None:
        """Journal a refusal met when the cursor was opened (opening happens before the uplink runs)."""
        refused, self._unreported = self._unreported, None
        if refused is not None:
            await self.state.refused(refused)

    async def load(self) -> Progress:
        """Read the saved progress (once, when the uplink starts, before anything saves)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._load)

    def _load(self) -> Progress:
        row = self.opened().execute("SELECT value FROM sync_meta WHERE key='watermark'").fetchone()
        watermark = row[0] if row else 0
        ahead = {seq for (seq,) in self.opened().execute("SELECT seq FROM sync_ahead WHERE seq > ?", (watermark,))}
        return Progress(watermark=watermark, ahead=ahead, backlog_through=watermark)

    async def save(self, progress: Progress) -> None:
        """Save `progress` as it is now (copied on the loop: acknowledgements keep changing it).

        A disk that refuses it is reported once and otherwise ignored: the progress in memory goes on."""
        loop = asyncio.get_running_loop()
        await self._saving(loop.run_in_executor(self._thread, self._save, progress.watermark, tuple(progress.ahead)))

    async def _saving(self, save: Any) -> None:
        await self.report()
        try:
            await save
        except (sqlite3.Error, OSError) as refused:
            await self.state.refused(refused)
        else:
            await self.state.written()

    def load_mark(self, key: str) -> int:
        """Blocking (on the cursor's thread, or before the loop runs): another lane's position (the
        snapshots'), 0 when never saved."""
        row = self.opened().execute("SELECT value FROM sync_meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else 0

    async def read_mark(self, key: str) -> int:
        """`load_mark` on the cursor's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.load_mark, key)

    async def save_mark(self, key: str, value: int) -> None:
        loop = asyncio.get_running_loop()
        await self._saving(loop.run_in_executor(self._thread, self._save_mark, key, value))

    def _save_mark(self, key: str, value: int) -> None:
        self.opened().execute(
            "INSERT INTO sync_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value)
        )

    def _save(self, watermark: int, ahead: tuple[int, ...]) -> None:
        conn = self.opened()
        conn.execute("BEGIN")
        try:
            conn.execute(
                "INSERT INTO sync_meta (key, value) VALUES ('watermark', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (watermark,),
            )
            conn.execute("DELETE FROM sync_ahead")
            conn.executemany("INSERT INTO sync_ahead (seq) VALUES (?)", ((s,) for s in ahead))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close after any save in progress (blocks: call it when the uplink has stopped)."""
        if self._conn is not None:
            self._thread.submit(self._conn.close).result()
        self._thread.shutdown(wait=True)


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _in_memory(path: Path) -> sqlite3.Connection:
    """A cursor in memory, seeded from whatever of the file can still be read (read-only, or as it
    stands without its WAL when not even that is possible)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.executescript(_SCHEMA)
    for way in ("mode=ro", "immutable=1"):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?{way}", uri=True)) as saved:
                meta = saved.execute("SELECT key, value FROM sync_meta").fetchall()
                ahead = saved.execute("SELECT seq FROM sync_ahead").fetchall()
        except (sqlite3.Error, OSError):
            continue
        conn.executemany("INSERT INTO sync_meta (key, value) VALUES (?, ?)", meta)
        conn.executemany("INSERT INTO sync_ahead (seq) VALUES (?)", ahead)
        log.warning("uplink sync position read from the refused file", path=str(path), ways=way)
        break
    return conn
