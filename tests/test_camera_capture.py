"""Capture from real video files made from the data folder's images: newest frame only,
faults on a stream that ends, breaks or is missing, and reopening with backoff."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from edge.drivers.camera.capture import Capture, CameraFault, CameraRestored, grab_one
from edge.hil.waiting import until_sync
from vision_media import EMPTY_CAR, EBIKE, labelled, need_shared, write_clip


class Seen:
    """What the capture reported, for tests to wait on."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.changed = threading.Condition()

    def __call__(self, observation: object) -> None:
        with self.changed:
            self.events.append(observation)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout_s: float = 20.0, what: str = "") -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.events), timeout_s):
                raise AssertionError(f"within {timeout_s} s: {what or 'the expected observation'} did not happen; saw {self.events}")

    def count(self, kind) -> int:
        return sum(isinstance(e, kind) for e in self.events)


def frames_until(capture: Capture, predicate, timeout_s: float = 20.0):
    """Take newest frames until one satisfies `predicate`; returns the frames taken."""
    taken = []

    def met() -> bool:
        frame = capture.latest(taken[-1].seq if taken else 0, timeout_s=1.0)  # blocks up to 1 s for a newer one
        if frame is not None:
            taken.append(frame)
        return frame is not None and predicate(frame)

    until_sync(met, timeout_s, lambda: f"a frame meeting the condition (took {[f.seq for f in taken]})", every_s=0)
    return taken


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    need_shared()
    return write_clip(tmp_path / "car.avi", [EBIKE / EMPTY_CAR] + labelled("ebike", 4), fps=25.0, repeat=5)


def test_frames_come_with_timestamps_and_the_ended_file_is_reopened(clip: Path):
    seen = Seen()
    capture = Capture(str(clip), seen, stall_s=2.0, backoff_s=(0.05, 0.2))
    capture.start()
    try:
        first = frames_until(capture, lambda f: True)[0]
        assert first.image.shape == (180, 320, 3) and first.wall > 0 and first.mono <= time.monotonic()
        seen.wait_for(lambda e: any(isinstance(x, CameraFault) for x in e), what="the end of the file reported")
        assert seen.events[0] == CameraFault(str(clip), "the stream ended")
        seen.wait_for(lambda e: any(isinstance(x, CameraRestored) for x in e), what="the reopened file delivering")
        frames = frames_until(capture, lambda f: f.seq > 25)  # frames of the second pass (the clip has 25)
        assert capture.opened >= 2 and frames[-1].seq > 25
    finally:
        assert capture.stop()


def test_only_the_newest_frame_is_kept(clip: Path):
    capture = Capture(str(clip), Seen(), stall_s=2.0, backoff_s=(0.05, 0.2), file_fps=200.0)
    capture.start()
    try:
        first = capture.latest(0, timeout_s=10.0)
        assert first is not None
        frames_until(capture, lambda f: f.seq >= first.seq + 10)  # the reader got well ahead of us
        newest = capture.latest(first.seq, timeout_s=10.0)
        assert newest is not None and newest.seq > first.seq + 1  # frames we did not take were dropped, not queued
    finally:
        assert capture.stop()


def test_a_truncated_file_is_a_fault_and_is_reopened(clip: Path, tmp_path: Path):
    broken = tmp_path / "broken.avi"
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the recorder died mid-write
    seen = Seen()
    capture = Capture(str(broken), seen, stall_s=2.0, backoff_s=(0.05, 0.2), file_fps=100.0)
    capture.start()
    try:
        seen.wait_for(lambda e: sum(isinstance(x, CameraRestored) for x in e) >= 1, what="the broken file read again after its fault")
        assert isinstance(seen.events[0], CameraFault) and capture.opened >= 2
    finally:
        assert capture.stop()


def test_a_missing_source_is_a_fault_until_it_appears(clip: Path, tmp_path: Path):
    later = tmp_path / "later.avi"
    seen = Seen()
    capture = Capture(str(later), seen, stall_s=2.0, backoff_s=(0.05, 0.1))
    capture.start()
    try:
        seen.wait_for(lambda e: len(e) >= 1, what="the missing file reported")
        assert seen.events == [CameraFault(str(later), "no such file")]
        later.write_bytes(clip.read_bytes())
        seen.wait_for(lambda e: any(isinstance(x, CameraRestored) for x in e), what="the file that appeared read")
        assert capture.latest(0, timeout_s=10.0) is not None
    finally:
        assert capture.stop()


