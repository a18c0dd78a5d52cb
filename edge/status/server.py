"""The daemon's HTTP server: `/healthz`, `/metrics`, the live status page and its stream.

aiohttp on the daemon's own loop, bound to 127.0.0.1 unless the config opens it (then every
request needs the token; a request without it gets a bare 401). Everything here is
read-only but for one write: with the token configured, an operator's review of an elevator hold
(POST /api/cameras/CAMERA/review, journaled with who); without a token every write is refused, and
hardware actions stay on the audited CLI and signed commands. Whatever may block
(journal reads, stat of the disk) runs in the status reader threads, never on the loop, and
the journal is read through read-only connections. The bound address is written to
STATE_DIR/http.json (`address.py`), so `edge status` finds the server even on a port picked by the kernel.

`StatusServer` composes the endpoints, each job in a module of its own: the live numbers behind
`/healthz` and `/metrics` (`sampling.py`), the page and its stream (`stream.py`), the journal's look
back (`history.py`) and the cameras' snapshots, frames, reviews and labels (`cameras.py`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from edge.runtime import pools
from edge.config.building import BuildingConfig
from edge.events import Event, Kind, Priority
from edge.fieldbus.devices import FieldBus
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.status import cameras as camera_endpoints
from edge.status.address import announce, endpoint_places
from edge.status.admission import BoundedRunner, connection_cap, malformed
from edge.status.cameras import CameraEndpoints
from edge.status.clock import ntp_synchronised
from edge.status.health import verdict
from edge.status.history import History
from edge.status.port import holder as port_holder
from edge.status.sampling import Sampler
from edge.status.stream import PageEndpoints
from edge.status.tail import JournalTail, dumps
from edge.status.view import BuildingView
from edge.runtime.supervisor import Backoff

log = structlog.get_logger("edge.status")


def authorised(header: str, token: bytes) -> bool:
    """Bearer TOKEN, or Basic with TOKEN as the password (so a browser can ask for it); constant time."""
    scheme, _, value = header.partition(" ")
    offered = b""
    if scheme.lower() == "bearer":
        offered = value.strip().encode()
    elif scheme.lower() == "basic":
        try:
            offered = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
        except ValueError:
            offered = b""
    return hmac.compare_digest(offered, token)


class StatusServer:
    """Health, metrics and the status page of one building: the endpoints of each job, composed."""

    def __init__(self, config: BuildingConfig, journal: Journal, fieldbus: FieldBus | None = None, uplink: Any = None,
                 cameras: dict[str, Any] | None = None, field: Any = None, digest: str = "") -> None:
        self.config = config
        self.field = field  # FieldPoints: each point's value and state, each circuit's breaker (in memory, read on the loop)
        self.cameras = cameras if cameras is not None else {}  # camera name -> its ElevatorGuard (the age of its last frame)
        self.settings = config.http
        self.journal = journal
        self.fieldbus = fieldbus
        self.uplink = uplink
        self.token = self.settings.token.read() if self.settings.token is not None else None
        self.reader = _reader_threads()
        self.digest = digest
        self.view = BuildingView(config, config_digest=digest)
        self.sampler = Sampler(self)
        self.tail = JournalTail(journal, self.view, self.reader, self._live)
        self._endpoints = [PageEndpoints(self), self.sampler, History(self), CameraEndpoints(self)]
        self.url: str | None = None
        self._runs = 0

    def retune(self, config: BuildingConfig, digest: str) -> None:
        """A reload applied in place: names, labels and limits the page shows come from `config` now,
        and the page and /metrics name the new file's digest."""
        self.config, self.digest = config, digest
        self.view.retune(config, digest)

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """/healthz's verdict without the HTTP round trip (the watch after a config from the fleet)."""
        return await self.sampler.health()

    # --- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled (the supervisor's worker; after a failure it calls this again)."""
        if self._runs:  # a previous run ended (and shut its threads down): fresh threads, fresh view
            self.reader = _reader_threads()
            self.view = BuildingView(self.config, config_digest=self.digest)
            self.tail = JournalTail(self.journal, self.view, self.reader, self._live)
        self._runs += 1
        await self.tail.catch_up()
        runner = BoundedRunner(self.app(), connection_cap(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        endpoint: Path | None = None
        try:
            await self._listen(runner)
            host, port = runner.addresses[0][:2]
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            self.url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
            # A disk that refuses the address file costs `edge status` its way here, never the server.
            endpoint = await pools.call(Pool.FILES, announce, endpoint_places(self.config), {"url": self.url, "pid": os.getpid()})
            log.info("status page", url=self.url, beyond_localhost=self.settings.beyond_localhost)
            async with asyncio.TaskGroup() as group:
                group.create_task(self.tail.run(), name="status-tail")
                group.create_task(self.sampler.watch_loop(), name="status-loop-watch")
        finally:
            self.tail.close()
            if endpoint is not None:
                with contextlib.suppress(OSError):
                    endpoint.unlink(missing_ok=True)
            await runner.cleanup()
            self.reader.shutdown(wait=False, cancel_futures=True)

    async def _listen(self, runner: web.BaseRunner) -> None:
        """Listen on the configured port. One taken by another process is one `fault.status_port_in_use`
        (the port, and its holder when /proc shows it), then retried with backoff until it is free; the
        worker does not fail (a task_failed every backoff said nothing a technician could act on)."""
        delays = Backoff(initial_s=1.0, max_s=60.0).delays()
        reported = False
        while True:
            site = web.TCPSite(runner, self.settings.bind, self.settings.port, reuse_address=True)
            try:
                await site.start()
            except OSError as refused:
                await site.stop()
                if refused.errno != errno.EADDRINUSE:
                    raise
                delay = next(delays)
                if not reported:
                    reported = True
                    holder = await pools.call(Pool.FILES, port_holder, self.settings.port)
                    body = {"bind": self.settings.bind, "port": self.settings.port, "holder": holder,
                            "detail": str(refused), "retry_in_s": round(delay, 3)}
                    log.error("status port in use", **body)
                    await self.journal.append(Event(kind=Kind.STATUS_PORT_IN_USE, priority=Priority.FAULT,
                                                    source="status-server", body=body))
                await asyncio.sleep(delay)
                continue
            if reported:
                log.info("status port free again: serving", port=self.settings.port)
            return

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        for part in self._endpoints:
            app.router.add_routes(part.routes())
        app.router.add_get("/api/status", self._status)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (problem := malformed(request.headers)) is not None:  # before anything reads a header
            return web.Response(status=400, text=problem)
        if self.token is not None and not authorised(request.headers.get("Authorization", ""), self.token):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="edge"'})
        if camera_endpoints.is_write(request.method, request.path):
            if self.token is None:  # a page without a token reads; it never writes
                return web.Response(status=403, text="the page is read-only: configure http.token to review holds and label frames from it")
        elif request.method != "GET":
            return web.Response(status=405)
        return await handler(request)

    # --- the page's state ----------------------------------------------------------------

    def _live(self, snapshot: dict[str, Any]) -> None:
        """What the page's state adds to the journal's view: devices online now, the uplink's backlog (all in memory)."""
        snapshot["writable"] = self.token is not None  # the page offers hold reviews and frame labels only then
        online, unidentified = self.sampler.devices_online(), self.sampler.devices_unidentified()
        for device in snapshot["devices"]:
            device["online"] = online.get(device["name"], device["online"])
            device["unidentified"] = unidentified.get(device["name"])
        if self.uplink is not None:
            synced = self.uplink.pusher.synced_seq
            snapshot["uplink"] |= {"connected": self.uplink.connected.is_set(), "backlog": max(0, self.journal.head_seq - synced)}

    async def status(self) -> dict[str, Any]:
        """The view's snapshot with what only the live daemon knows: counters, backlog, clock, disk."""
        disk = await self.sampler.disk()
        snapshot = self.view.snapshot(time.time())
        for point in snapshot["points"]:
            point.pop("history")
        sample = self.sampler.gather(disk)
        for device in snapshot["devices"]:
            counters, online, age = sample.devices.get(device["name"], (None, device["online"], None))
            device["online"] = online
            device["last_good_age_s"] = None if age is None else round(age, 1)
            if counters is not None:
                device["polls"], device["answers"] = counters.requests, counters.answers
        for camera in snapshot["cameras"]:
            age = sample.cameras[camera["name"]].last_frame_age_s if camera["name"] in sample.cameras else None
            if age is not None:
                camera["last_frame_age_s"] = round(age, 1)
        snapshot["uplink"] |= {"connected": sample.uplink_connected, "synced_seq": sample.uplink_synced_seq,
                               "backlog": None if sample.uplink_synced_seq is None else max(0, self.journal.head_seq - sample.uplink_synced_seq)}
        snapshot["clock"]["ntp_synchronised"] = await asyncio.get_running_loop().run_in_executor(self.reader, ntp_synchronised)
        snapshot["journal"] = {"path": str(self.journal.path), "head_seq": self.journal.head_seq,
                               "bytes": None if disk is None else disk.journal_bytes, "free_bytes": None if disk is None else disk.free_bytes}
        snapshot["health"] = verdict(self.sampler.probe(disk))[1]
        snapshot["source"] = "daemon"
        snapshot["writable"] = self.token is not None  # the page offers hold reviews only then
        return snapshot

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.status(), dumps=dumps)


def _reader_threads() -> ThreadPoolExecutor:
    """Journal reads and disk probes for the server: two threads, so a slow chart query does not hold up the stream."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="status-reader")
