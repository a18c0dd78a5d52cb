"""The conditions community safety holds active: smoke, panic, intrusion, a resident not seen,
a notification that reached nobody, a detector in trouble.

Smoke ends when the detector reads clear. Panic, intrusion and inactivity are incidents: they
end when someone acknowledges them (`notify.acknowledged` names the incident, which is the
raising event's id), or at a restart, where the notifier's incidents do not survive.
"""

from __future__ import annotations

from edge.conditions import Rule, Severity
from edge.events import StoredEvent
from edge.community.kinds import CommunityKind

ONE_SHOT_S = 3600.0


def _incident(e: StoredEvent) -> str:
    return e.id


def _acknowledged(e: StoredEvent) -> str:
    return str(e.body.get("incident"))


def _where(e: StoredEvent) -> str:
    area = e.body.get("area")
    return f" in {area}" if area else ""


CONDITIONS = (
    Rule(CommunityKind.SMOKE_ALARM, lambda e: f"Smoke at {e.source}{_where(e)}", ended_by=(CommunityKind.SMOKE_CLEARED,)),
    Rule(CommunityKind.PANIC_ALARM, lambda e: f"Panic button {e.source}{_where(e)} pressed", ended_by=(CommunityKind.NOTIFICATION_ACKNOWLEDGED,),
         key=_incident, end_key=_acknowledged),
    Rule(CommunityKind.INTRUSION_ALARM, lambda e: f"Intrusion at {e.source}{_where(e)}", ended_by=(CommunityKind.NOTIFICATION_ACKNOWLEDGED,),
         key=_incident, end_key=_acknowledged),
    Rule(CommunityKind.INACTIVITY_ALERT, lambda e: f"Resident in care{_where(e)} not seen at any door within their limit",
         ended_by=(CommunityKind.NOTIFICATION_ACKNOWLEDGED,), key=_incident, end_key=_acknowledged),
    Rule(CommunityKind.NOTIFICATION_UNDELIVERED, lambda e: f"Alarm {e.body.get('alarm')}{_where(e)} reached nobody: {e.body.get('problem')}",
         ended_by=(CommunityKind.NOTIFICATION_ACKNOWLEDGED,), key=_acknowledged, lasts_s=ONE_SHOT_S),
    Rule(CommunityKind.DETECTOR_TROUBLE, lambda e: f"Detector {e.source} needs service: {e.body.get('trouble') or e.body.get('detail') or 'trouble'}",
         ended_by=(CommunityKind.DETECTOR_TROUBLE_CLEARED,), severity=Severity.FAULT, key=lambda e: f"{e.source}|{e.body.get('trouble')}"),
)
