"""The access path's journaling: one supervised task, a bounded queue, failures journaled and logged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from edge.doors.access import AccessPath
from edge.doors.recorder import CONCURRENT, QUEUE_SIZE
from edge.events import Event, Priority
from edge.doors.kinds import DoorKind
from edge.journal import EventQuery, Journal, JournalError, read_events
from edge.doors.readers import ReaderInbox
from edge.hil.waiting import until

pytestmark = pytest.mark.timeout(60)


class Refusing:
    """A real journal whose first append of `refuse` kind fails, as a full disk makes it fail."""

    def __init__(self, journal: Journal, refuse: str) -> None:
        self.journal, self.refuse, self.refused = journal, refuse, 0

    async def append(self, event: Event) -> int:
        if event.kind == self.refuse and not self.refused:
            self.refused += 1
            raise JournalError("disk I/O error")
        return await self.journal.append(event)


class Stuck:
    """A real journal that takes nothing until `gate` opens (an SD card that stalls)."""

    def __init__(self, journal: Journal) -> None:
        self.journal, self.gate, self.waiting = journal, asyncio.Event(), 0

    async def append(self, event: Event) -> int:
        self.waiting += 1
        await self.gate.wait()
        return await self.journal.append(event)


def _decision(n: int) -> Event:
    return Event(DoorKind.ACCESS_DECISION, Priority.ACCESS, "front-reader", {"door": "front", "n": n})


def _events(path: Path, kind: str) -> list:
    return read_events(path, EventQuery(kinds=(kind,), limit=None))


def test_a_journal_error_on_a_decision_is_logged_and_journaled(tmp_path: Path):
    path = tmp_path / "journal.db"

    async def scenario():
        journal = await Journal.open(path)
        access = AccessPath([], ZoneInfo("UTC"), {}, None, Refusing(journal, DoorKind.ACCESS_DECISION), ReaderInbox(asyncio.get_running_loop()))  # type: ignore[arg-type]
        running = asyncio.create_task(access.run())
        lost = _decision(1)
        try:
            with capture_logs() as logs:
                access.record(lost)
                await until(lambda: access.recorder.failed == 1, 5.0, "the failure being counted", every_s=0.01)
                access.record(_decision(2))  # the next event carries the report
                await until(lambda: _events(path, "access.unjournaled"), 5.0, "the unjournaled report", every_s=0.01)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await journal.close()
        return lost, logs

    lost, logs = asyncio.run(scenario())
    [report] = _events(path, "access.unjournaled")
    assert report.body["counts"] == {"failed": 1} and "disk I/O error" in report.body["error"]
    assert report.priority is Priority.ACCESS, "the report of a lost decision is protected from eviction"
    assert [e.body["n"] for e in _events(path, "access.decision")] == [2]
    errors = [line for line in logs if line["log_level"] == "error"]
    assert errors and lost.id in errors[0]["event_ids"], "the lost event's id is in the log"


def test_a_stuck_journal_bounds_the_queue_and_the_drops_are_journaled(tmp_path: Path):
    path = tmp_path / "journal.db"
    flood = QUEUE_SIZE * 3

    async def scenario():
        journal = await Journal.open(path)
        stuck = Stuck(journal)
        access = AccessPath([], ZoneInfo("UTC"), {}, None, stuck, ReaderInbox(asyncio.get_running_loop()))  # type: ignore[arg-type]
        running = asyncio.create_task(access.run())
        tasks_before = len(asyncio.all_tasks())
        try:
            with capture_logs() as logs:
                for n in range(flood):
                    access.record(_decision(n))
                await until(lambda: stuck.waiting > 0, 5.0, "the journaling task taking a batch", every_s=0.01)
                tasks_while_stuck = len(asyncio.all_tasks())
                for n in range(flood, flood + 10):
                    access.record(_decision(n))  # the stuck batch left the queue: these fit
                stuck.gate.set()
                await until(lambda: _events(path, "access.unjournaled"), 5.0, "the drop report", every_s=0.01)
                await access.recorder.drain()
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await journal.close()
        return tasks_before, tasks_while_stuck, access.recorder.dropped, logs

    tasks_before, tasks_while_stuck, dropped, logs = asyncio.run(scenario())
    assert tasks_while_stuck - tasks_before <= CONCURRENT + 4, "no task per event (4: the access path's own parts)"
    assert dropped == flood - QUEUE_SIZE
    [report] = _events(path, "access.unjournaled")
    assert report.body["counts"] == {"dropped": flood - QUEUE_SIZE}
    decisions = [e.body["n"] for e in _events(path, "access.decision")]
    assert decisions == list(range(QUEUE_SIZE)) + list(range(flood, flood + 10)), "the oldest kept, in order"
    assert sum(1 for line in logs if "queue full" in line["event"]) == 1, "one log line per overflow, not per event"


def test_at_stop_the_queue_reaches_the_journal(tmp_path: Path):
    path = tmp_path / "journal.db"

    async def scenario():
        journal = await Journal.open(path)
        access = AccessPath([], ZoneInfo("UTC"), {}, None, journal, ReaderInbox(asyncio.get_running_loop()))
        running = asyncio.create_task(access.run())
        await asyncio.sleep(0)
        for n in range(50):
            access.record(_decision(n))
        running.cancel()  # before the journaling task had a turn
        await asyncio.gather(running, return_exceptions=True)
        await journal.close()

    asyncio.run(scenario())
    assert [e.body["n"] for e in _events(path, "access.decision")] == list(range(50))
