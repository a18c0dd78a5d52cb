"""Nonces of downlink messages already accepted, kept on disk until they expire.

A signed message replayed after a reboot must still be refused, so the book is SQLite,
not memory. It stays small because every message expires (at most `MAX_TTL_S` after it
was accepted) and expired nonces are forgotten: an expired message is refused anyway.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL)"


class NonceBook:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a replay after a power cut must still be refused
        self._conn.execute(_SCHEMA)

    def remember(self, nonce: str, expires_at: float, now: float) -> bool:
        """Record a nonce; False when it was seen before (a replay). Forgets expired ones."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
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

    def close(self) -> None:
        self._conn.close()
