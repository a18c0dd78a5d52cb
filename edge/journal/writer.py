"""The journal's group-commit writer: batches, commits, flushes and maintenance on one thread.

SQLite is fast with one writer and batched commits and slow and fragile without, and an fsync
must never block the loop: so one thread owns the connection, and whatever arrived while the
previous commit was syncing goes into the next one. The queue in front of it is bounded (the
producers wait for room) and written strictly in seq order, so everything up to `head` is on
disk or was reported lost. What to do when the disk refuses is the outage buffer's business
(outage.py): the writer hands it the failure and asks it when to try again. `Journal` composes
the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

import structlog

from edge.events import Event
from edge.journal.faults import describe, is_rejected
from edge.journal.reading import Gap
from edge.journal.store import JournalLimits, Store

if TYPE_CHECKING:
    from edge.journal.outage import OutageBuffer

log = structlog.get_logger("edge.journal")

T = TypeVar("T")


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


class Writer:
    """The numbered queue and the thread that commits it, batch by batch, in seq order."""

    def __init__(self, store: Store, limits: JournalLimits, admit: Callable[[Event, None], Entry]) -> None:
        self.store = store
        self.limits = limits
        self._admit = admit  # the journal's admission: notes from the store get a seq and reach the bus like any event
        self.outage: OutageBuffer  # set by the journal once both parts exist
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._loop = asyncio.get_running_loop()
        self.pending: deque[Entry] = deque()
        self.in_flight: list[Entry] = []  # the batch the writer thread is committing
        self.again = False  # the next batch follows a failed write, which may have reached the disk
        self.next_seq: int | None = None
        self.head = 0  # the last committed seq
        self.settled_through = 0  # every seq up to here is committed, or failed and reported
        self.gaps: list[Gap] = []  # seq ranges that will never be written, recorded with the next batch
        self._flushes: list[tuple[int, asyncio.Future[bool]]] = []
        self.work = asyncio.Event()
        self.space = asyncio.Event()
        self._stop = asyncio.Event()
        self.closing = False
        self._task: asyncio.Task[None] | None = None
        self._committed = asyncio.Event()  # set and replaced after each commit (see wait_beyond)

    def queue(self, event: Event, waiter: asyncio.Future[int | None] | None) -> Entry:
        """Give the event the next seq (if known) and queue it behind everything appended before."""
        seq = self.next_seq
        if seq is not None:
            self.next_seq = seq + 1
        entry = Entry(event, seq, waiter)
        self.pending.append(entry)
        return entry

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run in the writer thread: nothing that touches the disk runs on the loop."""
        return await self._loop.run_in_executor(self._thread, function, *args)

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_forever(), name="journal-writer")
        self._task.add_done_callback(self._ended)

    def note_skipped(self) -> None:
        """The file's head was below the seq mark: the range was maybe handed out, never written
        (the store recorded it as a gap when it opened)."""
        skipped, self.store.skipped = self.store.skipped, None
        if skipped is not None:
            log.warning("journal continues above its seq mark: the last stop was not clean",
                        skipped_first_seq=skipped[0], skipped_last_seq=skipped[1])

    def floor(self) -> int | None:
        """The lowest seq handed out and not yet written: where a new file must start."""
        for entry in self.pending:
            if entry.seq is not None:
                return entry.seq
        return self.next_seq

    # --- the writer -------------------------------------------------------------------

    async def _write_forever(self) -> None:
        """Write batches in seq order until closed; while the disk refuses, retry with backoff."""
        while True:
            refusal = self.outage.refusal
            if refusal is not None and not self.closing:
                delay = refusal.retry_at - self._loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stop.wait()
                    continue
            if not self.pending:
                if self.closing:
                    return
                self.work.clear()
                await self.work.wait()
                continue
            await self._write_next()
            if self.closing and self.outage.refusal is not None:
                return  # the last attempt failed too; close() reports what is left
            if self.outage.refusal is None and time.monotonic() - self.store.last_maintenance >= self.limits.maintenance_every_s:
                await self.maintain()

    async def _write_next(self) -> None:
        store = self.store
        if not store.is_open:
            try:
                notes = await self.run(store.open, self.floor())
            except Exception as fault:  # noqa: BLE001 - damage is handled inside open; the rest is the disk's
                await self.outage.refused(fault, writing=False)
                return
            self.outage.reopened(notes)
        count = min(len(self.pending), self.limits.max_batch)
        batch = self.in_flight = [self.pending.popleft() for _ in range(count)]
        self.space.set()
        gaps = list(self.gaps)
        try:
            await self._committing(self.run(store.write, [(e.seq, e.event) for e in batch], self.again, gaps))
        except Exception as fault:  # noqa: BLE001 - every failure is sorted below, none is lost silently
            if is_rejected(fault):
                await self._write_singly(batch, fault)
            else:
                self.pending.extendleft(reversed(batch))  # they keep their seqs and their place
                await self.outage.refused(fault, writing=True)
            return
        finally:
            self.in_flight = []
        self.again = False
        del self.gaps[: len(gaps)]
        self._written(batch)
        await self.outage.replayed(batch)

    async def _committing(self, write: Awaitable[None]) -> None:
        """Await a commit; one that takes longer than `stall_s` degrades the journal meanwhile, so
        nobody waits on a disk that hangs (its producers get their seqs, new events are buffered)."""
        commit = asyncio.ensure_future(write)
        done, _ = await asyncio.wait({commit}, timeout=self.limits.stall_s)
        if not done and self.outage.refusal is None:
            stalled = {"fault": "stalled", "code": "", "error": f"a commit took longer than {self.limits.stall_s} s"}
            self.outage.degrade(stalled)
        await commit

    def _written(self, batch: list[Entry]) -> None:
        # max: replayed events may sit below a head the seq mark already moved past
        self.head = self.settled_through = max(self.head, batch[-1].seq)  # type: ignore[type-var]
        for entry in batch:  # Entry.settle, inline: once per event
            waiter = entry.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(entry.seq)
        self._committed.set()
        self._committed = asyncio.Event()
        self._resolve_flushes()
        if self.outage.refusal is not None:
            self.outage.recovered()

    async def _write_singly(self, batch: list[Entry], fault: Exception) -> None:
        """The database refused the batch whatever the disk does (an event appended twice, a bug): write
        its events one by one, so only the event at fault is lost; its producer learns it, the loss is journaled."""
        written: list[Entry] = []
        for index, entry in enumerate(batch):
            try:
                await self.run(self.store.write, [(entry.seq, entry.event)], True)
            except Exception as refusal:  # noqa: BLE001 - this one event is refused; the rest still go
                if not is_rejected(refusal):  # the disk now refuses too: hold the rest, as for any batch
                    rest = batch[index:]
                    self.pending.extendleft(reversed(rest))
                    if written:
                        self._written(written)
                    await self.outage.refused(refusal, writing=True)
                    return
                log.error("journal refused an event", event_id=entry.event.id, kind=str(entry.event.kind),
                          error=f"{type(refusal).__name__}: {refusal}")
                self.outage.lose(entry, JournalError(str(refusal)))
            else:
                written.append(entry)
        log.warning("journal wrote a refused batch event by event", error=f"{type(fault).__name__}: {fault}",
                    events=len(batch), written=len(written))
        if written:
            self._written(written)
        self.settled_through = max(self.settled_through, batch[-1].seq or 0)
        self._resolve_flushes()
        self.outage.report_losses("write_refused")

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A writer that dies of a bug must not leave producers waiting forever."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("journal writer failed", error=repr(task.exception()))
        failure = JournalError(f"journal writer failed: {task.exception()!r}")
        for entry in [*self.in_flight, *self.pending]:
            entry.settle(failure)
        self.release_flushes()

    async def maintain(self) -> None:
        """Apply retention and the cap; the notes it makes are journaled like any event."""
        self.store.last_maintenance = time.monotonic()
        if not self.store.is_open:
            return
        try:
            notes = await self.run(self.store.maintain, time.time_ns())
        except (sqlite3.Error, OSError) as failure:
            log.error("journal maintenance failed", error=str(failure))
            return
        for note in notes:
            log.warning("journal maintenance", event_id=note.id, kind=str(note.kind), **note.body)
            self._admit(note, None)

    # --- waiting on the writer ----------------------------------------------------------

    async def wait_beyond(self, seq: int, timeout_s: float) -> bool:
        """Wait until an event above `seq` is committed, or `timeout_s` passes; True if one was."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.head <= seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            committed = self._committed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await committed.wait()
        return True

    async def flush(self) -> bool:
        """Wait until everything queued so far is written (or reported lost); True when it is.
        The caller answers False itself while the disk refuses."""
        target = (self.next_seq or 1) - 1
        if self.settled_through >= target or not (self.pending or self.in_flight):
            return True
        done: asyncio.Future[bool] = self._loop.create_future()
        self._flushes.append((target, done))
        return await done

    def _resolve_flushes(self) -> None:
        waiting = []
        for target, done in self._flushes:
            if self.settled_through >= target:
                if not done.done():
                    done.set_result(True)
            else:
                waiting.append((target, done))
        self._flushes = waiting

    def release_flushes(self) -> None:
        """Every flush waiting now learns False: what it waits for will not be written soon (or ever)."""
        for _, done in self._flushes:
            if not done.done():
                done.set_result(False)
        self._flushes.clear()

    # --- stopping ---------------------------------------------------------------------

    async def finish(self, timeout_s: float) -> bool:
        """Write what is queued and stop; True if the writer finished within `timeout_s`.

        A batch in the middle of its write is never abandoned: this waits for it, and only a
        writer that overruns the time is cancelled (it may still hold the thread)."""
        self.closing = True
        self._stop.set()
        self.work.set()
        self.space.set()  # producers waiting for room learn that the journal is closed
        task = self._task
        finished = True
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
            finished = task in done
            if not finished:
                log.error("journal writer did not finish in time; closing without it", timeout_s=timeout_s,
                          in_flight=len(self.in_flight), pending=len(self.pending))
                task.cancel()
        return finished

    async def close(self, finished: bool, clean: bool) -> None:
        """Checkpoint and close the file (only if the writer finished: else its thread may still hold it)."""
        if finished:
            try:
                await self.run(self.store.close, clean)
            except (sqlite3.Error, OSError) as fault:
                log.error("journal close failed", **describe(fault))
        self._thread.shutdown(wait=finished)
