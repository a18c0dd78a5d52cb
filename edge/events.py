"""The event: the one record every part of the gateway speaks.

Every observation that matters, decision, command, alarm and fault becomes an `Event`
before it goes anywhere else (the journal is the outbox). The id is a UUIDv7, so ids
are globally unique and sort by creation time across gateways; the per-gateway `seq`
is assigned by the journal when the event is appended, and never repeats.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum, StrEnum
from typing import Any

import uuid_utils


# One encoder for every body: building it per call costs more than encoding 200 bytes.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class Priority(IntEnum):
    """Higher is more important; eviction takes the lowest first and never alarms or access."""

    TELEMETRY = 0
    FAULT = 1
    ACCESS = 2
    ALARM = 3

    @property
    def protected(self) -> bool:
        """Protected events are never evicted to make room."""
        return self >= Priority.ACCESS


class Kind(StrEnum):
    """What happened. Other modules add their own kinds here, one member each."""

    GATEWAY_STARTED = "gateway.started"
    GATEWAY_STOPPED = "gateway.stopped"
    CONFIG_RELOADED = "config.reloaded"
    CONFIG_RELOAD_REFUSED = "config.reload_refused"
    TASK_FAILED = "fault.task_failed"
    STATUS_PORT_IN_USE = "fault.status_port_in_use"  # another process holds the status server's port: retried with backoff
    JOURNAL_EVICTED = "journal.evicted"
    JOURNAL_OVER_CAPACITY = "alarm.journal_over_capacity"
    JOURNAL_CORRUPT = "alarm.journal_corrupt"
    JOURNAL_MISSING = "alarm.journal_missing"  # a journal that existed is empty or gone
    JOURNAL_UNAVAILABLE = "alarm.journal_unavailable"  # the disk refuses writes: events held in memory
    JOURNAL_RECOVERED = "alarm.journal_recovered"  # written again; clears JOURNAL_UNAVAILABLE
    JOURNAL_EVENTS_LOST = "alarm.journal_events_lost"  # events that never reached the disk, by count and seq range
    STATE_FILE_REFUSED = "fault.state_file"  # the disk refuses a state file (full, read-only): that output only is degraded
    STATE_FILE_WRITTEN = "fault.state_file_cleared"  # the same file is written again
    HEARTBEAT = "telemetry.heartbeat"
    DEVICE_OFFLINE = "fault.device_offline"
    DEVICE_BACK = "device.back"
    DEVICE_FAULT = "fault.device"
    # Hotplug (edge/hotplug.py): USB adapters and cameras followed by udev identity.
    HOTPLUG_ARRIVED = "device.arrived"
    HOTPLUG_REMOVED = "fault.device_removed"
    HOTPLUG_AMBIGUOUS = "fault.device_ambiguous"
    HOTPLUG_FLAPPING = "fault.device_flapping"
    # Uplink (edge/uplink/): downlink refusals, credential updates, cloud commands, pulls.
    DOWNLINK_REFUSED = "security.downlink_refused"
    CREDENTIALS_APPLIED = "credentials.applied"
    CREDENTIALS_SNAPSHOT_REQUESTED = "credentials.snapshot_requested"
    COMMAND_EXECUTED = "command.executed"
    PULL_ANSWERED = "uplink.pull_answered"
    UPLINK_DOWN = "fault.uplink_down"
    UPLINK_UP = "uplink.up"
    SNAPSHOT_UNSENT = "fault.snapshot_unsent"  # an event's snapshot cannot be sent (missing, too large, refused): once per snapshot
    DOWNLINK_DROPPED = "fault.downlink_dropped"
    # A building config from the fleet (edge/config_apply.py): applied, refused, watched, rolled back.
    CONFIG_APPLIED = "config.applied"
    CONFIG_APPLY_REFUSED = "config.apply_refused"  # invalid: every problem answered, nothing changed
    CONFIG_KEPT = "config.kept"  # healthy at the end of its watch
    CONFIG_ROLLED_BACK = "config.rolled_back"  # the previous file restored and applied, with the reasons
    # Field points (edge/field.py): safety conditions, power cut and re-close, telemetry.
    CONDITION_RAISED = "alarm.raised"
    CONDITION_CLEARED = "alarm.cleared"
    ALARM_ENDED = "alarm.ended"  # an active condition ended for a reason outside its feature (a restart, a source gone)
    TRIP_SENT = "power.trip_sent"
    TRIP_CONFIRMED = "power.trip_confirmed"
    TRIP_UNCONFIRMED = "alarm.trip_unconfirmed"
    RECLOSE_REQUESTED = "power.reclose_requested"
    RECLOSE_REFUSED = "power.reclose_refused"
    RECLOSE_CONFIRMED = "power.reclose_confirmed"
    RECLOSE_UNCONFIRMED = "power.reclose_unconfirmed"
    TRIP_REFUSED = "power.trip_refused"  # nothing sent: a precondition refused it (breaker in local mode); retried when it passes
    TRIP_WITHDRAWN = "power.trip_withdrawn"  # a refused trip's cause ended before the breaker could be cut
    POINT_READING = "telemetry.point"
    DEVICE_IDENTIFIED = "device.identified"  # a model/firmware register picked the device's profile variant
    DEVICE_UNIDENTIFIED = "fault.device_unidentified"  # its identify read failed: polled by the base map, identify retried
    DEVICE_COMMAND_REQUESTED = "device.command_requested"  # a technician's or the cloud's profile command (audited)
    DEVICE_COMMAND_REFUSED = "device.command_refused"  # nothing sent: unknown, a bad argument or a precondition
    DEVICE_COMMAND_CONFIRMED = "device.command_confirmed"
    DEVICE_COMMAND_UNCONFIRMED = "device.command_unconfirmed"  # sent; no answer, the device refused, or no read-back in time
    # Doors (edge/doors/, edge/readers.py, edge/fire.py): decisions, door alarms, locks, fire release.
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
    # Elevator camera (edge/vision/): e-bike holds, what observe mode would have done, releases, camera faults.
    ELEVATOR_HOLD = "alarm.elevator_hold"  # a confirmed e-bike: the car is held, the rider warned; body names the snapshot
    ELEVATOR_OBSERVED = "vision.ebike_observed"  # observe mode (or fire): what the guard would have done, with the snapshot
    ELEVATOR_RELEASED = "elevator.released"  # a hold ended: left, time_limit, fire, operator or camera_fault
    ELEVATOR_RELEASE_REQUESTED = "elevator.release_requested"  # an operator's release (audited)
    ELEVATOR_RELAY_UNCONFIRMED = "alarm.elevator_relay_unconfirmed"  # the hold relay did not confirm a write
    VISION_MODE = "vision.mode"  # at start: observe or hold, and why
    VISION_FAULT = "fault.vision"  # the model cannot be loaded or fails: the camera does not guard
    CAMERA_FAULT = "fault.camera"  # the stream ended, broke or stopped delivering (a hold is released)
    CAMERA_RESTORED = "fault.camera_restored"
    ELEVATOR_REVIEWED = "elevator.hold_reviewed"  # an operator confirmed or denied a hold: who, via what, what was there
    FRAME_LABELLED = "vision.frame_labelled"  # an operator labelled a collected frame on the page: who, which, what
    VISION_DEMOTED = "alarm.vision_demoted"  # reviews showed the model holds what it must not: back to observe mode, why
    ACCESS_UNJOURNALED = "access.unjournaled"
    READER_GARBAGE = "fault.reader_garbage"
    PIN_LOCKOUT = "alarm.pin_lockout"
    # Community safety (edge/community/): smoke, intrusion and panic inputs, notification and its SMS path.
    SMOKE_ALARM = "alarm.smoke"
    SMOKE_CLEARED = "alarm.smoke_cleared"
    PANIC_ALARM = "alarm.panic"
    INTRUSION_ALARM = "alarm.intrusion"
    INTRUSION_LOGGED = "community.intrusion_disarmed"  # a sensor that opened on a disarmed zone
    DETECTOR_TROUBLE = "fault.detector"  # fault, low battery, tamper, test, alarm and fault together
    DETECTOR_TROUBLE_CLEARED = "fault.detector_cleared"
    NOTIFICATION_SENT = "notify.sent"  # one recipient, one channel; the cloud delivers "cloud"
    NOTIFICATION_ESCALATED = "notify.escalated"
    NOTIFICATION_ACKNOWLEDGED = "notify.acknowledged"
    NOTIFICATION_UNDELIVERED = "alarm.notification_undelivered"  # every channel to a recipient failed
    SMS_SENT = "notify.sms_sent"
    SMS_DELIVERED = "notify.sms_delivered"
    SMS_CAPPED = "notify.sms_capped"
    SMS_FAILED = "fault.sms_failed"
    MODEM_FAULT = "fault.modem"
    TRAIL_SEARCHED = "privacy.trail_searched"  # who searched whose entry trail, how many rows
    INACTIVITY_ALERT = "alarm.inactivity"  # a resident in care has not passed a door within their limit
    CARE_SET = "community.care_set"  # a resident's care watch set, changed, paused or ended by command
    ZONE_STATE = "community.zone"  # an intrusion zone arming, armed, disarmed, or its entry delay started
    ZONE_NOT_ARMED = "fault.zone_not_armed"  # could not arm: a sensor is open


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as it will be journaled and sent upstream."""

    kind: str
    priority: Priority
    source: str
    body: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid_utils.uuid7()))
    wall_ns: int = field(default_factory=time.time_ns)
    mono_ns: int = field(default_factory=time.monotonic_ns)

    @property
    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.wall_ns / 1e9, tz=timezone.utc)

    def body_json(self) -> str:
        return _encode(self.body)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the journal, with its durable sequence number."""

    seq: int
    id: str
    wall_ns: int
    mono_ns: int
    kind: str
    priority: Priority
    source: str
    body: dict[str, Any]

    @property
    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.wall_ns / 1e9, tz=timezone.utc)

    def as_dict(self) -> dict[str, Any]:
        """The wire and `--json` shape of an event."""
        return {
            "seq": self.seq,
            "id": self.id,
            "time": self.wall.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "mono_ns": self.mono_ns,
            "kind": self.kind,
            "priority": self.priority.name.lower(),
            "source": self.source,
            "body": self.body,
        }
