"""The bus: what the journal admits reaches live subscribers at once, also while the disk refuses;
each subscriber's queue is bounded and loses its oldest notice, counted, never blocking the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.events.bus import Bus
from edge.events import Event, Kind, Priority
from edge.doors.kinds import DoorKind
from edge.hil.waiting import until
from edge.journal import Journal


def decision(n: int) -> Event:
    return Event(kind=DoorKind.ACCESS_DECISION, priority=Priority.ACCESS, source="gate", body={"n": n, "granted": True})


def reading(n: int) -> Event:
    return Event(kind=Kind.POINT_READING, priority=Priority.TELEMETRY, source="mon", body={"n": n})


def test_a_subscriber_hears_its_kinds_with_their_seqs_as_the_journal_admits_them(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        try:
            with journal.bus.subscribe("cards", kinds=(DoorKind.ACCESS_DECISION,)) as cards, journal.bus.subscribe("all") as everything:
                seqs = [await journal.append(e) for e in (reading(0), decision(1), reading(2), decision(3))]
                heard = [await cards.get() for _ in range(2)]
                assert [(n.seq, n.body["n"]) for n in heard] == [(seqs[1], 1), (seqs[3], 3)]
                assert [n.seq for n in everything.pending()] == seqs
                assert cards.pending() == []
            assert await journal.append(decision(4)) and cards.pending() == [], "a closed subscription hears nothing more"
        finally:
            await journal.close()

    asyncio.run(scenario())


def test_a_full_subscriber_loses_its_oldest_notices_counted_and_the_producer_never_waits():
    async def scenario():
        bus = Bus()
        with bus.subscribe("slow", size=4) as slow:
            for n in range(10):
                bus.admit(n + 1, decision(n))  # synchronous: the journal's append never waits on a reader
            assert slow.dropped == 6
            assert [n.seq for n in slow.pending()] == [7, 8, 9, 10], "the newest are kept"
            bus.admit(11, decision(10))
            assert (await slow.get()).seq == 11

    asyncio.run(scenario())


def test_a_subscriber_waiting_for_a_notice_ends_on_cancel():
    async def scenario():
        bus = Bus()
        with bus.subscribe("waiting") as waiting:
            heard = []

            async def listen():
                async for notice in waiting:
                    heard.append(notice.seq)

            task = asyncio.create_task(listen())
            await asyncio.sleep(0)
            bus.admit(1, decision(1))
            await until(lambda: heard, 5, "the notice heard", every_s=0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled() and heard == [1]

    asyncio.run(scenario())
