"""The journal's group-commit writer: batches, commits, flushes and maintenance on one thread.

SQLite is fast with one writer and batched commits and slow and fragile without, and an fsync
must never block the loop: so one thread owns the connection, and whatever arrived while the
previous commit was syncing goes into the next one. This part knows nothing of a refusing disk
beyond handing the failure to the outage buffer (outage.py); `Journal` composes the two.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from edge.events import Event


class JournalError(RuntimeError):
    """The journal could not make an event durable."""


@dataclass(slots=True)
class Entry:
    """An appended event, its seq (None only while seq is unknown: see `append`), and its producer."""

    event: Event
    seq: int | None
    waiter: asyncio.Future[int | None] | None
    replayed: bool = False  # read back from a spill file at start

    def settle(self, failure: Exception | None = None) -> None:
        """Wake the producer with the seq (or the failure); a cancelled producer is skipped."""
        if self.waiter is None or self.waiter.done():
            return
        if failure is None:
            self.waiter.set_result(self.seq)
        else:
            self.waiter.set_exception(failure)
