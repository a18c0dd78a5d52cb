"""Event kinds in a property manager's words, kept beside `edge.events.Kind`.

The journal speaks in kinds (`power.trip_confirmed`) because the cloud and the tests match on
them; the status page shows these words instead. Every `Kind` must have an entry (a test
enumerates `Kind`), so a feature that adds a kind adds its words here in the same commit.
"""

from __future__ import annotations

from edge.events import Kind

WORDS: dict[Kind, str] = {
    Kind.GATEWAY_STARTED: "Gateway started",
    Kind.GATEWAY_STOPPED: "Gateway stopped",
    Kind.CONFIG_RELOADED: "Config reloaded",
    Kind.CONFIG_RELOAD_REFUSED: "Config reload refused: the running config is unchanged",
    Kind.TASK_FAILED: "Gateway part failed and was restarted",
    Kind.STATUS_PORT_IN_USE: "Status page's port is taken by another program",
    Kind.JOURNAL_EVICTED: "Oldest records removed to make room",
    Kind.JOURNAL_OVER_CAPACITY: "Event record is full",
    Kind.JOURNAL_CORRUPT: "Event record damaged",
    Kind.JOURNAL_MISSING: "Event record missing or emptied",
    Kind.JOURNAL_UNAVAILABLE: "Disk refuses to record events",
    Kind.JOURNAL_RECOVERED: "Events recorded again",
    Kind.JOURNAL_EVENTS_LOST: "Events lost before they were recorded",
    Kind.STATE_FILE_REFUSED: "Disk refuses a settings file",
    Kind.STATE_FILE_WRITTEN: "Settings file saved again",
    Kind.HEARTBEAT: "Gateway heartbeat",
    Kind.DEVICE_OFFLINE: "Device not answering",
    Kind.DEVICE_BACK: "Device answering again",
    Kind.DEVICE_FAULT: "Device answered wrongly",
    Kind.HOTPLUG_ARRIVED: "Adapter plugged in",
    Kind.HOTPLUG_REMOVED: "Adapter unplugged",
    Kind.HOTPLUG_AMBIGUOUS: "Two adapters look the same",
    Kind.HOTPLUG_FLAPPING: "Adapter keeps dropping out",
    Kind.DOWNLINK_REFUSED: "Message from the cloud refused",
    Kind.CREDENTIALS_APPLIED: "Cards updated from the cloud",
    Kind.CREDENTIALS_SNAPSHOT_REQUESTED: "Cloud asked for the card list",
    Kind.COMMAND_EXECUTED: "Remote command carried out",
    Kind.PULL_ANSWERED: "Cloud's request for records answered",
    Kind.UPLINK_DOWN: "Cloud connection lost",
    Kind.UPLINK_UP: "Cloud connection up",
    Kind.SNAPSHOT_UNSENT: "Camera picture not sent to the cloud",
    Kind.DOWNLINK_DROPPED: "Message from the cloud dropped",
    Kind.CONFIG_APPLIED: "Settings changed from the cloud",
    Kind.CONFIG_APPLY_REFUSED: "Settings from the cloud refused (not valid)",
    Kind.CONFIG_KEPT: "New settings working: kept",
    Kind.CONFIG_ROLLED_BACK: "New settings broke the building: previous ones restored",
    Kind.CONDITION_RAISED: "Alarm raised",
    Kind.CONDITION_CLEARED: "Alarm cleared",
    Kind.ALARM_ENDED: "Alarm ended",
    Kind.TRIP_SENT: "Circuit cut ordered",
    Kind.TRIP_CONFIRMED: "Circuit cut (breaker opened)",
    Kind.TRIP_UNCONFIRMED: "Breaker did not confirm the cut",
    Kind.RECLOSE_REQUESTED: "Circuit re-close requested",
    Kind.RECLOSE_REFUSED: "Circuit re-close refused",
    Kind.RECLOSE_CONFIRMED: "Circuit re-closed: power back",
    Kind.RECLOSE_UNCONFIRMED: "Breaker did not confirm the re-close",
    Kind.TRIP_REFUSED: "Circuit could not be cut: the breaker refused the command",
    Kind.TRIP_WITHDRAWN: "Circuit cut no longer needed: its cause ended",
    Kind.POINT_READING: "Reading",
    Kind.DEVICE_IDENTIFIED: "Device model recognised",
    Kind.DEVICE_UNIDENTIFIED: "Device model not recognised: watched by its common points",
    Kind.DEVICE_COMMAND_REQUESTED: "Device command requested",
    Kind.DEVICE_COMMAND_REFUSED: "Device command refused (nothing sent)",
    Kind.DEVICE_COMMAND_CONFIRMED: "Device command done",
    Kind.DEVICE_COMMAND_UNCONFIRMED: "Device did not confirm a command",
    Kind.ACCESS_DECISION: "Card at a door",
    Kind.ACCESS_FLAGGED: "Flagged card used",
    Kind.DOOR_EXIT: "Exit button pressed",
    Kind.DOOR_REMOTE_UNLOCK: "Door unlocked remotely",
    Kind.DOOR_FORCED: "Door forced open",
    Kind.DOOR_HELD_OPEN: "Door held open too long",
    Kind.DOOR_CLOSED: "Door closed",
    Kind.LOCK_UNCONFIRMED: "Lock did not confirm",
    Kind.READER_FAULT: "Card reader not working",
    Kind.READER_RESTORED: "Card reader working again",
    Kind.CLOCK_UNTRUSTED: "Gateway clock not trusted",
    Kind.CREDENTIALS_UNAVAILABLE: "Card list unreadable",
    Kind.FIRE_RELEASE: "Fire: exit doors released",
    Kind.FIRE_RESET: "Fire release reset: doors lock again",
    Kind.FIRE_RESET_REFUSED: "Fire reset refused: fire input still active",
    Kind.ELEVATOR_HOLD: "Lift held for an e-bike",
    Kind.ELEVATOR_OBSERVED: "E-bike seen in the lift (not held)",
    Kind.ELEVATOR_RELEASED: "Lift let go",
    Kind.ELEVATOR_RELEASE_REQUESTED: "Lift release requested",
    Kind.ELEVATOR_RELAY_UNCONFIRMED: "Lift hold relay did not confirm",
    Kind.VISION_MODE: "Lift camera started",
    Kind.VISION_FAULT: "E-bike detection not working",
    Kind.CAMERA_FAULT: "Camera cannot see",
    Kind.CAMERA_RESTORED: "Camera sees again",
    Kind.ELEVATOR_REVIEWED: "Lift hold reviewed by an operator",
    Kind.FRAME_LABELLED: "Lift camera picture labelled",
    Kind.VISION_DEMOTED: "Lift camera stopped holding: operators' reviews showed wrong holds",
    Kind.ACCESS_UNJOURNALED: "Door decision not recorded",
    Kind.READER_GARBAGE: "Card reader sent garbled data",
    Kind.PIN_LOCKOUT: "Too many wrong PINs: keypad locked",
    Kind.SMOKE_ALARM: "Smoke",
    Kind.SMOKE_CLEARED: "Smoke cleared",
    Kind.PANIC_ALARM: "Panic button pressed",
    Kind.INTRUSION_ALARM: "Intrusion",
    Kind.INTRUSION_LOGGED: "Sensor opened while disarmed",
    Kind.DETECTOR_TROUBLE: "Detector needs service",
    Kind.DETECTOR_TROUBLE_CLEARED: "Detector fine again",
    Kind.NOTIFICATION_SENT: "Someone notified",
    Kind.NOTIFICATION_ESCALATED: "Alarm passed to the next contact",
    Kind.NOTIFICATION_ACKNOWLEDGED: "Alarm acknowledged",
    Kind.NOTIFICATION_UNDELIVERED: "Alarm reached nobody",
    Kind.SMS_SENT: "SMS sent",
    Kind.SMS_DELIVERED: "SMS delivered",
    Kind.SMS_CAPPED: "SMS held back (hourly limit)",
    Kind.SMS_FAILED: "SMS failed",
    Kind.MODEM_FAULT: "SMS modem not working",
    Kind.TRAIL_SEARCHED: "Entry records searched",
    Kind.INACTIVITY_ALERT: "Resident in care not seen",
    Kind.CARE_SET: "Care watch changed",
    Kind.ZONE_STATE: "Intrusion zone armed or disarmed",
    Kind.ZONE_NOT_ARMED: "Intrusion zone could not arm",
}


def words(kind: str) -> str:
    """The words for a kind; an unknown kind (from a newer gateway's journal) as itself, readable."""
    try:
        return WORDS[Kind(kind)]
    except (ValueError, KeyError):
        return kind.replace("_", " ").replace(".", ": ")


def table() -> dict[str, str]:
    """Kind value -> words, as the page fetches it once."""
    return {str(kind): text for kind, text in WORDS.items()}
