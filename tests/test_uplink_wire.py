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
