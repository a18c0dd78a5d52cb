"""The doors' tiles on the page: each door's state and last decision, readers online, the fire
release, PIN lockouts, the decisions' reasons and whether the clock is trusted (edge/tiles.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.doors.kinds import DoorKind

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.events import StoredEvent
    from edge.status.view import BuildingView


class DoorShown:
    """What the page shows a door as (not the access decision's `DoorState`: that is what a card meets)."""

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
            return DoorShown.FIRE_RELEASE
        if self.alarm is not None:
            return self.alarm
        return DoorShown.RELEASED if now < self.released_until else DoorShown.LOCKED


class Tiles:
    def __init__(self, config: BuildingConfig) -> None:
        self.doors = {door.name: DoorView(door.name, door.unlock_s, door.egress) for door in config.doors}
        self.readers: dict[str, dict[str, Any]] = {reader.name: {"online": True, "detail": None, "since": None} for reader in config.readers}
        self.fire: dict[str, Any] | None = None
        self.lockouts: dict[str, dict[str, Any]] = {}
        self.decisions: Counter[str] = Counter()
        self.clock: dict[str, Any] = {"trusted": True}

    def keep(self, older: Tiles) -> None:
        """A door or reader added by a reload gets its tile, one removed loses it (a reader taken out
        is not an offline reader in /healthz); what was seen stays."""
        for name, door in self.doors.items():
            if name in older.doors:
                older.doors[name].unlock_s = door.unlock_s
        self.doors = {name: older.doors.get(name, door) for name, door in self.doors.items()}
        self.readers = {name: older.readers.get(name, state) for name, state in self.readers.items()}
        self.fire, self.lockouts, self.decisions, self.clock = older.fire, older.lockouts, older.decisions, older.clock

    def _door(self, event: StoredEvent) -> DoorView | None:
        return self.doors.get(event.body.get("door", event.source))

    def apply(self, event: StoredEvent, at: float) -> None:
        body, kind = event.body, event.kind
        if kind == DoorKind.ACCESS_DECISION:
            self.decisions[str(body.get("reason"))] += 1
            door = self.doors.get(body.get("door", ""))
            if door is not None:
                door.last = {"at": at, "reason": body.get("reason"), "granted": body.get("granted"), "reader": event.source}
                if body.get("granted"):
                    door.released_until = at + door.unlock_s
        elif kind in (DoorKind.DOOR_EXIT, DoorKind.DOOR_REMOTE_UNLOCK):
            if (door := self._door(event)) is not None:
                door.released_until = at + door.unlock_s
                door.last = {"at": at, "reason": "exit" if kind == DoorKind.DOOR_EXIT else "remote_unlock", "granted": True}
        elif kind in (DoorKind.DOOR_FORCED, DoorKind.DOOR_HELD_OPEN):
            if (door := self._door(event)) is not None:
                door.alarm = DoorShown.FORCED if kind == DoorKind.DOOR_FORCED else DoorShown.HELD_OPEN
        elif kind == DoorKind.DOOR_CLOSED:
            if (door := self._door(event)) is not None:
                door.alarm = None
        elif kind == DoorKind.FIRE_RELEASE:
            self.fire = {"since": at, "source": body.get("source")}
        elif kind == DoorKind.FIRE_RESET:
            self.fire = None
        elif kind in (DoorKind.READER_FAULT, DoorKind.READER_RESTORED):
            if event.source in self.readers:
                detail = ": ".join(str(part) for part in (body.get("reason"), body.get("detail")) if part)
                self.readers[event.source] = {"online": kind == DoorKind.READER_RESTORED, "detail": detail, "since": at}
        elif kind == DoorKind.PIN_LOCKOUT:
            self.lockouts[f"{event.source}:{body.get('scope')}"] = {"at": at, "until": at + float(body.get("lockout_s", 0)), "reader": event.source, **body}
        elif kind == DoorKind.CLOCK_UNTRUSTED:
            self.clock |= {"trusted": False, "detail": body.get("fault"), "since": at}

    def snapshot(self, now: float, view: BuildingView) -> dict[str, Any]:
        fire = self.fire is not None
        return {
            "doors": [{"name": d.name, "state": d.state(now, fire), "egress": d.egress, "last": d.last} for d in self.doors.values()],
            "readers": [{"name": name, **state} for name, state in self.readers.items()],
            "clock": dict(self.clock),
            "decisions": dict(self.decisions),
        }
