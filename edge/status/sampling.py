"""What only the live daemon knows, sampled for `/healthz`, `/metrics` and the page's status: how late
the loop runs, when each device last answered, whether the journal commits, the journal's disk, and
the counters of the field bus, the field points, the cameras' guards and the uplink.

Everything is read in memory on the loop but the disk probe and the NTP state, which run on the
server's reader threads with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge.runtime import pools
from edge.status.clock import ntp_synchronised
from edge.status.health import Disk, Probe, probe_disk, verdict
from edge.status.metrics import CameraSample, CircuitSample, PointSample, Sample, registry, resident_bytes

if TYPE_CHECKING:
    from edge.status.server import StatusServer

log = structlog.get_logger("edge.status")

PROBE_TIMEOUT_S = 2.0
LOOP_TICK_S = 0.5
CLOCK_EVERY_S = 60.0


class Sampler:
    """The live numbers of one server's building, and the `/healthz` and `/metrics` endpoints that show them."""

    def __init__(self, server: StatusServer) -> None:
        self.server = server  # its view, tail and reader threads are new at each run: read through it
        self.loop_lag_s = 0.0
        self.last_good: dict[str, float] = {}  # device -> monotonic time of its last answer (to LOOP_TICK_S)
        self._commits = (server.journal.commits, time.monotonic())
        self._answers: dict[str, int] = {}  # device -> its answer count when last looked at
        self._registry = registry(self._sample)
        self._sample_now: Sample | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self._healthz), web.get("/metrics", self._metrics)]

    # --- watching the loop ----------------------------------------------------------

    def _note_answers(self, now: float) -> None:
        """A device whose answer count grew since the last look answered in between: its last good
        reading is now (to the watcher's tick), at no cost on the poller's path."""
        fieldbus = self.server.fieldbus
        if fieldbus is None:
            return
        for name, counters in fieldbus.counters.items():
            if counters.answers != self._answers.get(name, 0):
                self._answers[name] = counters.answers
                self.last_good[name] = now

    async def watch_loop(self) -> None:
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
                self.server.view.ntp_synchronised = await loop.run_in_executor(self.server.reader, ntp_synchronised)

    # --- probes ------------------------------------------------------------------------

    async def disk(self) -> Disk | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                return await loop.run_in_executor(self.server.reader, probe_disk, self.server.journal.path)
        except (TimeoutError, OSError) as failure:
            log.warning("journal disk probe failed", error=str(failure) or "timed out")
            return None

    def _commit_silence(self) -> float:
        commits, since = self._commits
        now = time.monotonic()
        journal = self.server.journal
        if journal.commits != commits:
            self._commits = (journal.commits, now)
            return 0.0
        return now - since

    def devices_online(self) -> dict[str, bool]:
        fieldbus = self.server.fieldbus
        if fieldbus is not None:
            return {spec.name: fieldbus.is_online(spec.name) for spec in fieldbus.specs}
        return {name: state["online"] for name, state in self.server.view.devices.items()}

    def devices_unidentified(self) -> dict[str, str]:
        """Devices answering whose identify read picked no map: watched by their base map only."""
        fieldbus = self.server.fieldbus
        if fieldbus is not None:
            found = {spec.name: fieldbus.unidentified(spec.name) for spec in fieldbus.specs}
        else:
            found = {name: state.get("unidentified") for name, state in self.server.view.devices.items()}
        return {name: why for name, why in found.items() if why}

    def readers_online(self) -> dict[str, bool]:
        return {name: state["online"] for name, state in self.server.view.tile("doors").readers.items()}

    def cameras_streaming(self) -> dict[str, bool]:
        """Cameras whose guard runs: is the stream up, as the journal tells it (as `edge status`)."""
        return {name: state["stream"] != "fault" for name, state in self.server.view.tile("vision").cameras.items() if name in self.server.cameras}

    def probe(self, disk: Disk | None) -> Probe:
        """What /healthz judges, for the endpoint and for the page's status alike."""
        return Probe(self.loop_lag_s, self._commit_silence(), disk, self.devices_online(), self.readers_online(),
                     self.cameras_streaming(), pools.starving(), journal_fault=self.server.journal.fault,
                     unidentified=self.devices_unidentified())

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """/healthz's verdict without the HTTP round trip (the watch after a config from the fleet)."""
        return verdict(self.probe(await self.disk()))

    # --- the sample /metrics shows ----------------------------------------------------

    def _sample(self) -> Sample:
        assert self._sample_now is not None
        return self._sample_now

    def gather(self, disk: Disk | None) -> Sample:
        server = self.server
        now = time.monotonic()
        devices = {}
        if server.fieldbus is not None:
            for spec in server.fieldbus.specs:
                seen = self.last_good.get(spec.name)
                devices[spec.name] = (server.fieldbus.counters[spec.name], server.fieldbus.is_online(spec.name), None if seen is None else now - seen)
        uplink, journal, view = server.uplink, server.journal, server.view
        return Sample(
            devices=devices, readers=self.readers_online(), decisions=dict(view.tile("doors").decisions),
            alarms_active=[(c.kind, c.source, str(c.severity)) for c in view.active.now(time.time())], journal_head_seq=journal.head_seq, disk=disk,
            uplink_enabled=uplink is not None, uplink_connected=uplink.connected.is_set() if uplink is not None else None,
            uplink_synced_seq=uplink.pusher.synced_seq if uplink is not None else None,
            loop_lag_s=self.loop_lag_s, page_streams=len(server.tail.listeners), rss_bytes=resident_bytes(),
            cameras=self._cameras(now), points=self._points(), circuits=self._circuits(), journal_fault=journal.fault,
            config_digest=view.config_digest,
        )

    def _points(self) -> list[PointSample]:
        """Every watched point, from the rows `edge points` shows; a status point's on/off as 1/0."""
        field = self.server.field
        if field is None:
            return []
        switches = {str(s.key): float(s.value) for s in field.status.values() if isinstance(s.value, bool)}
        sampled = []
        for row in field.statuses():
            device, _, point = row.point.partition(".")
            value = switches.get(row.point, row.value)
            sampled.append(PointSample(device, point, row.name, row.quantity, row.unit or "", value, row.state))
        return sampled

    def _circuits(self) -> dict[str, CircuitSample]:
        field = self.server.field
        if field is None:
            return {}
        return {name: CircuitSample(breaker, cut) for name, (breaker, cut) in field.circuits_cut().items()}

    def _cameras(self, now: float) -> dict[str, CameraSample]:
        """Each configured camera: its stream as the journal tells it (`edge status`), its guard's counters."""
        sampled = {}
        for name, state in self.server.view.tile("vision").cameras.items():
            guard = self.server.cameras.get(name)
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

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, body = await self.health()
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        self._sample_now = self.gather(await self.disk())
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
