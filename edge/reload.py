"""Changing a running building's config: `edge reload`, `systemctl reload edge` (SIGHUP), the fleet.

The new file is checked exactly as `check-config` checks it; one with a problem changes nothing
(`config.reload_refused` journals every problem with its line). A valid one is compared with the
running one section by section, and each part that changed is told, in place where it can be:

- doors and readers: a door's readers, groups, PIN and times change in place (its state machine,
  lock and a fire release stay); each reader's worker (an OSDP line's) that was added, removed or
  changed is started, stopped or restarted alone, so the other doors never lose their reader;
- circuits and water points: limits, durations, labels and places in place, each point keeping its
  raised alarms, which then clear by the new limits (edge.safety PointMonitor.take_over);
- community: contacts, routes and SMS rates in place; cloud commands allowed, in place;
- cameras: each camera added, removed or changed has its guard (and worker process) started,
  stopped or restarted alone; the other cars' guards, and a hold they keep, go on;
- buses and devices: a line's port, speed or timeout, a device's address: the field bus alone
  restarts on the new lines (its subscribers keep their subscriptions).

Anything else (a device added or given another profile or poll interval, a lock, the uplink, the
page, the journal...) is wired by a restart: the daemon stops as it does for systemd, then executes
itself again under the same PID, so the fire latch, cut circuits and open alarms come back as after
any restart (their files and the journal keep them). So is a part that fails to take its change in
place. One reload runs at a time; `config.reloaded` names what was applied and the new file's
digest, which the status page and /metrics show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from edge import config as building_config
from edge import runtime
from edge.config import BuildingConfig, ConfigError
from edge.events import Event, Kind, Priority
from edge.hotplug import with_stable_ports
from edge.readers import reader_jobs, reader_workers
from edge.runtime import Pool

if TYPE_CHECKING:
    from edge.gateway import Gateway

log = structlog.get_logger("edge.reload")

MAX_PROBLEMS = 50  # journaled of a refused file (all are answered to who asked)
READER_STOP_S = 2.0
FIELD_BUS_STOP_S = 3.0  # the poller's transaction in flight ends within its bus timeout
CAMERA_STOP_S = 8.0  # a camera's worker process is asked to stop, then terminated (edge/vision/guard.py)  # a reader's worker ends within a read timeout; longer is logged and left cancelled
DOOR_SETTINGS = frozenset({"readers", "groups", "require_pin", "unlock_s", "extended_unlock_s", "held_open_s"})
NOTIFIER_SETTINGS = frozenset({"contacts", "routes", "sms_per_hour", "cloud_confirm_s", "inactivity_check_s"})
WATCHED_REFS = ("currents", "leakage", "temperatures", "breaker")  # what a circuit reads and trips


@dataclass
class ReloadOutcome:
    ok: bool  # False: the file was refused, nothing changed
    problems: list[str]  # FILE:LINE:COL lines as check-config prints them (empty when ok)
    applied: list[str]  # what changed and how, e.g. "circuits.f1-c1: in place", "reader:r3: started"
    restart: bool  # the change needs a restart: the daemon executes itself again right after answering
    digest: str  # of the file now running (the old one when refused)

    def answer(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "applied": self.applied, "restart": self.restart, "digest": self.digest}


Step = Callable[[], Awaitable[list[str]]]


@dataclass
class Plan:
    """What a new config asks of the running building: steps in place, or reasons to restart."""

    steps: list[Step] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else [_dump(v) for v in value] if isinstance(value, list) else value


def changed_sections(old: BuildingConfig, new: BuildingConfig) -> list[str]:
    """The top-level sections whose content differs (comments and order of keys do not count)."""
    return [name for name in BuildingConfig.model_fields if _dump(getattr(old, name)) != _dump(getattr(new, name))]


class Reloader:
    """The gateway's reload: one at a time, checked, planned, applied part by part, journaled."""

    def __init__(self, gateway: Gateway, overrides: dict[str, Any] | None = None) -> None:
        self.gateway = gateway
        self.overrides = overrides or {}  # what `edge run` set over the file (its --state-dir)
        self._one = asyncio.Lock()

    def _load(self, path: Path) -> tuple[BuildingConfig, str]:
        """Blocking (reads the file and the profiles): on the files pool."""
        from edge.gateway import config_digest

        config = building_config.load(path)
        return (config.model_copy(update=self.overrides) if self.overrides else config), config_digest(path)

    async def reload(self, path: Path | None = None, *, via: str = "control", operator: str | None = None) -> ReloadOutcome:
        async with self._one:
            return await self._reload(path or self.gateway.config_path, via, operator)

    async def _reload(self, path: Path, via: str, operator: str | None) -> ReloadOutcome:
        gateway = self.gateway
        who = {"via": via} | ({"operator": operator} if operator else {})
        try:
            new, digest = await runtime.call(Pool.FILES, self._load, path)
        except ConfigError as error:
            problems = [str(p) for p in error.problems]
            await gateway.journal.append(Event(Kind.CONFIG_RELOAD_REFUSED, Priority.FAULT, "gateway", who | {
                "file": str(path), "problems": problems[:MAX_PROBLEMS], "count": len(problems), "running": gateway.digest}))
            log.error("config reload refused", file=str(path), problems=len(problems))
            return ReloadOutcome(False, problems, [], False, gateway.digest)
        except OSError as error:  # a digest of a file that went away between the two reads
            problem = f"{path}:1:1: (file): {error.strerror or error}"
            await gateway.journal.append(Event(Kind.CONFIG_RELOAD_REFUSED, Priority.FAULT, "gateway", who | {
                "file": str(path), "problems": [problem], "count": 1, "running": gateway.digest}))
            return ReloadOutcome(False, [problem], [], False, gateway.digest)
        plan = self.plan(gateway.loaded, new)
        body = who | {"file": str(path), "digest": digest, "previous": gateway.digest}
        if plan.restart:
            applied = [f"restart: {reason}" for reason in plan.restart]
            await gateway.journal.append(Event(Kind.CONFIG_RELOADED, Priority.FAULT, "gateway", body | {"applied": applied, "restart": True}))
            log.warning("config reload needs a restart: the daemon executes itself again", reasons=plan.restart)
            gateway.restart_for_config()
            return ReloadOutcome(True, [], applied, True, digest)
        applied: list[str] = []
        gateway.loaded = new
        gateway.config = with_stable_ports(new) if new.udev else new
        try:
            for step in plan.steps:
                applied += await step()
        except Exception as error:  # noqa: BLE001 - a part half-changed: a restart wires the whole file cleanly
            log.exception("applying the config in place failed: restarting on it", applied=applied)
            applied.append(f"restart: applying in place failed ({type(error).__name__}: {error})"[:300])
            await gateway.journal.append(Event(Kind.CONFIG_RELOADED, Priority.FAULT, "gateway", body | {"applied": applied, "restart": True}))
            gateway.restart_for_config()
            return ReloadOutcome(True, [], applied, True, digest)
        gateway.digest = digest
        if gateway.status is not None:
            gateway.status.retune(gateway.config, digest)
        await gateway.journal.append(Event(Kind.CONFIG_RELOADED, Priority.FAULT, "gateway", body | {"applied": applied, "restart": False}))
        log.info("config reloaded", digest=digest, applied=applied)
        return ReloadOutcome(True, [], applied, False, digest)

    # --- the plan ---------------------------------------------------------------------

    def plan(self, old: BuildingConfig, new: BuildingConfig) -> Plan:
        """Which parts change and how; pure but for what the gateway has wired."""
        plan = Plan()
        sections = set(changed_sections(old, new))
        door_part = sections & {"doors", "readers", "access"}
        if door_part:
            self._plan_doors(old, new, plan)
        if sections & {"circuits", "pressure_points"}:
            self._plan_field(old, new, plan)
        if "community" in sections:
            self._plan_community(old, new, plan)
        if "cloud_commands" in sections:
            self._plan_cloud_commands(new, plan)
        if "cameras" in sections:
            self._plan_cameras(old, new, plan)
        field_bus = sections & {"buses", "devices"}
        if field_bus:
            self._plan_field_bus(old, new, plan)
        alone = door_part | field_bus | {"circuits", "pressure_points", "community", "cloud_commands", "cameras"}
        for section in sorted(sections - alone):
            plan.restart.append(f"{section} changed")
        return plan

    def _plan_doors(self, old: BuildingConfig, new: BuildingConfig, plan: Plan) -> None:
        doors = self.gateway.doors
        if doors is None:
            plan.restart.append("doors or readers added to a building that had none")
            return
        before, after = {d.name: d for d in old.doors}, {d.name: d for d in new.doors}
        rewired: list[str] = []
        for name in sorted(before.keys() | after.keys()):
            was, now = before.get(name), after.get(name)
            if was is None or now is None:
                door = was or now
                if door.lock or door.contact or door.exit_button or door.egress:
                    rewired.append(f"door {name} with a lock, contact, exit button or egress {'added' if was is None else 'removed'}")
            elif was.model_dump(exclude=DOOR_SETTINGS) != now.model_dump(exclude=DOOR_SETTINGS):
                rewired.append(f"door {name}: its lock, contact, exit button, fail mode or egress changed")
        plan.restart += rewired
        if not rewired:
            plan.steps.append(lambda: self._apply_doors(old, new))

    async def _apply_doors(self, old: BuildingConfig, new: BuildingConfig) -> list[str]:
        doors, supervisor = self.gateway.doors, self.gateway.supervisor
        assert doors is not None and supervisor is not None
        applied: list[str] = []
        running = self.gateway.config  # ports resolved (udev:NAME)
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
        doors.access.indicators = {name: show for name, show in doors.access.indicators.items() if name not in gone} | started.indicators
        doors.config = running
        if _dump(old.doors) != _dump(new.doors) or old.access != new.access:
            doors.access.retune(running.doors, ZoneInfo(running.building.timezone), running.access.pin_lockout)
            changed = sorted({d.name for d in new.doors} ^ {d.name for d in old.doors}
                             | {d.name for d in new.doors if d not in old.doors})
            applied += [f"door {name}: in place" for name in changed] + (["access: in place"] if old.access != new.access else [])
        return applied

    def _plan_field(self, old: BuildingConfig, new: BuildingConfig, plan: Plan) -> None:
        field_points = self.gateway.field
        if field_points is None:
            plan.restart.append("circuits or water points added to a building that had none")
            return
        before, after = {c.name: c for c in old.circuits}, {c.name: c for c in new.circuits}
        waters_before, waters_after = {w.name: w for w in old.pressure_points}, {w.name: w for w in new.pressure_points}
        if before.keys() != after.keys() or waters_before.keys() != waters_after.keys():
            plan.restart.append("circuits or water points added or removed")
            return
        for name, circuit in after.items():
            if any(getattr(circuit, ref) != getattr(before[name], ref) for ref in WATCHED_REFS):
                plan.restart.append(f"circuit {name}: its points or breaker changed")
        for name, water in waters_after.items():
            was = waters_before[name]
            if water.point != was.point or type(water.safety) is not type(was.safety):
                plan.restart.append(f"water point {name}: its point or kind changed")

        async def apply() -> list[str]:
            return [f"{name}: in place" for name in field_points.retune(self.gateway.config)]

        plan.steps.append(apply)

    def _plan_community(self, old: BuildingConfig, new: BuildingConfig, plan: Plan) -> None:
        community = self.gateway.community
        notifier = community.notifier if community is not None else None
        moved = [name for name in type(new.community).model_fields
                 if _dump(getattr(old.community, name)) != _dump(getattr(new.community, name)) and name not in NOTIFIER_SETTINGS]
        if notifier is None or moved or not new.community.active:
            plan.restart.append(f"community: {', '.join(moved) or 'its notifier'} changed")
            return

        async def apply() -> list[str]:
            settings = self.gateway.config.community
            notifier.retune(settings)
            if community.inactivity is not None:
                community.inactivity.contacts = {c.name for c in settings.contacts}
                community.inactivity.check_s = settings.inactivity_check_s
            return ["community contacts, routes and rates: in place"]

        plan.steps.append(apply)

    def _plan_cloud_commands(self, new: BuildingConfig, plan: Plan) -> None:
        devices = self.gateway.devices
        if devices is None:
            plan.restart.append("cloud_commands changed on a building without devices")
            return

        async def apply() -> list[str]:
            devices.cloud_allowed = frozenset(new.cloud_commands)
            return ["cloud_commands: in place"]

        plan.steps.append(apply)

    def _plan_cameras(self, old: BuildingConfig, new: BuildingConfig, plan: Plan) -> None:
        vision = self.gateway.vision
        if vision is None or not new.cameras:
            plan.restart.append("cameras added to a building that had none" if vision is None else "every camera removed")
            return
        before, after = {c.name: c for c in old.cameras}, {c.name: c for c in new.cameras}
        moved = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))

        async def apply() -> list[str]:
            supervisor = self.gateway.supervisor
            assert supervisor is not None
            cameras = {c.name: c for c in self.gateway.config.cameras}  # sources resolved (udev:NAME)
            applied = []
            for name in moved:
                held = name in vision.guards and vision.guards[name].holding
                if f"camera:{name}" in supervisor.tasks:
                    await supervisor.retire(f"camera:{name}", CAMERA_STOP_S)  # a guard that stops lets its car go
                guard = vision.replace(name, cameras.get(name))
                if held and guard is None:  # a restarted guard's vision.mode ends the hold; a removed one says so here
                    from edge.vision.kinds import VisionKind

                    await self.gateway.journal.append(Event(VisionKind.ELEVATOR_RELEASED, Priority.ALARM, name, {
                        "reason": "camera_removed", "elevator": before[name].elevator}))
                if guard is not None:
                    supervisor.start(f"camera:{name}", guard.run)
                state = "started" if name not in before else "stopped" if guard is None else "restarted"
                applied.append(f"camera:{name}: {state}")
            return applied

        plan.steps.append(apply)

    def _plan_field_bus(self, old: BuildingConfig, new: BuildingConfig, plan: Plan) -> None:
        """A bus's port, speed, host or timeout, a device's address or bus: the field bus alone
        restarts on the new lines (readers, the page, the uplink and the cameras go on). A device
        added or removed, or its profile or polling changed, moves what the points, the fire inputs
        and the status rules were built on: a restart."""
        fieldbus = self.gateway.fieldbus
        if fieldbus is None:
            plan.restart.append("devices added to a building that had none")
            return

        def polled(config: BuildingConfig) -> dict[str, tuple[str, float | None]]:
            return {d.name: (d.profile, d.poll_s) for d in config.devices}

        if polled(old) != polled(new):
            plan.restart.append("devices added or removed, or a device's profile or polling changed")
            return
        buses = sorted(b.name for b in new.buses if b not in old.buses) + sorted(b.name for b in old.buses if b.name not in {n.name for n in new.buses})
        moved = sorted(d.name for d in new.devices if d not in old.devices)

        async def apply() -> list[str]:
            from edge.fieldbus import device_specs

            supervisor = self.gateway.supervisor
            assert supervisor is not None
            running = self.gateway.config
            profiles = await runtime.call(Pool.FILES, building_config.device_profiles, running)
            await supervisor.retire("fieldbus", FIELD_BUS_STOP_S)
            fieldbus.respec(device_specs(running, profiles))
            supervisor.start("fieldbus", fieldbus.run)
            return [f"field bus: restarted on its new lines (buses {', '.join(buses) or 'unchanged'}; devices {', '.join(moved) or 'unchanged'})"]

        plan.steps.append(apply)
