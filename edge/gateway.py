"""The running gateway: journal, supervised workers, systemd, and a clean stop.

Start-up order matters: the config is already valid (checked before we get here), the
journal opens first (so the first failure of anything is recorded; the cards load meanwhile),
then the workers that decide doors and safety, then the camera, the uplink and the page, whose
imports are slower (docs/performance.md), then READY=1. On SIGTERM: STOPPING=1, workers cancelled, the journal flushed and
checkpointed, all inside one budget (STOP_WITHIN_S) well inside systemd's stop timeout: the
workers get it less what the journal keeps, and share it down to their own last steps.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from edge import features
from edge.carryover import carry_over
from edge.config.building import BuildingConfig, device_profiles
from edge.config.apply import ConfigApplier
from edge.config.files import digest_of
from edge.events import Event, Kind, Priority
from edge.feature import Feature, Site, Stage, Wired
from edge.fieldbus import DeviceOp
from edge.hotplug import assemble_hotplug, with_stable_ports, workers_by_identity
from edge.journal import Journal, JournalLimits
from edge.journal.owner import JournalOwner
from edge.reload import Reloader, Retuner, cloud_commands_retuner, field_bus_retuner
from edge.runtime import pools
from edge.runtime.control import ControlServer, GatewayOp, socket_places
from edge.runtime.deadline import Deadline
from edge.runtime.notify import Systemd
from edge.runtime.pools import Pool
from edge.runtime.supervisor import Supervisor, Work
from edge.version import VERSION

if TYPE_CHECKING:  # each is imported where the config uses it (docs/performance.md): a door never waits for the page's imports
    from edge.community.wiring import Community
    from edge.doors.wiring import Doors
    from edge.fieldbus.devices import DeviceCommands, FieldBus
    from edge.power.points import FieldPoints
    from edge.status.server import StatusServer
    from edge.uplink.worker import Uplink

log = structlog.get_logger("edge.gateway")

STOP_WITHIN_S = 4.0  # the whole stop (the README promises 5 s; systemd's TimeoutStopSec is 10 s)
JOURNAL_KEEPS_S = 1.0  # of it, kept for the stopped event and the journal's flush whatever the workers do
HEARTBEAT_S = 60.0
ANSWER_FIRST_S = 0.3  # a reload that restarts the daemon answers who asked before the stop begins
OWNER_WAIT_S = 10.0  # for the journal's lock at start: a command journaling without the daemon holds it a moment


def journal_limits(config: BuildingConfig) -> JournalLimits:
    days = config.journal.telemetry_retention_days
    return JournalLimits(
        cap_bytes=int(config.journal.cap_mb * 1024 * 1024),
        telemetry_retention_s=None if days is None else days * 86400,
    )


def config_digest(path: Path) -> str:
    """Short hash of the config file, reported upstream so the cloud knows what runs (the same
    hash a config from the fleet is named by: edge/config/files.py)."""
    return digest_of(path.read_bytes())


class Gateway:
    """One building's daemon."""

    def __init__(self, config: BuildingConfig, config_path: Path, overrides: dict | None = None) -> None:
        self.config = config
        self.loaded = config  # as the file says it (udev:NAME ports unresolved): what a reload compares with
        self.config_path = config_path
        self.digest = config_digest(config_path)
        self.reloader = Reloader(self, overrides)
        self.reexec = False  # a reload needs a restart: `edge run` executes itself again after the stop
        self.systemd = Systemd()
        self.stopping = asyncio.Event()
        self.journal: Journal | None = None
        self.supervisor: Supervisor | None = None
        self.fieldbus: FieldBus | None = None
        self.field: FieldPoints | None = None
        self.devices: DeviceCommands | None = None
        self.config_apply: ConfigApplier | None = None
        self.parts: dict[str, Any] = {}  # each wired feature's part, by the feature's name (edge/feature.py)
        self.closing: list[Callable[[], None]] = []  # the features' state files, closed after their work stops
        self.retuners: list[Retuner] = []  # each wired part's answer to a reload (edge/reload.py)
        self._reload_wanted = asyncio.Event()  # SIGHUP
        self.started_seq: int | None = None  # this run's first event: what came before it is the last run's
        self.prepared: dict[str, Any] = {}  # what features loaded on a thread while the journal opened (the doors' cards)

    def assemble(self, journal: Journal) -> dict[str, Work]:
        """Build the building's parts from the config; returns every long-running job by name.

        The shared parts (the field bus, field points, device commands, the control socket, the
        fleet's config watch) are built here; each feature wires its own (edge/feature.py), in
        order: first what decides doors and safety, then what is slower to import (`run` starts
        the first before it builds the rest, so a tap never waits for the page's or the uplink's
        imports).
        """
        work, site = self._assemble_first(journal)
        return work | self._assemble_rest(site)

    def _assemble_first(self, journal: Journal) -> tuple[dict[str, Work], Site]:
        """The field bus and field points, then the features that decide doors and safety."""
        work: dict[str, Work] = {"heartbeat": lambda: self._heartbeat(journal)}
        if self.config.udev:  # ports named udev:NAME open links that follow the device (ConfigError if one matches twice)
            users = workers_by_identity(self.config)
            work["hotplug"] = assemble_hotplug(self.config, journal, on_arrival=lambda name: self._wake(users.get(name, ()))).run
            self.config = with_stable_ports(self.config)
        site = Site(self.config, journal, self.digest, None, None, self.parts, {}, {}, self.prepared, self)
        if self.config.devices:
            work |= self._assemble_field(site)
        for feature in _wanted(self.config, Stage.FIRST):
            work |= self._wire(feature, site)
        # What the last run left open (an alarm before a SIGKILL) is kept, rechecked or ended.
        doors = self.parts.get("doors")
        fire = doors.fire if doors is not None else None
        work["carryover"] = lambda: carry_over(journal, self.config, self.field, fire, before_seq=self.started_seq)
        return work, site

    def _assemble_field(self, site: Site) -> dict[str, Work]:
        """The Modbus field bus, the field points of circuits and water points on it, and the
        profile commands a technician or the cloud may run on its devices."""
        from edge.fieldbus.devices import DeviceCommands, FieldBus, device_specs  # pymodbus

        journal = site.journal
        profiles = device_profiles(self.config)
        fieldbus = site.fieldbus = self.fieldbus = FieldBus(device_specs(self.config, profiles), journal, state_dir=self.config.state_path)
        work: dict[str, Work] = {"fieldbus": fieldbus.run}
        self.retuners.append(field_bus_retuner(fieldbus))
        if self.config.circuits or self.config.pressure_points:
            from edge.power import retune as points_retune
            from edge.power.points import FieldPoints

            field = site.field = self.field = FieldPoints(self.config, fieldbus, journal, profiles)
            work["field-points"] = field.run
            self.retuners.append(points_retune.retuner(field))
        devices = self.devices = DeviceCommands(fieldbus, journal, reserved={
            (c.breaker, "close"): f"{c.breaker} closes circuit {c.name}: use `edge breaker close {c.name}`, which checks its alarms"
            for c in self.config.circuits if c.breaker}, cloud_allowed=frozenset(self.config.cloud_commands))
        site.control[DeviceOp.COMMAND], site.control[DeviceOp.READ] = devices.command, devices.read
        site.cloud[DeviceOp.COMMAND] = devices.cloud_command
        self.retuners.append(cloud_commands_retuner(devices))
        return work

    def _wire(self, feature: Feature, site: Site) -> dict[str, Work]:
        """One feature's part, wired and registered: its operations, its reload, its closing."""
        wired: Wired = feature.module("wiring").wire(site)
        self.parts[feature.name] = wired.part
        site.control |= wired.control
        site.cloud |= wired.cloud
        if wired.retuner is not None:
            self.retuners.append(wired.retuner)
        if wired.close is not None:
            self.closing.append(wired.close)
        return wired.work

    def _assemble_rest(self, site: Site) -> dict[str, Work]:
        """The fleet's config watch, the features that import slowly (the camera, the uplink, the
        page), and the control socket with every feature's operations."""
        work: dict[str, Work] = {}
        site.control[GatewayOp.CONFIG_RELOAD] = self._reload_request
        work["reload-on-hangup"] = self._reload_on_hangup
        # A config from the fleet (edge/config/apply.py): applied by the reloader, watched on /healthz's verdict.
        self.config_apply = ConfigApplier(self.config_path, site.journal, lambda: self.reloader, lambda: self.loaded,
                                          lambda: self.status.health if self.status is not None else None, lambda: self.digest,
                                          linked=lambda: self.uplink.connected.is_set() if self.uplink is not None else None)
        work["config-watch"] = self.config_apply.run
        for feature in _wanted(self.config, Stage.LATER):
            work |= self._wire(feature, site)
        work["control"] = ControlServer(socket_places(self.config), site.control).run
        # What is built by now lives as long as the daemon: keep it out of the cyclic collector,
        # whose full passes over it (~90k objects, tens of ms under load) would stall a door's unlock.
        gc.freeze()
        return work

    @property
    def doors(self) -> Doors | None:
        return self.parts.get("doors")

    @property
    def uplink(self) -> Uplink | None:
        return self.parts.get("uplink")

    @property
    def status(self) -> StatusServer | None:
        return self.parts.get("status")

    @property
    def community(self) -> Community | None:
        return self.parts.get("community")

    async def _reload_request(self, request: dict) -> dict:
        """Control-socket handler (`edge reload`): the daemon's own file, checked and applied."""
        outcome = await self.reloader.reload(via="control", operator=request.get("operator"))
        return outcome.answer() | {"file": str(self.config_path)}

    async def _reload_on_hangup(self) -> None:
        """SIGHUP (`kill -HUP`): a reload of the daemon's own file, one after another."""
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self.reloader.reload(via="signal")

    def restart_for_config(self) -> None:
        """A reload that needs a restart: stop as for systemd once the answer is out, then `edge run`
        executes itself again (same PID: systemd sees the service go on)."""
        self.reexec = True
        self.systemd.reloading()
        asyncio.get_running_loop().call_later(ANSWER_FIRST_S, self.stopping.set)

    async def _close_parts(self, budget: Deadline) -> None:
        """Close the features' state files once their workers have stopped (a save in progress ends first)."""
        for close in self.closing:
            try:
                async with asyncio.timeout(max(0.0, budget.left() - JOURNAL_KEEPS_S)):
                    await pools.call(Pool.FILES, close)
            except TimeoutError:
                log.error("a feature's state files did not close in time", close=getattr(close, "__qualname__", repr(close)))

    def _wake(self, workers: Iterable[str]) -> None:
        """A device came back: its drivers restart now rather than at their backoff."""
        for name in workers:
            if self.supervisor is not None and self.supervisor.wake(name):
                log.info("device back: worker woken", worker=name)

    async def _heartbeat(self, journal: Journal) -> None:
        """Telemetry that says the gateway is alive and how big it is, once a minute."""
        started = time.monotonic()
        while True:
            await journal.append(
                Event(
                    kind=Kind.HEARTBEAT,
                    priority=Priority.TELEMETRY,
                    source="gateway",
                    body={"uptime_s": round(time.monotonic() - started), "rss_mb": _rss_mb(), "head_seq": journal.head_seq},
                )
            )
            await asyncio.sleep(HEARTBEAT_S)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_wanted.set)
        # What a feature loads before it decides (the doors' cards, every row validated) loads on a
        # thread while the journal checks its whole file (quick_check, in SQLite without the GIL).
        preparing = {feature.name: asyncio.ensure_future(pools.call(Pool.FILES, feature.module("wiring").prepare, self.config))
                     for feature in _wanted(self.config, Stage.FIRST) if hasattr(feature.module("wiring"), "prepare")}
        # Only this process writes the journal: a command that would journal without us takes this lock
        # and so refuses while we run (edge/journal/owner.py). One that holds it now is done within seconds.
        owner = await pools.call(Pool.FILES, JournalOwner.take, self.config.journal_path, OWNER_WAIT_S)
        journal = self.journal = await Journal.open(self.config.journal_path, journal_limits(self.config),
                                                    spill_places=self.config.spill_paths)
        started = Event(
            kind=Kind.GATEWAY_STARTED,
            priority=Priority.FAULT,
            source="gateway",
            body={"version": VERSION, "config": self.digest, "building": self.config.building.id, "pid": os.getpid()},
        )
        self.started_seq = await journal.append(started)
        log.info("gateway started", event_id=started.id, building=self.config.building.id, journal=str(journal.path), version=VERSION)
        supervisor = self.supervisor = Supervisor(journal)
        self.prepared = {name: await loading for name, loading in preparing.items()}
        first, site = self._assemble_first(journal)
        for name, work in first.items():
            supervisor.start(name, work)
        # Doors and fire release decide from here on. What is slower to import (aiohttp, paho and
        # cryptography, the camera's modules) loads on a thread meanwhile, never ahead of a tap.
        await pools.call(Pool.FILES, _import_all, _slower_modules(self.config))
        for name, work in self._assemble_rest(site).items():
            supervisor.start(name, work)
        watchdog = self.systemd.watchdog_interval_s()
        pinger = asyncio.create_task(self.systemd.keep_alive(watchdog)) if watchdog else None
        self.systemd.ready(f"building {self.config.building.id}: {len(supervisor.tasks)} workers")
        await self.stopping.wait()

        if not self.reexec:
            self.systemd.stopping()
        log.info("gateway stopping", reexec=self.reexec)
        # One budget for the whole stop: the workers share all of it but what the journal keeps
        # (each of their own deadlines on the way out is a share of what is left; see edge.runtime.deadline).
        budget = Deadline.within(STOP_WITHIN_S)
        stuck = await supervisor.stop(budget.keeping(JOURNAL_KEEPS_S))
        if not stuck:
            await self._close_parts(budget)
        if pinger:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)
        body = {"reason": "config_reload" if self.reexec else "signal", "stop_budget_s": STOP_WITHIN_S} | ({"workers_not_stopped": stuck} if stuck else {})
        stopped = Event(kind=Kind.GATEWAY_STOPPED, priority=Priority.FAULT, source="gateway", body=body)
        # A disk that hangs must not hold up systemd's stop: the event's commit waits half of what is
        # left (a wait cut short still leaves it queued) and the close, which writes the queue, the rest.
        try:
            async with asyncio.timeout(budget.left() / 2):
                await journal.append(stopped)
        except TimeoutError:
            log.error("the stop was not journaled in time", event_id=stopped.id)
        await journal.close(timeout_s=budget.left())
        owner.release()
        log.info("gateway stopped", event_id=stopped.id, head_seq=journal.head_seq, stop_s=round(STOP_WITHIN_S - budget.left(), 3))


def _slower_modules(config: BuildingConfig) -> list[str]:
    """The modules `_assemble_rest` imports for this config: the ones a door must not wait for."""
    return [feature.wiring for feature in _wanted(config, Stage.LATER) if feature.wiring]


def _wanted(config: BuildingConfig, stage: Stage) -> list[Feature]:
    """The features this building has, of one stage of the wiring, in their order."""
    return [feature for feature in features.every() if feature.stage == stage and feature.wiring and feature.wanted(config)]


def _import_all(names: list[str]) -> None:
    for name in names:
        __import__(name)  # the import statement's own path, so `python -X importtime` names these too


def _rss_mb() -> float:
    """Resident memory of this process, from /proc (Linux only, like the gateway)."""
    try:
        with open("/proc/self/statm") as statm:
            return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except OSError:
        return 0.0
