"""Damage or environment: what a failure of the journal's file means, and so what to do.

Damage (the file is not SQLite, not ours, or fails `quick_check`) is in the file itself:
it is moved aside, kept as evidence, and a new journal starts. An environment fault (the
disk is full, the directory read-only, the file locked by another process, not ours to
open, or an I/O error) says nothing about the file: moving it aside would hide a healthy
history, so it is kept, an alarm is raised and the journal retries until the disk allows.
Anything we cannot name is treated as the environment: only certain damage moves a file.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any

# Primary SQLite result codes (the low byte of an extended code).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 3, 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26

_DAMAGE = {SQLITE_CORRUPT, SQLITE_NOTADB}
_FAULT_NAMES = {
    SQLITE_FULL: "disk_full",
    SQLITE_READONLY: "read_only",
    SQLITE_BUSY: "locked",
    SQLITE_LOCKED: "locked",
    SQLITE_PERM: "no_access",
    SQLITE_CANTOPEN: "cannot_open",
    SQLITE_IOERR: "io_error",
}
_ERRNO_NAMES = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EFBIG: "disk_full",
    errno.EROFS: "read_only",
    errno.EACCES: "no_access",
    errno.EPERM: "no_access",
    errno.EIO: "io_error",
}


class JournalDamaged(sqlite3.DatabaseError):
    """The file opens as SQLite but is not a journal of ours, or is not whole."""


def _primary_code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_damage(error: BaseException) -> bool:
    """True only when the file itself is known to be bad: it may be moved aside."""
    return isinstance(error, JournalDamaged) or _primary_code(error) in _DAMAGE


def is_rejected(error: BaseException) -> bool:
    """A batch the database refuses whatever the disk does (a constraint, a bug): retrying cannot help."""
    return isinstance(error, sqlite3.IntegrityError) or not isinstance(error, (sqlite3.Error, OSError))


def describe(error: BaseException) -> dict[str, Any]:
    """What went wrong, for the alarm's body and the log: a short name, the library's code, the text."""
    code = _primary_code(error)
    if code is not None:
        return {"fault": _FAULT_NAMES.get(code, "sqlite_error"), "code": getattr(error, "sqlite_errorname", str(code)), "error": str(error)}
    if isinstance(error, OSError) and error.errno is not None:
        return {"fault": _ERRNO_NAMES.get(error.errno, "os_error"), "code": errno.errorcode.get(error.errno, str(error.errno)), "error": str(error)}
    return {"fault": "sqlite_error" if isinstance(error, sqlite3.Error) else "error", "code": type(error).__name__, "error": str(error)}
