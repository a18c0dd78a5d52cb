"""The building as the journal tells it: a pure fold of events into what a technician looks at.

The status page, `/metrics` and `edge status` all read the journal, never live objects
(ARCHITECTURE: journal readers), so they show what was durably recorded, and the same
fold works with the daemon down. `BuildingView.apply` takes one stored event; `snapshot`
turns the state into plain JSON at a given wall time (a door released for 3 s is locked
again 3 s later without any event saying so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.conditions import ActiveConditions, Severity
from edge.config.building import BuildingConfig
from edge.events import Kind, Priority, StoredEvent
from edge.tiles import Tiles, tiles_of


@dataclass
class BuildingView:
    """The building's shared parts (devices, field points' conditions, what is active) from events
    in seq order; each feature's tiles fold the same events into its own part (edge/tiles.py)."""

    config: BuildingConfig
    config_digest: str = ""  # of the config file running (the page names it: which config is this?)
    head_seq: int = 0
    last_event_at: float | None = None
    started_at: float | None = None
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    conditions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (source, point, condition) -> raised
    ntp_synchronised: bool | None = None  # the page's clock badge; None until asked
    active: ActiveConditions = field(default_factory=ActiveConditions)  # what every view calls active
    tiles: dict[str, Tiles] = field(default_factory=dict)  # by feature name

    def __post_init__(self) -> None:
        for device in self.config.devices:
            self.devices[device.name] = {"online": True, "detail": None, "since": None, "bus": device.bus, "unidentified": None}
        self.tiles = tiles_of(self.config)

    def tile(self, feature: str) -> Any:
        """A feature's tiles (its own attributes: the doors' readers, the cameras)."""
        return self.tiles[feature]

    def retune(self, config: BuildingConfig, digest: str) -> None:
        """A reload applied in place: a door, reader, camera or point added gets its tile and one
        removed loses it (so a reader taken out is not an offline reader in /healthz); names and
        limits follow the new config; what was seen stays."""
        self.config, self.config_digest = config, digest
        self.devices = {device.name: self.devices.get(device.name, {"online": True, "detail": None, "since": None, "bus": device.bus,
                                                                    "unidentified": None}) for device in config.devices}
        fresh = tiles_of(config)
        for name, tiles in fresh.items():
            if name in self.tiles:
                tiles.keep(self.tiles[name])
        self.tiles = fresh

    def apply(self, event: StoredEvent) -> None:
        """Fold one event in; events must come in seq order."""
        self.head_seq = max(self.head_seq, event.seq)
        at = event.wall_ns / 1e9
        self.last_event_at = at
        self.active.apply(event)
        body, kind = event.body, event.kind
        if kind == Kind.GATEWAY_STARTED:
            self.started_at = at
        elif kind in (Kind.DEVICE_OFFLINE, Kind.DEVICE_BACK):
            if event.source in self.devices:
                self.devices[event.source] |= {"online": kind == Kind.DEVICE_BACK, "detail": body.get("reason"), "since": at}
        elif kind in (Kind.DEVICE_UNIDENTIFIED, Kind.DEVICE_IDENTIFIED):  # why its identify read picked no map, or None
            if event.source in self.devices:
                self.devices[event.source]["unidentified"] = body.get("detail") if kind == Kind.DEVICE_UNIDENTIFIED else None
        elif kind in (Kind.CONDITION_RAISED, Kind.CONDITION_CLEARED):
            key = (event.source, str(body.get("point")), str(body.get("condition")))
            if kind == Kind.CONDITION_RAISED:
                self.conditions[key] = {"at": at, "seq": event.seq, "source": event.source, **body}
            else:
                self.conditions.pop(key, None)
        for tiles in self.tiles.values():
            tiles.apply(event, at)

    def alarms(self, now: float) -> list[dict[str, Any]]:
        """Alarms and warnings active now, newest first, each with its severity (edge.conditions):
        what the technician must see before anything else."""
        return [c.as_json() for c in self.active.now(now) if c.severity is not Severity.FAULT]

    def faults(self, now: float) -> list[dict[str, Any]]:
        """What the gateway cannot watch now (a device offline, the uplink down), newest first."""
        return [c.as_json() for c in self.active.now(now) if c.severity is Severity.FAULT]

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain JSON for the page and `edge status`: the shared parts, then each feature's keys
        (the field points' rows of circuits and water points make one `points` list)."""
        snapshot: dict[str, Any] = {
            "building": {"id": self.config.building.id, "name": self.config.building.name, "timezone": self.config.building.timezone,
                         "config": self.config_digest},
            "now": now,
            "head_seq": self.head_seq,
            "started_at": self.started_at,
            "last_event_at": self.last_event_at,
            "alarms": self.alarms(now),
            "faults": self.faults(now),
            "devices": [{"name": name, **state} for name, state in self.devices.items()],
            "points": [],
        }
        for tiles in self.tiles.values():
            for key, value in tiles.snapshot(now, self).items():
                if isinstance(value, list) and isinstance(snapshot.get(key), list):
                    snapshot[key] = snapshot[key] + value
                else:
                    snapshot[key] = value
        if self.ntp_synchronised is not None and "clock" in snapshot:
            snapshot["clock"]["ntp_synchronised"] = self.ntp_synchronised
        titles = {(p["owner"], p["point"]): f'{p["title"]} ({p["group"]})' for p in snapshot["points"]}
        for key in ("alarms", "faults", "cut_circuits"):  # each condition row named as a manager knows its point
            for row in snapshot.get(key, ()):
                row["title"] = titles.get((row["source"], str(row.get("point"))))
        return snapshot


def is_news(event: StoredEvent) -> bool:
    """Events the page lists (telemetry only moves the charts)."""
    return event.priority > Priority.TELEMETRY
