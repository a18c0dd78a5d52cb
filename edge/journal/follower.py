"""Following the journal from a seq: one way for every part that reads what was committed.

The uplink's push and its snapshots lane, the status page's tail and the trail search each kept
a loop of their own ("wait, read after my seq, move my seq"), each a little different, with
its own thread pool. A `Follower` is that loop's parts, written once:

- it wakes on the journal's commits (`Journal.wait_beyond`), never on a fixed-rate poll;
- it reads through short-lived read-only connections on a reader executor (the runtime's
  journal-reads pool, or the one its owner gives it, as the status page does), never on the loop;
- its position moves only when its owner says the events are dealt with, and where a position
  must survive a restart it is saved through the owner's `mark` (the uplink cursor's marks).

It sees only what is committed. A live part that must hear an event before the disk takes it
(a card while the disk refuses writes) listens on the bus (`edge.events.bus`) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edge.runtime import pools
from edge.events import Priority, StoredEvent
from edge.journal.reading import _COLUMNS, _reader, _stored

if TYPE_CHECKING:
    from edge.journal.journal import Journal

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Slice:
    """Which committed events a follower reads: kinds (exact), a least priority, a body field the
    event must name, a wall-clock window. Empty or None means no condition."""

    kinds: tuple[str, ...] = ()
    min_priority: Priority = Priority.TELEMETRY
    naming: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    def __post_init__(self) -> None:
        if self.naming is not None and not self.naming.isidentifier():
            raise ValueError(f"not a body field name: {self.naming!r}")

    def page(self, path: Path, after: int, through: int | None, limit: int,
             shape: Callable[[list[tuple]], list[Any]] = _stored) -> list[Any]:
        """Up to `limit` events in (after, through], oldest first, as `shape` makes them of the rows
        (StoredEvents by default). Blocking: on a reader thread."""
        where, params = ["seq > ?"], [after]
        if through is not None:
            where.append("seq <= ?")
            params.append(through)
        if self.min_priority > Priority.TELEMETRY:
            where.append("priority >= ?")
            params.append(int(self.min_priority))
        if self.kinds:
            where.append(f"kind IN ({','.join('?' * len(self.kinds))})")
            params.extend(self.kinds)
        if self.naming is not None:
            where.append(f"json_extract(body, '$.{self.naming}') IS NOT NULL")
        if self.since_ns is not None:
            where.append("wall_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            where.append("wall_ns < ?")
            params.append(self.until_ns)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        with _reader(path) as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return shape(rows)


class Follower:
    """One reader's way along the journal: `seq` is the last event it has dealt with."""

    def __init__(
        self,
        journal: Journal,
        name: str,
        from_seq: int,
        kinds: Iterable[str] = (),
        *,
        min_priority: Priority = Priority.TELEMETRY,
        naming: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        reader: Executor | None = None,
        mark: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.journal = journal
        self.name = name
        self.seq = from_seq
        self.slice = Slice(tuple(str(k) for k in kinds), min_priority, naming, since_ns, until_ns)
        self.reader = reader  # None: the runtime's journal-reads pool
        self.mark = mark  # saves a position that must outlive the process (None: it need not)

    @property
    def behind(self) -> bool:
        """The journal has committed past this follower's position."""
        return self.journal.head_seq > self.seq

    async def committed(self, timeout_s: float | None) -> bool:
        """Wait until the journal commits past `seq` (True), or `timeout_s` passes (False)."""
        if timeout_s is None:
            while not await self.journal.wait_beyond(self.seq, 3600.0):
                pass
            return True
        return await self.journal.wait_beyond(self.seq, timeout_s)

    async def read(self, limit: int, *, after: int | None = None, through: int | None = None,
                   shape: Callable[[list[tuple]], list[Any]] = _stored) -> list[Any]:
        """Up to `limit` committed events after `after` (default: this follower's seq), up to
        `through`, oldest first, read off the loop. The position does not move: see `skip`/`advance`.
        `shape` makes what is returned of the rows (`_COLUMNS`), on the reader thread: StoredEvents by
        default; the uplink takes each event's wire form at once (`edge.uplink.wire.encoded`)."""
        return await self._off_loop(self.slice.page, self.journal.path, self.seq if after is None else after, through, limit, shape)

    def skip(self, seq: int) -> None:
        """Everything up to `seq` is dealt with; the saved mark (if any) moves with the next `advance`."""
        self.seq = max(self.seq, seq)

    async def advance(self, seq: int) -> None:
        """Everything up to `seq` is dealt with, and, where the position is kept, saved so."""
        self.skip(seq)
        if self.mark is not None:
            await self.mark(self.seq)

    async def pages(self, limit: int) -> AsyncIterator[list[StoredEvent]]:
        """What is committed after `seq` now, page by page; the position moves past each page as
        the owner asks for the next (a search stops where it has enough)."""
        while True:
            page = await self.read(limit)
            if page:
                yield page
                self.skip(page[-1].seq)
            if len(page) < limit:
                return

    async def ring(self, wake: Callable[[], None], renew_s: float) -> None:
        """Call `wake` each time the journal commits past what was last rung for, until cancelled
        (for an owner that sleeps on something else as well). `renew_s` bounds one wait."""
        seen = self.journal.head_seq
        while True:
            if await self.journal.wait_beyond(seen, renew_s):
                seen = self.journal.head_seq
                wake()

    async def _off_loop(self, function: Callable[..., T], *args: Any) -> T:
        if self.reader is not None:
            return await asyncio.get_running_loop().run_in_executor(self.reader, function, *args)
        return await pools.call(pools.Pool.READS, function, *args)
