"""The journal's outage buffer: what the journal does while the disk refuses writes.

A full, read-only or hanging disk must never stop a door, a fire release or a trip, and must
never cost a seq. So while the disk refuses, events are held in memory with their seqs (a
bounded buffer that sheds the least important first), an alarm is raised, the writer retries
on a jittered backoff, seqs are leased ahead in a spill place, and whatever is lost is counted
and recorded as a gap. A stop spills what is held (spill.py) and the next start replays it.
Kept apart from the group-commit writer (writer.py) because it is a state machine of its own.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import backoff

from edge.journal.store import JournalLimits
from edge.journal.writer import Entry

LEASE_BLOCK = 65_536  # seqs a degraded journal leases ahead in a spill place; renewed at half-way
# After these the connection is dropped and the file opened again (a remount, a replaced disk);
# a full disk or a lock keeps the connection and simply tries again.
REOPEN_AFTER = {"read_only", "cannot_open", "io_error", "no_access"}


@dataclass(slots=True)
class Losses:
    """Events that never reached the disk: how many, of which priority, over which seqs."""

    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    by_priority: Counter[str] = field(default_factory=Counter)

    def add(self, entry: Entry) -> None:
        self.count += 1
        self.by_priority[entry.event.priority.name.lower()] += 1
        if entry.seq is not None:
            self.first_seq = entry.seq if self.first_seq is None else min(self.first_seq, entry.seq)
            self.last_seq = entry.seq if self.last_seq is None else max(self.last_seq, entry.seq)

    def body(self, reason: str) -> dict[str, Any]:
        return {"reason": reason, "lost": self.count, "first_seq": self.first_seq, "last_seq": self.last_seq,
                "by_priority": dict(self.by_priority)}

    def merge(self, body: dict[str, Any]) -> None:
        """Losses a previous run counted (from its spill file)."""
        self.count += int(body.get("lost") or 0)
        for name, count in (body.get("by_priority") or {}).items():
            self.by_priority[name] += int(count)
        for seq in (body.get("first_seq"), body.get("last_seq")):
            if isinstance(seq, int):
                self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)
                self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)


@dataclass(slots=True)
class Refusal:
    """Why the disk refuses writes, since when, and when to try again."""

    fault: dict[str, Any]
    since: float
    delays: Iterator[float]
    retry_at: float = 0.0
    attempts: int = 0


def retry_delays(limits: JournalLimits) -> Iterator[float]:
    """Exponential backoff, capped, each delay jittered to between half and all of it (as the supervisor)."""
    wait = backoff.expo(factor=limits.retry_initial_s, max_value=limits.retry_max_s)
    next(wait)  # the generator's first yield only primes it
    for delay in wait:
        yield delay / 2 + random.uniform(0, delay / 2)
