"""Typed bodies of power's kinds (edge/power/kinds.py): the fields each emitter writes, for the fleet
contract's schema and the tests that hold the emitters to them. Named by its `Kinds` and imported
only by what reads bodies (the contract, the ingest, the tests): never on the gateway's start or
hot path, where no event is built through a model."""

from __future__ import annotations

from pydantic import Field

from edge.events.bodies import Body
from edge.points.power_cut import TripReason
from edge.power.kinds import PowerKind


_REASON = f"Why the gateway cuts it: {', '.join(TripReason)}."


class _Trip(Body):
    circuit: str
    breaker: str
    reason: str = Field(description=_REASON)


class _Cause(_Trip):
    """The point's alarm that asked for the cut (edge/power/breakers.py), as its alarm.raised gave it."""

    point: str = Field(description="The point (DEVICE.POINT) whose alarm asked for the cut.")
    reading: float = Field(description="Its reading, in `unit`.")
    threshold: float | None = Field(description="The limit it crossed.")
    unit: str


class TripSentBody(_Trip):
    """The trip write goes out now: its preconditions passed."""

    point: str = Field(description="The point (DEVICE.POINT) whose alarm asked for the cut.")
    reading: float
    threshold: float | None
    after_refusal: str | None = Field(None, description="A refused trip sent again once its precondition passed: why it was refused.")


class TripOutcomeBody(_Cause):
    """The breaker read back after a trip: open (confirmed) or not (unconfirmed, failed)."""

    outcome: str = Field(description="confirmed, unconfirmed (no read-back) or failed (it reads closed).")
    readback: str | None = Field(description="open, closed, or null when it could not be read.")
    severity: str | None = Field(description="alarm unless confirmed.")
    detail: str = Field(description="What the field bus said of the command.")


class TripRefusedBody(_Cause):
    """Nothing sent: a precondition (the breaker in local mode) refused the trip; retried when it passes."""

    refused: str = Field(description="Why, in the field bus's words.")
    precondition: str | None = Field(description="The precondition that refused it, BREAKER.NAME.")


class TripWithdrawnBody(_Trip):
    """A refused trip whose cause ended before the breaker could be cut."""

    refused: str = Field(description="Why it had been refused.")
    point: str


class RecloseRequestedBody(Body):
    """An operator's re-close (`breaker.close`), journaled before the command is sent."""

    circuit: str
    breaker: str
    operator: str
    reason: str = Field(description="The operator's words.")


class RecloseResultBody(RecloseRequestedBody):
    """The breaker read back after a re-close."""

    request_seq: int | None = Field(description="The seq of its power.reclose_requested.")
    detail: str | None = Field(None, description="Unconfirmed: what the field bus said.")


_AS_ASKED = "As the request gave it (text when it was neither text, a number nor null)."


class RecloseRefusedBody(Body):
    """A re-close refused: nothing sent to the breaker (no such circuit, still in alarm, held open, a
    precondition)."""

    circuit: str | bool | int | None = Field(description=_AS_ASKED)
    operator: str | bool | int | None = Field(description=_AS_ASKED)
    reason: str | bool | int | None = Field(description=_AS_ASKED)
    problems: list[str]
    breaker: str | None = Field(None, description="Given once the request was valid.")
    request_seq: int | None = Field(None, description="Refused by a precondition after it was requested: that request's seq.")


BODIES = {
    PowerKind.TRIP_SENT: TripSentBody,
    PowerKind.TRIP_CONFIRMED: TripOutcomeBody,
    PowerKind.TRIP_UNCONFIRMED: TripOutcomeBody,
    PowerKind.TRIP_REFUSED: TripRefusedBody,
    PowerKind.TRIP_WITHDRAWN: TripWithdrawnBody,
    PowerKind.RECLOSE_REQUESTED: RecloseRequestedBody,
    PowerKind.RECLOSE_REFUSED: RecloseRefusedBody,
    PowerKind.RECLOSE_CONFIRMED: RecloseResultBody,
    PowerKind.RECLOSE_UNCONFIRMED: RecloseResultBody,
}
