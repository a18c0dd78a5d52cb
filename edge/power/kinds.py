"""The power cut's event kinds: a trip sent, confirmed, refused or withdrawn, and a re-close
requested, refused or confirmed, with their words on the page.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
The point conditions (`alarm.raised`, `alarm.cleared`) and readings stay in `edge.events.Kind`:
circuits and water points both raise them.
"""

from __future__ import annotations

from enum import StrEnum

from edge.events import Kinds


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
}, bodies="edge.power.bodies")
