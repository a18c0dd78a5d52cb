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
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from edge.runtime import pools
from edge.carryover import carry_over
from edge.community.wiring import Community, assemble_community
from edge.config import BuildingConfig, device_profiles
from edge.config_apply import ConfigApplier
from edge.config_files import digest_of
from edge.runtime.control import ControlServer, socket_places
from edge.runtime.deadline import Deadline
from edge.doors.wiring import Doors, assemble_doors, open_store
from edge.events import Event, Kind, Priority
from edge.hotplug import assemble_hotplug, with_stable_ports, workers_by_identity
from edge.journal import Journal, JournalLimits
from edge.journal.owner import JournalOwner
from edge.runtime.notify import Systemd
from edge.reload import Reloader, Retuner, cloud_commands_retuner, field_bus_retuner
from edge.runtime.pools import Pool
from edge.runtime.supervisor import Supervisor, Work
from edge.version import VERSION

if TYPE_CHECKING:  # each is imported where the config uses it (docs/performance.md): a door never waits for the page's imports
    from edge.power.points import FieldPoints
    from edge.fieldbus import DeviceCommands, FieldBus
    from edge.status.server import StatusServer
    from edge.uplink.wiring import Uplink
    from edge.vision.wiring import Vision

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
    hash a config from the fleet is named by: edge/config_files.py)."""
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
        self.doors: Doors | None = None
        self.uplink: Uplink | None = None
        self.community: Community | None = None
        self.config_apply: ConfigApplier | None = None
        self.devices: DeviceCommands | None = None
        self.status: StatusServer | None = None
        self.vision: Vision | None = None
        self.retuners: list[Retuner] = []  # each wired part's answer to a reload (edge/reload.py)
        self._reload_wanted = asyncio.Event()  # SIGHUP
        self.started_seq: int | None = None  # this run's first event: what came before it is the last run's
        self._cards: tuple | None = None  # open_store's answer, when `run` loaded the cards beside the journal's open

    def assemble(self, journal: Journal) -> dict[str, Work]:
        """Build the building's parts from the config; returns every long-running job by name.

        Each part is built here and only here, so this reads as the building's wiring diagram:
        first what decides doors and safety, then what is slower to import (`run` starts the first
        before it builds the rest, so a tap never waits for the page's or the uplink's imports).
        """
        work, control, cloud = self._assemble_first(journal)
        return work | self._assemble_rest(journal, control, cloud)

    def _assemble_first(self, journal: Journal) -> tuple[dict[str, Work], dict, dict]:
        """Doors, readers, fire release, the field bus, field points and community safety; with the
        control-socket and cloud operations they serve."""
        work: dict[str, Work] = {"heartbeat": lambda: self._heartbeat(journal)}
        if self.config.udev:  # ports named udev:NAME open links that follow the device (ConfigError if one matches twice)
            users = workers_by_identity(self.config)
            work["hotplug"] = assemble_hotplug(self.config, journal, on_arrival=lambda name: self._wake(users.get(name, ()))).run
            self.config = with_stable_ports(self.config)
        if self.config.devices:
            from edge.fieldbus import DeviceCommands, FieldBus, device_specs  # pymodbus

            profiles = device_profiles(self.config)
            self.fieldbus = FieldBus(device_specs(self.config, profiles), journal, state_dir=self.config.state_path)
            work["fieldbus"] = self.fieldbus.run
            self.retuners.append(field_bus_retuner(self.fieldbus))
            if self.config.circuits or self.config.pressure_points:
                from edge.power.points import FieldPoints

                self.field = FieldPoints(self.config, self.fieldbus, journal, profiles)
                work["field-points"] = self.field.run
                from edge.power import retune as power_retune

                self.retuners.append(power_retune.retuner(self.field))
        if self.config.doors or self.config.readers:
            self.doors = assemble_doors(self.config, journal, self.fieldbus, self._cards)
            work.update(self.doors.work)
            from edge.doors import retune as doors_retune

            self.retuners.append(doors_retune.retuner(self.doors))
        control = {"breaker.close": self.field.reclose} if self.field else {}
        cloud: dict = {}  # operations the cloud reaches otherwise than the socket does
        if self.fieldbus is not None:
            devices = self.devices = DeviceCommands(self.fieldbus, journal, reserved={
                (c.breaker, "close"): f"{c.breaker} closes circuit {c.name}: use `edge breaker close {c.name}`, which checks its alarms"
                for c in self.config.circuits if c.breaker}, cloud_allowed=frozenset(self.config.cloud_commands))
            control["device.command"], control["device.read"] = devices.command, devices.read
            self.retuners.append(cloud_commands_retuner(devices))
            cloud["device.command"] = devices.cloud_command
        if self.doors is not None and self.doors.fire is not None:
            control["fire.reset"] = self.doors.fire.reset_request
        if self.doors is not None:
            control["credentials.reload"] = self.doors.reload_request
            control["door.unlock"] = self.doors.access.remote_unlock
        # Community safety (edge/community/): alarm inputs, notification, the entry-trail search.
        community = self.community = assemble_community(self.config, journal, self.fieldbus, self.field, self.doors, lambda: self.uplink)
        work.update(community.work)
        control.update(community.control)
        if community.notifier is not None:
            from edge.community import retune as community_retune

            self.retuners.append(community_retune.retuner(community))
        # What the last run left open (an alarm before a SIGKILL) is kept, rechecked or ended.
        fire = self.doors.fire if self.doors is not None else None
        work["carryover"] = lambda: carry_over(journal, self.config, self.field, fire, before_seq=self.started_seq)
        return work, control, cloud

    def _assemble_rest(self, journal: Journal, control: dict, cloud: dict) -> dict[str, Work]:
        """The camera, the control socket, the fleet's config watch, the uplink and the status server."""
        work: dict[str, Work] = {}
        guards: dict = {}
        if self.config.cameras:
            from edge.vision.wiring import assemble_vision  # OpenCV is loaded only where a camera is configured

            from edge.vision import retune as vision_retune

            vision = self.vision = assemble_vision(self.config, journal, self.fieldbus, self.doors)
            self.retuners.append(vision_retune.retuner(vision, journal))
            work.update(vision.work)
            control.update(vision.control)
            guards = vision.guards
        control["config.reload"] = self._reload_request
        work["reload-on-hangup"] = self._reload_on_hangup
        work["control"] = ControlServer(socket_places(self.config), control).run
        # A config from the fleet (edge/config_apply.py): applied by the reloader, watched on /healthz's verdict.
        self.config_apply = ConfigApplier(self.config_path, journal, lambda: self.reloader, lambda: self.loaded,
                                          lambda: self.status.health if self.status is not None else None, lambda: self.digest,
                                          linked=lambda: self.uplink.connected.is_set() if self.uplink is not None else None)
        work["config-watch"] = self.config_apply.run
        if self.config.uplink.enabled:
            from edge.uplink.wiring import assemble_uplink  # paho and cryptography

            self.uplink = assemble_uplink(self.config, self.digest, journal, self.doors, control | cloud,
                                          stop_deadline=lambda: self.supervisor.deadline if self.supervisor else Deadline.never(),
                                          config_apply=self.config_apply)
            work["uplink"] = self.uplink.run
        if self.config.http.enabled:
            from edge.status.server import StatusServer  # aiohttp and prometheus-client

            self.status = StatusServer(self.config, journal, self.fieldbus, self.uplink, guards, field=self.field, digest=self.digest)
            work["status-server"] = self.status.run
        # What is built by now lives as long as the daemon: keep it out of the cyclic collector,
        # whose full passes over it (~90k objects, tens of ms under load) would stall a door's unlock.
        gc.freeze()
        return work

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

    async def _close_uplink(self, budget: Deadline) -> None:
        """Close the uplink's state files once its worker has stopped (a save in progress ends first)."""
        assert self.uplink is not None
        try:
            async with asyncio.timeout(max(0.0, budget.left() - JOURNAL_KEEPS_S)):
                await pools.call(Pool.FILES, self.uplink.close)
        except TimeoutError:
            log.error("the uplink's state files did not close in time")

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
        # The cards load (every row validated) while the journal checks its whole file (quick_check,
        # in SQLite without the GIL): a door's first decision waits for both.
        cards = (asyncio.ensure_future(pools.call(Pool.FILES, open_store, self.config))
                 if self.config.doors or self.config.readers else None)
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
        self._cards = await cards if cards is not None else None
        first, control, cloud = self._assemble_first(journal)
        for name, work in first.items():
            supervisor.start(name, work)
        # Doors and fire release decide from here on. What is slower to import (aiohttp, paho and
        # cryptography, the camera's modules) loads on a thread meanwhile, never ahead of a tap.
        await pools.call(Pool.FILES, _import_all, _slower_modules(self.config))
        for name, work in self._assemble_rest(journal, control, cloud).items():
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
        if self.uplink is not None and not stuck:
            await self._close_uplink(budget)
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
    return ((["edge.vision.wiring"] if config.cameras else []) + (["edge.uplink.wiring"] if config.uplink.enabled else [])
            + (["edge.status.server"] if config.http.enabled else []))


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
