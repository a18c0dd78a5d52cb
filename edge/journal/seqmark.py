"""The seq high-water mark, kept beside the journal file so it outlives the file.

A journal that is damaged, deleted or emptied takes its counter with it; starting again at
seq 1 would hand the cloud numbers it already holds under other ids, and every new event
would sit below the uplink's watermark and never be pushed. So a small sidecar file
(`journal.db.seq`) holds a reservation: every seq up to `reserved` may have been used.
The writer extends it by a block before it commits a seq past it (one fsync per block, not
per batch), and a new journal file starts above it. `base` is the first seq the current
file was started with, so a lost file's range can be named: `base..reserved`.

The mark wins over the file's head at every open: seqs up to `reserved` may have been handed
out without being written (a refusing disk settles producers with their seqs at once), and
nothing in the file can say which. Only a clean close, with every seq it handed out written,
draws the mark back to the head (`tighten`), so an ordinary restart continues without a hole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("edge.journal")

BLOCK = 10_000


@dataclass(frozen=True, slots=True)
class Reservation:
    base: int  # the first seq of the current journal file
    reserved: int  # no seq at or below this may be handed out again


class SeqMark:
    """Reads and atomically rewrites the sidecar; used only from the journal's writer thread."""

    def __init__(self, path: Path, block: int = BLOCK) -> None:
        self.path = path
        self.block = block
        self.current: Reservation | None = None

    @classmethod
    def beside(cls, journal_path: Path) -> "SeqMark":
        return cls(journal_path.with_name(journal_path.name + ".seq"))

    def load(self) -> Reservation | None:
        """The stored reservation, or None when there is none (a first start, or an unreadable sidecar).

        A file we cannot parse is logged and ignored rather than trusted; an OSError (the
        directory unreadable) is the environment's and reaches the caller."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            self.current = None
            return None
        try:
            data = json.loads(text)
            found = Reservation(int(data["base"]), int(data["reserved"]))
        except (ValueError, KeyError, TypeError) as bad:
            log.error("seq mark unreadable; ignored", path=str(self.path), error=str(bad))
            found = None
        self.current = found
        return found

    def start(self, base: int) -> None:
        """A new journal file begins at `base`."""
        self._store(Reservation(base, base - 1 + self.block))

    def cover(self, seq: int) -> None:
        """Make sure `seq` is reserved before it is committed."""
        current = self.current
        if current is None:
            self._store(Reservation(1, seq + self.block))
        elif seq > current.reserved:
            self._store(Reservation(current.base, seq + self.block))

    def tighten(self, head: int) -> None:
        """A clean close: every seq handed out is written, up to `head`; the next open continues there."""
        current = self.current
        if current is not None and current.reserved > head:
            self._store(Reservation(min(current.base, head + 1), head))

    def _store(self, reservation: Reservation) -> None:
        """Write a temporary file, fsync it, rename it over the old one, fsync the directory."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        payload = json.dumps({"base": reservation.base, "reserved": reservation.reserved}).encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.current = reservation
