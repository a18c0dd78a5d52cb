"""The shared parts' event kinds (`edge.events.Kind`) in a property manager's words.

The journal speaks in kinds (`power.trip_confirmed`) because the cloud and the tests match on
them; the status page shows these words instead (`edge.events.kinds.words`). `Kinds` refuses a kind
without words, so a kind added to `Kind` gets its words here in the same commit; a feature's
kinds have theirs beside them, in the feature's kinds.py.

Their typed bodies (a point's condition raised, cleared or ended, its readings) and `Body`, the base
of every feature's, are in edge/events/bodies.py.
"""

from __future__ import annotations

from enum import StrEnum

from edge.events import Kind, Kinds


WORDS: dict[StrEnum, str] = {
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
    Kind.CONFIG_APPLIED: "Settings changed from the cloud",
    Kind.CONFIG_APPLY_REFUSED: "Settings from the cloud refused (not valid)",
    Kind.CONFIG_KEPT: "New settings working: kept",
    Kind.CONFIG_ROLLED_BACK: "New settings broke the building: previous ones restored",
    Kind.CONDITION_RAISED: "Alarm raised",
    Kind.CONDITION_CLEARED: "Alarm cleared",
    Kind.ALARM_ENDED: "Alarm ended",
    Kind.POINT_READING: "Reading",
    Kind.DEVICE_IDENTIFIED: "Device model recognised",
    Kind.DEVICE_UNIDENTIFIED: "Device model not recognised: watched by its common points",
    Kind.DEVICE_COMMAND_REQUESTED: "Device command requested",
    Kind.DEVICE_COMMAND_REFUSED: "Device command refused (nothing sent)",
    Kind.DEVICE_COMMAND_CONFIRMED: "Device command done",
    Kind.DEVICE_COMMAND_UNCONFIRMED: "Device did not confirm a command",
}

KINDS = Kinds("gateway", Kind, WORDS, bodies="edge.events.bodies")
