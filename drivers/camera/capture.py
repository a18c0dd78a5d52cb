"""One camera stream through OpenCV: a reader thread that keeps only the newest frame.

A source is an RTSP (or HTTP) URL, a V4L2 device path, a video file, or an image sequence
given as a printf pattern (`frames/%04d.jpg`); files are for rigs and tests and are read at
their own frame rate, so they behave like a live camera. Whoever analyses frames takes the
newest one when it is ready for it (`latest`); frames it had no time for are dropped, never
queued, so a slow detector can never make memory grow or analysis fall behind the car.

The reader grabs every frame the stream gives (a live stream must be drained, and for most
codecs the grab is the decoding) but converts a frame to BGR (`retrieve`, costly at 1080p) only
once the consumer's next analysis is due (`want_from`): a 25 fps stream analysed at 5 fps
converts 5 frames a second. A consumer that names no time gets every frame converted. A
consumer may also hand the reader a `prepare` function (resizing for a model, say): it runs on
each converted frame in the reader thread, so on two cores the consumer's thread spends its
time on its own work while the next frame is made ready beside it.

Decoding is the reader's main cost (a 1080p stream costs about five times a 640x360 substream,
which is why the analysis stream is a camera's substream). Network streams and files are opened
with OpenCV's FFmpeg backend asking for hardware decoding (`VIDEO_ACCELERATION_ANY`: VA-API, DRM,
QSV, whatever the box and its FFmpeg build have); OpenCV decodes in software where there is none,
and a stream that will not open, or gives no frame, with hardware decoding is decoded in software
from then on. `decoding` says which is in use.

A stream that ends, breaks or cannot be opened is reported (`CameraFault`, observations.py) and
opened again with exponential backoff; the first frame after that is reported (`CameraRestored`). A
stream that simply stops delivering is caught by the watchdog in `latest`: no frame for
`stall_s` is a fault. Network reads carry OpenCV's read timeout (`stall_s`), so a hung RTSP
server ends in a failed read and a reopen rather than a thread stuck forever.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import structlog

from edge.drivers.camera.observations import CameraFault, CameraObservation, CameraRestored

log = structlog.get_logger("edge.drivers.camera")

NETWORK = ("rtsp://", "rtsps://", "http://", "https://")
_ACCELERATIONS = {
    getattr(cv2, name): name.removeprefix("VIDEO_ACCELERATION_").lower()
    for name in ("VIDEO_ACCELERATION_VAAPI", "VIDEO_ACCELERATION_DRM", "VIDEO_ACCELERATION_MFX",
                 "VIDEO_ACCELERATION_D3D11", "VIDEO_ACCELERATION_ANY")
    if hasattr(cv2, name)
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded BGR frame; `seq` counts frames since the capture started (gaps are frames
    nobody asked for), `mono` is time.monotonic() when it was read, `wall` the Unix time."""

    image: np.ndarray
    seq: int
    mono: float
    wall: float
    prepared: Any = None  # what the consumer's `prepare` made of the image (None without one, or when it failed)


def open_stream(source: str, timeout_s: float = 5.0, hardware: bool = True) -> cv2.VideoCapture:
    """The right OpenCV backend for the kind of source, decoding in hardware where the box can
    (FFmpeg sources; `hardware=False` asks for software); the caller checks isOpened()."""
    if source.startswith("/dev/"):
        return cv2.VideoCapture(source, cv2.CAP_V4L2)
    if "%" in source:
        return cv2.VideoCapture(source, cv2.CAP_IMAGES)
    params: list[int] = []
    if source.startswith(NETWORK):
        ms = int(timeout_s * 1000)
        params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if hardware and hasattr(cv2, "CAP_PROP_HW_ACCELERATION"):
        stream = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [*params, cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_ANY])
        if stream.isOpened():
            return stream
        stream.release()
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)


def decoding(stream: cv2.VideoCapture) -> str:
    """'software', or the hardware decoder an opened stream uses ('vaapi', 'drm', 'mfx', 'd3d11')."""
    if not hasattr(cv2, "CAP_PROP_HW_ACCELERATION"):
        return "software"
    return _ACCELERATIONS.get(int(stream.get(cv2.CAP_PROP_HW_ACCELERATION)), "software")


def is_file(source: str) -> bool:
    return not source.startswith(NETWORK) and not source.startswith("/dev/")


def grab_one(source: str, timeout_s: float = 5.0) -> np.ndarray | None:
    """One frame of a stream opened just for it (the main stream, for a snapshot): decoding
    1080p all day would cost the CPU the doors need, a snapshot now and then does not."""
    stream = open_stream(source, timeout_s)
    try:
        if not stream.isOpened():
            return None
        ok, image = stream.read()
        return image if ok else None
    finally:
        stream.release()


