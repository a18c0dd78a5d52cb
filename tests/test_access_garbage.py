"""Garbage on card lines: one journaled event per reader and cause per window, with a true count."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.hil.waiting import until
from edge.drivers.cards.observations import DropCause
from edge.doors.access import AccessPath
from edge.journal import EventQuery, Journal, read_events
from edge.doors.readers import ReaderInbox
from edge.runtime.throttle import Throttle

pytestmark = pytest.mark.timeout(60)


def _garbage(path: Path) -> list:
    return read_events(path, EventQuery(kinds=("fault.reader_garbage",), limit=None))


def test_counts_held_back_are_journaled_when_the_window_ends_and_at_stop(tmp_path: Path):
    path = tmp_path / "journal.db"

    async def scenario():
        journal = await Journal.open(path)
        inbox = ReaderInbox(asyncio.get_running_loop())
        access = AccessPath([], ZoneInfo("UTC"), {}, None, journal, inbox)
        access.garbage = Throttle(window_s=0.5)
        running = asyncio.create_task(access.run())

        def flood(reader: str, count: int) -> None:  # port threads tally drops while the loop takes them
            for _ in range(count):
                inbox.count_drop(reader, DropCause.BAD_CHECKSUM)

        threads = [threading.Thread(target=flood, args=(reader, 20_000)) for reader in ("gate", "lobby")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # first events, then the window ends
        await until(lambda: sum(e.body["count"] for e in _garbage(path)) >= 40_000, 10, "the held-back counts journaled")
        during = _garbage(path)
        flood("gate", 3)  # in a new window: its first is let through, the rest held until the stop
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await journal.close()
        return during

    during = asyncio.run(scenario())
    after = _garbage(path)
    assert {e.source for e in during} == {"gate", "lobby"} and len(during) <= 6
    assert all(e.body["cause"] == "bad_checksum" and e.priority.name == "FAULT" for e in after)
    assert sum(e.body["count"] for e in after if e.source == "gate") == 20_003, "every drop counted once, the last at stop"
    assert sum(e.body["count"] for e in after if e.source == "lobby") == 20_000
