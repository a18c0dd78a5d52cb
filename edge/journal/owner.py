"""Who may write a journal: the one process holding its lock, an exclusive flock on the journal's directory.

The daemon takes it before it opens the journal and keeps it for its life. A command that must
journal while no daemon answers (`edge trail`'s audit record) takes it for the moment it writes,
so it refuses while a daemon runs, even one whose control socket it cannot reach: two writers
would give one seq twice. The lock is on the directory, not on a file, because a directory can
be opened (read-only) on a full or read-only disk, and it is a flock, not the fcntl locks SQLite
keeps on the database file, so neither disturbs the other. The kernel lets go of it when the
holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import structlog

log = structlog.get_logger("edge.journal")

RETRY_S = 0.1


class JournalHeld(Exception):
    """Another process holds the journal (a running daemon, or a command journaling without one)."""


class JournalOwner:
    """The journal's lock while held; `release` (or the process's end) lets it go."""

    def __init__(self, fd: int | None, directory: Path) -> None:
        self._fd = fd
        self.directory = directory

    @classmethod
    def take(cls, journal: Path, wait_s: float = 0.0) -> JournalOwner:
        """Take the lock of `journal`, waiting up to `wait_s` for whoever holds it (blocking: call it in a
        thread). JournalHeld when it stays held. A directory that cannot even be opened yields an owner
        that holds nothing: no journal can be written there by anyone, so there is nothing to keep."""
        directory = Path(journal).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            log.warning("journal directory cannot be locked", directory=str(directory), error=str(error))
            return cls(None, directory)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls(fd, directory)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise JournalHeld(f"another process holds the journal in {directory} (a running daemon?)") from None
                time.sleep(RETRY_S)
            except OSError:
                os.close(fd)
                raise

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor lets go of the flock
            self._fd = None

    def __del__(self) -> None:  # an owner dropped on a failure path still lets go
        self.release()

    def __enter__(self) -> JournalOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
