"""Fire release: on a fire alarm, every egress door is released and stays released.

Life safety wins: this path needs nothing but the field bus and the door config. It
does not read the credential store (which may be locked, corrupt or missing), does not
wait for the journal before writing the relays, and is latched: a fire alarm input
that clears again does not re-lock the doors; only a technician's `reset` does.
A relay module whose doors are all egress doors and whose profile has a `release_all`
block command gets that one write (all doors in one request); others get per-door
release commands, all devices in parallel, so the building is released well within 1 s.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from drivers.modbus.profile import Profile
from drivers.modbus.observations import Reading
from edge.config import BuildingConfig
from edge.doors.lock import CommandBus, DoorLock
from edge.events import Event, Kind, Priority
from edge.journal import Journal

log = structlog.get_logger("edge.fire")

BLOCK_RELEASE = "release_all"


class FireRelease:
    """The building's fire latch and the egress locks it releases."""

    def __init__(self, locks: Mapping[str, DoorLock], bus: CommandBus, journal: Journal, block_devices: frozenset[str] = frozenset()) -> None:
        self.locks = dict(locks)
        self.bus = bus
        self.journal = journal
        self.block_devices = block_devices
        self.active = False
        self.source: str | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_building(cls, config: BuildingConfig, locks: Mapping[str, DoorLock], bus: CommandBus, journal: Journal, profiles: Mapping[str, Profile]) -> FireRelease:
        """The egress doors' locks; a device gets the block write when it holds only egress doors."""
        egress = {door.name: locks[door.name] for door in config.doors if door.egress and door.name in locks}
        doors_on: dict[str, list[bool]] = defaultdict(list)
        for door in config.doors:
            if door.lock is not None:
                doors_on[door.lock.device].append(door.egress)
        device_profiles = {device.name: profiles.get(device.profile) for device in config.devices}
        block = frozenset(
            device for device, egress_flags in doors_on.items()
            if all(egress_flags) and (profile := device_profiles.get(device)) is not None
            and any(command.name == BLOCK_RELEASE for command in profile.commands)
        )
        return cls(egress, bus, journal, block)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(active)` when the latch sets or resets (on the loop, must not block)."""
        self._listeners.append(listener)

    def alarm_input(self, reading: Reading) -> None:
        """Field bus listener for the fire alarm input (true = fire)."""
        if reading.value:
            self.trigger(f"{reading.device}.{reading.point}")

    def trigger(self, source: str) -> None:
        """A fire alarm from any source: latch and release every egress door now."""
        if self.active:
            return
        self.active, self.source = True, source
        for listener in self._listeners:
            listener(True)
        task = asyncio.create_task(self._release(source, time.monotonic()), name="fire-release")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, source: str, started: float) -> None:
        writes: dict[str, asyncio.Future[bool]] = {}
        for device in self.block_devices:
            writes[f"{device}:{BLOCK_RELEASE}"] = asyncio.ensure_future(self.bus.command(device, BLOCK_RELEASE))
        for door, lock in self.locks.items():
            if lock.lock.device not in self.block_devices:
                writes[door] = asyncio.ensure_future(lock.release())
        results = dict(zip(writes, await asyncio.gather(*writes.values())))
        unconfirmed = sorted(name for name, ok in results.items() if not ok)
        body = {
            "source": source,
            "doors": sorted(self.locks),
            "unconfirmed": unconfirmed,
            "released_in_ms": round((time.monotonic() - started) * 1000, 1),
        }
        event = Event(kind=Kind.FIRE_RELEASE, priority=Priority.ALARM, source="fire", body=body)
        log.error("fire release", event_id=event.id, **body)
        await self.journal.append(event)

    async def reset_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Control-socket handler for `edge fire reset --operator ID`."""
        operator = request.get("operator")
        if not isinstance(operator, str) or not operator.strip():
            return {"ok": False, "error": "an operator id is required"}
        if not await self.reset(operator.strip()):
            return {"ok": False, "error": "no fire release is active"}
        return {"ok": True, "doors": sorted(self.locks)}

    async def reset(self, operator: str) -> bool:
        """A technician ends the release: egress doors are secured again. False if not active."""
        if not self.active:
            return False
        self.active, self.source = False, None
        for listener in self._listeners:
            listener(False)
        results = await asyncio.gather(*(lock.secure() for lock in self.locks.values()))
        body = {"operator": operator, "unconfirmed": sorted(d for d, ok in zip(self.locks, results) if not ok)}
        event = Event(kind=Kind.FIRE_RESET, priority=Priority.ALARM, source="fire", body=body)
        log.warning("fire release reset", event_id=event.id, **body)
        await self.journal.append(event)
        return True
