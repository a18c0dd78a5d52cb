"""The power cut's event kinds: a trip sent, confirmed, refused or withdrawn, and a re-close
requested, refused or confirmed, with their words on the page.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
The point conditions (`alarm.raised`, `alarm.cleared`) and readings stay in `edge.events.Kind`:
circuits and water points both raise them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from edge.events.words import Body
from edge.events import Kinds
from edge.points.power_cut import TripReason


class PowerKind(StrEnum):
    TRIP_SENT = "power.trip_sent"
    TRIP_CONFIRMED = "power.trip_confirmed"
    TRIP_UNCONFIRMED = "alarm.trip_unconfirmed"
    RECLOSE_REQUESTED = "power.reclose_requested"
    RECLOSE_REFUSED = "power.reclose_refused"
    RECLOSE_CONFIRMED = "power.reclose_confirmed"
    RECLOSE_UNCONFIRMED = "power.reclose_unconfirmed"
    TRIP_REFUSED = "power.trip_refused"  # nothing sent: a precondition refused it (breaker in local mode); retried when it passes
    TRIP_WITHDRAWN = "power.trip_withdrawn"  # a refused trip's cause ended before the breaker could be cut


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


KINDS = Kinds("power", PowerKind, {
    PowerKind.TRIP_SENT: "Circuit cut ordered",
    PowerKind.TRIP_CONFIRMED: "Circuit cut (breaker opened)",
    PowerKind.TRIP_UNCONFIRMED: "Breaker did not confirm the cut",
    PowerKind.RECLOSE_REQUESTED: "Circuit re-close requested",
    PowerKind.RECLOSE_REFUSED: "Circuit re-close refused",
    PowerKind.RECLOSE_CONFIRMED: "Circuit re-closed: power back",
    PowerKind.RECLOSE_UNCONFIRMED: "Breaker did not confirm the re-close",
    PowerKind.TRIP_REFUSED: "Circuit could not be cut: the breaker refused the command",
    PowerKind.TRIP_WITHDRAWN: "Circuit cut no longer needed: its cause ended",
}, bodies={
    PowerKind.TRIP_SENT: TripSentBody,
    PowerKind.TRIP_CONFIRMED: TripOutcomeBody,
    PowerKind.TRIP_UNCONFIRMED: TripOutcomeBody,
    PowerKind.TRIP_REFUSED: TripRefusedBody,
    PowerKind.TRIP_WITHDRAWN: TripWithdrawnBody,
    PowerKind.RECLOSE_REQUESTED: RecloseRequestedBody,
    PowerKind.RECLOSE_REFUSED: RecloseRefusedBody,
    PowerKind.RECLOSE_CONFIRMED: RecloseResultBody,
    PowerKind.RECLOSE_UNCONFIRMED: RecloseResultBody,
})
