"""The elevator cameras in a reload: each camera added, removed or changed has its guard (and its
worker process) started, stopped or restarted alone; the other cars' guards, and a hold they keep,
go on. A restarted guard's `vision.mode` ends its car's hold; a camera removed while its guard held
the car journals the release here."""

from __future__ import annotations

from edge.events import Event, Priority
from edge.journal import Journal
from edge.reload import Change, Plan, Retuner
from edge.vision.kinds import VisionKind
from edge.vision.wiring import Vision

SECTIONS = frozenset({"cameras"})
CAMERA_STOP_S = 8.0  # a guard asks its worker process to stop, then terminates it (edge/vision/guard.py)


def retuner(vision: Vision, journal: Journal) -> Retuner:
    return Retuner(SECTIONS, lambda change: plan(vision, journal, change))


def plan(vision: Vision, journal: Journal, change: Change) -> Plan:
    if not change.new.cameras:
        return Plan(restart=["every camera removed"])
    before, after = {c.name: c for c in change.old.cameras}, {c.name: c for c in change.new.cameras}
    moved = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))

    async def apply() -> list[str]:
        supervisor = change.supervisor
        cameras = {c.name: c for c in change.running.cameras}  # sources resolved (udev:NAME)
        applied = []
        for name in moved:
            held = name in vision.guards and vision.guards[name].holding
            if f"camera:{name}" in supervisor.tasks:
                await supervisor.retire(f"camera:{name}", CAMERA_STOP_S)  # a guard that stops lets its car go
            guard = vision.replace(name, cameras.get(name))
            if held and guard is None:
                await journal.append(Event(VisionKind.ELEVATOR_RELEASED, Priority.ALARM, name, {
                    "reason": "camera_removed", "elevator": before[name].elevator}))
            if guard is not None:
                supervisor.start(f"camera:{name}", guard.run)
            applied.append(f"camera:{name}: {'started' if name not in before else 'stopped' if guard is None else 'restarted'}")
        return applied

    return Plan(steps=[apply])
