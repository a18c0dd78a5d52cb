"""The credential store: tenants' cards on disk (SQLite) and in memory (a dict).

The door path reads only the in-memory dict, rebuilt and swapped in after each
committed write, so a card read never waits on the SD card and never sees half of a
change set. Cards are keyed by HMAC-SHA256(building secret, card serial), ID numbers
likewise, so a stolen gateway or a copied store file discloses no card or ID numbers;
raw serials come in (`Enrolment`, also from import files: `card_import.py`) and are
hashed before anything is written. The store remembers a check value of its secret and refuses a different
one, because a wrong secret would silently make every card unknown.

`version` is the cloud's change-set version last applied. Local writes (`upsert`,
`issue`, `revoke`, `issue_all` of an import) leave it alone: the next snapshot from the cloud,
which is the source of truth, replaces them.

About 440 lines, one idea: the store (its schema, its open and read-only fallback, its writes under
one lock and the cache each swaps in); reading import files is `card_import.py`'s.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import structlog
from pydantic import BeforeValidator, Field

from edge.doors.credentials.credential import Credential, CredentialStatus, Tenancy
from edge.doors.credentials.pin import PIN_PATTERN, PinHash
from edge.journal.faults import describe

log = structlog.get_logger("edge.doors.credentials")

SCHEMA_VERSION = "1"
_COLUMNS = (
    "key", "tenant", "status", "doors", "door_groups", "valid_from", "valid_until",
    "paid_through", "schedule", "pin_hash", "id_key", "id_last4",
)  # fmt: skip
_LIST_COLUMNS = ("doors", "door_groups")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS credential (
        key TEXT PRIMARY KEY CHECK (length(key) = 64),
        tenant TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked', 'flagged')),
        doors TEXT NOT NULL,        -- JSON array of door names
        door_groups TEXT NOT NULL,  -- JSON array of door group names
        valid_from TEXT NOT NULL,   -- ISO dates, local to the building, inclusive
        valid_until TEXT NOT NULL,
        paid_through TEXT NOT NULL,
        schedule TEXT,              -- WeeklySchedule text form
        pin_hash TEXT,              -- PinHash text form (scrypt)
        id_key TEXT,                -- HMAC of the ID number
        id_last4 TEXT
    ) WITHOUT ROWID""",
)
_UPSERT = f"INSERT OR REPLACE INTO credential ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SECRET_CHECK_MESSAGE = b"edge.access.credential-store.secret-check"
_ID_NUMBER_DOMAIN = b"id-number:"
P = ParamSpec("P")
R = TypeVar("R")


_REFUSED_BY_DISK = {"disk_full", "read_only", "cannot_open", "io_error"}  # the file may be fine; the disk says no


class CredentialStoreUnavailable(Exception):
    """The store file cannot be used (corrupt, locked, wrong secret, unreadable).
    The door path must then deny card access; fire release does not depend on it."""


def parse_serial(text: str) -> bytes:
    """A card serial written as hex (``04A1B2C3``, ``04:a1:b2:c3``) to its bytes.
    The error never repeats the text: serials stay out of logs."""
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    try:
        serial = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError("card serial must be hex digits (separators ':' '-' allowed)") from None
    if not serial:
        raise ValueError("card serial is empty")
    return serial


def _serial(value: object) -> object:
    return parse_serial(value) if isinstance(value, str) else value


class Enrolment(Tenancy):
    """A card as a building manager hands it in: raw serial, raw PIN, raw ID number.
    `CredentialStore.issue` and `issue_all` hash these; they are never stored."""

    serial: Annotated[bytes, BeforeValidator(_serial)] = Field(min_length=1, repr=False)
    pin: str | None = Field(default=None, pattern=PIN_PATTERN.pattern, repr=False)
    id_number: str | None = Field(default=None, pattern=r"^[0-9A-Za-z -]{4,40}$", repr=False)


@dataclass(frozen=True, slots=True)
class Removal:
    """A change-set entry that deletes a credential (afterwards: unknown_card)."""

    key: str

    def __post_init__(self) -> None:
        if len(self.key) != 64 or not all(c in "0123456789abcdef" for c in self.key):
            raise ValueError("a credential key is 64 lowercase hex digits")


