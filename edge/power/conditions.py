"""The conditions power holds active: a cut circuit, a trip not confirmed, a trip refused.

A circuit the gateway cut is a condition of its own from the confirmed trip until the confirmed
re-close, whatever its currents read (zero, because it is cut): floor 1 without power must say
so in every view. It outlives a restart (the cut is kept in the state dir, `edge/power/breakers.py`).
"""

from __future__ import annotations

from edge.conditions import AtRestart, Rule
from edge.events import StoredEvent
from edge.power.kinds import PowerKind

UNCONFIRMED_S = 86400.0  # a trip nobody confirmed: on the page for a day unless a trip or re-close ends it


def _cut(e: StoredEvent) -> str:
    reason = str(e.body.get("reason", "")).replace("_", " ")
    reading = e.body.get("reading")
    cause = f" {reading:g} {e.body.get('unit') or ''}".rstrip() if isinstance(reading, int | float) else ""
    return f"Circuit {e.body.get('circuit', e.source)} cut by the gateway: {reason}{cause}; no power until a technician re-closes it"


def _could_not_cut(e: StoredEvent) -> str:
    reading, unit = e.body.get("reading"), e.body.get("unit") or ""
    cause = f" ({e.body.get('point')} {reading:g} {unit})".replace(" )", ")") if isinstance(reading, int | float) else ""
    return (f"Circuit {e.body.get('circuit', e.source)} could not cut: {e.body.get('refused')}{cause}; "
            "power is still on, tried again as soon as the breaker allows it")


CONDITIONS = (
    Rule(PowerKind.TRIP_CONFIRMED, _cut, ended_by=(PowerKind.RECLOSE_CONFIRMED,), key=lambda e: str(e.body.get("circuit", e.source)),
         at_restart=AtRestart.KEEP, listed_as="cut_circuits"),
    Rule(PowerKind.TRIP_UNCONFIRMED, lambda e: f"Circuit {e.body.get('circuit', e.source)}: the breaker did not confirm the trip, "
         f"power may still be on ({e.body.get('detail')})", ended_by=(PowerKind.TRIP_CONFIRMED, PowerKind.RECLOSE_CONFIRMED),
         key=lambda e: str(e.body.get("circuit", e.source)), lasts_s=UNCONFIRMED_S, at_restart=AtRestart.KEEP),
    # A trip a precondition refused (nothing sent): active until it is sent, its cause ends, or a re-close.
    Rule(PowerKind.TRIP_REFUSED, _could_not_cut, ended_by=(PowerKind.TRIP_SENT, PowerKind.TRIP_WITHDRAWN, PowerKind.RECLOSE_CONFIRMED),
         key=lambda e: str(e.body.get("circuit", e.source)), at_restart=AtRestart.END),
)
