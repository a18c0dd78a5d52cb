"""The journal: ordering, durability acknowledgements, restarts, eviction, damage."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from edge.events import Event, Kind, Priority
from edge.journal import EventQuery, Journal, JournalError, JournalLimits, gaps_between, read_events
from edge.journal.store import Store
from edge.uplink import pull


def event(priority: Priority = Priority.TELEMETRY, kind: str = "telemetry.test", source: str = "meter-1", **body) -> Event:
    return Event(kind=kind, priority=priority, source=source, body=body or {"value": 1.5})


def run(coro):
    return asyncio.run(coro)


def test_concurrent_producers_get_consecutive_seqs_in_commit_order(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "j.db", JournalLimits(max_batch=7))
        produced = [event(n=i) for i in range(500)]
        seqs = await asyncio.gather(*(journal.append(e) for e in produced))
        await journal.close()
        return produced, seqs

    produced, seqs = run(scenario())
    assert sorted(seqs) == list(range(1, 501))
    stored = read_events(tmp_path / "j.db", EventQuery(limit=None))
    assert [e.seq for e in stored] == list(range(1, 501))
    by_id = {e.id: e for e in stored}
    for original, seq in zip(produced, seqs):
        assert by_id[original.id].seq == seq
        assert by_id[original.id].body == original.body


def test_seq_continues_after_restart_and_never_repeats(tmp_path: Path):
    async def session(count: int) -> list[int]:
        journal = await Journal.open(tmp_path / "j.db")
        seqs = [await journal.append(event(n=i)) for i in range(count)]
        await journal.close()
        return seqs

    first = run(session(3))
    second = run(session(2))
    assert first == [1, 2, 3]
    assert second == [4, 5]


def test_seq_does_not_reuse_numbers_of_evicted_newest_rows(tmp_path: Path):
    async def session() -> int:
        journal = await Journal.open(tmp_path / "j.db")
        seq = await journal.append(event())
        await journal.close()
        return seq

    run(session())
    run(session())
    with sqlite3.connect(tmp_path / "j.db") as conn:
        conn.execute("DELETE FROM events")
    assert run(session()) == 3


def test_query_filters(tmp_path: Path):
    async def fill():
        journal = await Journal.open(tmp_path / "j.db")
        await journal.append(event(Priority.ALARM, "alarm.over_current", "fire-monitor-f1"))
        await journal.append(event(Priority.ACCESS, "access.decision", "door-main"))
        await journal.append(event(Priority.TELEMETRY, "telemetry.reading", "fire-monitor-f1"))
        await journal.close()

    run(fill())
    path = tmp_path / "j.db"
    assert [e.kind for e in read_events(path, EventQuery(kinds=("alarm.*",)))] == ["alarm.over_current"]
    assert [e.kind for e in read_events(path, EventQuery(sources=("fire-monitor-f1",)))] == ["alarm.over_current", "telemetry.reading"]
    assert [e.seq for e in read_events(path, EventQuery(after_seq=1))] == [2, 3]
    newest = read_events(path, EventQuery(limit=2, newest_first=True))
    assert [e.seq for e in newest] == [2, 3]
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "absent.db", EventQuery())


def test_disk_cap_evicts_oldest_telemetry_first_and_never_protected_events(tmp_path: Path):
    limits = JournalLimits(cap_bytes=256 * 1024, telemetry_retention_s=None, maintenance_every_s=3600)

    async def scenario():
        journal = await Journal.open(tmp_path / "j.db", limits)
        padding = "x" * 400
        for i in range(300):
            await journal.append(event(Priority.ACCESS, "access.decision", "door-main", n=i, pad=padding))
            await journal.append(event(Priority.FAULT, "fault.timeout", "meter-1", n=i, pad=padding))
            await journal.append(event(Priority.TELEMETRY, "telemetry.reading", "meter-1", n=i, pad=padding))
        await journal.append(event(Priority.ALARM, "alarm.over_current", "meter-1", pad=padding))
        await journal.maintain_now()
        await journal.close()

    run(scenario())
    stored = read_events(tmp_path / "j.db", EventQuery(limit=None))
    kinds = [e.kind for e in stored]
    assert kinds.count("access.decision") == 300
    assert kinds.count("alarm.over_current") == 1
    evictions = [e for e in stored if e.kind == Kind.JOURNAL_EVICTED]
    assert evictions and evictions[0].body["reason"] == "disk_cap"
    assert kinds.count("telemetry.reading") < 300
    # Faults go only after every telemetry event has gone, and oldest first within a priority.
    if kinds.count("fault.timeout") < 300:
        assert kinds.count("telemetry.reading") == 0
    remaining = [e.body["n"] for e in stored if e.kind == "telemetry.reading"]
    assert remaining == sorted(remaining) and (not remaining or remaining[-1] == 299)


def test_protected_events_over_the_cap_are_kept_and_raise_an_alarm(tmp_path: Path):
    limits = JournalLimits(cap_bytes=64 * 1024, telemetry_retention_s=None, maintenance_every_s=3600)

    async def scenario():
        journal = await Journal.open(tmp_path / "j.db", limits)
        for i in range(400):
            await journal.append(event(Priority.ACCESS, "access.decision", "door-main", n=i, pad="y" * 300))
        await journal.maintain_now()
        await journal.maintain_now()
        await journal.close()

    run(scenario())
    stored = read_events(tmp_path / "j.db", EventQuery(limit=None))
    assert sum(e.kind == "access.decision" for e in stored) == 400
    alarms = [e for e in stored if e.kind == Kind.JOURNAL_OVER_CAPACITY]
    assert len(alarms) == 1, "the over-capacity alarm is raised once, not at every check"
    assert alarms[0].priority is Priority.ALARM


def test_telemetry_retention_deletes_only_old_telemetry(tmp_path: Path):
    limits = JournalLimits(telemetry_retention_s=3600, maintenance_every_s=3600)
    old = 1_000_000_000 * 1_700_000_000  # 2023: long past any retention

    async def scenario():
        journal = await Journal.open(tmp_path / "j.db", limits)
        await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", wall_ns=old))
        await journal.append(Event(kind="fault.timeout", priority=Priority.FAULT, source="m", wall_ns=old))
        await journal.append(event(Priority.TELEMETRY))
        await journal.maintain_now()
        await journal.close()

    run(scenario())
    stored = read_events(tmp_path / "j.db", EventQuery(limit=None))
    assert [e.seq for e in stored if e.kind != Kind.JOURNAL_EVICTED] == [2, 3]
    eviction = next(e for e in stored if e.kind == Kind.JOURNAL_EVICTED)
    assert eviction.body == {"reason": "telemetry_retention", "evicted": 1, "first_seq": 1, "last_seq": 1}


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"this is not a database at all" * 100), id="not-sqlite"),
        pytest.param(lambda p: sqlite3.connect(p).execute("CREATE TABLE tenants (name TEXT)").connection.commit(), id="foreign-sqlite"),
        pytest.param(lambda p: _truncate_pages(p), id="damaged-pages"),
    ],
)
def test_damaged_journal_is_moved_aside_and_an_alarm_raised(tmp_path: Path, damage):
    path = tmp_path / "journal.db"
    damage(path)
    before = path.read_bytes()

    async def scenario():
        journal = await Journal.open(path)
        await journal.append(event())
        await journal.close()

    run(scenario())
    moved = list(tmp_path.glob("journal.db.corrupt-*"))
    assert [m for m in moved if not m.name.endswith(("-wal", "-shm"))], "the damaged file must be kept"
    kept = next(m for m in moved if not m.name.endswith(("-wal", "-shm")))
    assert kept.read_bytes() == before
    stored = read_events(path, EventQuery(limit=None))
    assert stored[0].kind == Kind.JOURNAL_CORRUPT and stored[0].priority is Priority.ALARM
    assert stored[0].body["moved_to"] == str(kept)


def _truncate_pages(path: Path) -> None:
    """A real journal whose index pages were overwritten: quick_check catches it."""

    async def fill():
        journal = await Journal.open(path)
        for i in range(2000):
            await journal.append(event(n=i, pad="z" * 100))
        await journal.close()

    asyncio.run(fill())
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page, min(len(data), 12 * page), page):
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))



def test_wait_beyond_wakes_on_a_commit_and_says_when_none_came(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "j.db")
        try:
            head = journal.head_seq
            assert await journal.wait_beyond(head, 0.05) is False  # nothing committed: the deadline says so
            waiter = asyncio.create_task(journal.wait_beyond(head, 30))
            await asyncio.sleep(0)
            assert not waiter.done()
            seq = await journal.append(event())
            assert await asyncio.wait_for(waiter, 5) is True
            assert seq > head
            assert await journal.wait_beyond(head, 0) is True  # already beyond: no wait at all
        finally:
            await journal.close()

    run(scenario())


def _session(path: Path, count: int, limits: JournalLimits = JournalLimits()) -> list[int]:
    async def scenario():
        journal = await Journal.open(path, limits)
        seqs = [await journal.append(event(n=i)) for i in range(count)]
        await journal.close()
        return seqs

    return run(scenario())


def _reserved(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".seq").read_text())


@pytest.mark.parametrize(
    "lose, kind, found",
    [
        pytest.param(lambda p: p.write_bytes(b"this is not a database at all" * 100), Kind.JOURNAL_CORRUPT, None, id="damaged"),
        pytest.param(lambda p: p.write_bytes(b""), Kind.JOURNAL_MISSING, "empty", id="zero-length"),
        pytest.param(lambda p: p.unlink(), Kind.JOURNAL_MISSING, "missing", id="deleted"),
    ],
)
def test_a_lost_journal_never_repeats_a_seq_and_names_the_range_that_is_gone(tmp_path: Path, lose, kind, found):
    path = tmp_path / "journal.db"
    assert _session(path, 3) == [1, 2, 3]
    mark = _reserved(path)
    assert mark["base"] == 1 and mark["reserved"] >= 3, "seqs are reserved beside the file before they are used"
    lose(path)
    second = _session(path, 2)
    assert second[0] > mark["reserved"] + 1, "the new journal continues above every seq ever reserved"
    stored = read_events(path, EventQuery(limit=None))
    alarm = stored[0]
    assert alarm.kind == kind and alarm.priority is Priority.ALARM
    assert alarm.seq == mark["reserved"] + 1
    assert alarm.body["lost_first_seq"] == 1 and alarm.body["lost_last_seq"] == mark["reserved"]
    assert alarm.body["first_seq"] == alarm.seq
    assert [e.seq for e in stored[1:]] == second
    assert _reserved(path)["base"] == alarm.seq
    assert alarm.body.get("found") == found


def test_a_zero_length_journal_is_journaled_not_started_silently(tmp_path: Path):
    path = tmp_path / "journal.db"
    path.write_bytes(b"")  # a journal that existed and is now empty, before any seq mark was kept
    _session(path, 1)
    stored = read_events(path, EventQuery(limit=None))
    assert [e.kind for e in stored] == [Kind.JOURNAL_MISSING, "telemetry.test"]
    assert stored[0].body["found"] == "empty" and stored[0].body["path"] == str(path)


def test_a_first_start_is_not_an_alarm(tmp_path: Path):
    path = tmp_path / "journal.db"
    assert _session(path, 2) == [1, 2]
    assert [e.kind for e in read_events(path, EventQuery(limit=None))] == ["telemetry.test"] * 2


def test_the_seq_mark_is_extended_a_block_at_a_time_before_seqs_pass_it(tmp_path: Path):
    path = tmp_path / "journal.db"
    store = Store(path, JournalLimits())
    store.mark.block = 10  # small blocks, so a few events cross several

    async def scenario():
        journal = await Journal.open(path, JournalLimits(max_batch=4), store=store)
        seqs = await asyncio.gather(*(journal.append(event(n=i)) for i in range(25)))
        await journal.close()
        return seqs

    seqs = run(scenario())
    assert _reserved(path)["reserved"] >= max(seqs)
    assert _reserved(path)["reserved"] < max(seqs) + 10 + 4, "one block at a time, not per event"


def test_an_event_the_database_refuses_costs_only_itself(tmp_path: Path):
    path = tmp_path / "j.db"

    async def scenario():
        journal = await Journal.open(path)
        twice = event(n=0)
        await journal.append(twice)
        batch = [event(n=i) for i in range(1, 4)]
        results = await asyncio.gather(journal.append(batch[0]), journal.append(twice), *(journal.append(e) for e in batch[1:]),
                                       return_exceptions=True)
        assert await journal.flush()
        await journal.close()
        return batch, results

    batch, results = run(scenario())
    assert isinstance(results[1], JournalError), "the same event appended twice is refused, and its producer told"
    stored = read_events(path, EventQuery(limit=None))
    by_id = {e.id: e.seq for e in stored}
    assert [by_id[e.id] for e in batch] == [results[0], *results[2:]], "the rest of its batch is written"
    (lost,) = [e for e in stored if e.kind == Kind.JOURNAL_EVENTS_LOST]
    assert lost.body["reason"] == "write_refused" and lost.body["lost"] == 1 and lost.body["first_seq"] == results[0] + 1


def test_evicted_ranges_are_kept_and_explain_every_hole_a_pull_page_shows(tmp_path: Path):
    path = tmp_path / "j.db"
    limits = JournalLimits(cap_bytes=128 * 1024, telemetry_retention_s=3600, maintenance_every_s=3600)
    old = 1_000_000_000 * 1_700_000_000

    async def scenario():
        journal = await Journal.open(path, limits)
        for batch in range(2):  # two retention passes in a row stay one range
            await journal.append(event(Priority.ACCESS, "access.decision", "door-main"))
            await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", wall_ns=old))
            await journal.maintain_now()
        for i in range(200):
            await journal.append(event(Priority.ACCESS, "access.decision", "door-main", n=i, pad="a" * 300))
            await journal.append(event(Priority.TELEMETRY, "telemetry.reading", "meter-1", n=i, pad="t" * 300))
        await journal.maintain_now()
        head = journal.head_seq
        await journal.close()
        return head

    head = run(scenario())
    gaps = gaps_between(path, 0, head)
    (retention,) = [g for g in gaps if g.reason == "telemetry_retention"]
    assert (retention.first_seq, retention.events) == (2, 2), "consecutive retention passes extend one range"
    assert [g.reason for g in gaps if g is not retention] == ["disk_cap"]
    held = {e.seq for e in read_events(path, EventQuery(limit=None))}
    holes = [s for s in range(1, head + 1) if s not in held]
    assert holes and all(any(g.first_seq <= s <= g.last_seq for g in gaps) for s in holes), "every hole is explained"

    page = json.loads(pull.answer(path, "test-house", pull.PullRequest(0, 1000), head, 256 * 1024))
    assert page["gaps"] == [g.as_dict() for g in gaps]
    later = json.loads(pull.answer(path, "test-house", pull.PullRequest(max(g.last_seq for g in gaps), 1000), head, 256 * 1024))
    assert later["gaps"] == [], "a page past every hole explains nothing"
