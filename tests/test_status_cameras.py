"""`edge status` shows each elevator camera's guard mode and why, its stream's state and, with
the daemon up, the age of its last frame: a real `edge run` reading a clip made from the data
folder's images, whose file is then taken away (the stream ends and cannot be reopened).
`/metrics` gives the operator's monitoring the same per camera, with the frames and the real
base model's inference time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge.config.building import load
from edge.vision.kinds import VisionKind
from edge.journal import EventQuery, read_events
from edge.status.report import render
from edge.status.view import BuildingView
from status_rig import fetch, until
from vision_media import EBIKE, EMPTY_CAR, MODELS, labelled, need_shared, write_clip
from vision_rig import camera_event
from conftest import Daemon, building, edge

pytestmark = pytest.mark.timeout(180)

COLLECT = {"enabled": True, "every_s": 5, "cap_mb": 1}


def lift_cameras(*cameras: dict) -> dict:
    """The building (its page on a free port) with `cameras`."""
    return building({"http": {"port": 0}, "cameras": list(cameras)})


def lift_1(clip: Path) -> dict:
    """Lift 1's camera on `clip`, watching the car's floor and collecting frames."""
    return {"name": "lift-1-cam", "elevator": "lift-1", "source": str(clip), "analysis_fps": 5, "stall_s": 1,
            "region": [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]], "collect": COLLECT}


def _camera_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("camera lift-1-cam"))


async def _until(check, timeout_s: float, what: str):
    """`until` for a check that blocks (runs `edge status`, reads the journal): off the loop."""
    return await until(lambda: asyncio.to_thread(check), timeout_s, what, every_s=0.2)


def test_status_shows_the_camera_mode_reason_stream_and_frame_age_with_and_without_the_daemon(write_config, tmp_path):
    need_shared()
    frames = [EBIKE / EMPTY_CAR] * 100 + labelled("person", 1) * 100  # 20 s at 10 fps
    clip = write_clip(tmp_path / "car.avi", frames, (320, 180), fps=10.0)
    config_path = write_config(lift_cameras(lift_1(clip)))
    config = load(config_path)

    def kinds() -> list[str]:
        if not config.journal_path.exists():
            return []
        return [e.kind for e in read_events(config.journal_path, EventQuery(limit=None))]

    def live_with_a_frame() -> str | None:
        result = edge("status", "--config", str(config_path))
        if result.returncode != 0 or "daemon running" not in result.stdout.splitlines()[0]:
            return None
        line = _camera_line(result.stdout)
        return None if " never " in f" {line} " else result.stdout

    async def scenario():
        daemon = Daemon(config_path, log=tmp_path / "daemon.log").start()
        try:
            out = await _until(live_with_a_frame, 60, "a live `edge status` with the camera's first frame")
            line = _camera_line(out)
            assert "OBSERVE" in line and "no model is configured: the camera only collects frames" in line
            assert "stream ok" in line
            age = line.split()[3]  # camera NAME MODE AGE ...
            assert age.endswith(("s", "min")), line

            clip.unlink()  # the file plays to its end and cannot be opened again: the stream is down
            await _until(lambda: VisionKind.CAMERA_FAULT in kinds(), 60, "fault.camera journaled")
            live = await asyncio.to_thread(edge, "status", "--config", str(config_path))
            line = _camera_line(live.stdout)
            assert "OBSERVE" in line and "stream FAULT: " in line and "no model is configured" in line

            assert await asyncio.to_thread(daemon.stop, timeout_s=20) == 0
        finally:
            daemon.kill()
        offline = await asyncio.to_thread(edge, "status", "--config", str(config_path))
        assert offline.returncode == 0, offline.stderr
        assert "DAEMON NOT RUNNING" in offline.stdout.splitlines()[0]
        line = _camera_line(offline.stdout)
        assert "OBSERVE" in line and "stream FAULT: " in line and "no model is configured" in line
        assert line.split()[3] == "-"  # the journal knows no frame age

    asyncio.run(scenario())




def _cameras(text: str) -> dict[tuple[str, str], dict[str, float]]:
    """{(camera, sample name): value} of the edge_camera_* series, parsed as Prometheus would; mode
    series are keyed by mode, histogram buckets by their bound."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("edge_camera_"):
            continue
        for sample in family.samples:
            labels = dict(sample.labels)
            camera, elevator = labels.pop("camera"), labels.pop("elevator")
            assert elevator == camera.removesuffix("-cam"), sample
            key = labels.get("mode") or labels.get("le") or ""
            found.setdefault((camera, sample.name), {})[key] = sample.value
    return found


