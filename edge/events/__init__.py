"""The event: the one record every part of the gateway speaks.

Every observation that matters, decision, command, alarm and fault becomes an `Event`
before it goes anywhere else (the journal is the outbox). The id is a UUIDv7, so ids
are globally unique and sort by creation time across gateways; the per-gateway `seq`
is assigned by the journal when the event is appended, and never repeats.

Beside the record: every kind, composed from the shared parts' and each feature's (`kinds`), the
shared parts' words and bodies (`words`) and the live bus of journaled events (`bus`). This module
imports none of them, so a feature's kinds import the record without composing the registry.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

import uuid_utils

if TYPE_CHECKING:
    from pydantic import BaseModel


# One encoder for every body: building it per call costs more than encoding 200 bytes.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
_NEW: Any = object()  # an Event field not given: made when the event is


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
    """What happened, in the gateway's shared parts: start and stop, the journal, state files,
    devices and hotplug, a config from the fleet, field points' conditions and readings.

    A feature declares its own kinds in its package (edge/doors/kinds.py, edge/vision/kinds.py,
    edge/uplink/kinds.py, edge/community/kinds.py, edge/power/kinds.py) and `edge.events.kinds`
    composes them with these."""

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
    # A building config from the fleet (edge/config/apply.py): applied, refused, watched, rolled back.
    CONFIG_APPLIED = "config.applied"
    CONFIG_APPLY_REFUSED = "config.apply_refused"  # invalid: every problem answered, nothing changed
    CONFIG_KEPT = "config.kept"  # healthy at the end of its watch
    CONFIG_ROLLED_BACK = "config.rolled_back"  # the previous file restored and applied, with the reasons
    # Field points (edge/power/points.py): safety conditions of circuits and water points, telemetry.
    CONDITION_RAISED = "alarm.raised"
    CONDITION_CLEARED = "alarm.cleared"
    ALARM_ENDED = "alarm.ended"  # an active condition ended for a reason outside its feature (a restart, a source gone)
    POINT_READING = "telemetry.point"
    DEVICE_IDENTIFIED = "device.identified"  # a model/firmware register picked the device's profile variant
    DEVICE_UNIDENTIFIED = "fault.device_unidentified"  # its identify read failed: polled by the base map, identify retried
    DEVICE_COMMAND_REQUESTED = "device.command_requested"  # a technician's or the cloud's profile command (audited)
    DEVICE_COMMAND_REFUSED = "device.command_refused"  # nothing sent: unknown, a bad argument or a precondition
    DEVICE_COMMAND_CONFIRMED = "device.command_confirmed"
    DEVICE_COMMAND_UNCONFIRMED = "device.command_unconfirmed"  # sent; no answer, the device refused, or no read-back in time


@dataclass(frozen=True)
class Kinds:
    """One feature's event kinds: its enum (the wire names), each kind in a property manager's
    words (the page shows these), and the module of its typed bodies, where it has typed them
    (`BODIES`: kind -> pydantic model; the fleet contract publishes their schemas). The models are
    named, not imported: a door's start never builds them. `edge.events.kinds` composes every feature's."""

    feature: str
    enum: type[StrEnum]
    words: Mapping[StrEnum, str]
    bodies: str | None = None

    def __post_init__(self) -> None:
        missing = [str(kind) for kind in self.enum if not self.words.get(kind, "").strip()]
        strangers = [str(kind) for kind in self.words if not isinstance(kind, self.enum)]
        if missing or strangers:
            raise ValueError(f"{self.feature}: kinds without words {missing}, words for kinds not its own {strangers}")

    def typed(self) -> Mapping[StrEnum, type[BaseModel]]:
        """Its typed bodies, imported now (the contract, the ingest, the tests)."""
        if self.bodies is None:
            return {}
        typed = importlib.import_module(self.bodies).BODIES
        strangers = [str(kind) for kind in typed if not isinstance(kind, self.enum)]
        if strangers:
            raise ValueError(f"{self.feature}: bodies for kinds not its own {strangers}")
        return typed


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

    # What the generated __init__ does, with its lookups bound once: every event of the gateway is
    # made here (a third less time; dataclass keeps an __init__ the class defines itself).
    def __init__(self, kind: str, priority: Priority, source: str, body: dict[str, Any] = _NEW, id: str = _NEW,  # type: ignore[assignment]
                 wall_ns: int = _NEW, mono_ns: int = _NEW, *,  # type: ignore[assignment]
                 _set=object.__setattr__, _uuid7=uuid_utils.uuid7, _wall=time.time_ns, _mono=time.monotonic_ns) -> None:
        _set(self, "kind", kind)
        _set(self, "priority", priority)
        _set(self, "source", source)
        _set(self, "body", {} if body is _NEW else body)
        _set(self, "id", str(_uuid7()) if id is _NEW else id)
        _set(self, "wall_ns", _wall() if wall_ns is _NEW else wall_ns)
        _set(self, "mono_ns", _mono() if mono_ns is _NEW else mono_ns)

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
