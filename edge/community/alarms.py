"""Alarm inputs at run time: smoke detectors, intrusion contacts and panic buttons on the field bus.

A smoke detector's five bits (alarm, fault, low battery, test, tamper) arrive as readings of
one poll; they are collected and judged together once the poll's readings are in (a
`call_soon` after the first), so "alarm with test" is a test and never a fire. What a
smoke alarm does first does not wait for the journal: the charging area's circuits are cut
through FieldPoints (one trip in flight, read back, never re-closed by the gateway) and,
when the config says so, the egress doors are released. Then the alarm is journaled and
handed to the notifier with the time its reading was taken.

Listeners run on the poller's path and must not block, so events go to an outbox that one
task drains; it holds one entry per change of an input's state, never telemetry.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from edge.drivers.modbus.observations import Reading
from edge.community.arming import Arming
from edge.community.notifier import Alarm, Notifier
from edge.community.settings import SMOKE_SIGNALS, AlarmInput, AlarmKind, CommunitySafety, IntrusionZone, SmokeDetector
from edge.community.smoke import DetectorState, Finding, Trouble
from edge.events import Event, Priority
from edge.community.kinds import CommunityKind
from edge.fieldbus.devices import FieldBus, PointKey
from edge.journal import Journal
from edge.points import Change, Condition, Quantity, Severity, Transition, TripReason

log = structlog.get_logger("edge.community.alarms")

NOTIFIED_TROUBLES = {Trouble.FAULT, Trouble.LOW_BATTERY, Trouble.TAMPER, Trouble.ALARM_AND_FAULT}


class PowerCut(Protocol):
    """What the alarms need of the field points (edge.power.points.FieldPoints)."""

    def cut_power(self, circuit: str, reason: TripReason, cause: Transition, hold: str) -> bool: ...
    def lift_hold(self, circuit: str) -> None: ...


@dataclass
class _Detector:
    settings: SmokeDetector
    state: DetectorState = field(default_factory=DetectorState)
    bits: dict[str, bool | None] = field(default_factory=dict)
    read_at: float = 0.0
    judging: bool = False
    charging_area: str | None = None
    circuits: list[str] = field(default_factory=list)


@dataclass
class _Input:
    settings: AlarmInput
    active: bool | None = None


class AlarmInputs:
    def __init__(
        self,
        settings: CommunitySafety,
        fieldbus: FieldBus,
        journal: Journal,
        notifier: Notifier,
        *,
        power: PowerCut | None,
        fire_release: Callable[[str], None] | None,
        state_dir: Path,
        timezone: str,
    ) -> None:
        self.journal = journal
        self.notifier = notifier
        self.power = power
        self.fire_release = fire_release
        self._outbox: deque[tuple[Event, Alarm | None]] = deque()
        self._wake = asyncio.Event()
        self.detectors = {d.name: _Detector(d) for d in settings.detectors}
        for area in settings.charging_areas:
            for name in area.detectors:
                self.detectors[name].charging_area = area.name
                self.detectors[name].circuits = list(area.circuits)
        for detector in self.detectors.values():
            for signal in SMOKE_SIGNALS:
                fieldbus.subscribe(PointKey(detector.settings.device, signal),
                                   lambda reading, d=detector, s=signal: self._on_bit(d, s, reading))
        self._inputs = settings.inputs
        self.arming = Arming(settings.zones, state_dir, timezone, journal, self._intrusion) if settings.zones else None
        for alarm_input in settings.inputs:
            watched = _Input(alarm_input)
            fieldbus.subscribe(PointKey.parse(alarm_input.point), lambda reading, i=watched: self._on_input(i, reading))

    # --- smoke ---------------------------------------------------------------------

    def _on_bit(self, detector: _Detector, signal: str, reading: Reading) -> None:
        detector.bits[signal] = None if reading.value is None else bool(reading.value)
        detector.read_at = reading.mono
        if not detector.judging:  # the rest of this poll's bits come before the loop runs this
            detector.judging = True
            asyncio.get_running_loop().call_soon(self._judge, detector)

    def _judge(self, detector: _Detector) -> None:
        detector.judging = False
        settings = detector.settings
        place = {"detector": settings.name, "device": settings.device, "area": settings.area}
        for change in detector.state.judge(dict(detector.bits)):
            if change.finding is Finding.SMOKE:
                self._smoke(detector, place)
            elif change.finding is Finding.SMOKE_CLEARED:
                for circuit in detector.circuits:
                    if self.power is not None and not self._area_smoky(detector.charging_area):
                        self.power.lift_hold(circuit)
                self._emit(Event(kind=CommunityKind.SMOKE_CLEARED, priority=Priority.ALARM, source=settings.name, body=place))
            else:
                raised = change.finding is Finding.TROUBLE
                trouble = change.trouble
                assert trouble is not None
                priority = Priority.ALARM if trouble is Trouble.ALARM_AND_FAULT else Priority.FAULT
                event = Event(
                    kind=CommunityKind.DETECTOR_TROUBLE if raised else CommunityKind.DETECTOR_TROUBLE_CLEARED, priority=priority,
                    source=settings.name, body={**place, "trouble": str(trouble)},
                )
                notify = raised and trouble in NOTIFIED_TROUBLES
                self._emit(event, Alarm(AlarmKind.TROUBLE, settings.area, settings.name, event.id, detector.read_at, str(trouble)) if notify else None)

    def _smoke(self, detector: _Detector, place: dict[str, Any]) -> None:
        settings = detector.settings
        cut: list[str] = []
        if self.power is not None and detector.circuits:
            cause = Transition(f"{settings.device}.alarm", Quantity.DEVICE_STATUS, Condition.STATUS, Severity.ALARM,
                               Change.RAISED, reading=1.0, threshold=None, at=detector.read_at)
            hold = f"smoke in charging area {detector.charging_area} ({settings.name})"
            cut = [c for c in detector.circuits if self.power.cut_power(c, TripReason.SMOKE, cause, hold)]
        released = False
        if settings.fire_release and self.fire_release is not None:
            self.fire_release(f"smoke:{settings.name}")
            released = True
        body = {**place, "troubles": sorted(detector.state.troubles)}
        if detector.charging_area is not None:
            body |= {"charging_area": detector.charging_area, "power_cut": cut}
        if settings.fire_release:
            body["fire_release"] = released
        event = Event(kind=CommunityKind.SMOKE_ALARM, priority=Priority.ALARM, source=settings.name, body=body)
        detail = f"已断电{','.join(cut)}" if cut else ""
        self._emit(event, Alarm(AlarmKind.SMOKE, settings.area, settings.name, event.id, detector.read_at, detail))

    def _area_smoky(self, area: str | None) -> bool:
        return any(d.state.smoke for d in self.detectors.values() if area is not None and d.charging_area == area)

    # --- intrusion and panic -------------------------------------------------------

    def _on_input(self, watched: _Input, reading: Reading) -> None:
        if reading.value is None:
            return
        active = bool(reading.value) == watched.settings.active
        was, watched.active = watched.active, active
        settings = watched.settings
        if self.arming is not None and settings.name in self.arming.zone_of:
            if active != was:
                self.arming.sensor(settings.name, active, reading.mono)  # armed: alarm; disarmed: logged
            return
        if not active or was:  # only the change to active (a contact found open at start counts)
            return
        kind = CommunityKind.PANIC_ALARM if settings.kind == "panic" else CommunityKind.INTRUSION_ALARM
        event = Event(kind=kind, priority=Priority.ALARM, source=settings.name,
                      body={"input": settings.name, "point": settings.point, "area": settings.area})
        self._emit(event, Alarm(AlarmKind(settings.kind), settings.area, settings.name, event.id, reading.mono))

    def _intrusion(self, zone: IntrusionZone, sensor: str, mono: float, state: str) -> None:
        """An armed zone's sensor (or its entry delay run out): the alarm, with the zone."""
        point = next((i.point for i in self._inputs if i.name == sensor), None)
        event = Event(kind=CommunityKind.INTRUSION_ALARM, priority=Priority.ALARM, source=sensor or zone.name,
                      body={"input": sensor, "point": point, "area": zone.area, "zone": zone.name, "zone_state": state})
        self._emit(event, Alarm(AlarmKind.INTRUSION, zone.area, sensor or zone.name, event.id, mono, f"防区{zone.name}"))

    # --- the worker ----------------------------------------------------------------

    def _emit(self, event: Event, alarm: Alarm | None = None) -> None:
        self._outbox.append((event, alarm))
        self._wake.set()

    async def run(self) -> None:
        """Journal what the inputs said, then hand alarms to the notifier, until cancelled."""
        async with asyncio.TaskGroup() as group:
            if self.arming is not None:
                group.create_task(self.arming.run())
            group.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                event, alarm = self._outbox.popleft()
                if event.priority is Priority.ALARM:
                    log.warning("community alarm", event_id=event.id, kind=str(event.kind), source=event.source, **event.body)
                await self.journal.append(event)
                if alarm is not None:
                    self.notifier.alarm(alarm)
