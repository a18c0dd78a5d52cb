"""A file the daemon keeps beside its journal (points.json, zones.json, care.json, the uplink's
cursor), and whether the disk takes it.

A state disk that refuses writes (full, read-only) must cost the output that file serves and
nothing else: never the worker that writes it, never a safety rule beside it. So a writer
catches the refusal, tells this, and goes on; this logs and journals the first refusal of a
streak (`fault.state_file`) and the first write after it (`fault.state_file_cleared`), so a
disk that refuses every few seconds is one fault, not thousands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog

from edge.events import Event, Kind, Priority
from edge.journal.faults import describe

log = structlog.get_logger("edge.state")


class StateFile:
    """One state file's health: refused since when, and why."""

    def __init__(self, path: Path, serves: str, journal: Any = None) -> None:
        self.path = path
        self.serves = serves  # what is degraded while it is refused, in a few words
        self.journal = journal
        self.fault: dict[str, Any] | None = None

    async def refused(self, error: BaseException) -> None:
        """A write failed: say so once per streak (log and journal), then go on."""
        if self.fault is not None:
            return
        self.fault = describe(error)
        body = {"file": str(self.path), "degraded": self.serves, **self.fault}
        log.error("state file not written; that output is degraded", **body)
        if self.journal is not None:
            await self.journal.append(Event(Kind.STATE_FILE_REFUSED, Priority.FAULT, "state", body))

    async def written(self) -> None:
        """A write succeeded: if it was refused before, say it is written again."""
        if self.fault is None:
            return
        fault, self.fault = self.fault, None
        body = {"file": str(self.path), "was": fault["fault"]}
        log.warning("state file written again", **body)
        if self.journal is not None:
            await self.journal.append(Event(Kind.STATE_FILE_WRITTEN, Priority.FAULT, "state", body))


def write_atomically(path: Path, data: bytes) -> None:
    """Write, fsync, rename over, fsync the directory: after a power cut the file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    sync_directory(path.parent)


def remove_durably(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
