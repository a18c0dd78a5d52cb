"""Field points at run time: circuits and fire-water points fed from the field bus.

Each configured point (a phase current, a leakage, a cable temperature, a riser pressure or
tank level loop) gets a PointMonitor and a telemetry Deadband. Readings arrive from the
FieldBus with the time they were read; every Transition becomes a journaled alarm event, and
the breakers (`breakers.py`) act on a circuit's raised alarms: trips, refusals, holds, cuts and
the operator's re-close. Water points are watched by the same core because they share its
monitors, telemetry and rows; they have no breaker. Rows for `edge points` are in `snapshot.py`,
alarms the last run left open in `recheck.py`.

Listeners run on the poller's path and must not block, so events go into an outbox that one
task drains into the journal. The outbox is bounded for telemetry only (dropped and counted
when full); alarms and trips are one per change of state and are never dropped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from edge.config.building import BuildingConfig
from edge.points.device_status import StatusPoint, status_event, status_points
from edge.drivers.modbus.observations import Reading
from edge.drivers.modbus.profile import Profile
from edge.events import Event, Kind, Priority
from edge.fieldbus.devices import FieldBus, PointKey
from edge.journal import Journal
from edge.points.status_file import PointStatus
from edge.power import snapshot
from edge.power.breakers import Breakers
from edge.power.recheck import Rechecks, longest_duration
from edge.power.settings import Circuit
from edge.points import (
    Change,
    Condition,
    PointMonitor,
    Quantity,
    Severity,
    Transition,
    TripCommand,
    TripReason,
    circuit_point_monitor,
    water_point_monitor,
)
from edge.points.settings import PressurePointSafety
from edge.points.telemetry import Deadband
from edge.water.settings import PressurePoint

log = structlog.get_logger("edge.power.points")

TICK_S = 0.25
MAX_QUEUED_TELEMETRY = 4096


@dataclass
class FieldPoint:
    """One monitored point of a circuit or a water point, and what was last seen of it."""

    owner: str  # circuit or pressure point name
    key: PointKey
    quantity: Quantity
    place: dict[str, Any]  # floor and box, or riser and tank
    monitor: PointMonitor
    telemetry: Deadband
    unit: str  # the engineering unit shown and journaled
    circuit: Circuit | None = None
    scale: Callable[[float], float] | None = None  # loop mA to the engineering unit
    value: float | None = None
    read_at: float | None = None  # monotonic
    active: dict[Condition, Severity] = field(default_factory=dict)
    raises: dict[Condition, Transition] = field(default_factory=dict)  # the raise of each active condition


class FieldPoints:
    """The building's circuits and water points, watched and acted on."""

    def __init__(
        self,
        config: BuildingConfig,
        fieldbus: FieldBus,
        journal: Journal,
        profiles: dict[str, Profile],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.fieldbus = fieldbus
        self.journal = journal
        self.state_dir = config.state_path
        self._clock, self._wall = clock, wall
        self._profiles = {d.name: profiles[d.profile] for d in config.devices}
        self._circuits = {c.name: c for c in config.circuits}
        self._waters = {w.name: w for w in config.pressure_points}
        self.points: list[FieldPoint] = []
        self.dropped_telemetry = 0
        self._urgent: deque[Event] = deque()
        self._telemetry: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._rechecks = Rechecks(_settle_s(config), self._poll_interval, self._emit)
        self.status = status_points(config, profiles)
        started = clock()
        for circuit in config.circuits:
            self._add_circuit(circuit, started)
        for water in config.pressure_points:
            self._add_water_point(water, started)
        for point in self.points:
            fieldbus.subscribe(point.key, lambda reading, point=point: self._on_reading(point, reading))
        for status in self.status.values():
            fieldbus.subscribe(status.key, lambda reading, status=status: self._on_status(status, reading))
        self.breakers = Breakers(self._circuits, self._profiles, fieldbus, journal, self.state_dir, points=self.points,
                                 status=self.status, emit=self._emit, clock=clock, wall=wall)
        fieldbus.point_alarms = self.alarms_at

    # --- what callers ask of the breakers -------------------------------------------

    @property
    def cuts(self) -> dict[str, dict[str, Any]]:
        """Circuit -> the cause of the cut the gateway made and nobody re-closed."""
        return self.breakers.cuts

    @property
    def refused(self) -> dict[str, tuple[TripCommand, str]]:
        """Circuit -> (the trip a precondition refused, why)."""
        return self.breakers.refused

    async def reclose(self, request: dict[str, Any]) -> dict[str, Any]:
        """The operator's audited re-close (control op `breaker.close`)."""
        return await self.breakers.reclose(request)

    def adopt_cut(self, circuit: str, cause: dict[str, Any]) -> None:
        """The journal says `circuit` is cut though the state dir forgot it (`Breakers.adopt_cut`)."""
        self.breakers.adopt_cut(circuit, cause)

    def cut_power(self, circuit: str, reason: TripReason, cause: Transition, hold: str) -> bool:
        """Open `circuit`'s breaker for a cause outside its own points (`Breakers.cut_power`)."""
        return self.breakers.cut_power(circuit, reason, cause, hold)

    def lift_hold(self, circuit: str) -> None:
        """The cause of a `cut_power` has cleared (`Breakers.lift_hold`)."""
        self.breakers.lift_hold(circuit)

    def circuits_cut(self) -> dict[str, tuple[str, bool]]:
        """Each circuit with a breaker: (breaker, cut), for /metrics (`Breakers.circuits_cut`)."""
        return self.breakers.circuits_cut()

    # --- a reload's new settings ----------------------------------------------------

    def retune(self, config: BuildingConfig) -> list[str]:
        """New limits, durations, labels and places for the same circuits and water points (the
        reload checked that every point and breaker is the one watched now), in place: each point
        keeps its alarms, which clear by the new limits; an alarm whose rule or level is gone ends
        now. Returns the circuits and water points that changed."""
        now = self._clock()
        circuits = {c.name: c for c in config.circuits}
        waters = {w.name: w for w in config.pressure_points}
        changed = sorted({name for name, c in circuits.items() if c != self._circuits[name]}
                         | {name for name, w in waters.items() if w != self._waters[name]})
        for point in self.points:
            if point.circuit is not None:  # every point on its circuit as the breakers now hold it, changed or not
                point.circuit = circuits[point.owner]
            if point.owner not in changed:
                continue
            if point.circuit is not None:
                circuit = point.circuit
                point.place = {"floor": circuit.floor, "box": circuit.box}
                point.telemetry = Deadband.for_point(point.quantity, circuit.telemetry)
                monitor = circuit_point_monitor(str(point.key), point.quantity, circuit.safety,
                                                poll_interval_s=self._poll_interval(point.key), started_at=now)
            else:
                water = waters[point.owner]
                point.place = {k: v for k, v in (("riser", water.riser), ("tank", water.tank)) if v is not None}
                point.telemetry = Deadband.for_point(point.quantity, water.telemetry)
                point.unit, point.scale = water.safety.sensor.unit, water.safety.sensor.to_value
                monitor = water_point_monitor(water.point, water.safety, poll_interval_s=self._poll_interval(point.key), started_at=now)
            ended = monitor.take_over(point.monitor, point.value if point.value is not None else 0.0, now)
            point.monitor = monitor
            for transition in ended:
                self._on_transition(point, transition)
        self._circuits, self._waters = circuits, waters
        self.breakers.retune(circuits)
        self._rechecks.settle_s = _settle_s(config)
        return changed

    # --- building the points -------------------------------------------------------

    def _poll_interval(self, key: PointKey) -> float:
        return self.fieldbus.interval_of(key)

    def _unit(self, key: PointKey) -> str:
        return self._profiles[key.device].point(key.point).unit or ""

    def _add_circuit(self, circuit: Circuit, started: float) -> None:
        refs = [(ref, Quantity.PHASE_CURRENT) for ref in circuit.currents]
        refs += [(circuit.leakage, Quantity.LEAKAGE_CURRENT)] if circuit.leakage else []
        refs += [(ref, Quantity.CABLE_TEMPERATURE) for ref in circuit.temperatures]
        for ref, quantity in refs:
            key = PointKey.parse(ref)
            monitor = circuit_point_monitor(
                ref, quantity, circuit.safety, poll_interval_s=self._poll_interval(key), started_at=started
            )
            self.points.append(FieldPoint(
                owner=circuit.name, key=key, quantity=quantity, place={"floor": circuit.floor, "box": circuit.box},
                monitor=monitor, telemetry=Deadband.for_point(quantity, circuit.telemetry), unit=self._unit(key),
                circuit=circuit,
            ))

    def _add_water_point(self, water: PressurePoint, started: float) -> None:
        key = PointKey.parse(water.point)
        quantity = Quantity.WATER_PRESSURE if isinstance(water.safety, PressurePointSafety) else Quantity.WATER_LEVEL
        monitor = water_point_monitor(water.point, water.safety, poll_interval_s=self._poll_interval(key), started_at=started)
        self.points.append(FieldPoint(
            owner=water.name, key=key, quantity=quantity,
            place={k: v for k, v in (("riser", water.riser), ("tank", water.tank)) if v is not None},
            monitor=monitor, telemetry=Deadband.for_point(quantity, water.telemetry), unit=water.safety.sensor.unit,
            scale=water.safety.sensor.to_value,
        ))

    # --- readings in, events out ---------------------------------------------------

    def _on_reading(self, point: FieldPoint, reading: Reading) -> None:
        value = reading.value
        if value is None:  # voided by the device: no value to show, judge or journal
            point.value, point.read_at = None, reading.mono
            for transition in point.monitor.observe_void(reading.mono):
                self._on_transition(point, transition)
            return
        number = float(value) if isinstance(value, int | float) else None
        for transition in point.monitor.observe(number, reading.mono):
            self._on_transition(point, transition)
        if number is not None and math.isfinite(number):
            # A broken loop's scaled value (0 mA is -0.4 MPa on a 4-20 mA loop) means nothing:
            # only the raw signal is shown and journaled while the sensor is faulted.
            faulted = point.monitor.fault is not None and point.monitor.fault.faulted
            shown = None if faulted else number if point.scale is None else point.scale(number)
            point.value, point.read_at = shown, reading.mono
            if point.telemetry.offer(number, reading.mono):
                body = {"point": str(point.key), "quantity": str(point.quantity),
                        "value": None if shown is None else round(shown, 4), "unit": point.unit}
                if point.scale is not None:
                    body["loop_ma"] = round(number, 3)  # the raw signal, for the technician
                self._emit(Event(kind=Kind.POINT_READING, priority=Priority.TELEMETRY, source=point.owner, body=body))

    def _on_status(self, status: StatusPoint, reading: Reading) -> None:
        value = reading.value
        status.value, status.read_at = value, reading.mono
        for rule, transition in status.observe(value, reading.mono):
            self._emit(status_event(status, rule, transition, value))

    def tick(self, now: float) -> None:
        """Advance every monitor without readings, so a silent point goes stale; judge the alarms
        the last run left open once their points have been read fresh."""
        for point in self.points:
            for transition in point.monitor.tick(now):
                self._on_transition(point, transition)
        if self._rechecks:
            self._rechecks.judge(now)

    def recheck(self, carried: list[Any]) -> None:
        """Point alarms (`edge.conditions.Active`) a previous run left open: each is cleared with
        `condition_gone_across_restart` unless its monitor, fed fresh readings for as long as the
        rule takes to raise, raises it again. One on a cut circuit stays until the re-close; one
        whose point is no longer configured is cleared at once."""
        self._rechecks.take(carried, self.points, self.status, self.breakers, self._clock())

    def _on_transition(self, point: FieldPoint, transition: Transition) -> None:
        if transition.change is Change.RAISED:
            point.active[transition.condition] = transition.severity
            point.raises[transition.condition] = transition
        else:
            point.active.pop(transition.condition, None)
            point.raises.pop(transition.condition, None)
        event = self._condition_event(point, transition)
        if self.breakers.holds_clear(point, transition, event):
            return  # the cut's own zero: journaled at the re-close
        self._emit(event)
        self.breakers.judge(point, transition)

    def _condition_event(self, point: FieldPoint, transition: Transition) -> Event:
        owner_key = "circuit" if point.circuit is not None else "pressure_point"
        if transition.condition is Condition.INVALID:
            unit = ""
        elif transition.condition is Condition.STALE:
            unit = "s"
        elif transition.condition is Condition.SENSOR_FAULT:
            unit = "mA"  # a fault is judged on the raw loop current
        elif transition.condition is Condition.RATE_OF_CHANGE:
            unit = f"{point.unit}/s"
        else:
            unit = point.unit
        return Event(
            kind=Kind.CONDITION_RAISED if transition.change is Change.RAISED else Kind.CONDITION_CLEARED,
            priority=Priority.ALARM,
            source=point.owner,
            body={
                owner_key: point.owner, **point.place, "quantity": str(transition.quantity),
                "condition": str(transition.condition), "severity": str(transition.severity),
                "reading": None if transition.condition is Condition.INVALID else round(transition.reading, 6),
                "threshold": transition.threshold, "unit": unit,
                "point": str(point.key),
                **({"voided_by": self._voider(point.key)} if transition.condition is Condition.INVALID else {}),
            },
        )

    def _voider(self, key: PointKey) -> str | None:
        void_if = self._profiles[key.device].point(key.point).void_if
        return None if void_if is None else f"{key.device}.{void_if.point}"

    def _emit(self, event: Event) -> None:
        if event.priority.protected:
            self._urgent.append(event)
        elif len(self._telemetry) < MAX_QUEUED_TELEMETRY:
            self._telemetry.append(event)
        else:
            self.dropped_telemetry += 1
        self._wake.set()

    # --- rows for edge points and the page ------------------------------------------

    def statuses(self) -> list[PointStatus]:
        return snapshot.point_rows(self.points, self.status, self.breakers.cuts, self.breakers.refused,
                                   self.fieldbus.is_online, self._clock(), self._wall())

    def alarms_at(self, key: PointKey) -> list[tuple[str, str]]:
        """(severity, words) of everything active on one device point, for `edge points --all`."""
        return snapshot.alarms_at(key, self.points, self.status, self.breakers.refused)

    # --- the worker ----------------------------------------------------------------

    async def run(self) -> None:
        """Journal events, tick monitors, run trips and write the status snapshot, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._drain())
            group.create_task(self._ticking())
            group.create_task(snapshot.keep_snapshot(self.state_dir, self.journal, self.statuses, self._wall))
            await self.breakers.send_trips(group)

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._urgent or self._telemetry:
                event = self._urgent.popleft() if self._urgent else self._telemetry.popleft()
                if event.priority is Priority.ALARM:
                    log.warning("field alarm", event_id=event.id, kind=str(event.kind), source=event.source, **event.body)
                await self.journal.append(event)

    async def _ticking(self) -> None:
        while True:
            self.tick(self._clock())
            await asyncio.sleep(TICK_S)


def _settle_s(config: BuildingConfig) -> dict[str, float]:
    """Each circuit's and water point's longest rule duration: how long a carried alarm waits."""
    return {c.name: longest_duration(c.safety) for c in config.circuits} | {
        w.name: longest_duration(w.safety) for w in config.pressure_points}
