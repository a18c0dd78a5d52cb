"""flush() and close() against the batch the writer thread is committing, made deterministic.

The store is the real one, except that its write waits on a threading.Event the test sets:
the test decides exactly when the batch in flight becomes durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.hil.waiting import until
from edge.events import Event, Priority
from edge.journal import EventQuery, Journal, JournalError, JournalLimits, read_events
from edge.journal.store import Store

LIMITS = JournalLimits(maintenance_every_s=3600, telemetry_retention_s=None)


class GatedStore(Store):
    """A real store whose commits wait until the test opens the gate."""

    def __init__(self, path: Path, limits: JournalLimits) -> None:
        super().__init__(path, limits)
        self.writing = threading.Event()  # a batch has reached the writer thread
        self.gate = threading.Event()  # the batch may be committed
        self.batches: list[list[int]] = []

    def write(self, batch, again=False, gaps=()):
        self.batches.append([seq for seq, _ in batch])
        self.writing.set()
        if not self.gate.wait(20):
            raise TimeoutError("the test never opened the gate")
        super().write(batch, again, gaps)


def event(n: int) -> Event:
    return Event(kind="telemetry.test", priority=Priority.TELEMETRY, source="meter-1", body={"n": n})


async def every_ready_task_ran() -> None:
    """Return once every task scheduled before this call has run up to its first real wait."""
    await asyncio.create_task(asyncio.sleep(0))


async def in_flight(store: GatedStore) -> None:
    """Wait until the writer thread holds a batch at the gate."""
    if not await asyncio.to_thread(store.writing.wait, 10):
        raise TimeoutError("no batch reached the writer thread")


@contextlib.asynccontextmanager
async def gated(path: Path, limits: JournalLimits) -> AsyncIterator[tuple[GatedStore, Journal]]:
    """A journal on a GatedStore (its writer holds each batch at the gate until the test sets it); on
    the way out the gate opens and the journal closes, also when the test failed."""
    store = GatedStore(path, limits)
    journal = await Journal.open(path, limits, store=store)
    try:
        yield store, journal
    finally:
        store.gate.set()
        await journal.close()


def stored_seqs(path: Path) -> dict[str, int]:
    return {e.id: e.seq for e in read_events(path, EventQuery(limit=None))}


def test_flush_waits_for_the_batch_in_flight_to_be_durable(tmp_path: Path):
    path = tmp_path / "j.db"

    async def scenario():
        async with gated(path, LIMITS) as (store, journal):
            first = event(0)
            producer = asyncio.create_task(journal.append(first))
            await in_flight(store)  # the batch left the queue: nothing is queued, one batch is being written
            flush = asyncio.create_task(journal.flush())
            await every_ready_task_ran()
            assert not flush.done(), "flush returned while the batch was still being written"
            store.gate.set()
            assert await asyncio.wait_for(flush, 10) is True
            assert first.id in stored_seqs(path), "when flush returns, the event is on disk"
            assert await producer == stored_seqs(path)[first.id]

    asyncio.run(scenario())


def test_an_append_after_a_flush_gets_the_seq_its_event_is_stored_under(tmp_path: Path):
    path = tmp_path / "j.db"

    async def scenario():
        async with gated(path, LIMITS) as (store, journal):
            a = asyncio.create_task(journal.append(event(0)))
            await in_flight(store)  # batch 1 (A) in flight; what follows queues as batch 2
            b_event, c_event = event(1), event(2)
            b = asyncio.create_task(journal.append(b_event))
            await every_ready_task_ran()
            flush = asyncio.create_task(journal.flush())
            await every_ready_task_ran()
            c = asyncio.create_task(journal.append(c_event))  # joins batch 2, behind the flush
            await every_ready_task_ran()
            store.gate.set()
            seqs = await asyncio.wait_for(asyncio.gather(a, b, c), 10)
            await asyncio.wait_for(flush, 10)
        return seqs, b_event, c_event

    (a, b, c), b_event, c_event = asyncio.run(scenario())
    stored = stored_seqs(path)
    assert b == stored[b_event.id] and c == stored[c_event.id], "a flush must not take a producer's place in the batch"
    assert [a, b, c] == [1, 2, 3]


def test_close_settles_the_batch_in_flight_instead_of_abandoning_its_producers(tmp_path: Path):
    path = tmp_path / "j.db"

    async def scenario():
        store = GatedStore(path, LIMITS)
        journal = await Journal.open(path, LIMITS, store=store)
        first = event(0)
        producer = asyncio.create_task(journal.append(first))
        await in_flight(store)
        closing = asyncio.create_task(journal.close())
        await every_ready_task_ran()
        assert not closing.done(), "close must wait for the batch being written"
        store.gate.set()
        await asyncio.wait_for(closing, 10)
        seq = await asyncio.wait_for(producer, 1)  # settled by the time close returned
        return first, seq

    first, seq = asyncio.run(scenario())
    assert stored_seqs(path)[first.id] == seq


def test_close_gives_up_on_a_write_that_never_finishes_and_tells_its_producers(tmp_path: Path):
    path = tmp_path / "j.db"

    async def scenario():
        store = GatedStore(path, LIMITS)
        journal = await Journal.open(path, LIMITS, store=store)
        producer = asyncio.create_task(journal.append(event(0)))
        await in_flight(store)
        try:
            await asyncio.wait_for(journal.close(timeout_s=0.2), 10)  # the disk hangs: close still ends
            with pytest.raises(JournalError):
                await asyncio.wait_for(producer, 1)
            with pytest.raises(JournalError):
                await journal.append(event(1))
        finally:
            store.gate.set()  # let the abandoned thread finish

    asyncio.run(scenario())


def test_a_commit_that_hangs_degrades_the_journal_so_nobody_waits_on_it(tmp_path: Path):
    path = tmp_path / "j.db"
    limits = JournalLimits(maintenance_every_s=3600, telemetry_retention_s=None, stall_s=0.05, retry_initial_s=0.05)

    async def scenario():
        async with gated(path, limits) as (store, journal):
            first, second = event(0), event(1)
            producer = asyncio.create_task(journal.append(first))
            await in_flight(store)
            seq = await asyncio.wait_for(producer, 10)  # let go while the commit still hangs
            assert journal.degraded and not store.gate.is_set()
            later = await journal.append(second)  # held in memory, no wait
            store.gate.set()
            await until(lambda: not journal.degraded, 10, "the journal recovered after the commit ended", every_s=0.01)
            assert await journal.flush()
        return {first.id: seq, second.id: later}

    returned = asyncio.run(scenario())
    stored = read_events(path, EventQuery(limit=None))
    assert all(stored_seqs(path)[i] == seq for i, seq in returned.items())
    unavailable = next(e for e in stored if e.kind == "alarm.journal_unavailable")
    assert unavailable.body["fault"] == "stalled"
    assert any(e.kind == "alarm.journal_recovered" for e in stored)
