"""The doors' event kinds: decisions, door alarms, locks, readers, the clock and credential guards,
the fire release, with their words on the page.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
"""

from __future__ import annotations

from enum import StrEnum

from edge.events import Kinds


class DoorKind(StrEnum):
    ACCESS_DECISION = "access.decision"
    ACCESS_FLAGGED = "alarm.access_flagged"
    DOOR_EXIT = "access.exit"
    DOOR_REMOTE_UNLOCK = "access.remote_unlock"
    DOOR_FORCED = "alarm.door_forced"
    DOOR_HELD_OPEN = "alarm.door_held_open"
    DOOR_CLOSED = "door.closed"
    LOCK_UNCONFIRMED = "fault.lock_unconfirmed"
    READER_FAULT = "fault.reader"
    READER_RESTORED = "fault.reader_restored"
    CLOCK_UNTRUSTED = "fault.clock_untrusted"
    CREDENTIALS_UNAVAILABLE = "fault.credentials_unavailable"
    FIRE_RELEASE = "alarm.fire_release"
    FIRE_RESET = "alarm.fire_reset"
    FIRE_RESET_REFUSED = "alarm.fire_reset_refused"  # a fire input still active or not known: doors stay released
    ACCESS_UNJOURNALED = "access.unjournaled"
    READER_GARBAGE = "fault.reader_garbage"
    PIN_LOCKOUT = "alarm.pin_lockout"


KINDS = Kinds("doors", DoorKind, {
    DoorKind.ACCESS_DECISION: "Card at a door",
    DoorKind.ACCESS_FLAGGED: "Flagged card used",
    DoorKind.DOOR_EXIT: "Exit button pressed",
    DoorKind.DOOR_REMOTE_UNLOCK: "Door unlocked remotely",
    DoorKind.DOOR_FORCED: "Door forced open",
    DoorKind.DOOR_HELD_OPEN: "Door held open too long",
    DoorKind.DOOR_CLOSED: "Door closed",
    DoorKind.LOCK_UNCONFIRMED: "Lock did not confirm",
    DoorKind.READER_FAULT: "Card reader not working",
    DoorKind.READER_RESTORED: "Card reader working again",
    DoorKind.CLOCK_UNTRUSTED: "Gateway clock not trusted",
    DoorKind.CREDENTIALS_UNAVAILABLE: "Card list unreadable",
    DoorKind.FIRE_RELEASE: "Fire: exit doors released",
    DoorKind.FIRE_RESET: "Fire release reset: doors lock again",
    DoorKind.FIRE_RESET_REFUSED: "Fire reset refused: fire input still active",
    DoorKind.ACCESS_UNJOURNALED: "Door decision not recorded",
    DoorKind.READER_GARBAGE: "Card reader sent garbled data",
    DoorKind.PIN_LOCKOUT: "Too many wrong PINs: keypad locked",
}, bodies="edge.doors.bodies")
