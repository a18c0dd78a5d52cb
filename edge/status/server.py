"""The daemon's HTTP server: `/healthz`, `/metrics`, the live status page and its stream.

aiohttp on the daemon's own loop, bound to 127.0.0.1 unless the config opens it (then every
request needs the token; a request without it gets a bare 401). Everything here is
read-only but for one write: with the token configured, an operator's review of an elevator hold
(POST /api/cameras/CAMERA/review, journaled with who); without a token every write is refused, and
hardware actions stay on the audited CLI and signed commands. Whatever may block
(journal reads, stat of the disk) runs in the status reader threads, never on the loop, and
the journal is read through read-only connections. The bound address is written to
STATE_DIR/http.json, so `edge status` finds the server even on a port picked by the kernel.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import runtime
from edge.conditions import ActiveConditions, Severity, ending_kinds, raising_kinds
from edge.config import BuildingConfig
from edge.kinds import table as event_words
from edge.events import Event, Kind, Priority
from edge.vision.kinds import VisionKind
from edge.fieldbus import FieldBus
from edge.journal import EventQuery, Journal, read_events
from edge.runtime import Pool
from edge.supervisor import Backoff
from edge.status.admission import BoundedRunner, StreamPace, connection_cap, malformed
from edge.status.clock import ntp_synchronised
from edge.status.health import Disk, Probe, probe_disk, verdict
from edge.status.port import holder as port_holder
from edge.status.metrics import CameraSample, CircuitSample, PointSample, Sample, registry, resident_bytes
from edge.status.tail import JournalTail, TooManyListeners, sse
from edge.status.view import BuildingView

log = structlog.get_logger("edge.status")

ENDPOINT_FILE = "http.json"
PROBE_TIMEOUT_S = 2.0
LOOP_TICK_S = 0.5
CLOCK_EVERY_S = 60.0
KEEPALIVE_S = 15.0
HISTORY_MAX_HOURS = 24
HISTORY_POINTS = 240
HISTORY_ROWS = 50_000  # a day of one circuit's telemetry is far less; the cap keeps a request cheap
PAGE = resources.files("edge.status") / "page"
ALARM_HISTORY_DAYS = 7
ALARM_HISTORY_EVENTS = 20_000  # raises and ends read per request (the newest): a week of a busy building is far less
ALARM_PAGE_MAX = 200
SNAPSHOT_MAX_BYTES = 4 * 1024 * 1024  # a camera's JPEG; anything bigger is not one the worker wrote
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.jpg")


def endpoint_path(state_dir: Path) -> Path:
    return state_dir / ENDPOINT_FILE


def endpoint_places(config: BuildingConfig) -> list[Path]:
    """Where the address file may be, in order: the runtime dir (tmpfs), then the state dir."""
    return [endpoint_path(place) for place in config.runtime_paths]


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
    """Health, metrics and the status page of one building."""

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
        self.tail = JournalTail(journal, self.view, self.reader, self._live)
        self.loop_lag_s = 0.0
        self.last_good: dict[str, float] = {}  # device -> monotonic time of its last answer (to LOOP_TICK_S)
        self._commits = (journal.commits, time.monotonic())
        self._history = asyncio.Semaphore(2)  # chart queries at a time; more wait their turn
        self._registry = registry(self._sample)
        self._sample_now: Sample | None = None
        self.url: str | None = None
        self._runs = 0
        self._answers: dict[str, int] = {}  # device -> its answer count when last looked at

    def _note_answers(self, now: float) -> None:
        """A device whose answer count grew since the last look answered in between: its last good
        reading is now (to the watcher's tick), at no cost on the poller's path."""
        if self.fieldbus is None:
            return
        for name, counters in self.fieldbus.counters.items():
            if counters.answers != self._answers.get(name, 0):
                self._answers[name] = counters.answers
                self.last_good[name] = now

    def retune(self, config: BuildingConfig, digest: str) -> None:
        """A reload applied in place: names, labels and limits the page shows come from `config` now,
        and the page and /metrics name the new file's digest."""
        self.config, self.digest = config, digest
        self.view.retune(config, digest)

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
            endpoint = await runtime.call(Pool.FILES, _announce, endpoint_places(self.config), {"url": self.url, "pid": os.getpid()})
            log.info("status page", url=self.url, beyond_localhost=self.settings.beyond_localhost)
            async with asyncio.TaskGroup() as group:
                group.create_task(self.tail.run(), name="status-tail")
                group.create_task(self._watch_loop(), name="status-loop-watch")
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
                    holder = await runtime.call(Pool.FILES, port_holder, self.settings.port)
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

    async def _watch_loop(self) -> None:
        """How late the loop runs a timer (what a door's unlock would suffer right now); and the NTP state."""
        loop = asyncio.get_running_loop()
        clock_checked = -CLOCK_EVERY_S
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_TICK_S)
            late = loop.time() - before - LOOP_TICK_S
            self.loop_lag_s = max(late, self.loop_lag_s * 0.8)  # a spike stays visible for a few seconds
            self._note_answers(time.monotonic())
            if before - clock_checked >= CLOCK_EVERY_S:  # NTP state for the page's clock badge
                clock_checked = before
                self.view.clock["ntp_synchronised"] = await loop.run_in_executor(self.reader, ntp_synchronised)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/page.css", self._asset)
        app.router.add_get("/page.js", self._asset)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/history", self._history_handler)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_get("/api/alarms", self._alarms)
        app.router.add_get("/api/words", self._words)
        app.router.add_get("/snapshots/{camera}/{name}", self._snapshot)
        app.router.add_post("/api/cameras/{camera}/review", self._review)
        app.router.add_get("/api/cameras/{camera}/frames", self._frames)
        app.router.add_get("/frames/{camera}/{kind}/{name}", self._frame)
        app.router.add_post("/api/cameras/{camera}/label", self._label)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (problem := malformed(request.headers)) is not None:  # before anything reads a header
            return web.Response(status=400, text=problem)
        if self.token is not None and not authorised(request.headers.get("Authorization", ""), self.token):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="edge"'})
        if request.method == "POST" and request.path.startswith("/api/cameras/") and request.path.endswith(("/review", "/label")):
            if self.token is None:  # a page without a token reads; it never writes
                return web.Response(status=403, text="the page is read-only: configure http.token to review holds and label frames from it")
        elif request.method != "GET":
            return web.Response(status=405)
        return await handler(request)

    # --- probes ------------------------------------------------------------------------

    async def _disk(self) -> Disk | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                return await loop.run_in_executor(self.reader, probe_disk, self.journal.path)
        except (TimeoutError, OSError) as failure:
            log.warning("journal disk probe failed", error=str(failure) or "timed out")
            return None

    def _commit_silence(self) -> float:
        commits, since = self._commits
        now = time.monotonic()
        if self.journal.commits != commits:
            self._commits = (self.journal.commits, now)
            return 0.0
        return now - since

    def devices_online(self) -> dict[str, bool]:
        if self.fieldbus is not None:
            return {spec.name: self.fieldbus.is_online(spec.name) for spec in self.fieldbus.specs}
        return {name: state["online"] for name, state in self.view.devices.items()}

    def devices_unidentified(self) -> dict[str, str]:
        """Devices answering whose identify read picked no map: watched by their base map only."""
        if self.fieldbus is not None:
            found = {spec.name: self.fieldbus.unidentified(spec.name) for spec in self.fieldbus.specs}
        else:
            found = {name: state.get("unidentified") for name, state in self.view.devices.items()}
        return {name: why for name, why in found.items() if why}

    def readers_online(self) -> dict[str, bool]:
        return {name: state["online"] for name, state in self.view.readers.items()}

    def cameras_streaming(self) -> dict[str, bool]:
        """Cameras whose guard runs: is the stream up, as the journal tells it (as `edge status`)."""
        return {name: state["stream"] != "fault" for name, state in self.view.cameras.items() if name in self.cameras}

    def _sample(self) -> Sample:
        assert self._sample_now is not None
        return self._sample_now

    def _gather(self, disk: Disk | None) -> Sample:
        now = time.monotonic()
        devices = {}
        if self.fieldbus is not None:
            for spec in self.fieldbus.specs:
                seen = self.last_good.get(spec.name)
                devices[spec.name] = (self.fieldbus.counters[spec.name], self.fieldbus.is_online(spec.name), None if seen is None else now - seen)
        uplink = self.uplink
        return Sample(
            devices=devices, readers=self.readers_online(), decisions=dict(self.view.decisions),
            alarms_active=[(c.kind, c.source, str(c.severity)) for c in self.view.active.now(time.time())], journal_head_seq=self.journal.head_seq, disk=disk,
            uplink_enabled=uplink is not None, uplink_connected=uplink.connected.is_set() if uplink is not None else None,
            uplink_synced_seq=uplink.pusher.synced_seq if uplink is not None else None,
            loop_lag_s=self.loop_lag_s, page_streams=len(self.tail.listeners), rss_bytes=resident_bytes(),
            cameras=self._cameras(now), points=self._points(), circuits=self._circuits(), journal_fault=self.journal.fault,
            config_digest=self.view.config_digest,
        )

    def _points(self) -> list[PointSample]:
        """Every watched point, from the rows `edge points` shows; a status point's on/off as 1/0."""
        if self.field is None:
            return []
        switches = {str(s.key): float(s.value) for s in self.field.status.values() if isinstance(s.value, bool)}
        sampled = []
        for row in self.field.statuses():
            device, _, point = row.point.partition(".")
            value = switches.get(row.point, row.value)
            sampled.append(PointSample(device, point, row.name, row.quantity, row.unit or "", value, row.state))
        return sampled

    def _circuits(self) -> dict[str, CircuitSample]:
        if self.field is None:
            return {}
        return {name: CircuitSample(breaker, cut) for name, (breaker, cut) in self.field.circuits_cut().items()}

    def _cameras(self, now: float) -> dict[str, CameraSample]:
        """Each configured camera: its stream as the journal tells it (`edge status`), its guard's counters."""
        sampled = {}
        for name, state in self.view.cameras.items():
            guard = self.cameras.get(name)
            up = state["stream"] == "ok"
            if guard is None:
                sampled[name] = CameraSample(state["elevator"] or "", up)
                continue
            seen = guard.last_frame_mono
            sampled[name] = CameraSample(
                elevator=state["elevator"] or "", stream_up=up, mode="hold" if guard.verdict.may_hold else "observe",
                held=guard.holding, last_frame_age_s=None if seen is None else max(0.0, now - seen),
                frames_read=guard.frames_seen, frames_analysed=guard.frames_analysed, dropped=guard.dropped, holds=guard.holds,
                would_hold=guard.would_hold,
                inference_buckets=guard.inference.buckets() if guard.detector_factory else [], inference_sum_s=guard.inference.sum_s,
            )
        return sampled

    # --- handlers ----------------------------------------------------------------------

    def _probe(self, disk: Disk | None) -> Probe:
        """What /healthz judges, for the endpoint and for the page's status alike."""
        return Probe(self.loop_lag_s, self._commit_silence(), disk, self.devices_online(), self.readers_online(),
                     self.cameras_streaming(), runtime.starving(), journal_fault=self.journal.fault,
                     unidentified=self.devices_unidentified())

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """/healthz's verdict without the HTTP round trip (the watch after a config from the fleet)."""
        return verdict(self._probe(await self._disk()))

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, body = await self.health()
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        self._sample_now = self._gather(await self._disk())
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _live(self, snapshot: dict[str, Any]) -> None:
        """What the page's state adds to the journal's view: devices online now, the uplink's backlog (all in memory)."""
        snapshot["writable"] = self.token is not None  # the page offers hold reviews and frame labels only then
        online, unidentified = self.devices_online(), self.devices_unidentified()
        for device in snapshot["devices"]:
            device["online"] = online.get(device["name"], device["online"])
            device["unidentified"] = unidentified.get(device["name"])
        if self.uplink is not None:
            synced = self.uplink.pusher.synced_seq
            snapshot["uplink"] |= {"connected": self.uplink.connected.is_set(), "backlog": max(0, self.journal.head_seq - synced)}

    async def status(self) -> dict[str, Any]:
        """The view's snapshot with what only the live daemon knows: counters, backlog, clock, disk."""
        disk = await self._disk()
        snapshot = self.view.snapshot(time.time())
        for point in snapshot["points"]:
            point.pop("history")
        sample = self._gather(disk)
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
        snapshot["health"] = verdict(self._probe(disk))[1]
        snapshot["source"] = "daemon"
        snapshot["writable"] = self.token is not None  # the page offers hold reviews only then
        return snapshot

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.status(), dumps=_dumps)

    async def _events(self, request: web.Request) -> web.Response:
        try:
            priority = Priority[request.query.get("priority", "fault").upper()]
            limit = max(1, min(500, int(request.query.get("limit", "100"))))
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="priority: telemetry|fault|access|alarm; limit: 1-500") from None
        query = EventQuery(min_priority=priority, limit=limit, newest_first=True)
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(self.reader, read_events, self.journal.path, query)
        return web.json_response([e.as_dict() for e in events], dumps=_dumps)

    async def _history_handler(self, request: web.Request) -> web.Response:
        """Charts of the last hours: each point's telemetry from the journal, thinned to a chart's width."""
        try:
            hours = max(0.1, min(HISTORY_MAX_HOURS, float(request.query.get("hours", "6"))))
        except ValueError:
            raise web.HTTPBadRequest(text="hours: a number up to 24") from None
        query = EventQuery(since_ns=time.time_ns() - int(hours * 3600e9), kinds=("telemetry.point",), limit=HISTORY_ROWS, newest_first=True)
        loop = asyncio.get_running_loop()
        async with self._history:
            series = await loop.run_in_executor(self.reader, _history, self.journal.path, query)
        return web.json_response(series, dumps=_dumps)

    async def _alarms(self, request: web.Request) -> web.Response:
        """The alarm history: every alarm and warning raised in the last 7 days, newest first, each with
        how it ended; paged by `before` (a seq) and `limit`, so a long week never leaves in one answer."""
        try:
            limit = max(1, min(ALARM_PAGE_MAX, int(request.query.get("limit", "50"))))
            before = int(request.query["before"]) if "before" in request.query else None
        except ValueError:
            raise web.HTTPBadRequest(text=f"limit: 1-{ALARM_PAGE_MAX}; before: a seq") from None
        loop = asyncio.get_running_loop()
        async with self._history:
            history = await loop.run_in_executor(self.reader, alarm_history, self.journal.path, time.time(), before, limit)
        return web.json_response(history, dumps=_dumps)

    async def _words(self, request: web.Request) -> web.Response:
        """Event kinds in words (every part's, composed by edge/kinds.py), fetched once by the page."""
        return web.json_response(event_words(), headers={"Cache-Control": "max-age=3600"})

    async def _review(self, request: web.Request) -> web.Response:
        """An operator's review of a hold from the page (token checked by the middleware): {hold, outcome, seen, operator}."""
        from edge.vision.wiring import review_request

        camera = request.match_info["camera"]
        if camera not in self.cameras:
            raise web.HTTPNotFound()
        try:
            body = await request.json() if request.content_length and request.content_length <= 4096 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="a review is a small JSON object: {hold, outcome, seen, operator}")
        fields = {k: body.get(k) for k in ("hold", "outcome", "seen", "operator")}
        if not all(v is None or isinstance(v, int | str) for v in fields.values()) or len(str(fields.get("operator") or "")) > 64:
            raise web.HTTPBadRequest(text="hold is a number; outcome, seen and operator are short texts")
        answer = await review_request({camera: self.cameras[camera]}, {**fields, "elevator": camera, "via": "page"})
        return web.json_response(answer, status=200 if answer.get("ok") else 409, dumps=_dumps)

    def _camera_named(self, request: web.Request) -> str:
        camera = request.match_info["camera"]
        if camera not in {c.name for c in self.config.cameras}:
            raise web.HTTPNotFound()
        return camera

    async def _frames(self, request: web.Request) -> web.Response:
        """The camera's collected frames and would-hold snapshots to label, newest first, with their labels
        and the detector's box where the guard journaled one."""
        from edge.vision import labels

        camera = self._camera_named(request)
        query = EventQuery(kinds=(VisionKind.ELEVATOR_OBSERVED,), sources=(camera,), limit=labels.MAX_LISTED, newest_first=True)
        loop = asyncio.get_running_loop()
        seen = await loop.run_in_executor(self.reader, read_events, self.journal.path, query)
        observed = {Path(str(e.body["snapshot"])).name: {"class": e.body.get("class"), "box": e.body.get("box")}
                    for e in seen if e.body.get("snapshot")}
        found = await loop.run_in_executor(self.reader, labels.listing, self.config.state_path, camera, observed)
        return web.json_response({"camera": camera, "labels": list(labels.LABELS), "writable": self.token is not None,
                                  "frames": found}, dumps=_dumps)

    async def _frame(self, request: web.Request) -> web.Response:
        """A collected frame or a snapshot, read-only from the camera's own folders."""
        from edge.vision import labels

        camera = self._camera_named(request)
        path = labels.frame_path(self.config.state_path, camera, request.match_info["kind"], request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        data = await asyncio.get_running_loop().run_in_executor(self.reader, _read_snapshot, path.parent, path.name)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    async def _label(self, request: web.Request) -> web.Response:
        """One frame's label from the page (token checked by the middleware): {frame, label, box?, operator};
        kept in the camera's label file and journaled with who and when."""
        from edge.vision import labels

        camera = self._camera_named(request)
        try:
            body = await request.json() if request.content_length and request.content_length <= 4096 else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("frame"), str) or not isinstance(body.get("label"), str):
            raise web.HTTPBadRequest(text="a label is a small JSON object: {frame, label, box (optional), operator}")
        operator = body.get("operator")
        if not isinstance(operator, str) or not operator.strip() or len(operator) > 64:
            raise web.HTTPBadRequest(text="say who labels (operator, at most 64 characters)")
        at = time.time()
        try:
            kept = await runtime.call(Pool.FILES, labels.write, self.config.state_path, camera, body["frame"][:200], body["label"],
                                      body.get("box"), operator.strip(), at)
        except labels.LabelError as refused:
            return web.json_response({"ok": False, "error": str(refused)}, status=409)
        seq = await self.journal.append(Event(VisionKind.FRAME_LABELLED, Priority.ACCESS, camera, {
            "camera": camera, "frame": body["frame"][:200], "label": kept["label"], "box": kept["box"], "operator": kept["by"], "via": "page"}))
        return web.json_response({"ok": True, "seq": seq, **kept}, dumps=_dumps)

    async def _snapshot(self, request: web.Request) -> web.Response:
        """A configured camera's snapshot JPEG, read-only from STATE_DIR/vision/snapshots/CAMERA/ and nowhere else."""
        camera, name = request.match_info["camera"], request.match_info["name"]
        if camera not in {c.name for c in self.config.cameras} or not SNAPSHOT_NAME.fullmatch(name):
            raise web.HTTPNotFound()
        folder = self.config.state_path / "vision" / "snapshots" / camera
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self.reader, _read_snapshot, folder, name)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the whole state first, then journal events, readings and state as they come."""
        try:
            listener = self.tail.listen()
        except TooManyListeners as full:
            raise web.HTTPServiceUnavailable(text=str(full)) from None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        pace = StreamPace(request)  # a client that does not read is dropped: it would hold a slot forever
        try:
            await response.prepare(request)
            if not await pace.write(response, self.tail.state_message()):
                return response
            while True:
                if listener.lagged:
                    listener.lagged = False
                    if not await pace.write(response, sse("lagged", {}) + self.tail.state_message()):
                        break
                try:
                    message = await asyncio.wait_for(listener.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                if message is None or not await pace.write(response, message):
                    break
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self.tail.leave(listener)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=(PAGE / "index.html").read_text(encoding="utf-8"), content_type="text/html", headers=_PAGE_HEADERS)

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.path.lstrip("/")
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(text=(PAGE / name).read_text(encoding="utf-8"), content_type=kind, headers=_PAGE_HEADERS)


_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


def _reader_threads() -> ThreadPoolExecutor:
    """Journal reads and disk probes for the server: two threads, so a slow chart query does not hold up the stream."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="status-reader")


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


