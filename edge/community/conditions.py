"""The conditions community safety holds active: smoke, panic, intrusion, a resident not seen,
a notification that reached nobody, a detector in trouble.

Smoke ends when the detector reads clear. Panic, intrusion and inactivity are incidents: they
end when someone acknowledges them (`notify.acknowledged` names the incident, which is the
raising event's id), or at a restart, where the notifier's incidents do not survive.
"""

from __future__ import annotations

from edge.conditions import Rule, Severity
from edge.events import Kind, StoredEvent

ONE_SHOT_S = 3600.0


def _incident(e: StoredEvent) -> str:
    return e.id


def _acknowledged(e: StoredEvent) -> str:
    return str(e.body.get("incident"))


def _where(e: StoredEvent) -> str:
    area = e.body.get("area")
    return f" in {area}" if area else ""


CONDITIONS = (
    Rule(Kind.SMOKE_ALARM, lambda e: f"Smoke at {e.source}{_where(e)}", ended_by=(Kind.SMOKE_CLEARED,)),
    Rule(Kind.PANIC_ALARM, lambda e: f"Panic button {e.source}{_where(e)} pressed", ended_by=(Kind.NOTIFICATION_ACKNOWLEDGED,),
         key=_incident, end_key=_acknowledged),
    Rule(Kind.INTRUSION_ALARM, lambda e: f"Intrusion at {e.source}{_where(e)}", ended_by=(Kind.NOTIFICATION_ACKNOWLEDGED,),
         key=_incident, end_key=_acknowledged),
    Rule(Kind.INACTIVITY_ALERT, lambda e: f"Resident in care{_where(e)} not seen at any door within their limit",
         ended_by=(Kind.NOTIFICATION_ACKNOWLEDGED,), key=_incident, end_key=_acknowledged),
    Rule(Kind.NOTIFICATION_UNDELIVERED, lambda e: f"Alarm {e.body.get('alarm')}{_where(e)} reached nobody: {e.body.get('problem')}",
         ended_by=(Kind.NOTIFICATION_ACKNOWLEDGED,), key=_acknowledged, lasts_s=ONE_SHOT_S),
    Rule(Kind.DETECTOR_TROUBLE, lambda e: f"Detector {e.source} needs service: {e.body.get('trouble') or e.body.get('detail') or 'trouble'}",
         ended_by=(Kind.DETECTOR_TROUBLE_CLEARED,), severity=Severity.FAULT, key=lambda e: f"{e.source}|{e.body.get('trouble')}"),
)