class Capture:
    """The newest frame of one stream, read by a daemon thread between `start` and `stop`."""

    def __init__(
        self,
        source: str,
        on_observation: Callable[[CameraObservation], None],
        stall_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        file_fps: float | None = None,
        prepare: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        """`on_observation` is called from the reader or the consumer thread: hand it on with
        loop.call_soon_threadsafe. `file_fps` paces a file (default: its own rate, else 10).
        `prepare` runs in the reader thread on each converted image; what it raises is logged
        and leaves the frame's `prepared` None, so the consumer can do the work itself."""
        self.source = source
        self.on_observation = on_observation
        self.prepare = prepare
        self._prepare_failed = ""
        self.stall_s = stall_s
        self.backoff_s = backoff_s
        self.file_fps = file_fps
        self.opened = 0  # how many times the stream was opened (reopens are this minus one)
        self.decoding = ""  # 'software' or the hardware decoder, once the stream is open
        self._hardware = True  # False once hardware decoding failed this stream: software from then on
        self._newest: Frame | None = None
        self._seq = 0
        self._due = 0.0  # monotonic time before which the consumer wants no frame
        self.retrieved = 0  # frames converted to BGR (the rest were only grabbed)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._faulted_since: float | None = None
        self._last_frame_mono = time.monotonic()

    def start(self) -> None:
        self._stopping.clear()
        self._last_frame_mono = time.monotonic()
        self._thread = threading.Thread(target=self._read_forever, name=f"camera:{self.source[-32:]}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop the reader; False when it did not end in time (a read stuck in OpenCV: it is a
        daemon thread and ends with the process)."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def faulted(self) -> bool:
        return self._faulted_since is not None

    @property
    def grabbed(self) -> int:
        """Frames the stream gave since the start (converted or not)."""
        return self._seq

    def want_from(self, at_mono: float) -> None:
        """The consumer wants no frame before `at_mono`: frames grabbed until then are not converted."""
        with self._changed:
            self._due = at_mono

    def latest(self, after_seq: int, timeout_s: float) -> Frame | None:
        """The newest frame later than `after_seq`, waiting up to `timeout_s` for one. None when
        none came (or the capture stops); a wait that finds no frame for `stall_s` is a fault."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not self._stopping.is_set():
                frame = self._newest
                if frame is not None and frame.seq > after_seq:
                    return frame
                now = time.monotonic()
                if now - self._last_frame_mono >= self.stall_s:
                    self._fault_locked(f"no frame for {self.stall_s:g} s", now)
                    self._last_frame_mono = now  # one report per stall_s, not one per wait
                remaining = deadline - now
                if remaining <= 0:
                    return None
                self._changed.wait(min(remaining, self.stall_s))
        return None

    def _read_forever(self) -> None:
        delay = self.backoff_s[0]
        while not self._stopping.is_set():
            stream = open_stream(self.source, self.stall_s, self._hardware)
            try:
                if not stream.isOpened():
                    reason = "cannot open the stream"
                    if is_file(self.source) and "%" not in self.source and not os.path.exists(self.source):
                        reason = "no such file"
                else:
                    self.opened += 1
                    used = decoding(stream)
                    if used != self.decoding:
                        log.info("camera decoding", source=self.source, decoding=used)
                        self.decoding = used
                    got = self._read_stream(stream)
                    reason = "the stream ended" if got else "the stream gave no frame"
                    if got:
                        delay = self.backoff_s[0]  # it worked for a while: start the backoff afresh
                    elif used != "software":
                        self._hardware = False
                        reason += f" with {used} decoding: decoding in software from now on"
            except cv2.error as error:  # a decoder that chokes on a broken file or packet
                reason = f"OpenCV: {error}".splitlines()[0]
            finally:
                stream.release()
            if self._stopping.is_set():
                return
            with self._changed:
                self._fault_locked(reason, time.monotonic())
            log.warning("camera stream down; reopening", source=self.source, reason=reason, in_s=delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, self.backoff_s[1])

    def _read_stream(self, stream: cv2.VideoCapture) -> int:
        """Read until the stream fails or we stop; returns how many frames it gave."""
        pace = 0.0
        if is_file(self.source):
            fps = self.file_fps or stream.get(cv2.CAP_PROP_FPS) or 10.0
            pace = 1.0 / (fps if 0 < fps < 1000 else 10.0)
        got = 0
        next_at = time.monotonic()
        while not self._stopping.is_set():
            if not stream.grab():
                return got
            got += 1
            now = time.monotonic()
            with self._changed:
                self._seq += 1
                seq = self._seq
                self._last_frame_mono = now
                if self._faulted_since is not None:
                    after = now - self._faulted_since
                    self._faulted_since = None
                    self.on_observation(CameraRestored(self.source, after))
                wanted = now >= self._due
            if wanted:
                ok, image = stream.retrieve()
                if not ok or image is None:
                    return got
                prepared = self._prepare(image)
                with self._changed:
                    self.retrieved += 1
                    self._newest = Frame(image, seq, now, time.time(), prepared)
                    self._changed.notify_all()
            if pace:
                next_at = max(next_at + pace, now)
                self._stopping.wait(max(0.0, next_at - time.monotonic()))
        return got

    def _prepare(self, image: np.ndarray) -> Any:
        if self.prepare is None:
            return None
        try:
            return self.prepare(image)
        except Exception as error:  # noqa: BLE001 - the consumer's function must not end the reader
            reason = f"{type(error).__name__}: {error}"
            if reason != self._prepare_failed:  # once per new reason, not once per frame
                log.error("preparing a frame failed", source=self.source, error=reason)
                self._prepare_failed = reason
            return None

    def _fault_locked(self, reason: str, now: float) -> None:
        if self._faulted_since is None:
            self._faulted_since = now
            self.on_observation(CameraFault(self.source, reason))