def test_watchdog_reports_a_stream_that_stops_delivering(tmp_path: Path):
    """A camera that gives nothing (here: a source that never opens, retried slowly) is a fault
    after stall_s even while the reader is between attempts."""
    seen = Seen()
    capture = Capture(str(tmp_path / "none.avi"), seen, stall_s=0.3, backoff_s=(30.0, 30.0))
    capture.start()
    try:
        assert capture.latest(0, timeout_s=1.0) is None
        assert capture.faulted and seen.count(CameraFault) == 1  # reported once, not once per wait
    finally:
        assert capture.stop()


def test_image_sequence_and_a_snapshot_from_a_second_stream(tmp_path: Path):
    import cv2

    need_shared()
    for i, image in enumerate(labelled("ebike", 3)):
        cv2.imwrite(str(tmp_path / f"{i:04d}.jpg"), cv2.resize(cv2.imread(str(image)), (320, 180)))
    capture = Capture(str(tmp_path / "%04d.jpg"), Seen(), stall_s=2.0, backoff_s=(0.05, 0.2))
    capture.start()
    try:
        assert capture.latest(0, timeout_s=10.0).image.shape == (180, 320, 3)
    finally:
        assert capture.stop()
    main = write_clip(tmp_path / "main.avi", labelled("ebike", 1), size=(1280, 720), repeat=2)
    assert grab_one(str(main)).shape == (720, 1280, 3)
    assert grab_one(str(tmp_path / "absent.avi")) is None


def test_frames_before_the_next_analysis_are_grabbed_but_not_converted(clip: Path):
    """Converting a 1080p frame to BGR costs milliseconds: a frame nobody will analyse is only grabbed."""
    capture = Capture(str(clip), Seen(), stall_s=2.0, backoff_s=(0.05, 0.2), file_fps=200.0)
    due = time.monotonic() + 3600.0
    capture.want_from(due)
    capture.start()
    try:
        until_sync(lambda: capture.grabbed >= 10, 20.0, lambda: f"10 frames grabbed (only {capture.grabbed})")
        assert capture.retrieved == 0 and capture.latest(0, timeout_s=0.0) is None
        capture.want_from(time.monotonic())  # the analysis is due now
        frame = capture.latest(0, timeout_s=10.0)
        assert frame is not None and frame.seq > 10 and capture.retrieved >= 1
    finally:
        assert capture.stop()



def test_prepare_runs_in_the_reader_thread_and_a_failing_one_leaves_the_frame_to_the_consumer(clip: Path):
    """The model's resizing runs beside the model, in the reader; what it raises never ends the reader."""
    threads: set[str] = set()
    calls = {"n": 0}

    def prepare(image):
        threads.add(threading.current_thread().name)
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise ValueError("a model input that cannot be made")
        return image.shape

    capture = Capture(str(clip), Seen(), stall_s=2.0, backoff_s=(0.05, 0.2), prepare=prepare)
    capture.start()
    try:
        taken = frames_until(capture, lambda f: f.seq >= 8)
    finally:
        assert capture.stop()
    assert threads and all(name.startswith("camera:") for name in threads), threads
    assert threading.current_thread().name not in threads
    assert {f.prepared for f in taken} >= {None} and any(f.prepared == f.image.shape for f in taken), [f.prepared for f in taken]
    assert all(f.prepared in (None, f.image.shape) for f in taken)


def test_a_stream_asks_for_hardware_decoding_and_says_which_decoding_it_got(clip: Path):
    """Hardware decoding where the box has it (VA-API, DRM, QSV), software where it has none: either
    way the frames come and the capture names the decoding in use."""
    capture = Capture(str(clip), Seen(), stall_s=2.0, backoff_s=(0.05, 0.2))
    capture.start()
    try:
        assert capture.latest(0, timeout_s=10.0) is not None
        assert capture.decoding in ("software", "vaapi", "drm", "mfx", "d3d11")
        if not Path("/dev/dri").exists():  # no GPU to decode with: OpenCV's own fallback
            assert capture.decoding == "software"
    finally:
        assert capture.stop()
