"""Inactivity watch: a resident in care who has not passed a door within their limit gets a visit.

Who is watched is set by the cloud (signed command `care.set`, also on the control socket):
the tenant, the limit in hours, the care contact, quiet hours, and a known absence. The
records live in STATE_DIR/care.json (written atomically, off the loop). When they last
passed is never kept in memory alone: it is read from the journal (granted access
decisions of the tenant's credentials), so a restart neither forgets a silence nor raises
a second alert for one already raised (the alert names the pass it counts from). Passes are
also heard live from the bus as the journal admits them: while the disk refuses writes the
journal's file stands still (or cannot be read at all), and a resident who walks past the gate
then must not be reported silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import structlog
from pydantic import Field, StringConstraints, ValidationError

from edge.runtime import pools
from edge.events.bus import Subscriber
from edge.community.notifier import Alarm, Notifier
from edge.community.settings import AlarmKind, Route
from edge.events import Event, Priority
from edge.community.kinds import CommunityKind
from edge.doors.kinds import DoorKind
from edge.journal import EventQuery, Journal, read_events
from edge.journal.follower import Follower
from edge.runtime.pools import Pool
from edge.config.settings import Strict
from edge.runtime.state_files import StateFile

log = structlog.get_logger("edge.community.inactivity")

CARE_FILE = "care.json"
KEY_PREFIX = 12
SCAN_PAGE = 2000
_Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
_Hours = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Care(Strict):
    """One resident's watch."""

    tenant: _Id
    limit_hours: float = Field(gt=0, le=24 * 14)
    contact: _Id = Field(description="A community.contacts name: who is told.")
    area: _Id = Field("care", description="Where they live, for the message and for routes.")
    quiet_hours: _Hours | None = Field(None, description="Local HH:MM-HH:MM in which no alert is raised (night).")
    away_until: datetime | None = Field(None, description="A known absence: no alert before this.")
    since: datetime = Field(default_factory=lambda: datetime.now(timezone.utc), description="Counted from here when no pass is known.")


@dataclass(frozen=True, slots=True)
class LastPass:
    seq: int
    wall: datetime


def overdue(care: Care, last: LastPass | None, now: datetime, zone: ZoneInfo) -> bool:
    """Pure: has the resident been silent past the limit, outside quiet hours and absences?"""
    if care.away_until is not None and now < care.away_until:
        return False
    if care.quiet_hours is not None and _in_quiet_hours(care.quiet_hours, now.astimezone(zone)):
        return False
    start = max(care.since, care.away_until or care.since, last.wall if last else care.since)
    return now - start >= timedelta(hours=care.limit_hours)


def _in_quiet_hours(span: str, local: datetime) -> bool:
    begin, end = (int(h) * 60 + int(m) for h, m in (part.split(":") for part in span.split("-")))
    minute = local.hour * 60 + local.minute
    return begin <= minute < end if begin <= end else minute >= begin or minute < end


async def last_pass(decisions: Follower, prefixes: set[str], known: LastPass | None = None) -> LastPass | None:
    """The newest granted decision of these credentials that `decisions` (a follower of access
    decisions) reaches from where it stands, else `known`; the follower moves past what it read."""
    async with contextlib.aclosing(decisions.pages(SCAN_PAGE)) as pages:
        async for page in pages:
            for event in page:
                if event.body.get("granted") and event.body.get("credential") in prefixes:
                    known = LastPass(event.seq, event.wall)
    return known


def alerted_for(journal: Path, tenant: str) -> set[int]:
    """The passes (seq, 0 for none) whose silence has already raised an alert: from the journal."""
    alerts = read_events(journal, EventQuery(kinds=(str(CommunityKind.INACTIVITY_ALERT),), limit=None))
    return {int(e.body.get("last_pass_seq") or 0) for e in alerts if e.body.get("tenant") == tenant}


