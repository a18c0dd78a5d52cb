"""The wire form of an event, put together field by field, is byte for byte what encoding `as_dict()` gives."""

from __future__ import annotations

from pathlib import Path

from edge.events import Priority, StoredEvent
from edge.uplink import wire

BODIES = [
    {},
    {"point": "phase_a_current", "value": 12.345, "unit": "A"},
    {"text": "é\u2028\"\\\n\t\x01 日本", "big": 2**70, "f": 1e16, "neg": -0.0, "nan": float("nan"), "inf": float("-inf"),
     "list": [1, None, True, {"x": []}], "ünï": "ok"},
    {"path": Path("/run/edge/x"), "raw": b"bytes", 3: "int key"},  # default=str, as the journal writes them
]


def test_event_json_is_the_encoded_dict():
    for n, body in enumerate(BODIES):
        for priority in Priority:
            event = StoredEvent(n * 10**12 + 1, 'id-"\u00e9', 1_700_000_000_123_456_789 + n * 999, 5 + n,
                                "alarm.smoke", priority, 'door "B"\\', body)
            assert wire.event_json(event) == wire.encode(event.as_dict()).encode()


def test_fit_keeps_whole_events_within_the_budget():
    events = [StoredEvent(seq, f"id-{seq}", 1_700_000_000_000_000_000, seq, "telemetry.point", Priority.TELEMETRY, "m",
                          {"n": seq, "pad": "x" * 50}) for seq in range(1, 11)]
    one = len(wire.event_json(events[0])) + 1
    parts = wire.fit(events, 3 * one)
    assert parts == [wire.event_json(e) for e in events[:3]]
    assert wire.fit(events, 1) == [wire.event_json(events[0])]  # never fewer than one


def test_rows_read_for_sending_are_what_the_stored_events_encode_to(tmp_path):
    """The push lanes take each row's wire form on the reader thread, the body as the journal's own JSON text:
    the same bytes as reading the event (its body decoded) and encoding it."""
    import asyncio

    from edge.events import Event
    from edge.journal import Journal
    from edge.journal.reading import _COLUMNS, _reader, _stored

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        try:
            for n, body in enumerate(BODIES):
                await journal.append(Event("alarm.smoke" if n % 2 else "telemetry.point", list(Priority)[n % 4], f"src-{n}\"", body))
        finally:
            await journal.close()

    asyncio.run(scenario())
    with _reader(tmp_path / "journal.db") as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq").fetchall()
    assert len(rows) == len(BODIES)
    encoded = wire.encoded(rows)
    assert [e.json for e in encoded] == [wire.event_json(e) for e in _stored(rows)]
    assert [(e.seq, e.mono_ns) for e in encoded] == [(e.seq, e.mono_ns) for e in _stored(rows)]
