"""The doors' part of the building: readers, locks, access path and fire latch, wired from the config."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import structlog

from edge.drivers.modbus.profile import Profile
from edge.runtime import pools
from edge.doors.credentials.store import CredentialStore, CredentialStoreUnavailable
from edge.config.building import BuildingConfig, device_profiles
from edge.doors.settings import Lock
from edge.doors.feature import DoorOp
from edge.doors.access import AccessPath
from edge.doors.lock import DoorLock
from edge.events import Event, Priority
from edge.feature import Site, Wired
from edge.doors.kinds import DoorKind
from edge.fieldbus.devices import FieldBus, PointKey
from edge.doors.fire import STALE_FLOOR_S, STALE_INTERVALS, FireRelease
from edge.journal import Journal
from edge.doors.readers import ReaderInbox, reader_workers
from edge.runtime.pools import Pool

log = structlog.get_logger("edge.doors")

Work = Callable[[], Awaitable[None]]


def credentials_path(config: BuildingConfig):
    return config.state_path / "credentials.db"


def prepare(config: BuildingConfig) -> tuple[CredentialStore | None, str | None]:
    """The cards, loaded on a thread while the journal opens at start (edge/feature.py)."""
    return open_store(config)


def open_store(config: BuildingConfig) -> tuple[CredentialStore | None, str | None]:
    """The credential store, or None and why: doors then deny cards, fire release still works."""
    try:
        store = CredentialStore.open(credentials_path(config), config.building.secret.read())
    except (CredentialStoreUnavailable, OSError, ValueError) as exc:
        return None, str(exc)[:300]
    # Served from a read-only copy on a refusing disk: cards work, updates are refused; say so.
    return store, None if store.read_only is None else f"served read-only, updates refused: {store.read_only}"[:300]


@dataclass
class Doors:
    """What the gateway keeps of the doors: the access path, the fire latch, their jobs."""

    config: BuildingConfig
    access: AccessPath
    fire: FireRelease | None
    work: dict[str, Work] = field(default_factory=dict)

    async def reload_request(self, request: dict) -> dict:
        """Control-socket handler: reopen the store after `edge credentials` wrote to it."""
        store, problem = await pools.call(Pool.FILES, open_store, self.config)
        if store is None:
            return {"ok": False, "error": problem}
        previous, self.access.store = self.access.store, store
        if previous is not None:
            previous.close()
        return {"ok": True, "credentials": len(store.list())}


def pulse_range(config: BuildingConfig, profiles: Mapping[str, Profile], lock: Lock) -> tuple[float, float] | None:
    """The seconds a lock's module-timed pulse command takes (lowest, highest); None when the
    lock has no pulse or its profile fixes the length."""
    if lock.pulse is None:
        return None
    device = next(d for d in config.devices if d.name == lock.device)
    argument = profiles[device.profile].command(lock.pulse).argument
    return None if argument is None else (argument.min, argument.max)


def assemble_doors(config: BuildingConfig, journal: Journal, fieldbus: FieldBus | None,
                   opened: tuple[CredentialStore | None, str | None] | None = None) -> Doors:
    """Build the doors from the config; must run on the event loop (the inbox belongs to it).
    `opened` is `open_store`'s answer when the caller already has it (the gateway loads the cards
    while the journal checks its file)."""
    inbox = ReaderInbox(asyncio.get_running_loop())
    store, problem = opened if opened is not None else open_store(config)
    locks: dict[str, DoorLock] = {}
    access: AccessPath

    async def unconfirmed(door: str, command: str) -> None:
        await access.lock_unconfirmed(door, command)

    fire: FireRelease | None = None
    profiles = device_profiles(config) if fieldbus is not None else {}
    if fieldbus is not None:
        for door in config.doors:
            if door.lock is not None:
                locks[door.name] = DoorLock(door.name, door.lock, fieldbus, unconfirmed, lambda: fire is not None and fire.active,
                                            pulse_s=pulse_range(config, profiles, door.lock))
    readers = reader_workers(config.readers, inbox)
    access = AccessPath(config.doors, ZoneInfo(config.building.timezone), locks, store, journal, inbox,
                        indicators=readers.indicators, pin_lockout=config.access.pin_lockout)
    if fieldbus is not None:
        fire = FireRelease.for_building(config, locks, fieldbus, journal, profiles)
        fire.on_change(access.set_fire_released)
        fire.restore()  # a latch from before a restart holds the egress doors released again
        if config.fire_alarm is not None:
            key = PointKey.parse(config.fire_alarm)
            fire.watch(str(key), max(STALE_INTERVALS * fieldbus.interval_of(key), STALE_FLOOR_S),
                       online=lambda device=key.device: fieldbus.is_online(device))
            fieldbus.subscribe(key, fire.alarm_input)
        for door in config.doors:
            if door.contact is not None:
                fieldbus.subscribe(PointKey.parse(door.contact), lambda reading, name=door.name: access.contact(name, reading))
            if door.exit_button is not None:
                fieldbus.subscribe(PointKey.parse(door.exit_button), lambda reading, name=door.name: access.exit_button(name, reading))

    async def run_access() -> None:
        if problem is not None:
            log.error("credential store unavailable", detail=problem)
            await journal.append(Event(DoorKind.CREDENTIALS_UNAVAILABLE, Priority.FAULT, "credentials", {"detail": problem}))
        await access.run()

    work: dict[str, Work] = {"access": run_access}
    work.update(readers.jobs)
    return Doors(config, access, fire, work)


def wire(site: Site) -> Wired:
    """The doors as a feature of the building (edge/feature.py): their jobs, the operations a
    technician and the cloud reach them by, their answer to a reload."""
    from edge.doors import retune

    doors = assemble_doors(site.config, site.journal, site.fieldbus, site.prepared.get("doors"))
    control: dict = {DoorOp.CREDENTIALS_RELOAD: doors.reload_request, DoorOp.UNLOCK: doors.access.remote_unlock}
    if doors.fire is not None:
        control[DoorOp.FIRE_RESET] = doors.fire.reset_request
    return Wired(doors, doors.work, control, retuner=retune.retuner(doors))
