"""Changing a running building's config: `edge reload`, `systemctl reload edge` (SIGHUP), the fleet.

The new file is checked exactly as `check-config` checks it; one with a problem changes nothing
(`config.reload_refused` journals every problem with its line). A valid one is compared with the
running one section by section, and each wired part is told of the sections it owns (its
`Retuner`, registered by the gateway as it wires the part) and answers with a `Plan`: steps that
apply the change in place or alone, or the reasons it needs a restart:

- doors and readers (edge/doors/retune.py): door settings in place, each reader's job alone;
- circuits and water points (edge/power/retune.py): limits, durations and labels in place, each point
  keeping its raised alarms, which then clear by the new limits;
- community (edge/community/retune.py): contacts, routes and SMS rates in place;
- cameras (edge/vision/retune.py): each camera's guard and worker alone;
- here, the shared parts: the field bus restarts alone on a line's new port, speed or timeout or a
  device's new address; the cloud commands allowed change in place.

A section no wired part owns (a device added, a lock, the uplink, the page, the journal...), a part
that asks for it, or a part that fails to take its change in place is wired by a restart: the daemon
stops as it does for systemd, then executes itself again under the same PID, so the fire latch, cut
circuits and open alarms come back as after any restart (their files and the journal keep them).
One reload runs at a time; `config.reloaded` names what was applied and the new file's digest, which
the status page and /metrics show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from edge.config import building as building_config
from edge.runtime import pools
from edge.config.building import BuildingConfig, ConfigError
from edge.events import Event, Kind, Priority
from edge.hotplug import with_stable_ports
from edge.runtime.pools import Pool

if TYPE_CHECKING:
    from edge.fieldbus.devices import DeviceCommands, FieldBus
    from edge.gateway import Gateway
    from edge.runtime.supervisor import Supervisor

log = structlog.get_logger("edge.reload")

MAX_PROBLEMS = 50  # journaled of a refused file (all are answered to who asked)
FIELD_BUS_STOP_S = 3.0  # the poller's transaction in flight ends within its bus timeout


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
    """What a new config asks of a part: steps that apply it in place or alone, or reasons to restart."""

    steps: list[Step] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)

    def extend(self, other: Plan) -> None:
        self.steps += other.steps
        self.restart += other.restart


@dataclass(frozen=True)
class Change:
    """What a part is told of a reload: the running and the new config as their files say them, the
    new one as it will run (udev:NAME ports resolved), and the supervisor that runs the part's jobs."""

    old: BuildingConfig
    new: BuildingConfig
    running: BuildingConfig
    supervisor: Supervisor


@dataclass(frozen=True)
class Retuner:
    """A wired part's answer to a reload: the config sections it owns, and its plan for a change of them."""

    sections: frozenset[str]
    plan: Callable[[Change], Plan]


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
            new, digest = await pools.call(Pool.FILES, self._load, path)
        except ConfigError as error:
            return await self._refuse(path, [str(p) for p in error.problems], who)
        except OSError as error:  # the file went away between the check and its digest
            return await self._refuse(path, [f"{path}:1:1: (file): {error.strerror or error}"], who)
        running = with_stable_ports(new) if new.udev else new
        plan = self.plan(gateway.loaded, new, running)
        body = who | {"file": str(path), "digest": digest, "previous": gateway.digest}
        if plan.restart:
            applied = [f"restart: {reason}" for reason in plan.restart]
            await gateway.journal.append(Event(Kind.CONFIG_RELOADED, Priority.FAULT, "gateway", body | {"applied": applied, "restart": True}))
            log.warning("config reload needs a restart: the daemon executes itself again", reasons=plan.restart)
            gateway.restart_for_config()
            return ReloadOutcome(True, [], applied, True, digest)
        applied: list[str] = []
        gateway.loaded, gateway.config = new, running
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

    async def _refuse(self, path: Path, problems: list[str], who: dict[str, Any]) -> ReloadOutcome:
        """Nothing changes; every problem is answered, the first MAX_PROBLEMS journaled."""
        gateway = self.gateway
        await gateway.journal.append(Event(Kind.CONFIG_RELOAD_REFUSED, Priority.FAULT, "gateway", who | {
            "file": str(path), "problems": problems[:MAX_PROBLEMS], "count": len(problems), "running": gateway.digest}))
        log.error("config reload refused", file=str(path), problems=len(problems))
        return ReloadOutcome(False, problems, [], False, gateway.digest)

    # --- the plan ---------------------------------------------------------------------

    def plan(self, old: BuildingConfig, new: BuildingConfig, running: BuildingConfig) -> Plan:
        """Each wired part's plan for the sections it owns; a section no part owns asks for a restart."""
        supervisor = self.gateway.supervisor
        assert supervisor is not None
        sections = set(changed_sections(old, new))
        change = Change(old, new, running, supervisor)
        plan = Plan()
        for retuner in self.gateway.retuners:
            if sections & retuner.sections:
                plan.extend(retuner.plan(change))
                sections -= retuner.sections
        plan.restart += [f"{section} changed" for section in sorted(sections)]
        return plan


def field_bus_retuner(fieldbus: FieldBus) -> Retuner:
    """A bus's port, speed, host or timeout, a device's address or bus: the field bus alone restarts on
    the new lines (readers, the page, the uplink and the cameras go on; its subscribers keep their
    subscriptions). A device added or removed, or its profile or polling changed, moves what the
    points, the fire inputs and the status rules were built on: a restart."""

    def polled(config: BuildingConfig) -> dict[str, tuple[str, float | None]]:
        return {d.name: (d.profile, d.poll_s) for d in config.devices}

    def plan(change: Change) -> Plan:
        old, new = change.old, change.new
        if polled(old) != polled(new):
            return Plan(restart=["devices added or removed, or a device's profile or polling changed"])
        buses = sorted(b.name for b in new.buses if b not in old.buses) + sorted({b.name for b in old.buses} - {b.name for b in new.buses})
        moved = sorted(d.name for d in new.devices if d not in old.devices)

        async def apply() -> list[str]:
            from edge.fieldbus.devices import device_specs

            profiles = await pools.call(Pool.FILES, building_config.device_profiles, change.running)
            await change.supervisor.retire("fieldbus", FIELD_BUS_STOP_S)
            fieldbus.respec(device_specs(change.running, profiles))
            change.supervisor.start("fieldbus", fieldbus.run)
            return [f"field bus: restarted on its new lines (buses {', '.join(buses) or 'unchanged'}; devices {', '.join(moved) or 'unchanged'})"]

        return Plan(steps=[apply])

    return Retuner(frozenset({"buses", "devices"}), plan)


def cloud_commands_retuner(devices: DeviceCommands) -> Retuner:
    """The device commands the cloud may run: in place."""

    def plan(change: Change) -> Plan:
        async def apply() -> list[str]:
            devices.cloud_allowed = frozenset(change.new.cloud_commands)
            return ["cloud_commands: in place"]

        return Plan(steps=[apply])

    return Retuner(frozenset({"cloud_commands"}), plan)
