"""The building as the journal tells it: a pure fold of events into what a technician looks at.

The status page, `/metrics` and `edge status` all read the journal, never live objects
(ARCHITECTURE: journal readers), so they show what was durably recorded, and the same
fold works with the daemon down. `BuildingView.apply` takes one stored event; `snapshot`
turns the state into plain JSON at a given wall time (a door released for 3 s is locked
again 3 s later without any event saying so).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edge.conditions import ActiveConditions, Severity
from edge.config import BuildingConfig
from edge.events import Kind, Priority, StoredEvent
from edge.power.kinds import PowerKind
from edge.doors.kinds import DoorKind
from edge.uplink.kinds import UplinkKind
from edge.vision.kinds import VisionKind

HISTORY_POINTS = 240  # per chart series kept in memory: the page asks the journal for longer ranges


class DoorState:
    LOCKED = "locked"
    RELEASED = "released"
    HELD_OPEN = "held_open"
    FORCED = "forced"
    FIRE_RELEASE = "fire_release"


@dataclass
class DoorView:
    name: str
    unlock_s: float
    egress: bool
    alarm: str | None = None  # forced or held_open until door.closed
    released_until: float = 0.0  # wall seconds
    last: dict[str, Any] | None = None  # the newest decision or exit at this door

    def state(self, now: float, fire: bool) -> str:
        if fire and self.egress:
            return DoorState.FIRE_RELEASE
        if self.alarm is not None:
            return self.alarm
        return DoorState.RELEASED if now < self.released_until else DoorState.LOCKED


@dataclass
class PointView:
    """One field point of a circuit or pressure point: the newest telemetry and a short history."""

    point: str
    quantity: str = ""
    unit: str = ""
    value: float | None = None
    title: str = ""  # what a manager calls it ("Roof tank water level"), from the config
    group: str = ""  # what it belongs to ("Circuit f1-c1, floor 1, box F1")
    at: float | None = None
    limits: dict[str, Any] | None = None  # warning and alarm, and whether low is bad: the chart's band
    history: list[tuple[float, float]] = field(default_factory=list)

    def add(self, at: float, value: float) -> None:
        self.value, self.at = value, at
        self.history.append((round(at, 1), value))
        if len(self.history) > HISTORY_POINTS:
            del self.history[: len(self.history) - HISTORY_POINTS]


@dataclass
class BuildingView:
    """Doors, readers, devices, points, alarms, uplink and clock, from events in seq order."""

    config: BuildingConfig
    config_digest: str = ""  # of the config file running (the page names it: which config is this?)
    head_seq: int = 0
    last_event_at: float | None = None
    started_at: float | None = None
    doors: dict[str, DoorView] = field(default_factory=dict)
    readers: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    points: dict[str, dict[str, PointView]] = field(default_factory=dict)  # owner -> point -> view
    conditions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    lockouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fire: dict[str, Any] | None = None
    uplink: dict[str, Any] = field(default_factory=dict)
    clock: dict[str, Any] = field(default_factory=lambda: {"trusted": True})
    decisions: Counter[str] = field(default_factory=Counter)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    active: ActiveConditions = field(default_factory=ActiveConditions)  # what every view calls active

    def __post_init__(self) -> None:
        for camera in self.config.cameras:
            self.cameras[camera.name] = {"elevator": camera.elevator, "mode": None, "reason": None, "reasons": [], "stream": None,
                                         "detail": None, "since": None, "vision_fault": None, "held": None, "observed": None,
                                         "snapshot": None, "reviews": []}
        for door in self.config.doors:
            self.doors[door.name] = DoorView(door.name, door.unlock_s, door.egress)
        for reader in self.config.readers:
            self.readers[reader.name] = {"online": True, "detail": None, "since": None}
        for device in self.config.devices:
            self.devices[device.name] = {"online": True, "detail": None, "since": None, "bus": device.bus, "unidentified": None}
        for circuit in self.config.circuits:
            safety = circuit.safety
            owned = [(ref, safety.over_current_a, _phase(circuit.currents, n), "A") for n, ref in enumerate(circuit.currents)]
            owned += [(circuit.leakage, safety.leakage_ma, "Leakage current", "mA")] if circuit.leakage else []
            owned += [(ref, safety.over_temperature_c, "Cable temperature" + (f" {n + 1}" if len(circuit.temperatures) > 1 else ""), "°C")
                      for n, ref in enumerate(circuit.temperatures)]
            group = _label(circuit) or f"Circuit {circuit.name}, floor {circuit.floor}, box {circuit.box}"
            self.points[circuit.name] = {ref: PointView(ref, unit=unit, title=title, group=group, limits=_band(limits, low=False))
                                         for ref, limits, title, unit in owned}
        for water in self.config.pressure_points:
            limits = getattr(water.safety, "low_pressure", None) or getattr(water.safety, "low_level", None)
            self.points[water.name] = {water.point: PointView(water.point, unit=water.safety.sensor.unit, title=_water_title(water),
                                                              group="Fire water", limits=_band(limits, low=True))}
        self.uplink = {"enabled": self.config.uplink.enabled, "up": None, "detail": None, "since": None}

    def retune(self, config: BuildingConfig, digest: str) -> None:
        """A reload applied in place: a door, reader or camera added gets its tile and one removed loses it (so
        a reader taken out is not an offline reader in /healthz); each point's limits and names follow
        the new config; what was seen stays."""
        fresh = BuildingView(config)
        self.config, self.config_digest = config, digest
        for door in self.doors.values():
            if door.name in fresh.doors:
                door.unlock_s = fresh.doors[door.name].unlock_s
        self.doors = {name: self.doors.get(name, view) for name, view in fresh.doors.items()}
        self.readers = {name: self.readers.get(name, state) for name, state in fresh.readers.items()}
        self.cameras = {name: self.cameras.get(name, state) for name, state in fresh.cameras.items()}
        for owner, points in fresh.points.items():
            for ref, point in points.items():
                kept = self.points.get(owner, {}).get(ref)
                if kept is not None:
                    kept.title, kept.group, kept.limits, kept.unit = point.title, point.group, point.limits, point.unit

    def apply(self, event: StoredEvent) -> None:
        """Fold one event in; events must come in seq order."""
        self.head_seq = max(self.head_seq, event.seq)
        at = event.wall_ns / 1e9
        self.last_event_at = at
        self.active.apply(event)
        body, kind = event.body, event.kind
        if kind == Kind.GATEWAY_STARTED:
            self.started_at = at
        elif kind == Kind.POINT_READING:
            view = self.points.get(event.source, {}).get(body.get("point", ""))
            if view is not None and isinstance(body.get("value"), int | float):
                view.quantity, view.unit = body.get("quantity", ""), body.get("unit") or view.unit
                view.add(at, float(body["value"]))
        elif kind == DoorKind.ACCESS_DECISION:
            self.decisions[str(body.get("reason"))] += 1
            door = self.doors.get(body.get("door", ""))
            if door is not None:
                door.last = {"at": at, "reason": body.get("reason"), "granted": body.get("granted"), "reader": event.source}
                if body.get("granted"):
                    door.released_until = at + door.unlock_s
        elif kind in (DoorKind.DOOR_EXIT, DoorKind.DOOR_REMOTE_UNLOCK):
            door = self.doors.get(body.get("door", event.source))
            if door is not None:
                door.released_until = at + door.unlock_s
                door.last = {"at": at, "reason": "exit" if kind == DoorKind.DOOR_EXIT else "remote_unlock", "granted": True}
        elif kind in (DoorKind.DOOR_FORCED, DoorKind.DOOR_HELD_OPEN):
            door = self.doors.get(body.get("door", event.source))
            if door is not None:
                door.alarm = DoorState.FORCED if kind == DoorKind.DOOR_FORCED else DoorState.HELD_OPEN
        elif kind == DoorKind.DOOR_CLOSED:
            door = self.doors.get(body.get("door", event.source))
            if door is not None:
                door.alarm = None
        elif kind == DoorKind.FIRE_RELEASE:
            self.fire = {"since": at, "source": body.get("source")}
        elif kind == DoorKind.FIRE_RESET:
            self.fire = None
        elif kind in (DoorKind.READER_FAULT, DoorKind.READER_RESTORED):
            if event.source in self.readers:
                detail = ": ".join(str(part) for part in (body.get("reason"), body.get("detail")) if part)
                self.readers[event.source] = {"online": kind == DoorKind.READER_RESTORED, "detail": detail, "since": at}
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
        elif kind == DoorKind.PIN_LOCKOUT:
            self.lockouts[f"{event.source}:{body.get('scope')}"] = {"at": at, "until": at + float(body.get("lockout_s", 0)), "reader": event.source, **body}
        elif kind in (UplinkKind.UPLINK_DOWN, UplinkKind.UPLINK_UP):
            self.uplink |= {"up": kind == UplinkKind.UPLINK_UP, "detail": body.get("detail"), "since": at}
        elif kind in (VisionKind.VISION_MODE, VisionKind.CAMERA_FAULT, VisionKind.CAMERA_RESTORED, VisionKind.VISION_FAULT,
                      VisionKind.ELEVATOR_HOLD, VisionKind.ELEVATOR_RELEASED, VisionKind.ELEVATOR_OBSERVED, VisionKind.ELEVATOR_REVIEWED, VisionKind.VISION_DEMOTED):
            self._camera(kind, event.source, body, at, event.seq)
        elif kind == DoorKind.CLOCK_UNTRUSTED:
            self.clock |= {"trusted": False, "detail": body.get("fault"), "since": at}

    def _camera(self, kind: str, name: str, body: dict[str, Any], at: float, seq: int = 0) -> None:
        """The guard says its mode and why when it starts (a new run: no stream fault yet, no model
        fault, no hold: a guard that ends lets the car go), then journals each stream fault and
        recovery, each model fault, each hold and release and each e-bike it would have held."""
        camera = self.cameras.get(name)
        if camera is None:
            return
        if kind in (VisionKind.ELEVATOR_HOLD, VisionKind.ELEVATOR_OBSERVED) and body.get("snapshot"):
            camera["snapshot"] = {"at": at, "path": str(body["snapshot"]), "class": body.get("class")}  # the page's picture
        if kind == VisionKind.ELEVATOR_HOLD:
            camera["held"] = {"since": at, "class": body.get("class"), "snapshot": body.get("snapshot")}
            if body.get("review") == "pending":  # the page lists it for an operator to confirm or deny
                camera["reviews"] = [*camera["reviews"][-19:], {"seq": seq, "at": at, "class": body.get("class"),
                                                                 "snapshot": body.get("snapshot")}]
        elif kind == VisionKind.ELEVATOR_REVIEWED:
            camera["reviews"] = [r for r in camera["reviews"] if r["seq"] != body.get("hold_seq")]
        elif kind == VisionKind.VISION_DEMOTED:
            reason = f"demoted by the operators' reviews: {body.get('reason')}"
            camera |= {"mode": "observe", "reason": reason, "reasons": [reason]}
        elif kind == VisionKind.ELEVATOR_RELEASED:
            camera["held"] = None
        elif kind == VisionKind.ELEVATOR_OBSERVED:
            camera["observed"] = {"at": at, "class": body.get("class"), "snapshot": body.get("snapshot")}
        elif kind == VisionKind.VISION_MODE:
            reasons = body.get("reasons") or ([body["reason"]] if body.get("mode") == "observe" and body.get("reason") else [])
            camera |= {"mode": body.get("mode"), "reason": body.get("reason"), "reasons": list(reasons), "stream": "ok", "detail": None, "since": at,
                       "vision_fault": None, "held": None}
        elif kind == VisionKind.CAMERA_FAULT:
            camera |= {"stream": "fault", "detail": body.get("reason"), "since": at}
        elif kind == VisionKind.CAMERA_RESTORED:
            camera |= {"stream": "ok", "detail": None, "since": at}
        else:
            camera["vision_fault"] = body.get("reason")

    def alarms(self, now: float) -> list[dict[str, Any]]:
        """Alarms and warnings active now, newest first, each with its severity (edge.conditions):
        what the technician must see before anything else."""
        return [c.as_json() for c in self.active.now(now) if c.severity is not Severity.FAULT]

    def faults(self, now: float) -> list[dict[str, Any]]:
        """What the gateway cannot watch now (a device offline, the uplink down), newest first."""
        return [c.as_json() for c in self.active.now(now) if c.severity is Severity.FAULT]

    def cut_circuits(self, now: float) -> dict[str, dict[str, Any]]:
        """Circuits the gateway cut and nobody re-closed yet: circuit -> the cut's row."""
        return {c.key: c.as_json() for c in self.active.now(now) if c.kind == PowerKind.TRIP_CONFIRMED}

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain JSON for the page and `edge status`."""
        fire = self.fire is not None
        circuits = {c.name: c for c in self.config.circuits}
        cut = self.cut_circuits(now)
        points = []
        for owner, views in self.points.items():
            circuit = circuits.get(owner)
            for ref, view in views.items():
                raised = [c for (source, point, _), c in self.conditions.items() if source == owner and point == ref]
                state = "ok"
                if owner in cut:
                    state = "cut"  # no power: whatever the currents read, they read zero because of the cut
                elif any(c.get("condition") in ("sensor_fault", "stale") for c in raised):
                    state = next(c["condition"] for c in raised if c.get("condition") in ("sensor_fault", "stale"))
                elif any(c.get("severity") == "alarm" for c in raised):
                    state = "alarm"
                elif raised:
                    state = "warning"
                points.append({
                    "owner": owner, "kind": "circuit" if circuit else "pressure_point", "point": ref,
                    "title": view.title, "group": view.group,
                    "quantity": view.quantity, "unit": view.unit, "value": view.value,
                    "age_s": None if view.at is None else round(max(0.0, now - view.at), 1), "state": state,
                    "limits": view.limits, "history": view.history,
                })
        titles = {(p["owner"], p["point"]): f'{p["title"]} ({p["group"]})' for p in points}
        return {
            "building": {"id": self.config.building.id, "name": self.config.building.name, "timezone": self.config.building.timezone,
                         "config": self.config_digest},
            "now": now,
            "head_seq": self.head_seq,
            "started_at": self.started_at,
            "last_event_at": self.last_event_at,
            "alarms": _titled(self.alarms(now), titles),
            "faults": _titled(self.faults(now), titles),
            "cut_circuits": _titled(list(cut.values()), titles),
            "doors": [{"name": d.name, "state": d.state(now, fire), "egress": d.egress, "last": d.last} for d in self.doors.values()],
            "readers": [{"name": name, **state} for name, state in self.readers.items()],
            "devices": [{"name": name, **state} for name, state in self.devices.items()],
            "points": points,
            "uplink": dict(self.uplink),
            "clock": dict(self.clock),
            "decisions": dict(self.decisions),
            "cameras": [{"name": name, **state, "last_frame_age_s": None} for name, state in self.cameras.items()],
        }


def _label(spec: Any) -> str | None:
    """A name the config gives a thing for people, where it has one."""
    label = getattr(spec, "label", None)
    return str(label) if label else None


def _phase(currents: list[Any], n: int) -> str:
    return "Current" if len(currents) == 1 else f"Current, phase {'ABC'[n] if n < 3 else n + 1}"


def _water_title(water: Any) -> str:
    """"Roof tank water level", "Riser 1 water pressure": the point named by what it measures, not its wire."""
    if (label := _label(water)) is not None:
        return label
    measures = "water level" if water.safety.measures == "level" else "water pressure"
    if water.tank:
        return f"{str(water.tank).capitalize()} tank {measures}"
    if water.riser:
        return f"Riser {water.riser} {measures}"
    return f"{water.name.replace('-', ' ').capitalize()} ({measures})"


def _titled(rows: list[dict[str, Any]], titles: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Each condition row with the name a manager knows its point by, where it has a point."""
    for row in rows:
        row["title"] = titles.get((row["source"], str(row.get("point"))))
    return rows


def _band(limits: Any, low: bool) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {"warning": limits.warning, "alarm": limits.alarm, "low": low}


def is_news(event: StoredEvent) -> bool:
    """Events the page lists (telemetry only moves the charts)."""
    return event.priority > Priority.TELEMETRY
