"""The breakers the gateway acts on: trips, refused trips, holds, cuts and the operator's re-close.

A raised alarm that `decide_power_cut` turns into a TripCommand opens the circuit's breaker: one
trip in flight per breaker, read back, judged by `confirm_trip`. The gateway never closes a breaker
by itself; `reclose` is the operator's audited request, reached over the control socket.

A trip a precondition refuses (the breaker's front switch in LOCAL) sends nothing: it is journaled
`power.trip_refused` with the reason and kept in `refused`; when the precondition's point reads
passing while a trip-worthy alarm of the circuit is still active, the trip is sent again (its
`power.trip_sent` says after which refusal); when no such alarm is left, `power.trip_withdrawn`.

A circuit the gateway cut stays cut (`cuts`) from the confirmed trip until the confirmed re-close,
kept in STATE_DIR/power-cuts.json beside the fire latch, so a restart still knows the breaker is
open by the gateway's hand. While it is cut, the alarm that caused it is not cleared by the zero
current the cut itself causes: those clears are held here and journaled after the re-close.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from edge.runtime import pools
from edge.drivers.modbus.observations import Reading
from edge.drivers.modbus.profile import Profile
from edge.points.device_status import StatusPoint
from edge.events import Event, Priority
from edge.power.kinds import PowerKind
from edge.fieldbus.devices import FieldBus, PointKey
from edge.journal import Journal
from edge.power.settings import Circuit
from edge.runtime.pools import Pool
from edge.points import (
    BreakerState,
    Change,
    Condition,
    Severity,
    Transition,
    TripCommand,
    TripOutcome,
    TripReason,
    confirm_trip,
    decide_power_cut,
    reclose_request,
)
from edge.points.status_rule import StatusRule
from edge.runtime.state_files import StateFile, write_atomically

if TYPE_CHECKING:
    from edge.power.points import FieldPoint

log = structlog.get_logger("edge.power.breakers")

CUTS_FILE = "power-cuts.json"


class Breakers:
    """What the gateway does to the circuits' breakers and remembers of it. It reads the field
    points (their active alarms and the raises behind them) and never changes them."""

    def __init__(
        self,
        circuits: dict[str, Circuit],
        profiles: dict[str, Profile],
        fieldbus: FieldBus,
        journal: Journal,
        state_dir: Path,
        *,
        points: list[FieldPoint],
        status: dict[PointKey, StatusPoint],
        emit: Callable[[Event], None],
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.fieldbus, self.journal, self.state_dir = fieldbus, journal, state_dir
        self._circuits, self._profiles, self._points = circuits, profiles, points
        self._emit, self._clock, self._wall = emit, clock, wall
        self._trips: asyncio.Queue[TripCommand] = asyncio.Queue()
        self._tripping: set[str] = set()
        self._breaker_readback: dict[str, tuple[bool, float]] = {}  # breaker: (reads open, mono)
        self._commanded_open: set[str] = set()  # breakers the gateway tripped, until they read closed
        self._holds: dict[str, str] = {}  # circuit: why it must stay open (smoke in a charging area)
        self.refused: dict[str, tuple[TripCommand, str]] = {}  # circuit -> (trip a precondition refused, why)
        self._retries: dict[str, str] = {}  # circuit -> the refusal its next trip is sent after
        self.cuts: dict[str, dict[str, Any]] = load_cuts(state_dir / CUTS_FILE, circuits)  # circuit -> cause
        self._commanded_open.update(cut["breaker"] for cut in self.cuts.values())
        self._held_clears: dict[str, dict[tuple[str, str], Event]] = {}  # cut circuit -> (point, condition) -> clear
        self._cuts_file = StateFile(state_dir / CUTS_FILE, "the record of circuits the gateway cut", journal)
        for breaker in {c.breaker for c in circuits.values() if c.breaker}:
            self._watch_breaker(breaker, status)
            self._watch_trip_preconditions(breaker)

    def retune(self, circuits: dict[str, Circuit]) -> None:
        """A reload's settings for the same circuits and breakers."""
        self._circuits = circuits

    # --- watching the breakers -----------------------------------------------------

    def _watch_breaker(self, breaker: str, status: dict[PointKey, StatusPoint]) -> None:
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
        status[key].rules.append(StatusRule(
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

    # --- a point's alarm, as the breaker sees it -----------------------------------

    def holds_clear(self, point: FieldPoint, transition: Transition, event: Event) -> bool:
        """True when `event` (the point's condition event) is held until the re-close: a clear on a
        cut circuit is the cut's own zero. A raise there takes back a held clear of the same condition."""
        if point.circuit is None or point.circuit.name not in self.cuts:
            return False
        held = self._held_clears.setdefault(point.circuit.name, {})
        if transition.change is Change.CLEARED:
            held[(str(point.key), str(transition.condition))] = event
            return True
        held.pop((str(point.key), str(transition.condition)), None)
        return False

    def hold_until_reclose(self, circuit: str, point: str, condition: str, clear: Event) -> None:
        """A clear the last run left open on a cut circuit: journaled at the re-close."""
        self._held_clears.setdefault(circuit, {})[(point, condition)] = clear

    def judge(self, point: FieldPoint, transition: Transition) -> None:
        """After the point's condition event: a refused trip whose cause cleared may be withdrawn;
        a trip-worthy raise trips the breaker, once however many phases raise at once."""
        circuit = point.circuit
        if circuit is None or circuit.breaker is None:
            return
        if transition.change is Change.CLEARED and circuit.name in self.refused:
            self._still_needed(circuit)
        trip = decide_power_cut(circuit.name, circuit.breaker, circuit.safety.power_cut, transition)
        if trip is not None and trip.breaker not in self._tripping:
            self._tripping.add(trip.breaker)  # several phases alarming at once: one trip
            self._trips.put_nowait(trip)

    def _trip_cause(self, circuit: Circuit) -> TripCommand | None:
        """A trip one of `circuit`'s active alarms still asks for (None when none does)."""
        if circuit.breaker is None:
            return None
        for point in self._points:
            if point.circuit is not circuit:
                continue
            for condition in point.active:
                raised = point.raises.get(condition)
                trip = None if raised is None else decide_power_cut(circuit.name, circuit.breaker, circuit.safety.power_cut, raised)
                if trip is not None:
                    return trip
        return None

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
        self._emit(Event(kind=PowerKind.TRIP_WITHDRAWN, priority=Priority.ALARM, source=circuit.name,
                         body={"circuit": circuit.name, "breaker": trip.breaker, "reason": str(trip.reason),
                               "refused": why, "point": trip.cause.point}))

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

    async def send_trips(self, group: asyncio.TaskGroup) -> None:
        """Each trip asked for runs in `group` (the field points' task group), until cancelled."""
        while True:
            trip = await self._trips.get()
            group.create_task(self._trip(trip))

    async def _trip(self, trip: TripCommand) -> None:
        cause = trip.cause
        after = self._retries.pop(trip.circuit, None)
        because = {"point": cause.point, "reading": round(cause.reading, 6), "threshold": cause.threshold, "unit": self._cause_unit(cause.point)}

        def sending() -> None:  # the preconditions passed: the write goes out now
            self._commanded_open.add(trip.breaker)
            self._emit(Event(
                kind=PowerKind.TRIP_SENT, priority=Priority.ALARM, source=trip.circuit,
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
                kind=PowerKind.TRIP_REFUSED, priority=Priority.ALARM, source=trip.circuit,
                body={"circuit": trip.circuit, "breaker": trip.breaker, "reason": str(trip.reason), "refused": refused,
                      "precondition": None if outcome.refused_by is None else f"{trip.breaker}.{outcome.refused_by}", **because},
            ))
            return
        report = confirm_trip(trip, BreakerState.OPEN if confirmed else self._breaker_state(trip.breaker, since=sent), self._clock())
        confirmed_trip = report.outcome is TripOutcome.CONFIRMED
        self._emit(Event(
            kind=PowerKind.TRIP_CONFIRMED if confirmed_trip else PowerKind.TRIP_UNCONFIRMED,
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
        return next((p.unit for p in self._points if str(p.key) == point), "")

    async def _save_cuts(self) -> None:
        """Keep the cut circuits beside the fire latch; a refusing disk costs the record, never the cut."""
        try:
            await pools.call(Pool.FILES, write_atomically, self.state_dir / CUTS_FILE, json.dumps(self.cuts).encode())
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
        alarms = [str(p.key) for p in self._points if p.circuit is circuit and p.active.get(Condition.OVER_THRESHOLD) is Severity.ALARM]
        if alarms:
            return await self._refuse(audit, [f"still in alarm: {', '.join(alarms)}"])
        if circuit.name in self._holds:
            return await self._refuse(audit, [f"held open: {self._holds[circuit.name]}"])
        audit = {"circuit": command.circuit, "breaker": command.breaker, "operator": command.operator, "reason": command.reason}
        requested = await self.journal.append(Event(kind=PowerKind.RECLOSE_REQUESTED, priority=Priority.ALARM, source=circuit.name, body=audit))
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
        kind = PowerKind.RECLOSE_CONFIRMED if confirmed else PowerKind.RECLOSE_UNCONFIRMED
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
            kind=PowerKind.RECLOSE_REFUSED, priority=Priority.ALARM, source=str(audit.get("circuit")),
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
