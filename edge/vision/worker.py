"""The vision worker process: capture, motion gate, inference, frames to disk, below the doors.

Threads would share the daemon's GIL and garbage collector with the door decisions: importing
onnxruntime, creating a session or decoding a model's output holds the GIL for milliseconds
to seconds, and a card tap waits behind it. A process shares neither, and `lower_priority`
keeps it behind the access path for the CPU. It is started with `spawn` (never a fork of a
daemon with threads), talks over one pipe, and ends when the pipe closes, so a daemon killed
with SIGKILL leaves no camera process behind.

Two threads share the work, one per core of a small gateway: the capture thread decodes the
stream and prepares each frame it converts (the gate's small grey image, the model's input
tensor), while the main thread runs the gate's comparison and the model on the frame before.

The messages both ways are the small types of edge/vision/pipe.py: to the daemon each analysed
frame, a model's failure and the stream's faults and restores; from it, watch, snapshot and stop.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from edge.vision.settings import Camera
from edge.vision.detection import Detection, Detector, VisionClass
from edge.vision.pipe import Analysed, Failed, FromWorker, Snapshot, Stop, Watch

log = structlog.get_logger("edge.vision")

NICE = 10  # how much lower than the daemon the worker runs
SNAPSHOT_CAP_BYTES = 200 * 1024 * 1024
RECENT_FRAMES = 8  # kept for a snapshot of the frame that confirmed


@dataclass(frozen=True)
class WorkerSpec:
    camera: Camera
    state_dir: Path
    detector_factory: Callable[[], Detector] | None  # picklable: it is called in the worker
    nice: int = NICE


def run(spec: WorkerSpec, conn: Connection) -> None:
    """The process's main: until told to stop or the daemon's end of the pipe closes."""
    lower_priority(spec.nice)
    try:
        _Worker(spec, conn).run()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the daemon is gone: so are we
    finally:
        conn.close()


AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int) -> None:
    """Run below the daemon for the CPU, whichever way the kernel shares it out.

    A nice value only counts among the processes of one scheduling group. Under systemd with
    the cpu controller on, that group is the service's cgroup, and the nice value does it. The
    kernel's default otherwise is an autogroup per session: the worker would share the daemon's,
    its CPU would be charged to the daemon's group, and the door path would wait longer behind
    other processes (measured: +3.5 to 5.5 ms at p99 on a tap with a busy camera). So the worker
    also starts a session of its own, whose autogroup gets the same lower nice value.
    """
    try:
        os.nice(nice)
    except OSError as error:
        log.warning("cannot lower the vision worker's priority", error=str(error))
    try:
        os.setsid()
        AUTOGROUP.write_text(str(nice))
    except FileNotFoundError:
        pass  # a kernel without autogroups: the nice value is all there is
    except OSError as error:
        log.warning("cannot lower the vision worker's autogroup", error=str(error))


class _Worker:
    def __init__(self, spec: WorkerSpec, conn: Connection) -> None:
        self.spec = spec
        self.camera = spec.camera
        self.conn = conn
        self.watching = False
        self.stopping = False
        self.recent: deque[Any] = deque(maxlen=RECENT_FRAMES)
        self._sending = threading.Lock()  # the capture thread reports faults from its own thread

    def run(self) -> None:
        import cv2

        from edge.drivers.camera.capture import Capture
        from edge.vision.collect import Collector, collect_dir
        from edge.vision.detection import StagedDetector
        from edge.vision.motion import MotionGate

        cv2.setNumThreads(1)  # two threads, two cores: OpenCV's own pool would only take turns with them

        detector = None
        if self.spec.detector_factory is not None:
            try:
                detector = self.spec.detector_factory()
            except Exception as error:  # noqa: BLE001 - a model that does not load must not take the camera down
                log.exception("the model did not load", camera=self.camera.name)
                self.conn.send(Failed(f"the model did not load: {type(error).__name__}: {error}"))
        collector = None
        if self.camera.collect.enabled:
            collector = Collector(collect_dir(self.spec.state_dir, self.camera.name), self.camera.collect.every_s, self.camera.collect.cap_mb * 2**20)
        gate = MotionGate(self.camera.region)

        def observed(observation: Any) -> None:
            self._send(observation)  # a CameraFault or CameraRestored, as capture made it

        staged = detector if isinstance(detector, StagedDetector) else None

        def prepare(image: Any) -> tuple[Any, Any]:
            """In the capture thread: the gate's grey image and the model's input."""
            return gate.shrink(image), staged.prepare(image) if staged is not None else None

        capture = Capture(self.camera.source, observed, stall_s=self.camera.stall_s, prepare=prepare)
        capture.start()
        period = 1.0 / self.camera.analysis_fps
        seq, next_at = 0, time.monotonic()
        try:
            while not self.stopping:
                self._commands(0.0)
                frame = capture.latest(seq, timeout_s=min(self.camera.stall_s, 0.5))
                if frame is None:
                    continue
                seq = frame.seq
                self.recent.append(dataclasses.replace(frame, prepared=None))  # the image, not the model's copy of it
                grey, ready = frame.prepared or (gate.shrink(frame.image), None)
                moved = gate.compare(grey)
                if collector is not None and moved:
                    try:
                        collector.offer(frame)
                    except (OSError, ValueError) as error:
                        log.error("frame not collected", camera=self.camera.name, error=str(error))
                found, inference_s = None, None
                if detector is not None and (moved or self.watching):
                    try:
                        started = time.perf_counter()
                        detections = staged.infer(ready) if staged is not None and ready is not None else detector.detect(frame.image)
                        inference_s = time.perf_counter() - started
                        found = [Detection(VisionClass(d.cls), float(d.score), tuple(float(v) for v in d.box)) for d in detections]
                    except Exception as error:  # noqa: BLE001
                        self._send(Failed(f"the model failed on a frame: {type(error).__name__}: {error}"))
                height, width = frame.image.shape[:2]
                self._send(Analysed(frame.seq, frame.mono, frame.wall, (height, width), found, inference_s))
                next_at = max(next_at + period, time.monotonic())
                capture.want_from(next_at)  # frames before the next analysis are grabbed, never converted
                self._commands(max(0.0, next_at - time.monotonic()))
        finally:
            capture.stop(3.0)

    def _send(self, message: FromWorker) -> None:
        with self._sending:
            self.conn.send(message)

    def _commands(self, wait_s: float) -> None:
        """Handle what the daemon asked, waiting up to `wait_s` for the first request."""
        while not self.stopping and self.conn.poll(wait_s):
            wait_s = 0.0
            message = self.conn.recv()
            if isinstance(message, Watch):
                self.watching = message.on
            elif isinstance(message, Snapshot):
                self._snapshot(message.seq, message.stem)
            elif isinstance(message, Stop):
                self.stopping = True

    def _snapshot(self, seq: int, stem: str) -> None:
        from edge.drivers.camera.capture import grab_one
        from edge.vision.stills import FrameFolder

        try:
            image = grab_one(self.camera.snapshot_source, self.camera.stall_s) if self.camera.snapshot_source else None
            if image is None:
                frame = next((f for f in self.recent if f.seq == seq), self.recent[-1] if self.recent else None)
                image = frame.image if frame is not None else None
            if image is not None:
                folder = FrameFolder(self.spec.state_dir / "vision" / "snapshots" / self.camera.name, SNAPSHOT_CAP_BYTES)
                folder.save(image, stem)
            else:
                log.error("snapshot not saved: no frame yet", camera=self.camera.name)
        except (OSError, ValueError) as error:
            log.error("snapshot not saved", camera=self.camera.name, error=str(error))