class InactivityWatch:
    def __init__(
        self,
        state_dir: Path,
        zone: str,
        journal: Journal,
        notifier: Notifier,
        credentials: Callable[[], Any],
        contacts: set[str],
        check_s: float,
        wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.path = state_dir / CARE_FILE
        self.zone = ZoneInfo(zone)
        self.journal = journal
        self.notifier = notifier
        self.credentials = credentials
        self.contacts = contacts
        self.check_s = check_s
        self._wall = wall
        self.cares: dict[str, Care] = {}
        self._last: dict[str, LastPass | None] = {}  # tenant -> newest pass read from the journal
        self._scans: dict[str, Follower] = {}  # tenant -> how far the journal has been read for them
        self._heard: dict[str, LastPass] = {}  # tenant -> newest pass heard on the bus
        self._watched: dict[str, str] = {}  # credential key prefix -> watched tenant (as of the last check)
        self._alerted: dict[str, set[int]] = {}
        self.checks = 0
        self._io = asyncio.Lock()
        self.file = StateFile(self.path, "care watches across a restart (the watch itself runs from memory)", journal)

    async def set_care(self, args: dict[str, Any]) -> dict[str, Any]:
        """The `care.set` operation: {tenant, limit_hours, contact, ...} to watch, or {tenant, end: true}."""
        operator = args.get("operator")
        if not isinstance(operator, str) or not operator.strip():
            return {"ok": False, "error": "an operator id is required"}
        fields = {k: v for k, v in args.items() if k not in ("op", "operator", "end")}
        if args.get("end"):
            tenant = fields.get("tenant")
            if self.cares.pop(tenant, None) is None:
                return {"ok": False, "error": f"no care watch for {tenant!r}"}
            body = {"tenant": tenant, "ended": True}
        else:
            try:
                care = Care.model_validate(fields)
            except ValidationError as invalid:
                return {"ok": False, "error": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())}
            if care.contact not in self.contacts:
                return {"ok": False, "error": f"unknown contact {care.contact!r}: not in community.contacts"}
            self.cares[care.tenant] = care
            body = care.model_dump(mode="json")
        async with self._io:
            try:
                await pools.call(Pool.FILES, _save, self.path, {t: c.model_dump(mode="json") for t, c in self.cares.items()})
            except OSError as refused:  # a refusing disk costs the restart memory, never the watch
                await self.file.refused(refused)
                saved = False
            else:
                await self.file.written()
                saved = True
        seq = await self.journal.append(Event(kind=CommunityKind.CARE_SET, priority=Priority.ACCESS, source="care",
                                              body={**body, "operator": operator, **({} if saved else {"saved": False})}))
        return {"ok": True, "seq": seq, **({} if saved else {"saved": False, "warning": "not saved: the state disk refuses writes"})}

    async def run(self) -> None:
        self.cares = {t: Care.model_validate(c) for t, c in (await pools.call(Pool.FILES, _load, self.path)).items()}
        with self.journal.bus.subscribe("inactivity", kinds=(DoorKind.ACCESS_DECISION,)) as decisions:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._hear(decisions))
                while True:
                    await self.check()
                    await asyncio.sleep(self.check_s)

    async def _hear(self, decisions: Subscriber) -> None:
        """Passes of watched residents as the journal admits them (a pass whose seq is not known
        yet is left to the journal scan, which finds it once it is written)."""
        async for notice in decisions:
            tenant = self._watched.get(notice.body.get("credential")) if notice.body.get("granted") else None
            if tenant is not None and notice.seq is not None:
                heard = self._heard.get(tenant)
                if heard is None or notice.seq > heard.seq:
                    self._heard[tenant] = LastPass(notice.seq, notice.event.wall)

    async def check(self) -> None:
        store = self.credentials()
        owned = await pools.call(Pool.FILES, store.list) if store is not None else []
        now = self._wall()
        self._watched = {c.key[:KEY_PREFIX]: c.tenant for c in owned if c.tenant in self.cares}
        for tenant, care in list(self.cares.items()):
            prefixes = {c.key[:KEY_PREFIX] for c in owned if c.tenant == tenant}
            scan = self._scans.setdefault(tenant, Follower(self.journal, f"inactivity-{tenant}", 0, (DoorKind.ACCESS_DECISION,)))
            known = self._last.get(tenant)
            try:
                known = await last_pass(scan, prefixes, known)
                if tenant not in self._alerted:
                    self._alerted[tenant] = await pools.call(Pool.READS, alerted_for, self.journal.path, tenant)
            except (sqlite3.Error, OSError) as unreadable:  # a refusing disk: what the bus heard still counts
                log.warning("journal unreadable; passes heard live only", tenant=tenant, error=str(unreadable))
            self._last[tenant] = known
            heard = self._heard.get(tenant)
            if heard is not None and (known is None or heard.seq > known.seq):
                known = heard
            alerted = self._alerted.get(tenant, set())  # unknown while the journal cannot be read: a second alert beats none
            counted_from = known.seq if known else 0
            if counted_from in alerted or not overdue(care, known, now, self.zone):
                continue
            self._alerted.setdefault(tenant, set()).add(counted_from)
            event = Event(kind=CommunityKind.INACTIVITY_ALERT, priority=Priority.ALARM, source="care", body={
                "tenant": tenant, "area": care.area, "limit_hours": care.limit_hours, "contact": care.contact,
                "last_pass_seq": known.seq if known else None,
                "last_pass": known.wall.isoformat() if known else None,
            })
            log.warning("inactivity", event_id=event.id, **event.body)
            await self.journal.append(event)
            route = Route(name=f"care-{care.contact}", notify=[care.contact])
            self.notifier.alarm(Alarm(AlarmKind.INACTIVITY, care.area, tenant, event.id, time.monotonic(),
                                      f"{care.limit_hours:g}小时未出入", route=route))
        self.checks += 1


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as unreadable:  # a worker that restarts on it would watch nobody
        log.error("care watches unreadable; none is watched until set again", path=str(path), error=str(unreadable))
        return {}


def _save(path: Path, records: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as out:
        json.dump(records, out, ensure_ascii=False)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
