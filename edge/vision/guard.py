"""The elevator e-bike guard of one camera: frames in, a held car and a spoken warning out.

The doors decide in milliseconds on the same two cores, so vision must never delay them:
capture, the motion gate, inference and JPEG writing run in a worker process at a higher
nice value (edge/vision/worker.py), which shares neither the daemon's GIL nor its garbage
collector. Its results come back over a non-blocking channel (edge/vision/channel.py) that the
loop reads when it is readable, into a small bounded inbox where the newest analysis wins; the
loop runs the pure confirmation machine and acts. Relay writes keep their order under one lock;
what they journal is appended after it, so a release never waits on the journal.

Until the model is qualified on this site (edge/vision/qualification.py) the guard runs in
observe mode: it journals what it would have done, with a snapshot, and holds nothing. When
qualified, a confirmed e-bike holds the car through the hold relay on the field bus, the
voice warning plays, and an alarm is journaled with a size-capped JPEG snapshot in the state
dir. The hold ends when the e-bike has left for `leave_s`, after `max_hold_s` at most, and at
once on a fire release, an operator's `edge elevator release` or a camera fault.

Every hold awaits an operator's review (`edge elevator review`, the page with its token, the
cloud's signed `elevator.review`): reviews that show the model holds wheelchairs or prams, or
more false holds than the site allows (edge/vision/review.py), return the camera to observe mode
at once, release the car and raise `alarm.vision_demoted` saying why.

About 420 lines, kept whole: the worker's start and stop, its messages typed into the inbox, the
operator's release and review, the demotion and the relay writes all act on one state (the
confirmation machine, the verdict and the held car) under one ordering, and split apart they would
pass it around rather than own it. The car's speaker is `speaker.py`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import dataclasses
import math
import multiprocessing
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from edge.runtime import pools
from edge.vision.settings import Camera
from edge.doors.lock import CommandBus
from edge.events import Event, Priority
from edge.vision.kinds import VisionKind
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.runtime.throttle import Throttle
from edge.vision import review
from edge.vision import worker as vision_worker
from edge.vision.channel import WorkerChannel
from edge.vision.confirm import Confirmation, Confirmed, Left, Release, Released, Settings, State
from edge.drivers.camera.observations import CameraFault, CameraRestored
from edge.vision.detection import Detection, Detector, VisionClass
from edge.vision.pipe import Analysed, Failed, FromWorker, Snapshot, Stop, ToWorker, Watch
from edge.vision.qualification import Verdict
from edge.vision.speaker import Speaker

log = structlog.get_logger("edge.vision")

INBOX = 4  # analysed frames waiting for the loop; older ones are dropped
TICK_S = 0.5  # time limits run even when no frame comes
STOP_S = 3.0

DetectorFactory = Callable[[], Detector]  # picklable: the worker process calls it


@dataclass(frozen=True, slots=True)
class ReleaseNow:
    """A release the loop asked for (a fire), handled in the inbox's order."""

    reason: Release


