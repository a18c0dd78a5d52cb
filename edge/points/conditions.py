"""The conditions power and water hold active: a point over or under its limits, a cut circuit,
a device offline.

A circuit the gateway cut is a condition of its own from the confirmed trip until the confirmed
re-close, whatever its currents read (zero, because it is cut): floor 1 without power must say
so in every view. It outlives a restart (the cut is kept in the state dir, `edge/power/breakers.py`).
"""

from __future__ import annotations

from edge.conditions import AtRestart, Rule, Severity
from edge.events import Kind, StoredEvent
from edge.power.kinds import PowerKind

UNCONFIRMED_S = 86400.0  # a trip nobody confirmed: on the page for a day unless a trip or re-close ends it

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


def _cut(e: StoredEvent) -> str:
    reason = str(e.body.get("reason", "")).replace("_", " ")
    reading = e.body.get("reading")
    cause = f" {reading:g} {e.body.get('unit') or ''}".rstrip() if isinstance(reading, int | float) else ""
    return f"Circuit {e.body.get('circuit', e.source)} cut by the gateway: {reason}{cause}; no power until a technician re-closes it"


def _could_not_cut(e: StoredEvent) -> str:
    reading, unit = e.body.get("reading"), e.body.get("unit") or ""
    cause = f" ({e.body.get('point')} {reading:g} {unit})".replace(" )", ")") if isinstance(reading, int | float) else ""
    return (f"Circuit {e.body.get('circuit', e.source)} could not cut: {e.body.get('refused')}{cause}; "
            "power is still on, tried again as soon as the breaker allows it")


def _unidentified(e: StoredEvent) -> str:
    return (f"Device {e.source} unidentified: {e.body.get('detail')}; watched by its base map only, "
            "identify retried with backoff")


CONDITIONS = (
    Rule(Kind.CONDITION_RAISED, _point, ended_by=(Kind.CONDITION_CLEARED,), severity=_severity, key=_point_key,
         at_restart=AtRestart.RECHECK),
    Rule(PowerKind.TRIP_CONFIRMED, _cut, ended_by=(PowerKind.RECLOSE_CONFIRMED,), key=lambda e: str(e.body.get("circuit", e.source)),
         at_restart=AtRestart.KEEP),
    Rule(PowerKind.TRIP_UNCONFIRMED, lambda e: f"Circuit {e.body.get('circuit', e.source)}: the breaker did not confirm the trip, "
         f"power may still be on ({e.body.get('detail')})", ended_by=(PowerKind.TRIP_CONFIRMED, PowerKind.RECLOSE_CONFIRMED),
         key=lambda e: str(e.body.get("circuit", e.source)), lasts_s=UNCONFIRMED_S, at_restart=AtRestart.KEEP),
    # A trip a precondition refused (nothing sent): active until it is sent, its cause ends, or a re-close.
    Rule(PowerKind.TRIP_REFUSED, _could_not_cut, ended_by=(PowerKind.TRIP_SENT, PowerKind.TRIP_WITHDRAWN, PowerKind.RECLOSE_CONFIRMED),
         key=lambda e: str(e.body.get("circuit", e.source)), at_restart=AtRestart.END),
    Rule(Kind.DEVICE_UNIDENTIFIED, _unidentified, ended_by=(Kind.DEVICE_IDENTIFIED,), severity=Severity.FAULT),
    Rule(Kind.DEVICE_OFFLINE, lambda e: f"Device {e.source} offline: {e.body.get('reason')}", ended_by=(Kind.DEVICE_BACK,),
         severity=Severity.FAULT),
)
