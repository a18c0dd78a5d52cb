"""The conditions the doors hold active: forced or held-open doors, the fire release, lockouts."""

from __future__ import annotations

from edge.conditions import AtRestart, Rule, Severity, by_body
from edge.events import StoredEvent
from edge.doors.kinds import DoorKind
from edge.uplink.kinds import UplinkKind

ONE_SHOT_S = 3600.0  # an alarm that no event ends stays on the page this long


def _door(what: str):
    return lambda e: f"Door {e.body.get('door', e.source)} {what}"


def _fire(e: StoredEvent) -> str:
    return f"Fire release: every egress door is open until a technician resets it (alarm from {e.body.get('source', 'fire')})"


def _refused(e: StoredEvent) -> str:
    return "Fire reset refused, the egress doors stay open: " + "; ".join(map(str, e.body.get("inputs", [])))


CONDITIONS = (
    Rule(DoorKind.DOOR_FORCED, _door("forced open"), ended_by=(DoorKind.DOOR_CLOSED,), key=by_body("door")),
    Rule(DoorKind.DOOR_HELD_OPEN, _door("held open"), ended_by=(DoorKind.DOOR_CLOSED,), key=by_body("door")),
    Rule(DoorKind.FIRE_RELEASE, _fire, ended_by=(DoorKind.FIRE_RESET,), key=lambda e: "fire", at_restart=AtRestart.KEEP),
    Rule(DoorKind.FIRE_RESET_REFUSED, _refused, ended_by=(DoorKind.FIRE_RESET,), key=lambda e: "fire", lasts_s=ONE_SHOT_S),
    Rule(DoorKind.ACCESS_FLAGGED, _door("was opened at by a flagged card"), key=by_body("door", "credential"), lasts_s=ONE_SHOT_S),
    Rule(DoorKind.PIN_LOCKOUT, lambda e: f"PIN entry locked at {e.source} after {e.body.get('attempts')} wrong PINs",
         key=lambda e: f"{e.source}|{e.body.get('scope')}", lasts_s=lambda e: float(e.body.get("lockout_s") or 0)),
    Rule(DoorKind.LOCK_UNCONFIRMED, lambda e: f"Door {e.body.get('door', e.source)}: the lock did not confirm '{e.body.get('command')}'",
         severity=Severity.FAULT, key=by_body("door"), lasts_s=ONE_SHOT_S),
    Rule(DoorKind.READER_FAULT, lambda e: f"Card reader {e.source} not working: {str(e.body.get('reason', '')).replace('_', ' ')}",
         ended_by=(DoorKind.READER_RESTORED,), severity=Severity.FAULT, key=lambda e: f"{e.source}|{e.body.get('reason')}"),
    Rule(DoorKind.CLOCK_UNTRUSTED, lambda e: "The gateway's clock is not trusted: access by date is judged on the last good time",
         severity=Severity.FAULT, key=lambda e: "clock", lasts_s=ONE_SHOT_S),
    Rule(DoorKind.CREDENTIALS_UNAVAILABLE, lambda e: f"The card list cannot be read: {e.body.get('detail')}",
         ended_by=(UplinkKind.CREDENTIALS_APPLIED,), severity=Severity.FAULT, key=lambda e: "credentials"),
)
