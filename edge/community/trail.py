"""Entry-trail search ("one-key search"): where and when one person, or anyone at one door, passed.

Entry records are personal data. A search needs an operator id, and every search is itself
journaled (who asked, for what, how many rows) before the rows are handed out, whether it
came from `edge trail` on site or from a signed cloud command. Answers are paged like the
journal pull: at most `limit` rows, and `next_after_seq` to ask for the rest.

The journal keeps no names: a tenant id is turned into the key prefixes of that tenant's
credentials (from the credential store), and decisions are matched on those.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError, model_validator

from edge.config import problem_lines
from edge.runtime import pools
from edge.events import Event, Priority, StoredEvent
from edge.community.kinds import CommunityKind
from edge.doors.kinds import DoorKind
from edge.journal import Journal
from edge.journal.follower import Follower
from edge.runtime.pools import Pool
from edge.config.settings import Strict

MAX_ROWS = 500
SCAN_PAGE = 2000
KEY_PREFIX = 12  # as edge/doors/access.py journals a credential

_Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class TrailRequest(Strict):
    """What a search may ask; pydantic lists every problem at once."""

    operator: _Id = Field(description="Staff id of whoever asks: required, journaled.")
    tenant: _Id | None = Field(None, description="Tenant id (the credential store's tenant).")
    credential: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12,64}$")] | None = Field(None, description="Credential key or its prefix.")
    door: _Id | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=MAX_ROWS)
    via: _Id = "command"

    @model_validator(mode="after")
    def _something_to_search(self) -> TrailRequest:
        if self.tenant is None and self.credential is None and self.door is None:
            raise ValueError("say whose trail: tenant, credential, or door (with since/until)")
        if self.door is not None and self.tenant is None and self.credential is None and self.since is None:
            raise ValueError("a door search needs a time window (since)")
        for stamp in (self.since, self.until):
            if stamp is not None and stamp.tzinfo is None:
                raise ValueError("times need a zone, e.g. 2026-11-29T08:00:00+08:00")
        return self


def parse_request(args: dict[str, Any]) -> TrailRequest:
    """ValueError with every problem, one line each."""
    try:
        return TrailRequest.model_validate({k: v for k, v in args.items() if k != "op"})
    except ValidationError as invalid:
        raise ValueError("; ".join(f"{problem_lines.dotted(e['loc'], 'request')}: {problem_lines.message(e)}"
                                   for e in invalid.errors())) from None


async def search(follower: Follower, request: TrailRequest, keys: Iterable[str] | None) -> tuple[list[dict[str, Any]], int | None]:
    """The passes, oldest first, and the seq to continue after (None when there is no more).

    `follower` reads the decisions and exits in the request's window from its after_seq (see
    `follower_for`); `keys`: the credential key prefixes to match (None: any credential, for a
    door search)."""
    prefixes = None if keys is None else {k[:KEY_PREFIX] for k in keys}
    rows: list[dict[str, Any]] = []
    async with contextlib.aclosing(follower.pages(SCAN_PAGE)) as pages:
        async for page in pages:
            for event in page:
                row = _row(event, request, prefixes)
                if row is None:
                    continue
                rows.append(row)
                if len(rows) == request.limit:
                    return rows, event.seq
    return rows, None


def follower_for(journal: Journal, request: TrailRequest) -> Follower:
    """A follower over the passes a request may see: decisions and exits, in its window, after its after_seq."""
    return Follower(journal, "trail", request.after_seq, (DoorKind.ACCESS_DECISION, DoorKind.DOOR_EXIT),
                    since_ns=None if request.since is None else int(request.since.timestamp() * 1e9),
                    until_ns=None if request.until is None else int(request.until.timestamp() * 1e9))


def _row(event: StoredEvent, request: TrailRequest, prefixes: set[str] | None) -> dict[str, Any] | None:
    """One pass as a search answers it, or None when the request does not ask for it."""
    body = event.body
    if request.door is not None and body.get("door") != request.door:
        return None
    if event.kind == DoorKind.DOOR_EXIT:
        if prefixes is not None:
            return None  # an exit button names nobody
    elif prefixes is not None and body.get("credential") not in prefixes:
        return None
    return {
        "seq": event.seq, "time": event.as_dict()["time"], "door": body.get("door"),
        "kind": "exit" if event.kind == DoorKind.DOOR_EXIT else "card", "granted": body.get("granted", True),
        "reason": body.get("reason"), "reader": body.get("reader"), "credential": body.get("credential"),
    }


def search_event(request: TrailRequest, rows: int, keys: int | None) -> Event:
    """The audit record of one search: who asked, for what, how many rows came back."""
    asked = {k: v for k, v in (("tenant", request.tenant), ("credential", request.credential), ("door", request.door)) if v is not None}
    window = {k: v.isoformat() for k, v in (("since", request.since), ("until", request.until)) if v is not None}
    return Event(kind=CommunityKind.TRAIL_SEARCHED, priority=Priority.ACCESS, source="trail", body={
        "operator": request.operator, "via": request.via, **asked, **window, "after_seq": request.after_seq,
        "rows": rows, **({"credentials": keys} if keys is not None else {}),
    })


class TrailSearch:
    """The `trail.search` operation (control socket and signed cloud command)."""

    def __init__(self, journal: Journal, credentials) -> None:
        self.journal = journal  # read through a follower; the search is journaled by the one writer
        self.credentials = credentials  # () -> CredentialStore | None

    async def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            request = parse_request(args)
        except ValueError as problem:
            return {"ok": False, "error": str(problem)}
        keys: list[str] | None = None
        if request.tenant is not None or request.credential is not None:
            keys = [request.credential] if request.credential is not None else []
            if request.tenant is not None:
                store = self.credentials()
                if store is None:
                    return {"ok": False, "error": "the credential store is unavailable: search by credential or door"}
                keys += [c.key for c in await pools.call(Pool.FILES, store.list) if c.tenant == request.tenant]
        rows, next_after = await search(follower_for(self.journal, request), request, keys)
        seq = await self.journal.append(search_event(request, len(rows), None if keys is None else len(keys)))
        return {"ok": True, "rows": rows, "next_after_seq": next_after, "search_seq": seq}
