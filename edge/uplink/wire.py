"""The wire form of a list of events: a JSON object whose `events` holds as many as fit.

Batches pushed upstream and pages pulled by the cloud share it, so both stay under the
broker's packet size the same way: whole events only, and never fewer than one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from json.encoder import encode_basestring as _string  # what `encode` does to a str (ensure_ascii=False)
from typing import Any

from edge.events import Priority, StoredEvent
from edge.journal.reading import _COLUMNS

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode

_PRIORITY = {priority: f'"{priority.name.lower()}"' for priority in Priority}


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event read for sending: its seq, its monotonic time and its wire form, nothing else."""

    seq: int
    mono_ns: int
    json: bytes


def encoded(rows: Sequence[tuple]) -> list[Encoded]:
    """Journal rows (`_COLUMNS`) in their wire form, made on the reader thread. The body is the
    journal's own JSON text, put in as it is: it was written by the same encoder with the same
    settings, so it is what decoding and encoding it again would give (tests/test_uplink_wire.py),
    without doing either for every event of a backlog."""
    out = []
    for seq, id_, wall_ns, mono_ns, kind, priority, source, body in rows:
        time = datetime.fromtimestamp(wall_ns / 1e9, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        out.append(Encoded(seq, mono_ns, (
            f'{{"seq":{seq},"id":{_string(id_)},"time":"{time}","mono_ns":{mono_ns},"kind":{_string(kind)},'
            f'"priority":{_PRIORITY[Priority(priority)]},"source":{_string(source)},"body":{body}}}').encode()))
    return out


assert _COLUMNS == "seq, id, wall_ns, mono_ns, kind, priority, source, body"  # the order `encoded` takes them in


def fit(events: Sequence[StoredEvent | Encoded], budget: int) -> list[bytes]:
    """The events' JSON, oldest first, as many as fit in `budget` bytes (at least one)."""
    parts: list[bytes] = []
    size = 0
    for event in events:
        part = event.json if isinstance(event, Encoded) else event_json(event)
        if parts and size + len(part) + 1 > budget:
            break
        parts.append(part)
        size += len(part) + 1
    return parts


def event_json(event: StoredEvent) -> bytes:
    """`encode(event.as_dict())`, the same bytes put together field by field: a backlog drain encodes
    every event, and a dict per event through the encoder cost most of it."""
    time = event.wall.isoformat(timespec="microseconds").replace("+00:00", "Z")  # as as_dict() writes it
    return (f'{{"seq":{event.seq},"id":{_string(event.id)},"time":"{time}","mono_ns":{event.mono_ns},'
            f'"kind":{_string(event.kind)},"priority":{_PRIORITY[event.priority]},"source":{_string(event.source)},'
            f'"body":{encode(event.body)}}}').encode()


def message(header: dict[str, Any], parts: Sequence[bytes]) -> bytes:
    """`header` with an `events` list of already encoded events."""
    return encode(header)[:-1].encode() + b',"events":[' + b",".join(parts) + b"]}"
