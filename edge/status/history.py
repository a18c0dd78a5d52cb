"""The page's look back, read from the journal: recent events, the charts of the last hours, the alarm
history of the last week, and the event kinds in words. Every read runs on the server's reader threads
through read-only connections; at most two chart or alarm queries at a time, more wait their turn.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edge.conditions import ActiveConditions, Severity, ending_kinds, raising_kinds
from edge.events import Priority
from edge.journal import EventQuery, read_events
from edge.events.kinds import table as event_words
from edge.status.tail import dumps

if TYPE_CHECKING:
    from edge.status.server import StatusServer

HISTORY_MAX_HOURS = 24
HISTORY_POINTS = 240
HISTORY_ROWS = 50_000  # a day of one circuit's telemetry is far less; the cap keeps a request cheap
ALARM_HISTORY_DAYS = 7
ALARM_HISTORY_EVENTS = 20_000  # raises and ends read per request (the newest): a week of a busy building is far less
ALARM_PAGE_MAX = 200


class History:
    """`/api/events`, `/api/history`, `/api/alarms` and `/api/words` of one server."""

    def __init__(self, server: StatusServer) -> None:
        self.server = server  # its reader threads are new at each run: read through it
        self._queries = asyncio.Semaphore(2)  # chart queries at a time; more wait their turn

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/events", self._events), web.get("/api/history", self._history),
                web.get("/api/alarms", self._alarms), web.get("/api/words", self._words)]

    async def _events(self, request: web.Request) -> web.Response:
        try:
            priority = Priority[request.query.get("priority", "fault").upper()]
            limit = max(1, min(500, int(request.query.get("limit", "100"))))
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="priority: telemetry|fault|access|alarm; limit: 1-500") from None
        query = EventQuery(min_priority=priority, limit=limit, newest_first=True)
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(self.server.reader, read_events, self.server.journal.path, query)
        return web.json_response([e.as_dict() for e in events], dumps=dumps)

    async def _history(self, request: web.Request) -> web.Response:
        """Charts of the last hours: each point's telemetry from the journal, thinned to a chart's width."""
        try:
            hours = max(0.1, min(HISTORY_MAX_HOURS, float(request.query.get("hours", "6"))))
        except ValueError:
            raise web.HTTPBadRequest(text="hours: a number up to 24") from None
        query = EventQuery(since_ns=time.time_ns() - int(hours * 3600e9), kinds=("telemetry.point",), limit=HISTORY_ROWS, newest_first=True)
        loop = asyncio.get_running_loop()
        async with self._queries:
            series = await loop.run_in_executor(self.server.reader, _series, self.server.journal.path, query)
        return web.json_response(series, dumps=dumps)

    async def _alarms(self, request: web.Request) -> web.Response:
        """The alarm history: every alarm and warning raised in the last 7 days, newest first, each with
        how it ended; paged by `before` (a seq) and `limit`, so a long week never leaves in one answer."""
        try:
            limit = max(1, min(ALARM_PAGE_MAX, int(request.query.get("limit", "50"))))
            before = int(request.query["before"]) if "before" in request.query else None
        except ValueError:
            raise web.HTTPBadRequest(text=f"limit: 1-{ALARM_PAGE_MAX}; before: a seq") from None
        loop = asyncio.get_running_loop()
        async with self._queries:
            history = await loop.run_in_executor(self.server.reader, alarm_history, self.server.journal.path, time.time(), before, limit)
        return web.json_response(history, dumps=dumps)

    async def _words(self, request: web.Request) -> web.Response:
        """Event kinds in words (every part's, composed by edge/events/kinds.py), fetched once by the page."""
        return web.json_response(event_words(), headers={"Cache-Control": "max-age=3600"})


def alarm_history(path: Path, now: float, before: int | None, limit: int) -> dict[str, Any]:
    """Alarms and warnings raised in the last ALARM_HISTORY_DAYS, newest first, each paired with its
    end by the same fold every view uses (`edge.conditions`); `next` pages on (blocking)."""
    since = now - ALARM_HISTORY_DAYS * 86400
    conditions = ActiveConditions()
    kinds = tuple(sorted(raising_kinds(conditions.rules) | ending_kinds(conditions.rules)))
    events = read_events(path, EventQuery(since_ns=int(since * 1e9), kinds=kinds, limit=ALARM_HISTORY_EVENTS, newest_first=True))
    rows: dict[int, dict[str, Any]] = {}
    for event in events:  # the newest ALARM_HISTORY_EVENTS, in seq order
        at = event.wall_ns / 1e9
        rule = conditions.rule_of(event.kind)
        earlier = conditions.active.get((rule.raised_by, rule.key(event))) if rule is not None else None
        ended = conditions.apply(event)
        if ended is not None and ended.seq in rows:
            rows[ended.seq] |= {"ended_at": at, "ended_by": event.kind}
        if earlier is not None and earlier.seq in rows and rows[earlier.seq]["ended_at"] is None:
            lapsed = earlier.until is not None and earlier.until < at  # a one-shot that had ended by itself
            rows[earlier.seq] |= {"ended_at": earlier.until, "ended_by": "time"} if lapsed else {"ended_at": at, "ended_by": "raised again"}
        if rule is not None and (raised := conditions.active.get((rule.raised_by, rule.key(event)))) is not None \
                and raised.seq == event.seq and raised.severity is not Severity.FAULT:  # faults are the gateway's own
            rows[event.seq] = raised.as_json() | {"ended_at": None, "ended_by": None}
    for row in rows.values():  # a one-shot alarm nothing ended ends by itself
        if row["ended_at"] is None and row["until"] is not None and row["until"] <= now:
            row |= {"ended_at": row["until"], "ended_by": "time"}
    newest = sorted((r for r in rows.values() if before is None or r["seq"] < before), key=lambda r: -r["seq"])
    page = newest[:limit]
    return {"since": since, "days": ALARM_HISTORY_DAYS, "rows": page, "total": len(rows),
            "next": page[-1]["seq"] if len(newest) > limit else None, "complete": len(events) < ALARM_HISTORY_EVENTS}


def _series(path: Path, query: EventQuery) -> dict[str, Any]:
    """{owner: {point: [[t, v], ...]}}, each series thinned to at most HISTORY_POINTS (blocking)."""
    series: dict[str, dict[str, list[list[float]]]] = {}
    for event in read_events(path, query):
        value = event.body.get("value")
        if isinstance(value, int | float):
            series.setdefault(event.source, {}).setdefault(str(event.body.get("point")), []).append([round(event.wall_ns / 1e9, 1), value])
    for points in series.values():
        for point, rows in points.items():
            step = max(1, len(rows) // HISTORY_POINTS)
            points[point] = rows[::step]
    return series
