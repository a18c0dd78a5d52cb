"""Telling people: each alarm becomes an incident that walks its route until acknowledged.

For every recipient of a route a `notify.sent` event is journaled; the uplink carries it to
the cloud, which delivers it (app push, a call). A recipient with the SMS channel also gets
an SMS from the gateway's own modem when the uplink is down, or when the cloud has not
taken the notification within `cloud_confirm_s`. A route with `ack_within_s` escalates to
its `escalate_to` route when nobody acknowledges in time; acknowledgement comes from the
`alarm.ack` operation (control socket or signed cloud command) or a local button.

Every step is journaled with the milliseconds since detection, so detection to each
notification, SMS and acknowledgement can be read back from the journal alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from edge.drivers.modbus.observations import Reading
from edge.drivers.modem.at import ModemError
from edge.community.routing import Incident, RoutingTable
from edge.community.settings import AlarmKind, Channel, CommunitySafety, Contact, Route
from edge.community.sms import SmsSender
from edge.community.sms_cap import SmsCap
from edge.events import Event, Kind, Priority
from edge.community.kinds import CommunityKind
from edge.journal import Journal

log = structlog.get_logger("edge.community.notifier")

TICK_S = 0.2
MAX_INCIDENTS = 512  # open and recently closed; the oldest closed go first
MAX_SMS_QUEUED = 256
MODEM_CHECK_S = 60.0
RETRY_DELAYS_S = (1.0, 3.0, 10.0, 30.0)

LABELS = {
    AlarmKind.SMOKE: "烟雾报警",
    AlarmKind.PANIC: "紧急求助",
    AlarmKind.INTRUSION: "入侵报警",
    AlarmKind.TROUBLE: "设备故障",
    AlarmKind.INACTIVITY: "独居关怀：长时间未出入",
}


@dataclass(frozen=True, slots=True)
class Alarm:
    """What an alarm input hands the notifier, once its event is journaled."""

    kind: AlarmKind
    area: str
    source: str
    event_id: str
    detected: float  # monotonic, when the reading that raised it was taken
    detail: str = ""
    route: Route | None = None  # told instead of the table's routes (a resident's own care contact)


@dataclass
class _Pending:
    """A notification waiting for the cloud to take it, else it goes by SMS."""

    seq: int | None
    incident: Incident
    contact: Contact
    deadline: float


@dataclass(frozen=True, slots=True)
class _Sms:
    incident: Incident
    contact: Contact
    text: str
    attempt: int = 1
    errors: tuple[str, ...] = ()


@dataclass
class _Awaiting:
    incident: str
    recipient: str
    detected: float
    deadline: float


class Notifier:
    def __init__(
        self,
        building: str,
        timezone: str,
        settings: CommunitySafety,
        journal: Journal,
        *,
        uplink_up: Callable[[], bool],
        cloud_took: Callable[[int], bool],
        sms: SmsSender | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.building = building
        self.zone = ZoneInfo(timezone)
        self.settings = settings
        self.journal = journal
        self.table = RoutingTable(settings)
        self.uplink_up = uplink_up
        self.cloud_took = cloud_took
        self.sms = sms
        self.cap = SmsCap(settings.sms_per_hour)
        self._clock = clock
        self.incidents: OrderedDict[str, Incident] = OrderedDict()
        # One entry per alarm input change or button press (never telemetry): bounded by the inputs.
        self._intake: deque[Alarm | tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._pending: list[_Pending] = []
        self._outbox: asyncio.Queue[_Sms] = asyncio.Queue(MAX_SMS_QUEUED)
        # Failed messages waiting for their next attempt, (due, sms): the modem meanwhile serves the
        # others, so one recipient's retries never hold up an escalation. Bounded like the outbox.
        self._retries: list[tuple[float, _Sms]] = []
        self._awaiting: dict[int, _Awaiting] = {}  # delivery reports by message reference
        self._buttons: dict[str, bool] = {}
        self.ticks = 0  # passes of the escalation clock: tests wait on it to see a deadline judged

    def retune(self, settings: CommunitySafety) -> None:
        """A reload's contacts, routes and rates: incidents open now are told to whom the new routes
        name from their next step on; what was already sent or is waiting for the modem goes on."""
        self.settings = settings
        self.table = RoutingTable(settings)
        self.cap.per_hour = settings.sms_per_hour

    # --- in --------------------------------------------------------------------------

    def alarm(self, alarm: Alarm) -> None:
        """An alarm to notify (called on the loop, after its event is journaled); never blocks."""
        self._intake.append(alarm)
        self._wake.set()

    def button(self, area: str) -> Callable[[Reading], None]:
        """A field bus listener for a local acknowledge button covering `area`."""

        def pressed(reading: Reading) -> None:
            key = f"{reading.device}.{reading.point}"
            was, self._buttons[key] = self._buttons.get(key, False), bool(reading.value)
            if reading.value and not was:
                self._intake.append((area, f"button:{key}"))
                self._wake.set()

        return pressed

    async def acknowledge(self, request: dict[str, Any]) -> dict[str, Any]:
        """The `alarm.ack` operation: {incident: ID | area: AREA, operator: ID}."""
        operator = request.get("operator")
        if not isinstance(operator, str) or not operator.strip():
            return {"ok": False, "error": "an operator id is required"}
        incident, area = request.get("incident"), request.get("area")
        if not isinstance(incident, str) and not isinstance(area, str):
            return {"ok": False, "error": "say which alarm: incident (its event id) or area"}
        matched = [i for i in self.incidents.values() if i.open and (i.id == incident or (area is not None and area in ("*", i.area)))]
        if not matched:
            return {"ok": False, "error": f"no open alarm {'with id ' + repr(incident) if incident else 'in area ' + repr(area)}"}
        seqs = [await self._ack(i, operator.strip(), "command") for i in matched]
        return {"ok": True, "acknowledged": [i.id for i in matched], "seqs": seqs}

    # --- the worker ------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._ticking())
            group.create_task(self._sending())
            if self.sms is not None:
                group.create_task(self._modem_watch())
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._intake:
                    item = self._intake.popleft()
                    if isinstance(item, Alarm):
                        await self._open(item)
                    else:
                        area, via = item
                        for incident in [i for i in self.incidents.values() if i.open and area in ("*", i.area)]:
                            await self._ack(incident, via, "button")

    async def _open(self, alarm: Alarm) -> None:
        now = self._clock()
        incident = Incident(alarm.event_id, alarm.kind, alarm.area, alarm.source, alarm.detected, alarm.detail)
        self._remember(incident)
        routes = [alarm.route] if alarm.route is not None else self.table.first(alarm.kind, alarm.area)
        if not routes:
            await self._journal(CommunityKind.NOTIFICATION_UNDELIVERED, incident, {"problem": "no route covers this alarm"})
            return
        for route in routes:
            await self._tell(incident, route, now, level=0)

    def _remember(self, incident: Incident) -> None:
        self.incidents[incident.id] = incident
        while len(self.incidents) > MAX_INCIDENTS:
            closed = next((key for key, i in self.incidents.items() if not i.open), None)
            self.incidents.pop(closed if closed is not None else next(iter(self.incidents)))

    async def _tell(self, incident: Incident, route: Route, now: float, level: int) -> None:
        incident.tell(route, now)
        for contact in self.table.recipients(route):
            channel = Channel.CLOUD if Channel.CLOUD in contact.channels else Channel.SMS
            seq = await self._journal(CommunityKind.NOTIFICATION_SENT, incident, {
                "route": route.name, "level": level, "recipient": contact.name, "role": str(contact.role),
                "channel": str(channel), **({"ack_within_s": route.ack_within_s} if route.ack_within_s else {}),
            })
            if Channel.SMS in contact.channels and contact.phone:
                wait = self.settings.cloud_confirm_s if channel is Channel.CLOUD else 0.0
                self._pending.append(_Pending(seq, incident, contact, now + wait))
        self._settle(now)

    async def _ack(self, incident: Incident, operator: str, via: str) -> int | None:
        incident.acknowledged_by = operator
        self._pending = [p for p in self._pending if p.incident is not incident]
        return await self._journal(CommunityKind.NOTIFICATION_ACKNOWLEDGED, incident, {"operator": operator, "via": via})

    async def _ticking(self) -> None:
        while True:
            now = self._clock()
            for incident in list(self.incidents.values()):
                for source, target in incident.due(now, self.table):
                    await self._journal(CommunityKind.NOTIFICATION_ESCALATED, incident, {
                        "from": source.name, "to": target.name, "after_s": source.ack_within_s,
                    })
                    await self._tell(incident, target, now, level=len(incident.steps))
            self._settle(now)
            self._retry_due(now)
            await self._reports(now)
            self.ticks += 1
            await asyncio.sleep(TICK_S)

    def _settle(self, now: float) -> None:
        """Hand to SMS what the cloud has not taken in time, or cannot take (uplink down)."""
        keep = []
        for pending in self._pending:
            if pending.seq is not None and self.cloud_took(pending.seq):
                continue
            if (now >= pending.deadline or not self.uplink_up()) and self._queue_sms(pending):
                continue
            keep.append(pending)
        self._pending = keep

    def _queue_sms(self, pending: _Pending) -> bool:
        """False when the modem is hundreds of messages behind: the notification waits for room."""
        try:
            self._outbox.put_nowait(_Sms(pending.incident, pending.contact, self._text(pending.incident)))
        except asyncio.QueueFull:
            log.error("sms queue full; the message waits", incident=pending.incident.id, recipient=pending.contact.name)
            return False
        return True

    def _retry_due(self, now: float) -> None:
        """Failed messages whose wait is over go back to the outbox (behind what came meanwhile)."""
        waiting = []
        for due, sms in self._retries:
            if now < due or not self._requeue(sms):
                waiting.append((due, sms))
        self._retries = waiting

    def _requeue(self, sms: _Sms) -> bool:
        try:
            self._outbox.put_nowait(sms)
        except asyncio.QueueFull:
            return False
        return True

    def _text(self, incident: Incident) -> str:
        at = datetime.now(self.zone).strftime("%m-%d %H:%M")
        detail = incident.detail
        return f"【{self.building}】{LABELS[incident.kind]}：{incident.area} {incident.source}{(' ' + detail) if detail else ''}，{at}。编号{incident.id[-8:]}"

    async def _sending(self) -> None:
        while True:
            sms = await self._outbox.get()
            if not sms.incident.open:
                continue  # acknowledged while it waited
            if self.sms is None:
                await self._journal(CommunityKind.NOTIFICATION_UNDELIVERED, sms.incident, {
                    "recipient": sms.contact.name, "problem": "the cloud has not taken it and no modem is configured"})
                continue
            if sms.attempt == 1 and not self.cap.allow(sms.contact.name, str(sms.incident.kind), self._clock()):  # a retry was counted
                await self._journal(CommunityKind.SMS_CAPPED, sms.incident, {"recipient": sms.contact.name, "per_hour": self.settings.sms_per_hour}, Priority.FAULT)
                continue
            await self._send(sms)

    async def _send(self, sms: _Sms) -> None:
        """One attempt. A failure with attempts left waits its delay in `_retries`, not here: the
        modem goes on to the next message, so an escalation's SMS is never behind these retries."""
        assert self.sms is not None and sms.contact.phone is not None
        try:
            references = await self.sms.send(sms.contact.phone, sms.text)
        except ModemError as error:
            errors = (*sms.errors, f"{type(error).__name__}: {error}")
            log.warning("sms not sent", incident=sms.incident.id, attempt=sms.attempt, error=str(error))
            if sms.attempt < self.sms.settings.retries and len(self._retries) < MAX_SMS_QUEUED:
                due = self._clock() + RETRY_DELAYS_S[min(sms.attempt - 1, len(RETRY_DELAYS_S) - 1)]
                self._retries.append((due, replace(sms, attempt=sms.attempt + 1, errors=errors)))
                return
            await self._journal(CommunityKind.SMS_FAILED, sms.incident, {"recipient": sms.contact.name, "attempts": len(errors), "errors": list(errors[-3:])}, Priority.ALARM)
            return
        now = self._clock()
        for reference in references:
            self._awaiting[reference] = _Awaiting(sms.incident.id, sms.contact.name, sms.incident.raised_at, now + self.sms.settings.delivery_within_s)
        await self._journal(CommunityKind.SMS_SENT, sms.incident, {
            "recipient": sms.contact.name, "attempts": sms.attempt, "parts": len(references), "references": references,
        })

    async def _reports(self, now: float) -> None:
        if self.sms is None or not self._awaiting:
            return
        try:
            reports = await self.sms.poll()
        except ModemError as error:
            log.warning("modem poll failed", error=str(error))
            reports = []
        for report in reports:
            waiting = self._awaiting.pop(report.reference, None)
            if waiting is not None:
                await self.journal.append(Event(kind=CommunityKind.SMS_DELIVERED, priority=Priority.ALARM, source="sms", body={
                    "incident": waiting.incident, "recipient": waiting.recipient, "delivered": report.delivered, "status": report.status,
                    "since_detection_ms": round((now - waiting.detected) * 1000),
                }))
        for reference, waiting in list(self._awaiting.items()):
            if now >= waiting.deadline:
                del self._awaiting[reference]
                await self.journal.append(Event(kind=CommunityKind.SMS_FAILED, priority=Priority.ALARM, source="sms", body={
                    "incident": waiting.incident, "recipient": waiting.recipient, "reference": reference,
                    "errors": [f"no delivery report within {self.sms.settings.delivery_within_s:g} s"],
                }))

    async def _modem_watch(self) -> None:
        """Open the modem at start and check it every minute; a change of health is journaled."""
        assert self.sms is not None
        healthy: bool | None = None
        while True:
            try:
                status = await self.sms.check()
                problem = None
            except ModemError as error:
                problem = f"{type(error).__name__}: {error}"
            if (problem is None) != healthy:
                healthy = problem is None
                body = {"port": self.sms.settings.port}
                body |= {"signal": status.signal, "registration": status.registration} if problem is None else {"problem": problem}
                await self.journal.append(Event(kind=CommunityKind.MODEM_FAULT, priority=Priority.FAULT, source="modem", body={**body, "healthy": healthy}))
            await asyncio.sleep(MODEM_CHECK_S)

    async def _journal(self, kind: Kind, incident: Incident, body: dict[str, Any], priority: Priority = Priority.ALARM) -> int | None:
        event = Event(kind=kind, priority=priority, source=incident.source, body={
            "incident": incident.id, "alarm": str(incident.kind), "area": incident.area, **body,
            "since_detection_ms": round((self._clock() - incident.raised_at) * 1000),
        })
        log.info("notification", event_id=event.id, kind=str(kind), **event.body)
        return await self.journal.append(event)
