"""The elevator e-bike guard of one camera: frames in, a held car and a spoken warning out.

The doors decide in milliseconds on the same two cores, so vision must never delay them:
capture, the motion gate, inference and JPEG writing run in a worker thread that lowers its
own OS priority first (the capture thread and the model's threads it starts inherit it), and
the results come back to the loop with call_soon_threadsafe into a small bounded inbox where
the newest analysis wins. The loop runs the pure confirmation machine and acts.

Until the model is qualified on this site (edge/vision/qualification.py) the guard runs in
observe mode: it journals what it would have done, with a snapshot, and holds nothing. When
qualified, a confirmed e-bike holds the car through the hold relay on the field bus, the
voice warning plays, and an alarm is journaled with a size-capped JPEG snapshot in the state
dir. The hold ends when the e-bike has left for `leave_s`, after `max_hold_s` at most, and at
once on a fire release, an operator's `edge elevator release` or a camera fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from drivers.camera.capture import CameraFault, CameraObservation, CameraRestored, Capture, Frame, grab_one
from edge.config import Camera
from edge.doors.lock import CommandBus
from edge.events import Event, Kind, Priority
from edge.journal import Journal
from edge.throttle import Throttle
from edge.vision.collect import Collector, collect_dir
from edge.vision.confirm import Confirmation, Confirmed, Left, Release, Released, Settings, State
from edge.vision.detection import Detection, Detector, VisionClass
from edge.vision.motion import MotionGate
from edge.vision.qualification import Verdict
from edge.vision.stills import FrameFolder

log = structlog.get_logger("edge.vision")

NICE = 10  # how much lower than the daemon the vision threads run
INBOX = 4  # analysed frames waiting for the loop; older ones are dropped
TICK_S = 0.5  # time limits run even when no frame comes
VOICE_TIMEOUT_S = 30.0
STOP_S = 3.0
SNAPSHOT_CAP_BYTES = 200 * 1024 * 1024

DetectorFactory = Callable[[], Detector]


def lower_priority(nice: int = NICE) -> None:
    """Lower the calling thread's priority (Linux: a thread id names one thread to setpriority)."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as error:
        log.warning("cannot lower the vision thread's priority", error=str(error))


@dataclass(frozen=True, slots=True)
class Analysed:
    """One frame as the worker saw it: detections None when the motion gate kept the model idle."""

    frame: Frame
    detections: list[Detection] | None


