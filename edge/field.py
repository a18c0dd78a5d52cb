"""Field points at run time: circuits and fire-water points fed from the field bus.

Each configured point (a phase current, a leakage, a cable temperature, a riser pressure or
tank level loop) gets a PointMonitor and a telemetry Deadband. Readings arrive from the
FieldBus with the time they were read; every Transition becomes a journaled alarm event,
and a raised alarm that `decide_power_cut` turns into a TripCommand opens the circuit's
breaker: one trip in flight per breaker, read back, judged by `confirm_trip`. The gateway
never closes a breaker by itself; `reclose` is the operator's audited request, reached over
the control socket.

A trip a precondition refuses (the breaker's front switch in LOCAL) sends nothing: it is journaled
`power.trip_refused` with the reason and kept in `refused`; when the precondition's point reads
passing while a trip-worthy alarm of the circuit is still active, the trip is sent again (its
`power.trip_sent` says after which refusal); when no such alarm is left, `power.trip_withdrawn`.

A circuit the gateway cut stays cut (`cuts`) from the confirmed trip until the confirmed re-close,
kept in STATE_DIR/power-cuts.json beside the fire latch, so a restart still knows the breaker is
open by the gateway's hand. While it is cut, the alarm that caused it is not cleared by the zero
current the cut itself causes: those clears are held and journaled after the re-close.

Listeners run on the poller's path and must not block, so events go into an outbox that one
task drains into the journal. The outbox is bounded for telemetry only (dropped and counted
when full); alarms and trips are one per change of state and are never dropped.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from edge.drivers.modbus.observations import Reading
from edge.drivers.modbus.profile import Profile
from edge import runtime
from edge.config import BuildingConfig
from edge.power.settings import Circuit
from edge.water.settings import PressurePoint
from edge.device_status import StatusPoint, status_event, status_points
from edge.events import Event, Kind, Priority
from edge.fieldbus import FieldBus, PointKey
from edge.journal import Journal
from edge.points_status import SNAPSHOT_EVERY_S, SNAPSHOT_NAME, PointState, PointStatus, point_state, write_snapshot
from edge.runtime import Pool
from edge.safety import (
    BreakerState,
    Change,
    Condition,
    PointMonitor,
    Quantity,
    Severity,
    Transition,
    TripCommand,
    TripOutcome,
    TripReason,
    circuit_point_monitor,
    confirm_trip,
    decide_power_cut,
    reclose_request,
    water_point_monitor,
)
from edge.safety.settings import PressurePointSafety
from edge.safety.status import StatusRule
from edge.state_files import StateFile, write_atomically
from edge.telemetry import Deadband

log = structlog.get_logger("edge.field")

TICK_S = 0.25
CUTS_FILE = "power-cuts.json"
GONE_ACROSS_RESTART = "condition_gone_across_restart"
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


@dataclass
class _Recheck:
    """An alarm the last run left open, waiting for its point's first fresh reading and the rule's time."""

    clear: Event  # journaled if the condition is gone once judged
    watched: FieldPoint | StatusPoint
    since: float  # monotonic, when this run took it over
    settle_s: float  # the rule's own duration and two polls: how long a condition that holds takes to raise
    fresh: float | None = None  # the first reading after `since`


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
        self._trips: asyncio.Queue[TripCommand] = asyncio.Queue()
        self._tripping: set[str] = set()
        self._breaker_readback: dict[str, tuple[bool, float]] = {}  # breaker: (reads open, mono)
        self._commanded_open: set[str] = set()  # breakers the gateway tripped, until they read closed
        self._holds: dict[str, str] = {}  # circuit: why it must stay open (smoke in a charging area)
        self.refused: dict[str, tuple[TripCommand, str]] = {}  # circuit -> (trip a precondition refused, why)
        self._retries: dict[str, str] = {}  # circuit -> the refusal its next trip is sent after
        self._raises: dict[tuple[str, Condition], Transition] = {}  # (point, condition) -> its raise, while active
        self.cuts: dict[str, dict[str, Any]] = load_cuts(self.state_dir / CUTS_FILE, self._circuits)  # circuit -> cause
        self._commanded_open.update(cut["breaker"] for cut in self.cuts.values())
        self._held_clears: dict[str, dict[tuple[str, str], Event]] = {}  # cut circuit -> (point, condition) -> clear
        self._rechecks: dict[tuple[str, str, str], _Recheck] = {}  # open last run: (owner, point, condition)
        self._settle_s = {c.name: _longest_duration(c.safety) for c in config.circuits} | {
            w.name: _longest_duration(w.safety) for w in config.pressure_points}
        self._cuts_file = StateFile(self.state_dir / CUTS_FILE, "the record of circuits the gateway cut", journal)
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
        for breaker in {c.breaker for c in config.circuits if c.breaker}:
            self._watch_breaker(breaker)
            self._watch_trip_preconditions(breaker)
        fieldbus.point_alarms = self.alarms_at

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
            if point.owner not in changed:
                continue
            if point.circuit is not None:
                circuit = point.circuit = circuits[point.owner]
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
        self._settle_s = {c.name: _longest_duration(c.safety) for c in config.circuits} | {
            w.name: _longest_duration(w.safety) for w in config.pressure_points}
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

    def _watch_breaker(self, breaker: str) -> None:
        """Remember the last read-back of the trip command's point, to tell 'still closed'
        (the breaker refused) from 'no answer' after a trip that was not confirmed; and raise
        an alarm when the breaker opens without the gateway tripping it (its own protection,
        or a hand at the box)."""
        readback = self._profiles[breaker].command("trip").readback
        if readback is None:
            return
        expect = readback.expected(self._profiles[breaker].point(readback.point))

        def opened(value: Any) -> bool:
            if isinstance(value, bool) or isinstance(expect, bool):
                return bool(value) == bool(expect)
            return math.isclose(value, expect, rel_tol=1e-6, abs_tol=1e-6)

        def seen(reading: Reading) -> None:
            if reading.value is None:
                return
            is_open = opened(reading.value)
            if not is_open:
                self._commanded_open.discard(breaker)
            self._breaker_readback[breaker] = (is_open, reading.mono)

        key = PointKey(breaker, readback.point)
        self.status[key].rules.append(StatusRule(
            str(key), lambda value: opened(value) and breaker not in self._commanded_open,
            severity=Severity.ALARM, text="breaker opened without a trip from the gateway",
        ))
        self.fieldbus.subscribe(key, seen)

    def _watch_trip_preconditions(self, breaker: str) -> None:
        """A refused trip is sent again when a precondition's point reads passing (a voided reading
        never passes): the breaker back in REMOTE while the leakage is still there."""
        profile = self._profiles[breaker]
        if not any(c.name == "trip" for c in profile.commands):
            return
        for condition in profile.command("trip").preconditions:
            passes = condition.predicate(profile.point(condition.point).enum)

            def seen(reading: Reading, passes: Callable[[Any], bool] = passes) -> None:
                if reading.value is not None and passes(reading.value):
                    self._retry_refused(breaker)

            self.fieldbus.subscribe(PointKey(breaker, condition.point), seen)

    def _retry_refused(self, breaker: str) -> None:
        for circuit, (trip, why) in list(self.refused.items()):
            if trip.breaker != breaker or breaker in self._tripping:
                continue
            del self.refused[circuit]
            self._retries[circuit] = why
            self._tripping.add(breaker)
            self._trips.put_nowait(trip)

    def _trip_cause(self, circuit: Circuit) -> TripCommand | None:
        """A trip one of `circuit`'s active alarms still asks for (None when none does)."""
        if circuit.breaker is None:
            return None
        for point in self.points:
            if point.circuit is not circuit:
                continue
            for condition in point.active:
                raised = self._raises.get((str(point.key), condition))
                trip = None if raised is None else decide_power_cut(circuit.name, circuit.breaker, circuit.safety.power_cut, raised)
                if trip is not None:
                    return trip
        return None

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
            self._judge_carried(now)

    # --- alarms the last run left open ---------------------------------------------

    def recheck(self, carried: list[Any]) -> None:
        """Point alarms (`edge.conditions.Active`) a previous run left open: each is cleared with
        `condition_gone_across_restart` unless its monitor, fed fresh readings for as long as the
        rule takes to raise, raises it again. One on a cut circuit stays until the re-close; one
        whose point is no longer configured is cleared at once."""
        points = {(p.owner, str(p.key)): p for p in self.points}
        statuses = {(s.owner, str(s.key)): s for s in self.status.values()}
        started = self._clock()
        for condition in carried:
            where = (condition.source, str(condition.body.get("point")))
            clear = Event(Kind.CONDITION_CLEARED, Priority.ALARM, condition.source, {**condition.body, "reason": GONE_ACROSS_RESTART})
            watched = points.get(where) or statuses.get(where)
            if watched is None:
                self._emit(Event(clear.kind, clear.priority, clear.source, {**condition.body, "reason": "source_gone_from_config"}))
            elif isinstance(watched, FieldPoint) and watched.circuit is not None and watched.circuit.name in self.cuts:
                self._held_clears.setdefault(watched.circuit.name, {})[(where[1], str(condition.body.get("condition")))] = clear
            else:
                settle_s = self._settle_s.get(where[0], 0.0) + 2 * self._poll_interval(watched.key)
                self._rechecks[(*where, str(condition.body.get("condition")))] = _Recheck(clear, watched, started, settle_s)

    def _judge_carried(self, now: float) -> None:
        for key, recheck in list(self._rechecks.items()):
            condition, watched = key[2], recheck.watched
            if watched.read_at is None or watched.read_at < recheck.since:
                continue  # not read since the start: nothing to judge by yet
            if recheck.fresh is None:
                recheck.fresh = watched.read_at
            if isinstance(watched, FieldPoint):
                active = {str(c) for c in watched.active}
            else:
                active = {"status"} if watched.active else set()
            if condition not in active and now - recheck.fresh < recheck.settle_s:
                continue  # a rule that takes its time to raise gets it
            del self._rechecks[key]
            if condition not in active:
                self._emit(recheck.clear)  # otherwise its monitor has raised it again in this run

    def _on_transition(self, point: FieldPoint, transition: Transition) -> None:
        if transition.change is Change.RAISED:
            point.active[transition.condition] = transition.severity
            self._raises[(str(point.key), transition.condition)] = transition
        else:
            point.active.pop(transition.condition, None)
            self._raises.pop((str(point.key), transition.condition), None)
        event = self._condition_event(point, transition)
        cut = point.circuit.name if point.circuit is not None and point.circuit.name in self.cuts else None
        if cut is not None:
            held = self._held_clears.setdefault(cut, {})
            if transition.change is Change.CLEARED:
                held[(str(point.key), str(transition.condition))] = event  # the cut's own zero: journaled at the re-close
                return
            held.pop((str(point.key), str(transition.condition)), None)
        self._emit(event)
        circuit = point.circuit
        if circuit is None or circuit.breaker is None:
            return
        if transition.change is Change.CLEARED and circuit.name in self.refused:
            self._still_needed(circuit)
        trip = decide_power_cut(circuit.name, circuit.breaker, circuit.safety.power_cut, transition)
        if trip is not None and trip.breaker not in self._tripping:
            self._tripping.add(trip.breaker)  # several phases alarming at once: one trip
            self._trips.put_nowait(trip)

    def _still_needed(self, circuit: Circuit) -> None:
        """A refused trip whose cause cleared: kept for another alarm that still asks for it, else withdrawn."""
        trip, why = self.refused[circuit.name]
        if circuit.name in self._holds:
            return
        other = self._trip_cause(circuit)
        if other is not None:
            self.refused[circuit.name] = (other, why)
            return
        del self.refused[circuit.name]
        self._emit(Event(kind=Kind.TRIP_WITHDRAWN, priority=Priority.ALARM, source=circuit.name,
                         body={"circuit": circuit.name, "breaker": trip.breaker, "reason": str(trip.reason),
                               "refused": why, "point": trip.cause.point}))

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

    # --- the worker ----------------------------------------------------------------

    async def run(self) -> None:
        """Journal events, tick monitors, run trips and write the status snapshot, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._drain())
            group.create_task(self._ticking())
            group.create_task(self._snapshots())
            while True:
                trip = await self._trips.get()
                group.create_task(self._trip(trip))

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

    async def _snapshots(self) -> None:
        """points.json for `edge points` and the page. A disk that refuses it (ENOSPC, EROFS) costs
        that file only: an uncaught refusal here ended the task group and, with it, the trips."""
        snapshot = StateFile(self.state_dir / SNAPSHOT_NAME, "points.json (edge points without the daemon)", self.journal)
        while True:
            try:
                await runtime.call(Pool.FILES, write_snapshot, self.state_dir, self.statuses(), self._wall())
            except OSError as refused:
                await snapshot.refused(refused)
            else:
                await snapshot.written()
            await asyncio.sleep(SNAPSHOT_EVERY_S)

    def statuses(self) -> list[PointStatus]:
        now, wall = self._clock(), self._wall()
        rows = [
            PointStatus(
                name=p.owner, point=str(p.key), quantity=str(p.quantity), value=p.value, unit=p.unit,
                read_at=None if p.read_at is None else wall - (now - p.read_at),
                state=PointState.CUT if p.circuit is not None and p.circuit.name in self.cuts
                else point_state(self.fieldbus.is_online(p.key.device), p.active.items()),
                alarms=self._alarm_words(p),
            )
            for p in self.points
        ]
        breakers = {cut["breaker"] for cut in self.cuts.values()}
        for s in self.status.values():
            number = s.value if isinstance(s.value, int | float) and not isinstance(s.value, bool) else None
            rows.append(PointStatus(
                name=s.owner, point=str(s.key), quantity=str(Quantity.DEVICE_STATUS), value=number, unit=s.point.unit,
                read_at=None if s.read_at is None else wall - (now - s.read_at),
                state=PointState.CUT if s.key.device in breakers
                else point_state(self.fieldbus.is_online(s.key.device), [(Condition.STATUS, v) for v in s.active.values()]),
                label=s.label(), alarms=sorted(s.active),
            ))
        return rows

    def _alarm_words(self, point: FieldPoint) -> list[str]:
        """Every condition active on the point (an `invalid` row still shows the alarm it holds), and a
        cut the breaker refused, on the point that asked for it."""
        words = [f"{severity}: {condition}".replace("_", " ") for condition, severity in sorted(point.active.items())]
        refused = self.refused.get(point.circuit.name) if point.circuit is not None else None
        if refused is not None and refused[0].cause.point == str(point.key):
            words.append(f"could not cut: {refused[1]}")
        return words

    def alarms_at(self, key: PointKey) -> list[tuple[str, str]]:
        """(severity, words) of everything active on one device point, for `edge points --all`."""
        found = []
        for point in self.points:
            if point.key != key:
                continue
            words = self._alarm_words(point)
            severities = [str(severity) for _, severity in sorted(point.active.items())]
            severities += ["alarm"] * (len(words) - len(severities))  # a cut the breaker refused
            found += [(severity, f"{point.owner}: {text}") for severity, text in zip(severities, words)]
        status = self.status.get(key)
        if status is not None:
            found += [(str(severity), text) for text, severity in sorted(status.active.items())]
        return found

    def circuits_cut(self) -> dict[str, tuple[str, bool]]:
        """Each circuit with a breaker: (breaker, cut), cut while its read-back says open (the
        gateway's trip, its own protection or a hand at the box) or the gateway tripped it and has
        not read it closed since. For /metrics until the active conditions model holds cut circuits."""
        cut = {}
        for circuit in self._circuits.values():
            if circuit.breaker is None:
                continue
            seen = self._breaker_readback.get(circuit.breaker)
            cut[circuit.name] = (circuit.breaker, circuit.name in self.cuts or circuit.breaker in self._commanded_open
                                 or (seen is not None and seen[0]))
        return cut

    # --- power cut -----------------------------------------------------------------

    async def _trip(self, trip: TripCommand) -> None:
        cause = trip.cause
        after = self._retries.pop(trip.circuit, None)
        because = {"point": cause.point, "reading": round(cause.reading, 6), "threshold": cause.threshold, "unit": self._cause_unit(cause.point)}

        def sending() -> None:  # the preconditions passed: the write goes out now
            self._commanded_open.add(trip.breaker)
            self._emit(Event(
                kind=Kind.TRIP_SENT, priority=Priority.ALARM, source=trip.circuit,
                body={"circuit": trip.circuit, "breaker": trip.breaker, "reason": str(trip.reason),
                      "point": cause.point, "reading": round(cause.reading, 6), "threshold": cause.threshold,
                      **({"after_refusal": after} if after is not None else {})},
            ))

        sent = self._clock()
        try:
            outcome = await self.fieldbus.send(trip.breaker, "trip", sending=sending)
            confirmed, detail = bool(outcome), outcome.reason
        except Exception as error:  # a driver bug must still end in an alarm, not in silence
            log.exception("trip command failed", breaker=trip.breaker)
            outcome, confirmed, detail = None, False, f"gateway error: {error!r}"
            self._commanded_open.add(trip.breaker)  # it may have gone out
        finally:
            self._tripping.discard(trip.breaker)
        if outcome is not None and not outcome.sent:
            refused = detail.removeprefix("refused: ")
            self.refused[trip.circuit] = (trip, refused)
            self._emit(Event(
                kind=Kind.TRIP_REFUSED, priority=Priority.ALARM, source=trip.circuit,
                body={"circuit": trip.circuit, "breaker": trip.breaker, "reason": str(trip.reason), "refused": refused,
                      "precondition": None if outcome.refused_by is None else f"{trip.breaker}.{outcome.refused_by}", **because},
            ))
            return
        report = confirm_trip(trip, BreakerState.OPEN if confirmed else self._breaker_state(trip.breaker, since=sent), self._clock())
        confirmed_trip = report.outcome is TripOutcome.CONFIRMED
        self._emit(Event(
            kind=Kind.TRIP_CONFIRMED if confirmed_trip else Kind.TRIP_UNCONFIRMED,
            priority=Priority.ALARM, source=trip.circuit,
            body={"circuit": trip.circuit, "breaker": trip.breaker, "reason": str(trip.reason),
                  "outcome": str(report.outcome), "readback": None if report.readback is None else str(report.readback),
                  "severity": None if report.severity is None else str(report.severity), "detail": detail, **because},
        ))
        if confirmed_trip:
            self.cuts[trip.circuit] = {"breaker": trip.breaker, "reason": str(trip.reason), **because, "since": self._wall()}
            await self._save_cuts()

    def adopt_cut(self, circuit: str, cause: dict[str, Any]) -> None:
        """The journal says `circuit` is cut and no re-close followed, but the state dir forgot it
        (a damaged or refused power-cuts.json): the breaker is still the gateway's."""
        found = self._circuits.get(circuit)
        if found is None or found.breaker is None or circuit in self.cuts:
            return
        self.cuts[circuit] = {"breaker": found.breaker, **{k: cause.get(k) for k in ("reason", "point", "reading", "threshold", "unit")}}
        self._commanded_open.add(found.breaker)

    def _cause_unit(self, point: str) -> str:
        return next((p.unit for p in self.points if str(p.key) == point), "")

    async def _save_cuts(self) -> None:
        """Keep the cut circuits beside the fire latch; a refusing disk costs the record, never the cut."""
        try:
            await runtime.call(Pool.FILES, write_atomically, self.state_dir / CUTS_FILE, json.dumps(self.cuts).encode())
        except OSError as refused:
            await self._cuts_file.refused(refused)
        else:
            await self._cuts_file.written()

    def _breaker_state(self, breaker: str, since: float) -> BreakerState | None:
        """What the breaker said after `since`; None when it said nothing."""
        seen = self._breaker_readback.get(breaker)
        if seen is None or seen[1] < since:
            return None
        return BreakerState.OPEN if seen[0] else BreakerState.CLOSED

    def cut_power(self, circuit: str, reason: TripReason, cause: Transition, hold: str) -> bool:
        """Open `circuit`'s breaker for a cause outside its own points (smoke in a charging area):
        the same path as an over-current trip (one trip in flight per breaker, read back, never
        re-closed by the gateway). `hold` says why a re-close is refused until `lift_hold`."""
        found = self._circuits.get(circuit)
        if found is None or found.breaker is None:
            return False
        self._holds[circuit] = hold
        if found.breaker not in self._tripping:
            self._tripping.add(found.breaker)
            self._trips.put_nowait(TripCommand(found.name, found.breaker, reason, cause))
        return True

    def lift_hold(self, circuit: str) -> None:
        """The cause of a `cut_power` has cleared: an operator may re-close (the gateway never does);
        a cut the breaker refused is no longer wanted, unless an alarm of its own still asks for it."""
        self._holds.pop(circuit, None)
        if circuit in self.refused:
            self._still_needed(self._circuits[circuit])

    # --- re-close ------------------------------------------------------------------

    async def reclose(self, request: dict[str, Any]) -> dict[str, Any]:
        """The operator's audited re-close (control op `breaker.close`); journaled before and after."""
        name = request.get("circuit")
        circuit = self._circuits.get(name) if isinstance(name, str) else None
        audit = {"circuit": name, "operator": request.get("operator"), "reason": request.get("reason")}
        if circuit is None or circuit.breaker is None:
            problem = f"no circuit named {name!r}" if circuit is None else f"circuit {name!r} has no breaker"
            return await self._refuse(audit, [problem])
        try:
            command = reclose_request(
                request.get("operator"), request.get("reason"), circuit=circuit.name, breaker=circuit.breaker, now=self._clock()
            )
        except ValidationError as invalid:
            return await self._refuse(audit, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors()])
        alarms = [str(p.key) for p in self.points if p.circuit is circuit and p.active.get(Condition.OVER_THRESHOLD) is Severity.ALARM]
        if alarms:
            return await self._refuse(audit, [f"still in alarm: {', '.join(alarms)}"])
        if circuit.name in self._holds:
            return await self._refuse(audit, [f"held open: {self._holds[circuit.name]}"])
        audit = {"circuit": command.circuit, "breaker": command.breaker, "operator": command.operator, "reason": command.reason}
        requested = await self.journal.append(Event(kind=Kind.RECLOSE_REQUESTED, priority=Priority.ALARM, source=circuit.name, body=audit))
        try:
            outcome = await self.fieldbus.send(command.breaker, "close")
            confirmed, detail = bool(outcome), outcome.reason
        except Exception as error:
            log.exception("close command failed", breaker=command.breaker)
            outcome, confirmed, detail = None, False, f"gateway error: {error!r}"
        if outcome is not None and not outcome.sent:  # a precondition refused it: the breaker was never asked
            answer = await self._refuse({**audit, "request_seq": requested}, [detail])
            return {**answer, "error": f"{detail}; nothing was sent to the breaker", "refused": True, "request_seq": requested}
        if confirmed:  # a breaker without a read-back point is known closed by this alone
            self._commanded_open.discard(command.breaker)
        kind = Kind.RECLOSE_CONFIRMED if confirmed else Kind.RECLOSE_UNCONFIRMED
        body = {**audit, "request_seq": requested, **({} if confirmed else {"detail": detail})}
        result = await self.journal.append(Event(kind=kind, priority=Priority.ALARM, source=circuit.name, body=body))
        if confirmed and self.cuts.pop(circuit.name, None) is not None:
            for clear in self._held_clears.pop(circuit.name, {}).values():
                self._emit(Event(clear.kind, clear.priority, clear.source, {**clear.body, "after": "reclose"}))
            await self._save_cuts()
        return {"ok": confirmed, "confirmed": confirmed, "circuit": circuit.name, "breaker": command.breaker,
                "request_seq": requested, "result_seq": result,
                **({} if confirmed else {"error": f"the breaker did not confirm it closed: {detail}"})}

    async def _refuse(self, audit: dict[str, Any], problems: list[str]) -> dict[str, Any]:
        seq = await self.journal.append(Event(
            kind=Kind.RECLOSE_REFUSED, priority=Priority.ALARM, source=str(audit.get("circuit")),
            body={**{k: v if isinstance(v, str | int | None) else repr(v) for k, v in audit.items()}, "problems": problems},
        ))
        return {"ok": False, "error": "; ".join(problems), "result_seq": seq}


def load_cuts(path: Path, circuits: dict[str, Circuit]) -> dict[str, dict[str, Any]]:
    """The circuits a previous run cut and nobody re-closed (read once, before anything runs, like
    the fire latch). A circuit no longer configured is dropped; an unreadable file is logged and
    read as none, since the journal still holds each cut until its re-close."""
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.error("power cut record unreadable; cut circuits are known from the journal only", path=str(path), error=str(error))
        return {}
    if not isinstance(saved, dict):
        return {}
    return {name: cut for name, cut in saved.items()
            if isinstance(cut, dict) and name in circuits and cut.get("breaker") == circuits[name].breaker}


def _longest_duration(settings: Any) -> float:
    """The longest `duration_s` anywhere in a point's safety settings: how long its rules may take
    to raise an alarm that still holds."""
    found = [0.0]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name == "duration_s" and isinstance(inner, int | float):
                    found.append(float(inner))
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(settings.model_dump() if hasattr(settings, "model_dump") else {})
    return max(found)
