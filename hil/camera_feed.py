"""A camera for the rig: a live MJPEG stream the runner writes into a FIFO that the daemon's
camera opens as its `source`, as it would an IP camera's substream.

A video file that ends is a camera fault (and releases a hold), so a clip played as a file
would test the fault path, not the guard. The feed never ends: it shows an idle still (an
empty car) at the stream's rate, a clip when asked (stills for their durations, or a video
file's frames), then the idle still again. When the reader goes away (the daemon restarted,
the camera reopened) the feed waits for the next reader and goes on.

OpenCV's FFmpeg backend would read seconds of a pipe to guess its format and rate before the
first frame; `CAPTURE_ENV` (given to the daemon's environment) tells it to start at once.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import deque
from pathlib import Path

CAPTURE_ENV = {"OPENCV_FFMPEG_CAPTURE_OPTIONS": "f;mjpeg|probesize;32|analyzeduration;0"}
PLAYED_WITHIN_MARGIN_S = 20.0


class FeedProblem(RuntimeError):
    """A clip that cannot be made or was not read by the camera in time."""


def jpeg(image, size: tuple[int, int]) -> bytes:
    import cv2

    frame = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise FeedProblem("OpenCV could not encode a frame as JPEG")
    return encoded.tobytes()


def still(path: Path, size: tuple[int, int]) -> bytes:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise FeedProblem(f"cannot read the image {path}")
    return jpeg(image, size)


def video_frames(path: Path, size: tuple[int, int], limit: int = 3000) -> list[bytes]:
    """Every frame of a video file (at most `limit`, else an error), re-encoded at the stream's size."""
    import cv2

    stream = cv2.VideoCapture(str(path))
    try:
        if not stream.isOpened():
            raise FeedProblem(f"cannot open the video {path}")
        frames = []
        while True:
            ok, image = stream.read()
            if not ok:
                break
            if len(frames) == limit:
                raise FeedProblem(f"the video {path} has more than {limit} frames: shorten it")
            frames.append(jpeg(image, size))
    finally:
        stream.release()
    if not frames:
        raise FeedProblem(f"the video {path} has no frame")
    return frames


class CameraFeed:
    """Writes frames into `fifo` at `fps` from a thread, between `start` and `stop`."""

    def __init__(self, fifo: Path, idle: bytes, fps: float) -> None:
        self.fifo, self.idle, self.period = fifo, idle, 1.0 / fps
        self._clip: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._played = threading.Condition(self._lock)
        self._clips_done = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._feed, name=f"camera-feed:{fifo.name}", daemon=True)
        self.readers = 0  # how many times a reader opened the stream

    def start(self) -> "CameraFeed":
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    def play(self, frames: list[bytes], timeout_s: float) -> None:
        """Queue a clip and return once the camera has read its last frame."""
        with self._played:
            self._clip.extend(frames)
            wanted = self._clips_done + 1
            if not self._played.wait_for(lambda: self._clips_done >= wanted or self._stopping.is_set(), timeout_s):
                raise FeedProblem(f"the camera did not read the clip's {len(frames)} frames within {timeout_s:.0f} s "
                                  f"({len(self._clip)} not read; is the camera open?)")

    def _next(self) -> tuple[bytes, bool]:
        with self._lock:
            if self._clip:
                frame = self._clip.popleft()
                return frame, not self._clip
            return self.idle, False

    def _feed(self) -> None:
        while not self._stopping.is_set():
            fd = self._open()
            if fd is None:
                return
            self.readers += 1
            try:
                next_at = time.monotonic()
                while not self._stopping.is_set():
                    frame, last_of_clip = self._next()
                    os.write(fd, frame)  # blocks while the camera has not read the frame before
                    if last_of_clip:
                        with self._played:
                            self._clips_done += 1
                            self._played.notify_all()
                    next_at = max(next_at + self.period, time.monotonic())
                    self._stopping.wait(next_at - time.monotonic())
            except OSError:
                pass  # the reader went away (EPIPE): wait for the next one
            finally:
                os.close(fd)

    def _open(self) -> int | None:
        """The FIFO's write end once a reader has it open; None when stopping."""
        while not self._stopping.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: nobody reads yet
                    raise
                self._stopping.wait(0.05)
                continue
            os.set_blocking(fd, True)
            return fd
        return None