def _types(text: str) -> dict[str, str]:
    return {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE edge_camera_")}


def test_metrics_show_each_camera_stream_frames_model_time_and_mode_from_a_real_edge_run(write_config, building_dir, tmp_path):
    """The real base model reads a clip of the data folder's images (an empty car and people,
    alternating, so the motion gate lets the model run); a second camera's file is missing."""
    need_shared()
    manifest, weights = Path(__file__).resolve().parent.parent / "models" / "yolox_nano.yaml", MODELS / "yolox_nano.onnx"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent: the base model is in ../shared/data/models")
    installed = edge("models", "install", str(manifest), "--from", str(weights), "--state-dir", str(building_dir / "state"))
    assert installed.returncode == 0, installed.stderr
    people = labelled("person", 6)
    frames = [EBIKE / EMPTY_CAR if n % 2 == 0 else people[n // 2 % len(people)] for n in range(120)]  # 60 s at 10 fps
    clip = write_clip(tmp_path / "car.avi", frames, (320, 180), fps=10.0, repeat=5)
    model = building_dir / "state" / "models" / "yolox_nano" / "manifest.yaml"
    config_path = write_config(lift_cameras(
        {"name": "lift-1-cam", "elevator": "lift-1", "source": str(clip), "model": str(model), "analysis_fps": 4, "stall_s": 2},
        {"name": "lift-2-cam", "elevator": "lift-2", "source": str(tmp_path / "unplugged.avi"), "stall_s": 1, "collect": COLLECT}))
    endpoint = building_dir / "state" / "http.json"

    async def scrape() -> str:
        status, text = await fetch(json.loads(endpoint.read_text())["url"], "/metrics")
        assert status == 200, text
        return text

    async def scraped(check, timeout_s: float, what: str) -> str:
        """The /metrics text once `check` holds for its cameras."""
        async def ready() -> str | None:
            text = await scrape() if endpoint.exists() else None
            return text if text is not None and check(_cameras(text)) else None

        return await until(ready, timeout_s, what, every_s=0.2)

    def value(cameras, camera: str, name: str, key: str = "") -> float | None:
        return cameras.get((camera, name), {}).get(key)

    def inferences(cameras) -> float:
        return value(cameras, "lift-1-cam", "edge_camera_inference_seconds_count") or 0.0

    async def scenario():
        daemon = Daemon(config_path, log=tmp_path / "daemon.log").start()
        try:
            counters = ("edge_camera_frames_read_total", "edge_camera_frames_analysed_total", "edge_camera_inference_seconds_count")

            def moved_on(since):
                return lambda c: all((value(c, "lift-1-cam", n) or 0) > (value(since, "lift-1-cam", n) or 0) for n in counters)

            first = _cameras(await scraped(moved_on({}), 90, "lift-1-cam's first frames through the base model"))
            text = await scraped(moved_on(first), 60, "more frames read and analysed by the model")
            moved = _cameras(text)

            assert value(moved, "lift-1-cam", "edge_camera_stream_up") == 1.0
            assert value(moved, "lift-1-cam", "edge_camera_frames_read_total") >= value(moved, "lift-1-cam", "edge_camera_frames_analysed_total")
            assert value(moved, "lift-1-cam", "edge_camera_inference_seconds_sum") > value(first, "lift-1-cam", "edge_camera_inference_seconds_sum") > 0
            assert value(moved, "lift-1-cam", "edge_camera_inference_seconds_bucket", "+Inf") == inferences(moved)
            assert value(moved, "lift-1-cam", "edge_camera_last_frame_age_seconds") >= 0
            assert value(moved, "lift-1-cam", "edge_camera_analyses_dropped_total") >= 0
            assert moved[("lift-1-cam", "edge_camera_mode")] == {"observe": 1.0, "hold": 0.0}  # no qualification report
            assert value(moved, "lift-1-cam", "edge_camera_car_held") == 0.0
            assert value(moved, "lift-1-cam", "edge_camera_holds_total") == 0.0
            assert value(moved, "lift-1-cam", "edge_camera_would_hold_total") == 0.0  # persons only: no e-bike confirmed
            assert _types(text) == {
                "edge_camera_stream_up": "gauge", "edge_camera_last_frame_age_seconds": "gauge",
                "edge_camera_frames_read_total": "counter", "edge_camera_frames_analysed_total": "counter",
                "edge_camera_analyses_dropped_total": "counter", "edge_camera_mode": "gauge", "edge_camera_car_held": "gauge",
                "edge_camera_holds_total": "counter", "edge_camera_would_hold_total": "counter",
                "edge_camera_inference_seconds": "histogram",
            }

            down = _cameras(await scraped(lambda c: value(c, "lift-2-cam", "edge_camera_stream_up") == 0.0, 30, "lift-2-cam's stream down"))
            assert value(down, "lift-2-cam", "edge_camera_frames_read_total") == 0.0
            assert ("lift-2-cam", "edge_camera_last_frame_age_seconds") not in down  # it never gave a frame
            assert ("lift-2-cam", "edge_camera_inference_seconds_count") not in down  # no model: it only collects frames
            status, health = await fetch(json.loads(endpoint.read_text())["url"], "/healthz")
            assert status == 503 and "camera lift-2-cam stream down" in json.loads(health)["problems"], health
            assert json.loads(health)["cameras"] == {"lift-1-cam": True, "lift-2-cam": False}

            assert await asyncio.to_thread(daemon.stop, timeout_s=20) == 0
        finally:
            daemon.kill()

    asyncio.run(scenario())


def test_the_view_folds_mode_faults_and_a_new_run(write_config, tmp_path):
    config = load(write_config(lift_cameras(lift_1(tmp_path / "car.avi"))))
    view = BuildingView(config)
    assert "the guard has not started" in render(config, {**view.snapshot(2_000), "source": "journal", "journal": {}})

    reason = "the model is not qualified on this site: 12 e-bike frames < 200"
    for seq, kind, body in [
        (1, VisionKind.VISION_MODE, {"mode": "observe", "reason": reason}),
        (2, VisionKind.CAMERA_FAULT, {"reason": "the stream ended"}),
        (3, VisionKind.VISION_FAULT, {"reason": "the vision worker process ended"}),
    ]:
        view.apply(camera_event(seq, kind, body))
    camera = view.snapshot(2_000)["cameras"][0]
    assert (camera["mode"], camera["reason"], camera["stream"], camera["detail"]) == ("observe", reason, "fault", "the stream ended")
    line = _camera_line(render(config, {**view.snapshot(2_000), "source": "journal", "journal": {}}))
    assert "OBSERVE" in line and "stream FAULT: the stream ended" in line and "model fault: the vision worker process ended" in line

    view.apply(camera_event(4, VisionKind.CAMERA_RESTORED, {"after_s": 2.0}))
    assert view.snapshot(2_000)["cameras"][0]["stream"] == "ok"
    view.apply(camera_event(5, VisionKind.CAMERA_FAULT, {"reason": "no frame for 1 s"}))
    view.apply(camera_event(6, VisionKind.VISION_MODE, {"mode": "hold", "reason": "qualified: recall 0.97 on 412 e-bike frames"}))  # restarted
    camera = view.snapshot(2_000)["cameras"][0]
    assert (camera["mode"], camera["stream"], camera["vision_fault"]) == ("hold", "ok", None)
    assert "HOLD" in _camera_line(render(config, {**view.snapshot(2_000), "source": "journal", "journal": {}}))


def test_a_held_car_is_an_active_alarm_until_its_release_and_a_would_hold_is_shown(write_config, tmp_path):
    config = load(write_config(lift_cameras(lift_1(tmp_path / "car.avi"))))
    view = BuildingView(config)

    def seen() -> tuple[dict, list, str]:
        snapshot = view.snapshot(2_000)
        return snapshot["cameras"][0], snapshot["alarms"], _camera_line(render(config, {**snapshot, "source": "journal", "journal": {}}))

    view.apply(camera_event(1, VisionKind.VISION_MODE, {"mode": "observe", "reason": "not qualified"}))
    view.apply(camera_event(2, VisionKind.ELEVATOR_OBSERVED, {"class": "ebike", "would_hold": True, "snapshot": "vision/snapshots/a.jpg"}))
    camera, alarms, line = seen()
    assert camera["observed"]["class"] == "ebike" and camera["held"] is None and alarms == []
    assert "would have held for a ebike" in line and "OBSERVE" in line

    view.apply(camera_event(3, VisionKind.VISION_MODE, {"mode": "hold", "reason": "qualified"}))
    view.apply(camera_event(4, VisionKind.ELEVATOR_HOLD, {"class": "ebike", "snapshot": "vision/snapshots/b.jpg", "relay_confirmed": True}))
    camera, alarms, line = seen()
    assert camera["held"]["snapshot"] == "vision/snapshots/b.jpg"
    assert [(a["kind"], a["source"]) for a in alarms] == [(VisionKind.ELEVATOR_HOLD, "lift-1-cam")] and "held: ebike" in alarms[0]["text"]
    assert line.split()[2] == "HOLDING" and "car held for a ebike" in line

    view.apply(camera_event(5, VisionKind.ELEVATOR_RELEASED, {"reason": "left", "held_s": 12.0}))
    camera, alarms, line = seen()
    assert camera["held"] is None and alarms == [] and "HOLDING" not in line
    view.apply(camera_event(6, VisionKind.ELEVATOR_HOLD, {"class": "ebike"}))
    view.apply(camera_event(7, VisionKind.VISION_MODE, {"mode": "hold", "reason": "qualified"}))  # a new run let the car go
    assert seen()[1] == []


def test_doctor_grabs_a_frame_from_each_camera_and_names_the_one_that_gives_none(write_config, tmp_path):
    need_shared()
    clip = write_clip(tmp_path / "car.avi", [EBIKE / EMPTY_CAR] * 10, (320, 180), fps=10.0)
    cameras = lift_cameras(lift_1(clip), {"name": "lift-2-cam", "elevator": "lift-2", "source": str(tmp_path / "unplugged.avi")})
    result = edge("doctor", "--config", str(write_config(cameras)))
    assert result.returncode == 1, result.stdout  # lift-2's camera gives nothing
    lines = result.stdout.splitlines()
    good = next(line for line in lines if "camera lift-1-cam" in line)
    bad = next(line for line in lines if "camera lift-2-cam" in line)
    assert "PASS" in good and "delivers frames (320x180)" in good, result.stdout
    assert "FAIL" in bad and "unplugged.avi" in bad, result.stdout


def test_inference_times_land_in_the_first_bucket_that_holds_them_and_a_camera_without_a_guard_shows_only_its_stream():
    from edge.status.metrics import CameraSample, cameras
    from edge.vision.guard import InferenceTimes

    times = InferenceTimes()
    for seconds in (0.004, 0.005, 0.0051, 0.3, 60.0):
        times.add(seconds)
    held = CameraSample("lift-1", True, "hold", True, 0.2, 10, 4, 1, 2, 3, times.buckets(), times.sum_s)
    unstarted = CameraSample("lift-2", False, None, False, None, 0, 0, 0, 0, 0, [], 0.0)
    families = {family.name: family for family in cameras({"lift-1-cam": held, "lift-2-cam": unstarted})}
    buckets = {s.labels["le"]: s.value for s in families["edge_camera_inference_seconds"].samples if s.name.endswith("_bucket")}
    assert (buckets["0.005"], buckets["0.01"], buckets["0.5"], buckets["5.0"], buckets["+Inf"]) == (2, 3, 4, 4, 5)  # le: at most
    assert families["edge_camera_car_held"].samples[0].value == 1.0 and families["edge_camera_holds"].samples[0].value == 2
    assert families["edge_camera_would_hold"].samples[0].value == 3
    assert {s.labels["camera"]: s.value for s in families["edge_camera_stream_up"].samples} == {"lift-1-cam": 1.0, "lift-2-cam": 0.0}
    for name, family in families.items():
        if name != "edge_camera_stream_up":
            assert all(s.labels["camera"] == "lift-1-cam" for s in family.samples), name
