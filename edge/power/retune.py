"""Circuits and water points in a reload: limits, durations, labels and places in place
(`FieldPoints.retune`; each point's monitor takes over the old one's raised alarms). A circuit or
water point added or removed, or one watching other points or another breaker, asks for a restart."""

from __future__ import annotations

from edge.power.points import FieldPoints
from edge.reload import Change, Plan, Retuner

SECTIONS = frozenset({"circuits", "pressure_points"})
WATCHED = ("currents", "leakage", "temperatures", "breaker")  # what a circuit reads and trips


def retuner(field: FieldPoints) -> Retuner:
    return Retuner(SECTIONS, lambda change: plan(field, change))


def plan(field: FieldPoints, change: Change) -> Plan:
    old, new = change.old, change.new
    before, after = {c.name: c for c in old.circuits}, {c.name: c for c in new.circuits}
    waters_before, waters_after = {w.name: w for w in old.pressure_points}, {w.name: w for w in new.pressure_points}
    if before.keys() != after.keys() or waters_before.keys() != waters_after.keys():
        return Plan(restart=["circuits or water points added or removed"])
    rewired = [f"circuit {name}: its points or breaker changed" for name, circuit in after.items()
               if any(getattr(circuit, ref) != getattr(before[name], ref) for ref in WATCHED)]
    rewired += [f"water point {name}: its point or kind changed" for name, water in waters_after.items()
                if water.point != waters_before[name].point or type(water.safety) is not type(waters_before[name].safety)]
    if rewired:
        return Plan(restart=rewired)

    async def apply() -> list[str]:
        return [f"{name}: in place" for name in field.retune(change.running)]

    return Plan(steps=[apply])