@dataclass(frozen=True, slots=True)
class Failed:
    """The model could not be loaded or failed on a frame."""

    reason: str


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
        self.machine = Confirmation(
            Settings(
                region=tuple(camera.region),
                hold_classes=frozenset(VisionClass(c) for c in camera.hold_classes),
                leave_s=camera.leave_s,
                max_hold_s=camera.max_hold_s,
                may_hold=verdict.may_hold,
            )
        )
        self.worker_tid: int | None = None  # the worker thread's OS id, once it runs
        self.frames_analysed = 0  # frames that went through the model
        self.frames_seen = 0
        self.dropped = 0  # analyses the loop had no time for
        self.hold_latencies_s: deque[float] = deque(maxlen=1000)  # first frame showing it read -> hold command
        self._inbox: deque[Analysed | Failed | CameraObservation] = deque()
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._watching = False  # read by the worker: run the model whatever the gate says
        self._latest: Frame | None = None
        self._io = asyncio.Lock()  # relay writes of this car, in order
        self._voice: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._faults = Throttle(60.0, max_keys=16)

    @property
    def state(self) -> State:
        return self.machine.state

    # -- the loop's side -------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: the worker thread analyses, this task decides and acts."""
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self.machine.suspended = self.fire_active()
        mode = "hold" if self.verdict.may_hold else "observe"
        await self._journal(Kind.VISION_MODE, Priority.FAULT, {"mode": mode, "reason": self.verdict.reason})
        log.info("elevator guard", camera=self.camera.name, mode=mode, reason=self.verdict.reason)
        worker = threading.Thread(target=self._work, name=f"vision:{self.camera.name}", daemon=True)
        worker.start()
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
            self._stopping.set()
            if self._voice is not None:
                self._voice.cancel()
                await asyncio.gather(self._voice, return_exceptions=True)
            if self.machine.state in (State.HOLDING, State.RELEASING):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._resume()  # never leave a car held by a guard that is gone
            await asyncio.to_thread(worker.join, STOP_S)
            if worker.is_alive():
                log.error("the vision worker did not stop in time", camera=self.camera.name)

    def fire_changed(self, active: bool) -> None:
        """FireRelease listener (on the loop): a fire releases the car at once and holds nothing while it lasts."""
        self.machine.suspended = active
        if active:
            self._post(("release", Release.FIRE))

    async def release_request(self, operator: str, reason: str) -> dict[str, Any]:
        """An operator's release: audited first, then the car is let go."""
        held = self.machine.state in (State.HOLDING, State.RELEASING)
        seq = await self._journal(
            Kind.ELEVATOR_RELEASE_REQUESTED, Priority.ACCESS, {"operator": operator, "reason": reason, "was_holding": held}
        )
        await self._act(self.machine.release(time.monotonic(), Release.OPERATOR), None)
        return {"camera": self.camera.name, "elevator": self.camera.elevator, "was_holding": held, "seq": seq}

    def _post(self, item: Any) -> None:
        """Into the inbox, on the loop; analyses beyond INBOX drop the oldest analysis."""
        if isinstance(item, Analysed):
            analyses = [i for i in self._inbox if isinstance(i, Analysed)]
            if len(analyses) >= INBOX:
                self._inbox.remove(analyses[0])
                self.dropped += 1
        self._inbox.append(item)
        self._wake.set()

    def _from_worker(self, item: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while the worker was finishing
            loop.call_soon_threadsafe(self._post, item)

    async def _handle(self, item: Any) -> None:
        now = time.monotonic()
        if isinstance(item, Analysed):
            self._latest = item.frame
            if item.detections is None:
                actions = self.machine.tick(now)
            else:
                h, w = item.frame.image.shape[:2]
                actions = self.machine.observe(item.frame.mono, [_normalised(d, w, h) for d in item.detections])
            self._watching = self.machine.under_watch
            await self._act(actions, item.frame)
        elif isinstance(item, tuple) and item[0] == "release":
            await self._act(self.machine.release(now, item[1]), None)
        elif isinstance(item, CameraFault):
            await self._journal(Kind.CAMERA_FAULT, Priority.FAULT, {"reason": item.reason})
            await self._act(self.machine.release(now, Release.CAMERA_FAULT), None)
            self._watching = False
        elif isinstance(item, CameraRestored):
            await self._journal(Kind.CAMERA_RESTORED, Priority.FAULT, {"after_s": round(item.after_s, 1)})
        elif isinstance(item, Failed):
            count = self._faults.offer(item.reason, now)  # a model failing on every frame is one event a minute
            if count is not None:
                await self._journal(Kind.VISION_FAULT, Priority.FAULT, {"reason": item.reason, "count": count})

    async def _act(self, actions: list, frame: Frame | None) -> None:
        for action in actions:
            if isinstance(action, Confirmed):
                await self._confirmed(action, frame)
            elif isinstance(action, Released):
                await self._resume()
                await self._journal(Kind.ELEVATOR_RELEASED, Priority.ALARM, {"reason": str(action.reason), "held_s": round(action.held_s, 1)})
            elif isinstance(action, Left):
                log.info("confirmed object left the car", camera=self.camera.name)

    async def _confirmed(self, action: Confirmed, frame: Frame | None) -> None:
        body: dict[str, Any] = {"class": str(action.cls), "score": round(action.score, 3), "box": [round(v, 3) for v in action.box]}
        if action.hold:
            async with self._io:
                self.hold_latencies_s.append(time.monotonic() - action.since)
                confirmed = await self._write(self.camera.hold.hold) if self.camera.hold and self.bus else False
            body["relay_confirmed"] = confirmed
            self._warn()
            kind, priority = Kind.ELEVATOR_HOLD, Priority.ALARM
        else:
            kind, priority = Kind.ELEVATOR_OBSERVED, Priority.FAULT
            body["would_hold"] = True
            body["why_not"] = "fire release" if self.machine.suspended else self.verdict.reason
        snapshot = await self._snapshot(frame, kind)
        if snapshot is not None:
            body["snapshot"] = snapshot
        await self._journal(kind, priority, body)

    async def _resume(self) -> None:
        if self.camera.hold is None or self.bus is None:
            return
        async with self._io:
            await self._write(self.camera.hold.resume)

    async def _write(self, command: str) -> bool:
        assert self.camera.hold is not None and self.bus is not None
        confirmed = await self.bus.command(self.camera.hold.device, command)
        if not confirmed:
            await self._journal(Kind.ELEVATOR_RELAY_UNCONFIRMED, Priority.ALARM, {"device": self.camera.hold.device, "command": command})
        return confirmed

    def _warn(self) -> None:
        """Start the voice warning unless one is still playing; it ends by itself (or at stop)."""
        if self.camera.warning is None or (self._voice is not None and not self._voice.done()):
            return
        self._voice = asyncio.create_task(self._play(), name=f"voice:{self.camera.name}")

    async def _play(self) -> None:
        warning = self.camera.warning
        assert warning is not None
        try:
            process = await asyncio.create_subprocess_exec(
                *warning.command, str(warning.sound), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as error:
            await self._journal(Kind.VISION_FAULT, Priority.FAULT, {"reason": f"voice warning: {error}"})
            return
        try:
            async with asyncio.timeout(VOICE_TIMEOUT_S):
                code = await process.wait()
            if code != 0:
                await self._journal(Kind.VISION_FAULT, Priority.FAULT, {"reason": f"voice warning: {warning.command[0]} exited {code}"})
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def _snapshot(self, frame: Frame | None, kind: str) -> str | None:
        """The JPEG of the confirmation, relative to the state dir; written off the loop."""
        frame = frame or self._latest
        if frame is None:
            return None
        folder = FrameFolder(self.state_dir / "vision" / "snapshots" / self.camera.name, SNAPSHOT_CAP_BYTES)
        main = self.camera.snapshot_source

        def write() -> Path:
            image = (grab_one(main, self.camera.stall_s) if main else None)
            return folder.save(image if image is not None else frame.image, f"{round(frame.wall * 1000):013d}-{kind.split('.')[-1]}")

        try:
            path = await asyncio.to_thread(write)
        except (OSError, ValueError) as error:
            log.error("snapshot not saved", camera=self.camera.name, error=str(error))
            return None
        return str(path.relative_to(self.state_dir))

    async def _journal(self, kind: str, priority: Priority, body: dict[str, Any]) -> int | None:
        body = {"camera": self.camera.name, "elevator": self.camera.elevator, **body}
        event = Event(kind=kind, priority=priority, source=self.camera.name, body=body)
        log.info("elevator guard", event_id=event.id, kind=str(kind), camera=self.camera.name)
        return await self.journal.append(event)

    # -- the worker thread -----------------------------------------------------------

    def _work(self) -> None:
        lower_priority()
        self.worker_tid = threading.get_native_id()
        detector = None
        if self.detector_factory is not None:
            try:
                detector = self.detector_factory()  # its threads inherit the lowered priority
            except Exception as error:  # noqa: BLE001 - a model that does not load must not take the camera down
                log.exception("the model did not load", camera=self.camera.name)
                self._from_worker(Failed(f"the model did not load: {type(error).__name__}: {error}"))
        collector = None
        if self.camera.collect.enabled:
            collector = Collector(collect_dir(self.state_dir, self.camera.name), self.camera.collect.every_s, self.camera.collect.cap_mb * 2**20)
        gate = MotionGate(self.camera.region)
        capture = Capture(self.camera.source, self._from_worker, stall_s=self.camera.stall_s)
        capture.start()
        period = 1.0 / self.camera.analysis_fps
        seq, next_at = 0, time.monotonic()
        try:
            while not self._stopping.is_set():
                frame = capture.latest(seq, timeout_s=self.camera.stall_s)
                if frame is None:
                    continue
                seq = frame.seq
                self.frames_seen += 1
                moved = gate.moved(frame.image)
                if collector is not None and moved:
                    try:
                        collector.offer(frame)
                    except (OSError, ValueError) as error:
                        log.error("frame not collected", camera=self.camera.name, error=str(error))
                detections = None
                if detector is not None and (moved or self._watching):
                    try:
                        detections = detector.detect(frame.image)
                        self.frames_analysed += 1
                    except Exception as error:  # noqa: BLE001
                        self._from_worker(Failed(f"the model failed on a frame: {type(error).__name__}: {error}"))
                self._from_worker(Analysed(frame, detections))
                next_at = max(next_at + period, time.monotonic())
                self._stopping.wait(max(0.0, next_at - time.monotonic()))
        finally:
            capture.stop(STOP_S)


def _normalised(detection: Detection, width: int, height: int) -> Detection:
    """Boxes in 0..1 of the frame, like the configured region."""
    x1, y1, x2, y2 = detection.box
    return Detection(detection.cls, detection.score, (x1 / width, y1 / height, x2 / width, y2 / height))

