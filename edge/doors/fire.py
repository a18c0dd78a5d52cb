"""Fire release: on a fire alarm, every egress door is released and stays released.

Life safety wins: this path needs nothing but the field bus and the door config. It
does not read the credential store (which may be locked, corrupt or missing), does not
wait for the journal before writing the relays, and is latched: a fire alarm input
that clears again does not re-lock the doors; only a technician's `reset` does.
The latch survives a restart: it is written to STATE_DIR/fire-latch.json (atomically, on the
access pool, after the relay writes have started) and removed by the reset; a gateway that
starts with the file present releases the egress doors again at once and keeps them
released until `edge fire reset`, whether or not the fire input is still active.
A relay module whose doors are all egress doors and whose profile has a `release_all`
block command gets that one write (all doors in one request); others get per-door
release commands, all devices in parallel, so the building is released well within 1 s.

A reset is refused while any fire input still reads active, or its state is not known
(never read, stale, its device offline): securing the doors then would lock them during a
fire until the next poll released them again. Releases and resets write the relays one
batch at a time, so an alarm that comes during a reset releases after its secure writes; the
latch file's fsync is never inside that lock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.observations import Reading
from edge.runtime import pools
from edge.config.building import BuildingConfig
from edge.doors.lock import CommandBus, DoorLock
from edge.events import Event, Priority
from edge.doors.kinds import DoorKind
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.runtime.state_files import remove_durably, write_atomically

log = structlog.get_logger("edge.doors.fire")

BLOCK_RELEASE = "release_all"
LATCH_FILE = "fire-latch.json"
STALE_INTERVALS = 3  # a fire input not read for this many poll intervals...
STALE_FLOOR_S = 2.0  # ...(and at least this long) is stale: its state is not known


@dataclass
class FireInput:
    """A fire alarm input as last read: a reset needs it read recently, valid, and clear."""

    name: str  # DEVICE.POINT
    stale_after_s: float
    online: Callable[[], bool] = lambda: True
    label: str | None = None  # how a refusal names it (a smoke detector by its name); default "fire input NAME"
    active: bool | None = None  # None: the device says the reading is not valid now
    read_at: float | None = None  # monotonic time of the last reading; None: never read

    def holds_reset(self, now: float) -> str | None:
        """Why this input forbids a reset now; None when it reads clear and fresh."""
        named = self.label or f"fire input {self.name}"
        if self.read_at is None:
            return f"{named} has not been read since the gateway started"
        if not self.online():
            return f"{named}: its device is offline"
        if now - self.read_at > self.stale_after_s:
            return f"{named} has not been read for {now - self.read_at:.1f} s"
        if self.active is None:
            return f"{named} reads no valid value"
        if self.active:
            return f"{named} still reads active"
        return None


class FireResetRefused(Exception):
    """A reset refused because a fire input is active or not known; journaled as `seq`."""

    def __init__(self, reasons: list[str], seq: int) -> None:
        super().__init__("; ".join(reasons))
        self.reasons, self.seq = reasons, seq


class FireRelease:
    """The building's fire latch and the egress locks it releases."""

    def __init__(
        self, locks: Mapping[str, DoorLock], bus: CommandBus, journal: Journal, block_devices: frozenset[str] = frozenset(),
        latch_path: Path | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.locks = dict(locks)
        self.bus = bus
        self.journal = journal
        self.block_devices = block_devices
        self.latch_path = latch_path
        self.inputs: dict[str, FireInput] = {}
        self._clock = clock
        self.active = False
        self.source: str | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # at most one release at a time (the latch)
        self._latch_io = asyncio.Lock()  # saves and removals of the latch file, in order
        self._relays = asyncio.Lock()  # one batch of release or secure writes at a time

    @classmethod
    def for_building(cls, config: BuildingConfig, locks: Mapping[str, DoorLock], bus: CommandBus, journal: Journal, profiles: Mapping[str, Profile]) -> FireRelease:
        """The egress doors' locks; a device gets the block write when it holds only egress doors.

        A module that also carries an elevator camera's hold relay never gets it: the block write
        sets every relay, and would hold the car in a fire, which must let it go."""
        egress = {door.name: locks[door.name] for door in config.doors if door.egress and door.name in locks}
        doors_on: dict[str, list[bool]] = defaultdict(list)
        for door in config.doors:
            if door.lock is not None:
                doors_on[door.lock.device].append(door.egress)
        car_holds = {camera.hold.device for camera in config.cameras if camera.hold is not None}
        device_profiles = {device.name: profiles.get(device.profile) for device in config.devices}
        block = frozenset(
            device for device, egress_flags in doors_on.items()
            if all(egress_flags) and device not in car_holds and (profile := device_profiles.get(device)) is not None
            and any(command.name == BLOCK_RELEASE for command in profile.commands)
        )
        return cls(egress, bus, journal, block, latch_path=config.state_path / LATCH_FILE)

    def restore(self) -> bool:
        """At start: a latch left by the last run releases the egress doors again (True if so).
        Reads one small file before anything runs, like the credential store's open."""
        if self.latch_path is None:
            return False
        try:
            saved = json.loads(self.latch_path.read_text())
            source = str(saved["source"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable: fail towards released
            log.error("fire latch file unreadable, releasing anyway", path=str(self.latch_path), error=str(exc))
            source = "unknown"
        self.trigger(source, restored=True)
        return True

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(active)` when the latch sets or resets (on the loop, must not block)."""
        self._listeners.append(listener)

    def off_change(self, listener: Callable[[bool], None]) -> None:
        """Stop telling `listener` (a camera's guard a reload replaced)."""
        self._listeners = [known for known in self._listeners if known != listener]

    def watch(self, name: str, stale_after_s: float, online: Callable[[], bool] = lambda: True, label: str | None = None) -> None:
        """Register a fire input (DEVICE.POINT) whose readings `alarm_input` or `input_read` gets:
        a reset waits until it reads clear, no older than `stale_after_s`, with its device `online()`."""
        self.inputs[name] = FireInput(name, stale_after_s, online, label)

    def input_read(self, reading: Reading) -> None:
        """Field bus listener for a watched input whose alarm is judged elsewhere (a smoke
        detector's alarm bit: its test bit decides whether it is a fire): only remembered."""
        watched = self.inputs.get(f"{reading.device}.{reading.point}")
        if watched is not None:
            watched.active = None if reading.value is None else bool(reading.value)
            watched.read_at = reading.mono

    def alarm_input(self, reading: Reading) -> None:
        """Field bus listener for the fire alarm input (true = fire)."""
        self.input_read(reading)
        if reading.value:
            self.trigger(f"{reading.device}.{reading.point}")

    def trigger(self, source: str, restored: bool = False) -> None:
        """A fire alarm from any source: latch and release every egress door now."""
        if self.active:
            return
        self.active, self.source = True, source
        for listener in self._listeners:
            listener(True)
        task = asyncio.create_task(self._release(source, time.monotonic(), restored), name="fire-release")
        self._tasks.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task[None]) -> None:
        """The release task ended: say how, since nobody awaits it (the relays were written first)."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fire release task failed", error=repr(task.exception()))

    async def _release(self, source: str, started: float, restored: bool) -> None:
        async with self._relays:  # free unless a reset is securing the doors: then right after it
            writes: dict[str, asyncio.Future[bool]] = {}
            for device in self.block_devices:
                writes[f"{device}:{BLOCK_RELEASE}"] = asyncio.ensure_future(self.bus.command(device, BLOCK_RELEASE))
            for door, lock in self.locks.items():
                if lock.lock.device not in self.block_devices:
                    writes[door] = asyncio.ensure_future(lock.release())
            saved = asyncio.ensure_future(self._save_latch(source)) if not restored else None  # after the writes
            results = dict(zip(writes, await asyncio.gather(*writes.values())))
            for lock in self.locks.values():
                if lock.lock.device in self.block_devices:
                    lock.keep_released()  # what release() does after its own write
        unconfirmed = sorted(name for name, ok in results.items() if not ok)
        body = {
            "source": source,
            "doors": sorted(self.locks),
            "unconfirmed": unconfirmed,
            "released_in_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if restored:
            body["restored"] = True  # latched before a restart, not reset since
        elif saved is not None:
            body["latch_saved"] = await saved
        event = Event(kind=DoorKind.FIRE_RELEASE, priority=Priority.ALARM, source="fire", body=body)
        log.error("fire release", event_id=event.id, **body)
        await self.journal.append(event)

    async def reset_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Control-socket handler for `edge fire reset --operator ID`."""
        operator = request.get("operator")
        if not isinstance(operator, str) or not operator.strip():
            return {"ok": False, "error": "an operator id is required"}
        try:
            if not await self.reset(operator.strip()):
                return {"ok": False, "error": "no fire release is active"}
        except FireResetRefused as refused:
            return {"ok": False, "error": f"reset refused, the egress doors stay released: {refused}",
                    "inputs": refused.reasons, "result_seq": refused.seq}
        return {"ok": True, "doors": sorted(self.locks)}

    async def reset(self, operator: str) -> bool:
        """A technician ends the release: egress doors are secured again. False if not active;
        raises FireResetRefused (journaled) while a fire input reads active or is not known."""
        if not self.active:
            return False
        await asyncio.gather(*self._tasks, return_exceptions=True)  # the release (and its save) first
        async with self._relays:
            if not self.active:
                return False  # another reset got here first
            holds = [why for watched in self.inputs.values() if (why := watched.holds_reset(self._clock())) is not None]
            if not holds:
                self.active, self.source = False, None
                for listener in self._listeners:
                    listener(False)
                results = await asyncio.gather(*(lock.secure() for lock in self.locks.values()))
        if not holds:
            # After the secure writes and outside the relay lock: a fire now releases without
            # waiting for an fsync, and its own save queues behind this removal (one latch lock).
            # A crash before the removal releases again at the next start: the safe side.
            await self._remove_latch()
        if holds:  # journaled outside the relay lock: an alarm's release never waits on the journal
            refusal = Event(kind=DoorKind.FIRE_RESET_REFUSED, priority=Priority.ALARM, source="fire",
                            body={"operator": operator, "inputs": holds})
            log.error("fire reset refused", event_id=refusal.id, **refusal.body)
            raise FireResetRefused(holds, await self.journal.append(refusal))
        body = {"operator": operator, "unconfirmed": sorted(d for d, ok in zip(self.locks, results) if not ok)}
        event = Event(kind=DoorKind.FIRE_RESET, priority=Priority.ALARM, source="fire", body=body)
        log.warning("fire release reset", event_id=event.id, **body)
        await self.journal.append(event)
        return True

    async def _save_latch(self, source: str) -> bool:
        """Persist the latch (off the loop); False, logged, when the state dir refuses it."""
        if self.latch_path is None:
            return False
        record = {"source": source, "since": datetime.now(UTC).isoformat(timespec="seconds")}
        async with self._latch_io:
            try:
                await pools.call(Pool.ACCESS, write_atomically, self.latch_path, json.dumps(record).encode())
            except OSError as exc:
                log.error("fire latch not saved: a restart would forget it", path=str(self.latch_path), error=str(exc))
                return False
        return True

    async def _remove_latch(self) -> None:
        if self.latch_path is None:
            return
        async with self._latch_io:
            try:
                await pools.call(Pool.ACCESS, remove_durably, self.latch_path)
            except OSError as exc:
                log.error("fire latch file not removed: a restart would release again", path=str(self.latch_path), error=str(exc))
