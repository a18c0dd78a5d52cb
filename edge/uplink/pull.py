"""The cloud's pull of a range of the log: one request, one page back.

The request (a signed envelope of kind `pull`) asks for events after `after_seq`, at most
`limit`. The page carries the events still retained, in seq order, and
`first_retained_seq`: when that is above `after_seq + 1`, the events in between were
evicted from the journal (the disk cap or telemetry retention) and no pull will bring
them back, so the cloud sees the gap instead of waiting for it. `gaps` explains holes in
the middle of the page's range (evicted, lost while the disk refused writes, never used). `next_after_seq` and
`more` say where the next page starts. The same query runs on site as
`edge events --after-seq`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.journal import events_after, first_retained_seq, gaps_between
from edge.uplink import wire
from edge.uplink.topics import WIRE_VERSION

MAX_PAGE_EVENTS = 1000
MAX_PAGE_GAPS = 32
MAX_SEQ = 2**63 - 1  # SQLite's largest integer: a larger after_seq cannot even be asked


class BadPull(ValueError):
    """The request's body is not a pull request."""


@dataclass(frozen=True, slots=True)
class PullRequest:
    after_seq: int
    limit: int

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> "PullRequest":
        after, limit = body.get("after_seq"), body.get("limit", MAX_PAGE_EVENTS)
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_SEQ:
            raise BadPull(f"after_seq must be an integer from 0 to {MAX_SEQ}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise BadPull("limit must be a positive integer")
        return cls(after, min(limit, MAX_PAGE_EVENTS))


def answer(journal_path: Path, building: str, request: PullRequest, head_seq: int, max_bytes: int) -> bytes:
    """One page of the log for `request`, at most `max_bytes` long (always at least one event)."""
    events = events_after(journal_path, request.after_seq, request.limit)
    span = events[-1].seq if events else max(request.after_seq, head_seq)
    gaps = [gap.as_dict() for gap in gaps_between(journal_path, request.after_seq, span, MAX_PAGE_GAPS)]
    parts = wire.fit(events, max_bytes - 512 - len(json.dumps(gaps)))  # 512: room for the rest of the header
    sent = events[: len(parts)]
    more = len(parts) < len(events) or (len(events) == request.limit and events[-1].seq < head_seq)
    next_after = sent[-1].seq if sent else max(request.after_seq, head_seq)
    header = {
        "v": WIRE_VERSION,
        "building": building,
        "after_seq": request.after_seq,
        "first_retained_seq": first_retained_seq(journal_path),
        "head_seq": head_seq,
        "next_after_seq": next_after,
        "more": more,
        "gaps": [gap for gap in gaps if gap["first_seq"] <= next_after],
    }
    return wire.message(header, parts)
