"""The conditions of measured field points, circuits' and water points' alike: a point over or
under its limits, not read, or faulty; a device offline or unidentified. A cut circuit is
power's own (edge/power/conditions.py)."""

from __future__ import annotations

from edge.conditions import AtRestart, Rule, Severity
from edge.events import Kind, StoredEvent

_CONDITION_WORDS = {
    "over_threshold": "above its limit",
    "under_threshold": "below its limit",
    "rate_of_change": "changing too fast",
    "stale": "not read",
    "sensor_fault": "sensor fault",
    "invalid": "reading voided by the device",
    "status": "device reports a fault",
}


def _point_key(e: StoredEvent) -> str:
    return f"{e.source}|{e.body.get('point')}|{e.body.get('condition')}"


def _severity(e: StoredEvent) -> Severity:
    return Severity.WARNING if e.body.get("severity") == "warning" else Severity.ALARM


def _point(e: StoredEvent) -> str:
    condition = str(e.body.get("condition"))
    words = _CONDITION_WORDS.get(condition, condition.replace("_", " "))
    reading, unit, point = e.body.get("reading"), e.body.get("unit") or "", e.body.get("point")
    if condition == "stale":
        return f"{e.source} {point}: {words} for {reading} s"
    if isinstance(reading, int | float) and condition != "sensor_fault":
        return f"{e.source} {point}: {words} ({reading:g} {unit}, limit {e.body.get('threshold')} {unit})"
    return f"{e.source} {point}: {words}"


def _unidentified(e: StoredEvent) -> str:
    return (f"Device {e.source} unidentified: {e.body.get('detail')}; watched by its base map only, "
            "identify retried with backoff")


CONDITIONS = (
    Rule(Kind.CONDITION_RAISED, _point, ended_by=(Kind.CONDITION_CLEARED,), severity=_severity, key=_point_key,
         at_restart=AtRestart.RECHECK),
    Rule(Kind.DEVICE_UNIDENTIFIED, _unidentified, ended_by=(Kind.DEVICE_IDENTIFIED,), severity=Severity.FAULT),
    Rule(Kind.DEVICE_OFFLINE, lambda e: f"Device {e.source} offline: {e.body.get('reason')}", ended_by=(Kind.DEVICE_BACK,),
         severity=Severity.FAULT),
)