def _announce(places: list[Path], document: dict[str, Any]) -> Path | None:
    """Write the address file to the first place that takes it (blocking); None, logged, when none does."""
    for path in places:
        try:
            _write_endpoint(path, document)
            return path
        except OSError as refused:
            log.error("status address not written here", path=str(path), error=f"{type(refused).__name__}: {refused}")
    return None


def _write_endpoint(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)


def _read_snapshot(folder: Path, name: str) -> bytes | None:
    """The file's bytes if it is a regular file inside `folder` (after links) and small enough (blocking)."""
    try:
        base = folder.resolve(strict=True)
        path = (base / name).resolve(strict=True)
        if path.parent != base or not path.is_file():
            return None
        with path.open("rb") as file:
            data = file.read(SNAPSHOT_MAX_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= SNAPSHOT_MAX_BYTES else None


def alarm_history(path: Path, now: float, before: int | None, limit: int) -> dict[str, Any]:
    """Alarms and warnings raised in the last ALARM_HISTORY_DAYS, newest first, each paired with its
    end by the same fold every view uses (`edge.conditions`); `next` pages on (blocking)."""
    since = now - ALARM_HISTORY_DAYS * 86400
    conditions = ActiveConditions()
    kinds = tuple(sorted(raising_kinds(conditions.rules) | ending_kinds(conditions.rules)))
    events = read_events(path, EventQuery(since_ns=int(since * 1e9), kinds=kinds, limit=ALARM_HISTORY_EVENTS, newest_first=True))
    rows: dict[int, dict[str, Any]] = {}
    for event in events:  # the newest ALARM_HISTORY_EVENTS, in seq order
        at = event.wall_ns / 1e9
        rule = conditions.rule_of(event.kind)
        earlier = conditions.active.get((rule.raised_by, rule.key(event))) if rule is not None else None
        ended = conditions.apply(event)
        if ended is not None and ended.seq in rows:
            rows[ended.seq] |= {"ended_at": at, "ended_by": event.kind}
        if earlier is not None and earlier.seq in rows and rows[earlier.seq]["ended_at"] is None:
            lapsed = earlier.until is not None and earlier.until < at  # a one-shot that had ended by itself
            rows[earlier.seq] |= {"ended_at": earlier.until, "ended_by": "time"} if lapsed else {"ended_at": at, "ended_by": "raised again"}
        if rule is not None and (raised := conditions.active.get((rule.raised_by, rule.key(event)))) is not None \
                and raised.seq == event.seq and raised.severity is not Severity.FAULT:  # faults are the gateway's own
            rows[event.seq] = raised.as_json() | {"ended_at": None, "ended_by": None}
    for row in rows.values():  # a one-shot alarm nothing ended ends by itself
        if row["ended_at"] is None and row["until"] is not None and row["until"] <= now:
            row |= {"ended_at": row["until"], "ended_by": "time"}
    newest = sorted((r for r in rows.values() if before is None or r["seq"] < before), key=lambda r: -r["seq"])
    page = newest[:limit]
    return {"since": since, "days": ALARM_HISTORY_DAYS, "rows": page, "total": len(rows),
            "next": page[-1]["seq"] if len(newest) > limit else None, "complete": len(events) < ALARM_HISTORY_EVENTS}


def _history(path: Path, query: EventQuery) -> dict[str, Any]:
    """{owner: {point: [[t, v], ...]}}, each series thinned to at most HISTORY_POINTS (blocking)."""
    series: dict[str, dict[str, list[list[float]]]] = {}
    for event in read_events(path, query):
        value = event.body.get("value")
        if isinstance(value, int | float):
            series.setdefault(event.source, {}).setdefault(str(event.body.get("point")), []).append([round(event.wall_ns / 1e9, 1), value])
    for points in series.values():
        for point, rows in points.items():
            step = max(1, len(rows) // HISTORY_POINTS)
            points[point] = rows[::step]
    return series
