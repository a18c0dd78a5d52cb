"""Nonces of downlink messages already accepted, kept on disk until they expire.

A signed message replayed after a reboot must still be refused, so the book is SQLite,
not memory, committed with synchronous=FULL before the message it authorises is acted on.
That commit is an fsync, so it never runs on the loop: one thread owns the connection (as
the journal's writer does) and `remember` awaits it. The book stays small because every
message expires (at most `MAX_TTL_S` after it was accepted) and expired nonces are
forgotten: an expired message is refused anyway.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL)"


class NonceBook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uplink-nonces")
        self._conn: sqlite3.Connection | None = None  # opened by the first call, in the thread

    async def remember(self, nonce: str, expires_at: float, now: float) -> bool:
        """Record a nonce durably; False when it was seen before (a replay). Forgets expired ones.

        Raises sqlite3.Error when the book cannot be written (then nothing may be acted on).
        A caller cancelled while this runs may leave the nonce recorded: a message is then
        refused as a replay rather than ever acted on twice."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._remember, nonce, expires_at, now)

    def _remember(self, nonce: str, expires_at: float, now: float) -> bool:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # waits up to sqlite's busy timeout (5 s) for another writer
        try:
            conn.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))
            fresh = conn.execute(
                "INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?, ?)", (nonce, expires_at)
            ).rowcount == 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return fresh

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # a replay after a power cut must still be refused
                conn.execute(_SCHEMA)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the book (blocks until a write in progress ends: call it when the uplink has stopped)."""
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._thread.submit(_close).result()
        self._thread.shutdown(wait=True)