@dataclass(frozen=True, slots=True)
class VersionReport:
    """Outcome of a versioned update; `applied` False means older or equal, ignored."""

    version: int
    applied: bool
    store_version: int


def _one_writer(
    method: Callable[Concatenate[CredentialStore, P], R],
) -> Callable[Concatenate[CredentialStore, P], R]:
    """Writes, and the cache swap after each, run one at a time; reads never wait."""

    @functools.wraps(method)
    def serialised(store: CredentialStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with store._lock:
            return method(store, *args, **kwargs)

    return serialised


class CredentialStore:
    """Credentials in SQLite (WAL, synchronous=FULL), served from memory."""

    def __init__(self, db: sqlite3.Connection, secret: bytes, path: str) -> None:
        self._db = db
        self._secret = secret
        self._path = path
        self.read_only: str | None = None  # why the store is served from a read-only copy (the disk refuses writes)
        self._copy: str | None = None  # the copy's directory, removed at close
        self._lock = threading.RLock()
        self._cache: dict[str, Credential] = {}
        self._version = 0

    @classmethod
    def open(cls, path: str | os.PathLike[str], secret: bytes, busy_timeout: float = 2.0) -> CredentialStore:
        """Open or create the store; raise CredentialStoreUnavailable with the cause."""
        if len(secret) < 16:
            raise ValueError("the building secret must be at least 16 bytes")
        where = os.fspath(path)
        try:
            db = sqlite3.connect(where, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CredentialStoreUnavailable(f"credential store {where}: {exc}") from exc
        store = cls(db, secret, where)
        try:
            store._prepare()
        except sqlite3.Error as exc:
            db.close()
            if describe(exc)["fault"] in _REFUSED_BY_DISK and os.path.exists(where):
                return cls._read_only_copy(where, secret, exc)
            raise store._unavailable(exc) from exc
        except BaseException:
            db.close()
            raise
        return store

    @classmethod
    def _read_only_copy(cls, where: str, secret: bytes, cause: sqlite3.Error) -> CredentialStore:
        """The state disk refuses writes (full, read-only): serve the cards from a copy of the file and
        its WAL in a temporary dir (SQLite needs to write to read a WAL), refusing every update, so a
        refusing disk never locks the tenants out. Without room for a copy either, the store is unavailable."""
        copy = tempfile.mkdtemp(prefix="edge-credentials-")
        target = os.path.join(copy, os.path.basename(where))
        try:
            for suffix in ("", "-wal"):
                if os.path.exists(where + suffix):
                    shutil.copyfile(where + suffix, target + suffix)
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            shutil.rmtree(copy, ignore_errors=True)
            raise CredentialStoreUnavailable(f"credential store {where}: {cause}; no room for a read-only copy: {exc}") from exc
        store = cls(db, secret, where)
        try:
            store._prepare()
        except BaseException:
            db.close()
            shutil.rmtree(copy, ignore_errors=True)
            raise
        store.read_only, store._copy = f"the state disk refuses writes ({describe(cause)['fault']}): {cause}", copy
        log.error("credential store served read-only from a copy; updates are refused until the disk takes writes",
                  path=where, fault=describe(cause)["fault"])
        return store

    def _prepare(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise CredentialStoreUnavailable(f"credential store {self._path}: cannot use WAL (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise CredentialStoreUnavailable(f"credential store {self._path} is damaged: {check}")
        secret_check = hmac.digest(self._secret, _SECRET_CHECK_MESSAGE, "sha256").hex()
        with self._transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if not meta:
                meta = {"schema": SCHEMA_VERSION, "secret_check": secret_check, "version": "0"}
                db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        if meta.get("schema") != SCHEMA_VERSION:
            raise CredentialStoreUnavailable(
                f"credential store {self._path} has schema {meta.get('schema')}, expected {SCHEMA_VERSION}"
            )
        if not hmac.compare_digest(meta.get("secret_check", ""), secret_check):
            raise CredentialStoreUnavailable(
                f"credential store {self._path} was made with a different building secret"
            )
        self._version = int(meta["version"])
        cache, shared = {}, {}
        for row in self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM credential"):
            credential = _kept(_from_row(row, self._path), shared)
            cache[credential.key] = credential
        self._cache = cache

    def close(self) -> None:
        self._db.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)

    def __enter__(self) -> CredentialStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        """The change-set version last applied (0 for a new store)."""
        return self._version

    def key_for(self, serial: bytes) -> str:
        """HMAC-SHA256(building secret, serial) in hex: the card's key."""
        return hmac.digest(self._secret, serial, "sha256").hex()

    def id_key_for(self, id_number: str) -> str:
        """HMAC of an ID number, normalised (spaces and dashes dropped, upper case)."""
        return hmac.digest(self._secret, _ID_NUMBER_DOMAIN + _normal_id(id_number).encode(), "sha256").hex()

    def lookup(self, serial: bytes) -> Credential | None:
        """The credential for a card read, from memory: never touches the disk."""
        return self._cache.get(self.key_for(serial))

    def get(self, key: str) -> Credential | None:
        return self._cache.get(key)

    def list(self) -> list[Credential]:
        """All credentials, by tenant then key."""
        return sorted(self._cache.values(), key=lambda c: (c.tenant, c.key))

    def upsert(self, credential: Credential) -> None:
        """Write one keyed credential, replacing any with the same key."""
        self._write_many([credential])

    @_one_writer
    def issue(self, enrolment: Enrolment) -> Credential:
        """Hash a raw enrolment into a credential and write it. Without a new PIN or ID
        number, the card keeps the ones it had."""
        credential = self._credential_from(enrolment, self._cache)
        self._write_many([credential])
        return credential

    @_one_writer
    def revoke(self, key: str) -> Credential:
        """Mark a credential revoked (kept, so the journal says `revoked`, not unknown)."""
        current = self._cache.get(key)
        if current is None:
            raise LookupError(f"no credential with key {key}")
        revoked = current.model_copy(update={"status": CredentialStatus.revoked})
        self._write_many([revoked])
        return revoked

    @_one_writer
    def issue_all(self, enrolments: Iterable[tuple[int, Enrolment]]) -> tuple[int, dict[int, str]]:
        """Hash many enrolments, each with its line in a file, against the store as it is, and write
        them in one transaction (`edge.doors.credentials.card_import`). A row the store cannot take (an ID
        number it cannot read, the same card as an earlier row) is left out: {line: why}."""
        refused: dict[int, str] = {}
        credentials: dict[str, Credential] = {}
        first_line: dict[str, int] = {}
        for line, enrolment in enrolments:
            try:
                credential = self._credential_from(enrolment, self._cache)
            except ValueError as exc:
                refused[line] = str(exc)
                continue
            if credential.key in credentials:
                refused[line] = f"same card as line {first_line[credential.key]}"
                continue
            credentials[credential.key] = credential
            first_line[credential.key] = line
        self._write_many(credentials.values())
        return len(credentials), refused

    @_one_writer
    def apply_change_set(self, version: int, changes: Iterable[Credential | Removal]) -> VersionReport:
        """Apply the cloud's change set atomically, once: a version not newer than the
        store's is ignored and reported, so redelivery is harmless."""
        if version <= self._version:
            return VersionReport(version, False, self._version)
        cache = dict(self._cache)
        with self._transaction() as db:
            for change in changes:
                if isinstance(change, Removal):
                    db.execute("DELETE FROM credential WHERE key = ?", (change.key,))
                    cache.pop(change.key, None)
                elif isinstance(change, Credential):
                    db.execute(_UPSERT, _to_row(change))
                    cache[change.key] = change
                else:
                    raise TypeError(f"a change is a Credential or a Removal, not {type(change).__name__}")
            self._set_version(db, version)
        self._cache, self._version = cache, version
        return VersionReport(version, True, version)

    @_one_writer
    def replace_snapshot(self, version: int, records: Iterable[Credential]) -> VersionReport:
        """Replace every credential with the cloud's full snapshot, atomically. An older
        version is ignored; the same version is applied again (a repair)."""
        if version < self._version:
            return VersionReport(version, False, self._version)
        cache: dict[str, Credential] = {}
        shared: dict = {}
        for record in records:
            if record.key in cache:
                raise ValueError(f"snapshot {version} holds key {record.key} twice")
            cache[record.key] = _kept(record, shared)
        with self._transaction() as db:
            db.execute("DELETE FROM credential")
            db.executemany(_UPSERT, (_to_row(c) for c in cache.values()))
            self._set_version(db, version)
        self._cache, self._version = cache, version
        return VersionReport(version, True, version)

    @_one_writer
    def _write_many(self, credentials: Iterable[Credential]) -> None:
        batch = {credential.key: credential for credential in credentials}
        with self._transaction() as db:
            db.executemany(_UPSERT, (_to_row(credential) for credential in batch.values()))
        self._cache = self._cache | batch

    def _credential_from(self, enrolment: Enrolment, existing: dict[str, Credential]) -> Credential:
        key = self.key_for(enrolment.serial)
        previous = existing.get(key)
        tenancy = {name: getattr(enrolment, name) for name in Tenancy.model_fields}
        pin_hash = PinHash.create(enrolment.pin) if enrolment.pin else getattr(previous, "pin_hash", None)
        if enrolment.id_number:
            id_key, id_last4 = self.id_key_for(enrolment.id_number), _normal_id(enrolment.id_number)[-4:]
        else:
            id_key, id_last4 = getattr(previous, "id_key", None), getattr(previous, "id_last4", None)
        return Credential(key=key, pin_hash=pin_hash, id_key=id_key, id_last4=id_last4, **tenancy)

    def _set_version(self, db: sqlite3.Connection, version: int) -> None:
        db.execute("UPDATE meta SET value = ? WHERE name = 'version'", (str(version),))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the store's lock; sqlite errors become
        CredentialStoreUnavailable and roll back."""
        with self._lock:
            if self.read_only is not None:
                raise CredentialStoreUnavailable(f"credential store {self._path} is read-only: {self.read_only}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._unavailable(exc) from exc
                raise

    def _unavailable(self, exc: sqlite3.Error) -> CredentialStoreUnavailable:
        return CredentialStoreUnavailable(f"credential store {self._path}: {exc}")


def _normal_id(id_number: str) -> str:
    normal = "".join(id_number.split()).replace("-", "").upper()
    if len(normal) < 4 or not normal.isalnum():
        raise ValueError("an ID number has at least 4 letters or digits")
    return normal


def _to_row(credential: Credential) -> tuple[Any, ...]:
    record = credential.model_dump(mode="json")
    for name in _LIST_COLUMNS:
        record[name] = json.dumps(record[name])
    return tuple(record[name] for name in _COLUMNS)


_SHARED_FIELDS = ("status", "doors", "door_groups", "valid_from", "valid_until", "paid_through", "schedule")


def _kept(credential: Credential, shared: dict[Any, Any]) -> Credential:
    """The credential as the store holds it in memory: the same (validated) values, with those many
    cards have alike (door groups, lease and rent dates, status, the set of fields given) shared
    between them rather than one copy per card: 10,000 cards take ~5 MB instead of ~18 MB."""
    # Each value is swapped for an equal one in place (a second model_construct would double the
    # load, which a door waits for at start); a frozen model never changes these itself, and
    # model_copy copies its set of given fields before it touches it.
    values = credential.__dict__
    for name in _SHARED_FIELDS:
        values[name] = shared.setdefault((name, values[name]), values[name])
    given = shared.setdefault(("fields set", frozenset(credential.model_fields_set)), credential.model_fields_set)
    object.__setattr__(credential, "__pydantic_fields_set__", given)
    return credential


def _from_row(row: tuple[Any, ...], path: str) -> Credential:
    record = dict(zip(_COLUMNS, row))
    try:
        for name in _LIST_COLUMNS:
            record[name] = json.loads(record[name])
        return Credential.model_validate(record)
    except (ValueError, TypeError) as exc:
        raise CredentialStoreUnavailable(
            f"credential store {path}: credential {record['key']} is unreadable: {exc}"
        ) from exc
