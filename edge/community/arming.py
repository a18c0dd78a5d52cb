"""Intrusion zones at run time: sensors from the alarm inputs, cards from the journal, schedules
from the clock, `zone.arm` from the control socket or a signed cloud command.

The armed state survives a restart (STATE_DIR/zones.json, written atomically off the loop):
a gateway that reboots while the tenant is away stays armed. Cards come from the bus (granted
access decisions at the zone's door, as the journal admits them, also while the disk refuses
writes), so this part needs nothing of the door path but its records.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from edge.runtime import pools
from edge.doors.schedule import WeeklySchedule
from edge.community.settings import IntrusionZone
from edge.community.zones import Outcome, Step, Zone, ZoneState
from edge.events import Event, Priority
from edge.community.kinds import CommunityKind
from edge.doors.kinds import DoorKind
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.runtime.state_files import StateFile

log = structlog.get_logger("edge.community.arming")

ZONES_FILE = "zones.json"
TICK_S = 0.2


class Arming:
    def __init__(
        self,
        zones: list[IntrusionZone],
        state_dir: Path,
        timezone_name: str,
        journal: Journal,
        alarm: Callable[[IntrusionZone, str, float, str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = {z.name: z for z in zones}
        self.path = state_dir / ZONES_FILE
        self.zone_tz = ZoneInfo(timezone_name)
        self.journal = journal
        self.alarm = alarm  # (zone, sensor, detected mono, event id) -> the intrusion alarm, journaled and notified
        self._clock, self._wall = clock, wall
        saved = _load(self.path)
        self.zones = {
            z.name: Zone(z.name, z.entry, z.exit_delay_s, z.entry_delay_s, ZoneState(saved.get(z.name, "disarmed")))
            for z in zones
        }
        self.zone_of = {name: z.name for z in zones for name in z.inputs}
        self._schedules = {z.name: WeeklySchedule.parse(z.schedule) for z in zones if z.schedule}
        self._scheduled: dict[str, bool] = {}
        self._doors = {z.door: z.name for z in zones if z.door}
        self._events: asyncio.Queue[Event] = asyncio.Queue(1024)  # one per zone change; a flood of sensor flaps is bounded
        self._saving = asyncio.Lock()
        self.file = StateFile(self.path, "zone states across a restart (zones arm and disarm from memory)", journal)

    # --- in --------------------------------------------------------------------------

    def sensor(self, input_name: str, is_open: bool, mono: float) -> None:
        """An intrusion input changed (from AlarmInputs, on the loop)."""
        zone = self.zones[self.zone_of[input_name]]
        self._apply(zone, zone.sensor(input_name, is_open, mono), mono)

    async def command(self, args: dict[str, Any]) -> dict[str, Any]:
        """The `zone.arm` operation: {zone, armed: true|false, operator}."""
        operator, name, armed = args.get("operator"), args.get("zone"), args.get("armed")
        if not isinstance(operator, str) or not operator.strip():
            return {"ok": False, "error": "an operator id is required"}
        if name not in self.zones:
            return {"ok": False, "error": f"no zone named {name!r}"}
        if not isinstance(armed, bool):
            return {"ok": False, "error": "armed must be true or false"}
        zone = self.zones[name]
        by = f"command:{operator.strip()}"
        step = zone.arm(self._clock(), by, delay=False) if armed else zone.disarm(by)
        self._apply(zone, step, self._clock())
        if step.outcome is Outcome.NOT_ARMED:
            return {"ok": False, "error": f"cannot arm {name}: open {', '.join(step.open_sensors)}"}
        return {"ok": True, "zone": name, "state": str(zone.state)}

    # --- out -------------------------------------------------------------------------

    def _apply(self, zone: Zone, step: Step, mono: float) -> None:
        settings = self.settings[zone.name]
        body = {"zone": zone.name, "area": settings.area, "outcome": str(step.outcome), "state": str(zone.state)}
        if step.by:
            body["by"] = step.by
        if step.outcome is Outcome.UNCHANGED:
            return
        if step.outcome is Outcome.ALARM:
            self.alarm(settings, step.sensor or "", mono, "armed")
            return
        if step.outcome is Outcome.LOGGED:
            event = Event(kind=CommunityKind.INTRUSION_LOGGED, priority=Priority.ACCESS, source=step.sensor or zone.name, body={**body, "input": step.sensor})
        elif step.outcome is Outcome.NOT_ARMED:
            event = Event(kind=CommunityKind.ZONE_NOT_ARMED, priority=Priority.FAULT, source=zone.name, body={**body, "open": list(step.open_sensors)})
        else:
            event = Event(kind=CommunityKind.ZONE_STATE, priority=Priority.ACCESS, source=zone.name,
                          body={**body, **({"input": step.sensor} if step.sensor else {})})
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            log.error("zone events queue full", zone=zone.name, outcome=str(step.outcome))

    # --- the worker ------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._ticking())
            if self._doors:
                group.create_task(self._cards())
            while True:
                event = await self._events.get()
                await self.journal.append(event)
                if event.kind == CommunityKind.ZONE_STATE:
                    async with self._saving:
                        try:
                            await pools.call(Pool.FILES, _save, self.path, {n: ("armed" if z.armed else "disarmed") for n, z in self.zones.items()})
                        except OSError as refused:  # a refusing disk costs the restart memory, never the zone
                            await self.file.refused(refused)
                        else:
                            await self.file.written()

    async def _ticking(self) -> None:
        while True:
            now = self._clock()
            local = self._wall().astimezone(self.zone_tz)
            for name, schedule in self._schedules.items():
                inside = schedule.allows(local)
                if self._scheduled.get(name, inside) != inside:
                    zone = self.zones[name]
                    self._apply(zone, zone.arm(now, "schedule", delay=False) if inside else zone.disarm("schedule"), now)
                self._scheduled[name] = inside
            for zone in self.zones.values():
                self._apply(zone, zone.tick(now), now)
            await asyncio.sleep(TICK_S)

    async def _cards(self) -> None:
        """Granted cards at a zone's door, taken from the bus as the journal admits them: a disk that
        refuses writes stops the journal's head, and must not stop a tenant disarming her home."""
        with self.journal.bus.subscribe("arming", kinds=(DoorKind.ACCESS_DECISION,)) as decisions:
            async for notice in decisions:
                name = self._doors.get(notice.body.get("door"))
                if name is not None and notice.body.get("granted"):
                    zone = self.zones[name]
                    self._apply(zone, zone.card(self._clock(), f"card:{notice.body.get('credential')}"), self._clock())


def _load(path: Path) -> dict[str, str]:
    try:
        return {k: v for k, v in json.loads(path.read_text()).items() if v in ("armed", "disarmed")}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as error:  # unreadable: start armed is not safe to guess either way
        log.error("zone states unreadable; zones start disarmed", path=str(path), error=str(error))
        return {}


def _save(path: Path, states: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as out:
        json.dump(states, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
