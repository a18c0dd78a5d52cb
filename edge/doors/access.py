"""The access path in the daemon: a card read becomes a decision, an unlock and an event.

For each read: look the card up in memory, get trusted time from the clock guard, run
the pure `decide`, start the unlock, then queue the decision for the journal (`Recorder`:
a bounded queue and one task; the door never waits on the SD card). The event
carries the credential key's first 12 hex digits, never the serial, and the time from
the frame's last byte to the decision. At a card+PIN reader the card waits up to
`pin_wait_s` for its PIN (the scrypt check runs in a thread); without one it is denied
`pin_required`. A reader with an indicator (OSDP: LED and buzzer) shows the decision after
the unlock has started (edge/doors/indication.py).
Reader faults and their clearing are journaled through a `FaultLimiter`; garbage on a card
line (dropped frames, tallied by the inbox) as `fault.reader_garbage`, one per reader and
cause per minute with a count (`Throttle`), so a flood costs a handful of events.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from edge.drivers.cards.observations import CardRead, PinEntry, ReaderFault
from edge.drivers.modbus.observations import Reading
from edge.doors.clock import ClockGuard, TrustedTime
from edge.doors.credentials.credential import Credential
from edge.doors.credentials.store import CredentialStore
from edge.doors.decision import Decision, decide
from edge.doors.policy import DoorPolicy, DoorState
from edge.doors.reason import Reason
from edge.doors.settings import Door, PinLockoutSettings
from edge.doors.indication import Indication
from edge.doors.lock import DoorLock
from edge.doors.lockout import Lockout, PinLockout, Scope
from edge.doors.machine import DoorAlarm, DoorMachine
from edge.doors.recorder import Recorder
from edge.events import Event, Priority
from edge.doors.kinds import DoorKind
from edge.runtime import pools
from edge.journal import Journal
from edge.doors.readers import FaultLimiter, ReaderHealth, ReaderInbox
from edge.runtime.pools import Pool
from edge.runtime.throttle import OVERFLOW_KEY, Throttle

log = structlog.get_logger("edge.doors")

SOFTWARE_RELEASED = date(2025, 1, 1)  # a wall clock before this is certainly wrong
PIN_WAIT_S = 10.0
TICK_S = 0.5
GARBAGE_WINDOW_S = 60.0  # one fault.reader_garbage per reader and cause per window, with a count
KEY_PREFIX = 12
_ALARM_KIND = {DoorAlarm.forced: DoorKind.DOOR_FORCED, DoorAlarm.held_open: DoorKind.DOOR_HELD_OPEN, DoorAlarm.closed: DoorKind.DOOR_CLOSED}


@dataclass
class DoorPoint:
    """One door at run time: its config, its policy for `decide`, its state machine and lock."""

    config: Door
    policy: DoorPolicy
    machine: DoorMachine
    lock: DoorLock | None
    exit_pressed: bool = False


@dataclass
class _PendingCard:
    read: CardRead
    credential: Credential | None
    timeout: asyncio.TimerHandle = field(repr=False)


class AccessPath:
    """Reads from the inbox, decides, unlocks and journals; watches contacts and exit buttons."""

    def __init__(
        self,
        doors: list[Door],
        zone: ZoneInfo,
        locks: dict[str, DoorLock],
        store: CredentialStore | None,
        journal: Journal,
        inbox: ReaderInbox,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        mono: Callable[[], float] = time.monotonic,
        pin_wait_s: float = PIN_WAIT_S,
        indicators: dict[str, Callable[[str, bool], None]] | None = None,
        pin_lockout: PinLockoutSettings = PinLockoutSettings(),
    ) -> None:
        self.store = store
        self.journal = journal
        self.inbox = inbox
        self.wall, self.mono = wall, mono
        self.pin_wait_s = pin_wait_s
        self.indication = Indication(indicators or {}, self._helper)
        self.reader_faults = FaultLimiter()
        self.lockout = PinLockout(pin_lockout)
        self.garbage = Throttle(window_s=GARBAGE_WINDOW_S)
        self.recorder = Recorder(journal)
        self.clock = ClockGuard(SOFTWARE_RELEASED)
        self.fire_released = False
        self.doors: dict[str, DoorPoint] = {}
        self.by_reader: dict[str, DoorPoint] = {}
        self._place(doors, zone, locks)
        self._pending: dict[str, _PendingCard] = {}
        self._group: asyncio.TaskGroup | None = None  # run()'s: PIN checks and indications are its helpers
        self._pin_checks: dict[str, asyncio.Task[None]] = {}  # one PIN check per reader at a time
        self.unassigned_reads = 0
        self.pins_ignored = 0

    def _place(self, doors: list[Door], zone: ZoneInfo, locks: dict[str, DoorLock]) -> None:
        """Each door's policy and point, and which door each reader serves. A door already here
        keeps its state machine (open, authorised, released) and its lock."""
        points: dict[str, DoorPoint] = {}
        for door in doors:
            pin_readers = frozenset(door.readers) if door.require_pin else frozenset()
            policy = DoorPolicy(door.name, zone, frozenset(door.groups), pin_readers)
            kept = self.doors.get(door.name)
            if kept is None:
                points[door.name] = DoorPoint(door, policy, DoorMachine(door.held_open_s).release(self.fire_released), locks.get(door.name))
            else:
                kept.config, kept.policy = door, policy
                kept.machine = replace(kept.machine, held_open_s=door.held_open_s)
                points[door.name] = kept
        self.doors = points
        self.by_reader = {reader: point for point in points.values() for reader in point.config.readers}

    def retune(self, doors: list[Door], zone: ZoneInfo, pin_lockout: PinLockoutSettings) -> None:
        """A reload's door settings (readers, groups, PIN, unlock and held-open times), in place.

        Only settings: a door whose lock, contact or exit button changed is wired anew by a restart
        (the reload decides that), so every lock here is the one the door had."""
        self._place(doors, zone, {name: point.lock for name, point in self.doors.items() if point.lock is not None})
        self.lockout.retune(pin_lockout)

    async def run(self) -> None:
        """Drain the reader inbox, tick the doors and journal, until cancelled or one part fails.

        The inbox, the ticks, the PIN checks and the indications are one task group: a failed part
        fails the access path (the supervisor journals each cause and restarts it), and a stop ends
        them all. The journal's recorder runs beside the group, so that at stop what rate limits held
        back is journaled and the queue reaches the journal within DRAIN_S while each door in
        mid-pulse is secured (both within the supervisor's stop)."""
        recorder = asyncio.create_task(self.recorder.run(), name="access-journal")
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._read_inbox(), name="access-inbox")
                group.create_task(self._tick_doors(), name="access-ticks")
                group.create_task(_ended(recorder), name="access-journal-watch")
        finally:
            self._group = None
            for pending in self._pending.values():
                pending.timeout.cancel()
            self._pending.clear()
            self._release_nuisances(math.inf)
            locks = [point.lock.close() for point in self.doors.values() if point.lock is not None]
            await asyncio.gather(self._stop_recorder(recorder), *locks, return_exceptions=True)

    async def _stop_recorder(self, recorder: asyncio.Task[None]) -> None:
        if not recorder.done():
            await self.recorder.drain()
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)

    async def _read_inbox(self) -> None:
        while True:
            observation = await self.inbox.get()
            if isinstance(observation, CardRead):
                self.card(observation)
            elif isinstance(observation, PinEntry):
                self.pin(observation)
            else:
                self._reader_health(self.reader_faults.offer(observation, self.mono()))

    def card(self, read: CardRead) -> None:
        point = self.by_reader.get(read.reader)
        if point is None:
            self.unassigned_reads += 1
            return
        credential = self.store.lookup(read.serial) if self.store is not None else None
        if read.reader in point.policy.pin_readers and not self.fire_released:
            previous = self._pending.pop(read.reader, None)
            if previous is not None:
                previous.timeout.cancel()
            timeout = asyncio.get_running_loop().call_later(self.pin_wait_s, self._pin_timeout, read.reader)
            self._pending[read.reader] = _PendingCard(read, credential, timeout)
            return
        self._conclude(point, read, credential, self._decide(point, read, credential, None))

    def pin(self, entry: PinEntry) -> None:
        point = self.by_reader.get(entry.reader)
        if entry.reader not in self._pending or point is None:
            return  # a PIN without a card before it opens nothing
        if entry.reader in self._pin_checks:
            self.pins_ignored += 1  # a check runs at this reader: the card waits on (then pin_required)
            return
        pending = self._pending.pop(entry.reader)
        pending.timeout.cancel()
        key = pending.credential.key if pending.credential is not None else None
        locked = self.lockout.locked(key, entry.reader, self.mono()) is not None  # then no guess is answered
        check = self._helper(self._pin_decision(point, pending, entry.pin, locked), f"pin:{entry.reader}")
        self._pin_checks[entry.reader] = check
        check.add_done_callback(lambda task, reader=entry.reader: self._pin_checks.pop(reader, None))

    async def _pin_decision(self, point: DoorPoint, pending: _PendingCard, pin: str, locked: bool) -> None:
        """The scrypt check on the access pool (never behind a slow call), then the decision; awaited
        at stop, errors logged here."""
        try:
            now = self._trusted_now()
            decision = await pools.call(
                Pool.ACCESS, decide, pending.credential, point.policy, pending.read.reader, now, self._door_state(), pin, locked)
            self._conclude(point, pending.read, pending.credential, decision)
            self._count_pin(point, pending, decision)
        except Exception:  # noqa: BLE001 - nobody awaits a PIN check but the stop
            log.exception("PIN check failed", reader=pending.read.reader)

    def _count_pin(self, point: DoorPoint, pending: _PendingCard, decision: Decision) -> None:
        """Feed the wrong-PIN counters; a lockout that starts is an alarm."""
        credential, reader = pending.credential, pending.read.reader
        if credential is None:
            return
        if decision.reason is Reason.granted:
            self.lockout.passed(credential.key)
        elif decision.reason is Reason.pin_wrong:
            for lockout in self.lockout.wrong(credential.key, reader, self.mono()):
                self._lockout(point, reader, lockout)

    def _lockout(self, point: DoorPoint, reader: str, lockout: Lockout) -> None:
        subject = lockout.subject[:KEY_PREFIX] if lockout.scope is Scope.credential else lockout.subject
        self.record(Event(DoorKind.PIN_LOCKOUT, Priority.ALARM, reader, {
            "door": point.config.name, "scope": lockout.scope.value, lockout.scope.value: subject,
            "attempts": lockout.attempts, "lockout_s": self.lockout.settings.lockout_s,
        }))

    def _pin_timeout(self, reader: str) -> None:
        pending = self._pending.pop(reader, None)
        if pending is not None:
            point = self.by_reader[reader]
            self._conclude(point, pending.read, pending.credential, self._decide(point, pending.read, pending.credential, None))

    def _decide(self, point: DoorPoint, read: CardRead, credential: Credential | None, pin: str | None) -> Decision:
        return decide(credential, point.policy, read.reader, self._trusted_now(), self._door_state(), pin)

    def _conclude(self, point: DoorPoint, read: CardRead, credential: Credential | None, decision: Decision) -> None:
        """Start the unlock first, then journal (without waiting for the commit)."""
        decided = self.mono()
        door = point.config
        if decision.granted and not self.fire_released:
            point.machine = point.machine.grant(decided, door.unlock_s)
            if point.lock is not None:
                point.lock.open_for(door.unlock_s)
        self.indication.show(read.reader, decision.granted)
        body = {
            "door": door.name,
            "reader": read.reader,
            "reason": decision.reason.value,
            "granted": decision.granted,
            "credential": credential.key[:KEY_PREFIX] if credential is not None else None,
            "frame_to_decision_ms": round((decided - read.received_mono) * 1000, 3),
        }
        if self.store is None:
            body["store"] = "unavailable"
        self.record(Event(DoorKind.ACCESS_DECISION, Priority.ACCESS, read.reader, body))
        if decision.alarm:
            self.record(Event(DoorKind.ACCESS_FLAGGED, Priority.ALARM, read.reader,
                              {"door": door.name, "credential": body["credential"]}))

    def _trusted_now(self) -> TrustedTime:
        self.clock, now, fault = self.clock.observe(self.wall(), self.mono())
        if fault is not None:
            self.record(Event(DoorKind.CLOCK_UNTRUSTED, Priority.FAULT, "clock", {
                "fault": fault.kind.value,
                "wall": fault.wall.isoformat(),
                "using": fault.used.isoformat() if fault.used else None,
            }))
        return now

    def _door_state(self) -> DoorState:
        return DoorState.fire_released if self.fire_released else DoorState.secured

    def set_fire_released(self, active: bool) -> None:
        """Fire latch listener: released doors are open to all, and no opening is forced."""
        self.fire_released = active
        for point in self.doors.values():
            point.machine = point.machine.release(active)

    def contact(self, door: str, reading: Reading) -> None:
        point = self.doors[door]
        point.machine, alarms = point.machine.contact(bool(reading.value), reading.mono)
        self._alarms(point, alarms)

    def exit_button(self, door: str, reading: Reading) -> None:
        """A press (rising edge) of the request-to-exit button: a free exit, journaled."""
        point = self.doors[door]
        pressed = bool(reading.value)
        rising, point.exit_pressed = pressed and not point.exit_pressed, pressed
        if not rising:
            return
        point.machine = point.machine.grant(reading.mono, point.config.unlock_s)
        if point.lock is not None and not self.fire_released:
            point.lock.open_for(point.config.unlock_s)
        self.record(Event(DoorKind.DOOR_EXIT, Priority.ACCESS, door, {"door": door}))

    async def remote_unlock(self, request: dict[str, object]) -> dict[str, object]:
        """Control op `door.unlock` (a technician on site, or a signed cloud command): one
        normal unlock pulse, audited with who asked and why; the door then counts as granted."""
        name, operator, reason = request.get("door"), request.get("operator"), request.get("reason", "")
        point = self.doors.get(name) if isinstance(name, str) else None
        if point is None:
            return {"ok": False, "error": f"no door named {name!r}"}
        if not isinstance(operator, str) or not operator.strip() or not isinstance(reason, str):
            return {"ok": False, "error": "an operator id is required (and a reason, as text)"}
        if point.lock is None:
            return {"ok": False, "error": f"door {name!r} has no lock output"}
        door = point.config
        point.machine = point.machine.grant(self.mono(), door.unlock_s)
        confirmed = self.fire_released or await point.lock.pulse(door.unlock_s)
        body = {"door": door.name, "operator": operator.strip(), "reason": reason[:500], "confirmed": confirmed}
        self.record(Event(DoorKind.DOOR_REMOTE_UNLOCK, Priority.ACCESS, door.name, body))
        return {"ok": confirmed, **body, **({} if confirmed else {"error": "the lock relay did not confirm"})}

    async def _tick_doors(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self.mono()
            for point in self.doors.values():
                point.machine, alarms = point.machine.tick(now)
                self._alarms(point, alarms)
            self._release_nuisances(now)

    def _release_nuisances(self, now: float) -> None:
        """Journal what the rate limits let through by `now` (math.inf at stop: everything held)."""
        self._reader_health(self.reader_faults.flush(now))
        for (reader, cause), count in self.inbox.take_drops().items():
            for _ in range(count):  # bounded by what a line carries per tick
                released = self.garbage.offer((reader, cause), self.mono())
                if released is not None:
                    self._garbage((reader, cause), released)
        for key, count in self.garbage.flush(now):
            self._garbage(key, count)

    def _garbage(self, key: object, count: int) -> None:
        reader, cause = key if key != OVERFLOW_KEY else ("readers", "other")  # type: ignore[misc]
        self.record(Event(DoorKind.READER_GARBAGE, Priority.FAULT, reader, {"cause": cause, "count": count}))

    def _helper(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A short helper of the access path, in run()'s group: it ends with the path, never alone."""
        if self._group is None:
            work.close()
            raise RuntimeError(f"{name}: the access path is not running")
        return self._group.create_task(work, name=name)

    def _reader_health(self, released: list[tuple[ReaderHealth, int]]) -> None:
        for health, suppressed in released:
            kind = DoorKind.READER_FAULT if isinstance(health, ReaderFault) else DoorKind.READER_RESTORED
            body: dict[str, object] = {"reason": health.reason.value, "detail": health.detail[:200]}
            if suppressed:
                body["suppressed"] = suppressed  # transitions held back by the rate limit before this one
            self.record(Event(kind, Priority.FAULT, health.reader, body))

    def _alarms(self, point: DoorPoint, alarms: tuple[DoorAlarm, ...]) -> None:
        for alarm in alarms:
            priority = Priority.ACCESS if alarm is DoorAlarm.closed else Priority.ALARM
            self.record(Event(_ALARM_KIND[alarm], priority, point.config.name, {"door": point.config.name}))

    async def lock_unconfirmed(self, door: str, command: str) -> None:
        """A relay write the module did not confirm: a fault, journaled (the lock goes on at once)."""
        self.record(Event(DoorKind.LOCK_UNCONFIRMED, Priority.FAULT, door, {"door": door, "command": command}))

    def record(self, event: Event) -> None:
        """Queue for the journal without waiting for the commit; the caller goes on at once."""
        if event.priority >= Priority.ALARM:
            log.warning(event.kind, event_id=event.id, source=event.source, **event.body)
        self.recorder.record(event)


async def _ended(recorder: asyncio.Task[None]) -> None:
    """Fail the access path's group when its recorder ends (it runs until stopped): shielded, so the
    group's own stop leaves the recorder to drain the queue after it."""
    await asyncio.shield(recorder)
    raise RuntimeError("the access journal's recorder ended")
