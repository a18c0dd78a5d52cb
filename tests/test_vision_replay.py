"""`edge vision replay`: the guard's pipeline on a clip made from the data folder's real images,
written back with the region, boxes and states drawn.

The CLI test runs the real base model (YOLOX-nano, COCO, onnxruntime at 1 thread) from the
repository's manifest; COCO knows no e-bike, so it checks the pipeline and the drawing. The
confirmation counts are checked with a test double that finds an e-bike exactly in the e-bike
frames, as tests/test_vision_guard.py does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config import building as building_config
from edge.cli import main
from edge.vision.detection import Detection, VisionClass
from edge.vision.replay import REGION_COLOUR, replay
from conftest import building
from vision_media import EBIKE, EMPTY_CAR, MODELS, labelled, need_shared, read, write_clip
from vision_rig import lift_camera

MANIFEST = Path(__file__).resolve().parent.parent / "models" / "yolox_nano.yaml"
SIZE = (640, 360)
REGION = [(0.1, 0.5), (0.9, 0.5), (0.9, 1.0), (0.1, 1.0)]


def replay_building(clip: Path, model: Path = MANIFEST) -> dict:
    """Lift 1's camera on `clip`, analysed at 5 fps with `model` over the car's floor."""
    return building({"cameras": [lift_camera(clip, analysis_fps=5, model=str(model), region=[list(corner) for corner in REGION])]})


def frames_of(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"cannot open {path}"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """10 fps: an empty car 2 s, people 1.5 s, an e-bike 2 s, empty again 2 s (the car stands still)."""
    need_shared()
    empty = EBIKE / EMPTY_CAR
    sequence = [empty] * 20 + [p for p in labelled("person", 3) for _ in range(5)] + [labelled("ebike", 1)[0]] * 20 + [empty] * 20
    return write_clip(tmp_path / "car.avi", sequence, SIZE, fps=10.0)


def test_replay_writes_the_annotated_clip_with_the_real_base_model(tmp_path, write_config, clip, capsys):
    if not MANIFEST.is_file() or not (MODELS / "yolox_nano.onnx").is_file():
        pytest.skip(f"{MANIFEST} or {MODELS / 'yolox_nano.onnx'} is absent: the replay test needs the real base model")
    config = write_config(replay_building(clip))
    out = tmp_path / "annotated.mp4"

    code = main(["vision", "replay", "--config", str(config), "--source", str(clip), "--out", str(out),
                 "--model-file", str(MODELS / "yolox_nano.onnx"), "--threads", "1"])

    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "frames 75 " in printed.out and "confirmations 0" in printed.out
    assert "OBSERVE" in printed.out  # no eval report: the camera only observes today, and the summary says so
    source, written = frames_of(clip), frames_of(out)
    assert len(written) == len(source) == 75
    assert written[0].shape == source[0].shape == (360, 640, 3)
    analysed = int(printed.out.split("analysed ")[1].split(",")[0])
    assert 0 < analysed < 75 // 2  # 5 of the clip's 10 fps at most, and the still car is gated off

    import cv2

    outline = np.zeros(SIZE[::-1], dtype=np.uint8)
    corners = np.array([[round(x * (SIZE[0] - 1)), round(y * (SIZE[1] - 1))] for x, y in REGION], dtype=np.int32)
    cv2.polylines(outline, [corners], isClosed=True, color=1, thickness=1)
    on_edge = outline.astype(bool)
    for before, after in ((source[0], written[0]), (source[40], written[40])):
        diff = np.abs(after.astype(int) - before.astype(int))[on_edge].mean()
        assert diff > 30, f"the region is not drawn (mean difference {diff:.1f} on its outline)"
        drawn = after[on_edge].astype(int).mean(axis=0)
        assert np.all(np.abs(drawn - np.array(REGION_COLOUR)) < 70), f"outline colour {drawn} is not the region's"


class EbikeFrames:
    """TEST DOUBLE of a detector: an e-bike standing on the floor exactly in the e-bike frames
    (recognised by thumbnail), a person elsewhere when something is in the car."""

    def __init__(self, ebike: Path) -> None:
        self.reference = _thumb(read(ebike, SIZE))
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        self.calls += 1
        if np.abs(_thumb(frame) - self.reference).mean() < 12:
            return [Detection(VisionClass.EBIKE, 0.9, (200.0, 150.0, 440.0, 340.0))]
        return []


def _thumb(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, (16, 9), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_replay_counts_the_confirmations_and_holds_the_guard_would_make(tmp_path, write_config, clip):
    config = building_config.load(write_config(replay_building(clip)))
    camera = config.cameras[0].model_copy(update={"leave_s": 1.0})
    detector = EbikeFrames(labelled("ebike", 1)[0])

    summary = replay(camera, clip, tmp_path / "annotated.avi", detector)

    assert summary.frames == 75 and summary.size == SIZE
    assert summary.analysed == detector.calls
    assert summary.confirmations == 1 and summary.holds == 1  # one e-bike, confirmed once, held as a qualified model would
    assert dict(summary.releases) == {"left": 1}  # released once it had been gone leave_s
    assert len(frames_of(tmp_path / "annotated.avi")) == 75


def test_replay_refuses_a_missing_clip_and_an_unwritable_out(tmp_path, write_config, capsys):
    config = write_config(replay_building(tmp_path / "none.avi"))

    assert main(["vision", "replay", "--config", str(config), "--source", str(tmp_path / "none.avi"), "--out", str(tmp_path / "a.mp4")]) == 66
    assert "no clip" in capsys.readouterr().err


def test_replay_refuses_a_file_that_is_no_video_and_an_out_it_cannot_write(tmp_path, write_config, clip, capsys):
    if not (MODELS / "yolox_nano.onnx").is_file():
        pytest.skip(f"{MODELS / 'yolox_nano.onnx'} is absent: the replay test needs the real base model")
    config = write_config(replay_building(clip))
    base = ["vision", "replay", "--config", str(config), "--model-file", str(MODELS / "yolox_nano.onnx")]
    text = tmp_path / "notes.avi"
    text.write_text("not a video")

    assert main([*base, "--source", str(text), "--out", str(tmp_path / "a.mp4")]) == 66
    assert "notes.avi" in capsys.readouterr().err
    assert main([*base, "--source", str(clip), "--out", str(tmp_path / "a.txt")]) == 73
    assert "write .mp4 or .avi" in capsys.readouterr().err
    assert not (tmp_path / "a.txt").exists()
