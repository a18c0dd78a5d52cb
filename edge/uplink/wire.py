"""The wire form of a list of events: a JSON object whose `events` holds as many as fit.

Batches pushed upstream and pages pulled by the cloud share it, so both stay under the
broker's packet size the same way: whole events only, and never fewer than one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edge.events import StoredEvent

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def fit(events: Sequence[StoredEvent], budget: int) -> list[bytes]:
    """The events' JSON, oldest first, as many as fit in `budget` bytes (at least one)."""
    parts: list[bytes] = []
    size = 0
    for event in events:
        part = encode(event.as_dict()).encode()
        if parts and size + len(part) + 1 > budget:
            break
        parts.append(part)
        size += len(part) + 1
    return parts


def message(header: dict[str, Any], parts: Sequence[bytes]) -> bytes:
    """`header` with an `events` list of already encoded events."""
    return encode(header)[:-1].encode() + b',"events":[' + b",".join(parts) + b"]}"
