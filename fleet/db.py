"""PostgreSQL: connecting, and the versioned migrations applied at start.

Migrations are the files fleet/migrations/NNNN_name.sql, applied in order, each in its own
transaction, each recorded in `schema_migrations`. Many workers may start at once: an advisory
lock lets one of them migrate while the others wait, and a file already applied is skipped.
A recorded file whose text changed since is an error (migrations are append-only).
"""

from __future__ import annotations

import hashlib
from importlib import resources

import psycopg

MIGRATION_LOCK = 0x6564_6765  # pg_advisory_lock key: "edge"
CONNECT_TIMEOUT_S = 5


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    """A connection with a connect timeout, so no wait on an absent server is without a deadline."""
    params = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs}
    return psycopg.connect(dsn, **params)


def migrations() -> list[tuple[str, str]]:
    """(name, sql) of every migration file, in order."""
    folder = resources.files("fleet") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name, f.read_text()) for f in files]


def migrate(dsn: str) -> list[str]:
    """Apply what is not applied yet; returns the names applied now."""
    applied_now = []
    with connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, sha256 text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())")
            done = dict(conn.execute("SELECT name, sha256 FROM schema_migrations").fetchall())
            for name, sql in migrations():
                digest = hashlib.sha256(sql.encode()).hexdigest()
                if name in done:
                    if done[name] != digest:
                        raise RuntimeError(f"migration {name} changed after it was applied; add a new file instead")
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)", (name, digest))
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now


def migrate_with_retry(dsn: str, stop, max_delay_s: float = 5.0) -> None:
    """Migrate, waiting (with backoff) for a database that is not up yet, until `stop` is set."""
    delay = 0.2
    while True:
        try:
            migrate(dsn)
            return
        except psycopg.OperationalError:
            if stop.wait(delay):
                raise
            delay = min(max_delay_s, delay * 2)