class InferenceTimes:
    """How long the model ran on each frame, as a histogram's running counts: the operator's
    monitoring reads it at scrape time (edge/status/metrics.py); adding one time is a bisect."""

    BOUNDS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # from a desktop CPU to a small ARM board

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS_S) + 1)  # per bucket, not cumulative; the last is above every bound
        self.sum_s = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.BOUNDS_S, seconds)] += 1
        self.sum_s += seconds

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound in seconds, runs in that bucket alone), the last bound infinite."""
        return list(zip((*self.BOUNDS_S, math.inf), self.counts))


class WorkerGone(Exception):
    """The vision worker process ended on its own: the supervisor starts the guard again."""


class ElevatorGuard:
    def __init__(
        self,
        camera: Camera,
        journal: Journal,
        bus: CommandBus | None,
        state_dir: Path,
        verdict: Verdict,
        detector_factory: DetectorFactory | None,
        fire_active: Callable[[], bool] = lambda: False,
    ) -> None:
        self.camera = camera
        self.journal = journal
        self.bus = bus
        self.state_dir = state_dir
        self.verdict = verdict
        self.detector_factory = detector_factory
        self.fire_active = fire_active
        self.fire_listener: Callable[[], None] | None = None  # undoes its fire latch listener (a reload replacing it)
        self.machine = Confirmation(confirmation_settings(camera, verdict.may_hold))
        self.worker_pid: int | None = None  # the worker process, once it runs
        self.frames_analysed = 0  # frames that went through the model
        self.frames_seen = 0
        self.last_frame_mono: float | None = None  # when the newest frame from the worker was read (`edge status`)
        self.dropped = 0  # analyses the loop had no time for
        self.inference = InferenceTimes()  # every run of the model, dropped analyses included
        self.holds = 0  # holds since the daemon started
        self.would_hold = 0  # confirmations in observe mode (or during a fire release): holds it did not make
        self.hold_latencies_s: deque[float] = deque(maxlen=1000)  # first frame showing it read -> hold command
        self._inbox: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._channel: WorkerChannel | None = None
        self._watching = False  # what the worker was last told
        self._latest_seq = 0
        self._io = asyncio.Lock()  # relay writes of this car, in order
        self.speaker = Speaker(camera.name, camera.warning, self._voice_fault)
        self._faults = Throttle(60.0, max_keys=16)
        self.reviews: review.Tally | None = None  # holds awaiting review and the tally, once a qualified guard runs
        self._saving = asyncio.Lock()

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def holding(self) -> bool:
        """The car is held now (releasing: held until the e-bike has stayed away `leave_s`)."""
        return self.machine.state in (State.HOLDING, State.RELEASING)

    async def run(self) -> None:
        """Until cancelled: the worker process analyses, this task decides and acts."""
        loop = asyncio.get_running_loop()
        self.machine.suspended = self.fire_active()
        mode = "hold" if self.verdict.may_hold else "observe"
        await self._journal(VisionKind.VISION_MODE, Priority.FAULT, {"mode": mode, "reason": self.verdict.reason,
                                                               "reasons": list(self.verdict.reasons)})
        if self.verdict.demoted is not None:  # the demotion lasts until a new report qualifies: raised again
            await self._journal(VisionKind.VISION_DEMOTED, Priority.ALARM, {"reason": self.verdict.demoted})
        if self.verdict.may_hold:
            self.reviews = await pools.call(Pool.FILES, review.load, self.state_dir, self.camera.name, self.verdict.report_sha256)
        log.info("elevator guard", camera=self.camera.name, mode=mode, reason=self.verdict.reason)
        context = multiprocessing.get_context("spawn")  # never fork a daemon that runs threads
        ours, child = context.Pipe()
        spec = vision_worker.WorkerSpec(self.camera, self.state_dir, self.detector_factory)
        process = context.Process(target=vision_worker.run, args=(spec, child), name=f"vision:{self.camera.name}", daemon=True)
        await pools.call(Pool.FILES, process.start)
        child.close()
        self.worker_pid = process.pid
        self._channel = WorkerChannel(ours, self._received, self._gone)
        self._channel.open(loop)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await self._wake.wait()
                self._wake.clear()
                while self._inbox:
                    await self._handle(self._inbox.popleft())
                await self._act(self.machine.tick(time.monotonic()), None)
        finally:
            await self.speaker.stop()
            if self.holding:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._resume()  # never leave a car held by a guard that is gone
            self._tell(Stop())
            await pools.call(Pool.FILES, _end, process)
            self._channel.close()

    def fire_changed(self, active: bool) -> None:
        """FireRelease listener (on the loop): a fire releases the car at once and holds nothing while it lasts."""
        self.machine.suspended = active
        if active:
            self._post(ReleaseNow(Release.FIRE))

    async def release_request(self, operator: str, reason: str) -> dict[str, Any]:
        """An operator's release: audited first, then the car is let go."""
        held = self.holding
        seq = await self._journal(
            VisionKind.ELEVATOR_RELEASE_REQUESTED, Priority.ACCESS, {"operator": operator, "reason": reason, "was_holding": held}
        )
        await self._act(self.machine.release(time.monotonic(), Release.OPERATOR), None)
        return {"camera": self.camera.name, "elevator": self.camera.elevator, "was_holding": held, "seq": seq}

    async def review_request(self, operator: str, hold_seq: int, outcome: str, seen: str, via: str) -> dict[str, Any]:
        """An operator's review of one hold: journaled with who, how and what was there; a review
        that shows the model holds what it must not demotes the camera at once."""
        if self.reviews is None:
            return {"ok": False, "error": f"camera {self.camera.name} has made no hold to review since it was qualified"}
        try:
            demote = review.review(self.reviews, hold_seq, outcome, seen, self.camera.qualification.max_false_hold)
        except ValueError as error:
            return {"ok": False, "error": str(error)}
        tally = self.reviews.as_dict()
        seq = await self._journal(VisionKind.ELEVATOR_REVIEWED, Priority.ACCESS, {
            "operator": operator, "via": via, "hold_seq": hold_seq, "outcome": outcome, "seen": seen, "tally": tally})
        if demote is not None:
            await self._demote(demote)
        else:
            await self._save_reviews()
        return {"ok": True, "camera": self.camera.name, "elevator": self.camera.elevator, "seq": seq,
                "demoted": demote, "tally": self.reviews.as_dict()}

    async def _demote(self, why: str) -> None:
        """Observe mode now: the car let go if held, the tally saved (it outlives a restart) and the alarm raised."""
        assert self.reviews is not None
        self.reviews.demoted = why
        await self._save_reviews()
        reason = f"demoted by the operators' reviews until a new eval report qualifies the model: {why}"
        self.verdict = dataclasses.replace(self.verdict, may_hold=False, reason=reason, reasons=(reason,), demoted=why)
        self.machine.settings = dataclasses.replace(self.machine.settings, may_hold=False)
        await self._act(self.machine.release(time.monotonic(), Release.DEMOTED), None)
        await self._journal(VisionKind.VISION_DEMOTED, Priority.ALARM, {"reason": why, "tally": self.reviews.as_dict()})

    async def _save_reviews(self) -> None:
        """The tally as it is now, written in order (a hold's save never overtakes the review after it)."""
        if self.reviews is not None:
            tally = copy.deepcopy(self.reviews)
            async with self._saving:
                try:
                    await pools.call(Pool.FILES, review.save, self.state_dir, self.camera.name, tally)
                except OSError as error:  # the reviews still count in memory; a restart would forget them
                    await self._journal(VisionKind.VISION_FAULT, Priority.FAULT, {"reason": f"cannot save the hold reviews: {error}"})

    def _received(self, message: Any) -> None:
        """One whole message from the worker (on the loop), into the inbox."""
        if isinstance(message, Analysed) and message.inference_s is not None:
            self.inference.add(message.inference_s)
        if isinstance(message, FromWorker):
            self._post(message)
        else:
            self._post(Failed(f"the worker sent a message the guard does not know: {type(message).__name__}"))

    def _gone(self, why: str) -> None:
        log.info("vision worker channel ended", camera=self.camera.name, why=why)
        self._post(WorkerGone())

    def _post(self, item: Any) -> None:
        """Into the inbox, on the loop; analyses beyond INBOX drop the oldest analysis."""
        if isinstance(item, Analysed):
            analyses = [i for i in self._inbox if isinstance(i, Analysed)]
            if len(analyses) >= INBOX:
                self._inbox.remove(analyses[0])
                self.dropped += 1
        self._inbox.append(item)
        self._wake.set()

    def _tell(self, message: ToWorker) -> None:
        if self._channel is not None:
            self._channel.send(message)

    async def _handle(self, item: Any) -> None:
        now = time.monotonic()
        if isinstance(item, Analysed):
            self.frames_seen += 1
            self.last_frame_mono = item.mono  # CLOCK_MONOTONIC is the same in the worker process
            self._latest_seq = item.seq
            if item.detections is None:
                actions = self.machine.tick(now)
            else:
                self.frames_analysed += 1
                h, w = item.size
                actions = self.machine.observe(item.mono, [normalised(d, w, h) for d in item.detections])
            if self.machine.under_watch != self._watching:
                self._watching = self.machine.under_watch
                self._tell(Watch(self._watching))
            await self._act(actions, item)
        elif isinstance(item, ReleaseNow):
            await self._act(self.machine.release(now, item.reason), None)
        elif isinstance(item, CameraFault):
            await self._journal(VisionKind.CAMERA_FAULT, Priority.FAULT, {"reason": item.reason})
            await self._act(self.machine.release(now, Release.CAMERA_FAULT), None)
        elif isinstance(item, CameraRestored):
            await self._journal(VisionKind.CAMERA_RESTORED, Priority.FAULT, {"after_s": round(item.after_s, 1)})
        elif isinstance(item, Failed):
            count = self._faults.offer(item.reason, now)  # a model failing on every frame is one event a minute
            if count is not None:
                await self._journal(VisionKind.VISION_FAULT, Priority.FAULT, {"reason": item.reason, "count": count})
        elif isinstance(item, WorkerGone):
            await self._journal(VisionKind.VISION_FAULT, Priority.FAULT, {"reason": "the vision worker process ended"})
            await self._act(self.machine.release(now, Release.CAMERA_FAULT), None)
            raise item

    async def _act(self, actions: list, frame: Analysed | None) -> None:
        for action in actions:
            if isinstance(action, Confirmed):
                await self._confirmed(action, frame)
            elif isinstance(action, Released):
                await self._resume()
                await self._journal(VisionKind.ELEVATOR_RELEASED, Priority.ALARM, {"reason": str(action.reason), "held_s": round(action.held_s, 1)})
            elif isinstance(action, Left):
                log.info("confirmed object left the car", camera=self.camera.name)

    async def _confirmed(self, action: Confirmed, frame: Analysed | None) -> None:
        body: dict[str, Any] = {"class": str(action.cls), "score": round(action.score, 3), "box": [round(v, 3) for v in action.box]}
        if action.hold:
            self.holds += 1
            self.hold_latencies_s.append(time.monotonic() - action.since)
            confirmed = await self._write(self.camera.hold.hold) if self.camera.hold and self.bus else False
            body["relay_confirmed"] = confirmed
            self.speaker.warn()
            body["review"] = "pending"  # edge elevator review --hold SEQ, the page, or the cloud's elevator.review
            kind, priority = VisionKind.ELEVATOR_HOLD, Priority.ALARM
        else:
            kind, priority = VisionKind.ELEVATOR_OBSERVED, Priority.FAULT
            self.would_hold += 1
            body["would_hold"] = True
            body["why_not"] = "fire release" if self.machine.suspended else self.verdict.reason
        body["snapshot"] = self._snapshot(frame.seq if frame else self._latest_seq, frame.wall if frame else time.time(), kind)
        seq = await self._journal(kind, priority, body)
        if action.hold and seq is not None and self.reviews is not None:
            review.held(self.reviews, seq, str(action.cls), time.time())
            await self._save_reviews()

    async def _resume(self) -> None:
        if self.camera.hold is None or self.bus is None:
            return
        await self._write(self.camera.hold.resume)

    async def _write(self, command: str) -> bool:
        """One relay write of this car, in order with the others; its alarm journaled after the lock."""
        assert self.camera.hold is not None and self.bus is not None
        async with self._io:
            confirmed = await self.bus.command(self.camera.hold.device, command)
        if not confirmed:
            await self._journal(VisionKind.ELEVATOR_RELAY_UNCONFIRMED, Priority.ALARM, {"device": self.camera.hold.device, "command": command})
        return confirmed

    async def _voice_fault(self, reason: str) -> None:
        await self._journal(VisionKind.VISION_FAULT, Priority.FAULT, {"reason": reason})

    def _snapshot(self, seq: int, wall: float, kind: str) -> str:
        """Ask the worker to save the frame as a capped JPEG; returns its path relative to the
        state dir at once. Nothing waits for the file: a fire or an operator's release must never
        queue behind a JPEG (the uplink sends the file after the event, once it is there)."""
        stem = f"{round(wall * 1000):013d}-{kind.split('.')[-1]}"
        self._tell(Snapshot(seq, stem))
        return str(Path("vision") / "snapshots" / self.camera.name / f"{stem}.jpg")

    async def _journal(self, kind: str, priority: Priority, body: dict[str, Any]) -> int | None:
        body = {"camera": self.camera.name, "elevator": self.camera.elevator, **body}
        event = Event(kind=kind, priority=priority, source=self.camera.name, body=body)
        log.info("elevator guard", event_id=event.id, kind=str(kind), camera=self.camera.name)
        return await self.journal.append(event)


def _end(process: multiprocessing.process.BaseProcess) -> None:
    """Wait for the worker to stop; terminate, then kill, one that does not (blocking: in a thread)."""
    process.join(STOP_S)
    if process.is_alive():
        log.error("the vision worker did not stop in time; terminating it", pid=process.pid)
        process.terminate()
        process.join(1.0)
    if process.is_alive():
        process.kill()
        process.join(1.0)


def confirmation_settings(camera: Camera, may_hold: bool) -> Settings:
    """The camera's confirmation rules, as the guard runs them (and `edge vision replay` replays them)."""
    return Settings(
        region=tuple(camera.region),
        hold_classes=frozenset(VisionClass(c) for c in camera.hold_classes),
        leave_s=camera.leave_s,
        max_hold_s=camera.max_hold_s,
        may_hold=may_hold,
    )


def normalised(detection: Detection, width: int, height: int) -> Detection:
    """Boxes in 0..1 of the frame, like the configured region."""
    x1, y1, x2, y2 = detection.box
    return Detection(detection.cls, detection.score, (x1 / width, y1 / height, x2 / width, y2 / height))
