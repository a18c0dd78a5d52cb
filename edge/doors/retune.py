"""The doors' part of a reload: door settings in place, each reader's job started, stopped or
restarted alone, so a door the change does not touch never loses its reader.

A door's lock, contact, exit button, fail mode or egress are wired into the field bus and the fire
release at start: a change of them, or a door with any of them added or removed, asks for a restart.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from edge.doors.wiring import Doors
from edge.hotplug import with_stable_ports
from edge.doors.readers import reader_jobs, reader_workers
from edge.reload import Change, Plan, Retuner

SECTIONS = frozenset({"doors", "readers", "access"})
SETTINGS = frozenset({"readers", "groups", "require_pin", "unlock_s", "extended_unlock_s", "held_open_s"})  # a door's, in place
READER_STOP_S = 2.0  # a reader's job ends within a read timeout; longer is logged and left cancelled


def retuner(doors: Doors) -> Retuner:
    return Retuner(SECTIONS, lambda change: plan(doors, change))


def plan(doors: Doors, change: Change) -> Plan:
    before, after = {d.name: d for d in change.old.doors}, {d.name: d for d in change.new.doors}
    rewired: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None or now is None:
            door = was or now
            if door.lock or door.contact or door.exit_button or door.egress:
                rewired.append(f"door {name} with a lock, contact, exit button or egress {'added' if was is None else 'removed'}")
        elif was.model_dump(exclude=SETTINGS) != now.model_dump(exclude=SETTINGS):
            rewired.append(f"door {name}: its lock, contact, exit button, fail mode or egress changed")
    if rewired:
        return Plan(restart=rewired)

    async def apply() -> list[str]:
        return await _apply(doors, change)

    return Plan(steps=[apply])


async def _apply(doors: Doors, change: Change) -> list[str]:
    old, new, running, supervisor = change.old, change.new, change.running, change.supervisor
    applied: list[str] = []
    was = reader_jobs(with_stable_ports(old).readers if old.udev else old.readers)
    now = reader_jobs(running.readers)
    moved = {job for job in was.keys() | now.keys() if was.get(job) != now.get(job)}
    started = reader_workers(running.readers, doors.access.inbox, only=moved & now.keys())
    for job in sorted(moved):
        if job in was and job in supervisor.tasks:
            await supervisor.retire(job, READER_STOP_S)
        if job in now:
            supervisor.start(job, started.jobs[job])
        applied.append(f"{job}: {'started' if job not in was else 'stopped' if job not in now else 'restarted'}")
    gone = {reader.name for job in moved for reader in was.get(job, ())}
    indication = doors.access.indication
    indication.indicators = {name: show for name, show in indication.indicators.items() if name not in gone} | started.indicators
    doors.config = running
    if old.doors != new.doors or old.access != new.access:
        doors.access.retune(running.doors, ZoneInfo(running.building.timezone), running.access.pin_lockout)
        changed = sorted({d.name for d in new.doors} ^ {d.name for d in old.doors} | {d.name for d in new.doors if d not in old.doors})
        applied += [f"door {name}: in place" for name in changed] + (["access: in place"] if old.access != new.access else [])
    return applied
