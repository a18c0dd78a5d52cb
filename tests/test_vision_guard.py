"""The elevator guard end to end on real clips: observe mode versus a qualified hold, the voice
warning and the snapshot, and every way a hold ends (left, time limit, fire, operator, camera fault).

The clips are made in the test from the data folder's real images. The model is a test double,
`LabelledDetector`, which knows each image's label and answers as a perfect detector would: it
tests the pipeline's logic (gate, confirmation, actions), not a model's quality. The real base
model runs end to end in `test_the_real_base_model_runs_in_the_guard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from edge.hil.waiting import NotReached, until
from edge.vision.settings import Camera
from edge.vision.kinds import VisionKind
from edge.journal import EventQuery, Journal, read_events
from edge.vision.detection import Detection
from edge.vision.guard import ElevatorGuard
from edge.vision.qualification import Verdict, file_sha256, verdict
from edge.vision.wiring import release_request
from vision_media import MODELS, labelled, write_clip
from vision_rig import SIZE, LabelledDetector, Relay, Rig, Serve, camera, site_model, visit, wait_for_file
from conftest import in_background

def test_observe_mode_journals_what_it_would_do_with_a_snapshot_and_holds_nothing(tmp_path, media):
    clip, ebikes = visit(tmp_path, media, after=30)

    async def scenario():
        async with Rig(tmp_path, camera(tmp_path, clip), False, ebikes) as rig:
            mode = (await rig.wait_for(VisionKind.VISION_MODE))[0]
            observed = (await rig.wait_for(VisionKind.ELEVATOR_OBSERVED))[0]
            assert rig.guard.worker_pid is not None
            pid = rig.guard.worker_pid
            autogroup = Path(f"/proc/{pid}/autogroup")
            worker = (os.getpriority(os.PRIO_PROCESS, pid), os.getsid(pid),
                      autogroup.read_text() if autogroup.exists() else None)
            return rig, mode, observed, worker

    rig, mode, observed, (worker_nice, worker_session, worker_autogroup) = asyncio.run(scenario())
    wait_for_file(tmp_path / "state" / observed.body["snapshot"])
    assert mode.body == {"camera": "lift-1-cam", "elevator": "lift-1", "mode": "observe", "reason": "not qualified (test)",
                         "reasons": ["not qualified (test)"]}
    assert observed.body["class"] == "ebike" and observed.body["would_hold"] and observed.body["why_not"] == "not qualified (test)"
    snapshot = tmp_path / "state" / observed.body["snapshot"]
    assert snapshot.is_file() and 0 < snapshot.stat().st_size <= 300 * 1024 and snapshot.read_bytes()[:2] == b"\xff\xd8"
    assert rig.relay.writes == [] and not (tmp_path / "played").exists()
    assert (rig.guard.holds, rig.guard.would_hold) == (0, 1)  # what /metrics counts
    assert worker_nice > os.getpriority(os.PRIO_PROCESS, 0), "vision runs below the access path"
    # its own session, so its CPU is charged to an autogroup of its own (lowered too), not the daemon's
    assert worker_session != os.getsid(0)
    # the kernel says nothing of autogroups for a task in a cgroup of its own (a container, a
    # systemd service with the cpu controller): there the cgroup is the group, and nice does it
    own = Path("/proc/self/autogroup").read_text() if Path("/proc/self/autogroup").exists() else ""
    if worker_autogroup and own:
        assert worker_autogroup.split()[0] != own.split()[0], (worker_autogroup, own)
        assert int(worker_autogroup.split()[-1]) > int(own.split()[-1]), worker_autogroup


def test_qualified_hold_warns_and_releases_when_the_ebike_has_left(tmp_path, media):
    clip, ebikes = visit(tmp_path, media, after=40)

    async def scenario():
        async with Rig(tmp_path, camera(tmp_path, clip), True, ebikes) as rig:
            hold = (await rig.wait_for(VisionKind.ELEVATOR_HOLD))[0]
            released = (await rig.wait_for(VisionKind.ELEVATOR_RELEASED))[0]
            return rig, hold, released

    rig, hold, released = asyncio.run(scenario())
    assert hold.body["relay_confirmed"] is True and hold.body["snapshot"].startswith("vision/snapshots/lift-1-cam/")
    wait_for_file(tmp_path / "state" / hold.body["snapshot"])
    assert released.body["reason"] == "left"
    assert rig.relay.writes[:2] == ["release_7", "secure_7"]
    assert (tmp_path / "played").read_text().strip() == str(tmp_path / "warning.wav")
    assert rig.guard.hold_latencies_s


def test_an_empty_still_car_runs_no_inference(tmp_path, media):
    empty, ebikes = media
    clip = write_clip(tmp_path / "car.avi", [empty] * 100, SIZE)

    async def scenario():
        async with Rig(tmp_path, camera(tmp_path, clip), True, ebikes) as rig:
            await rig.wait_for(VisionKind.VISION_MODE)
            await until(lambda: rig.guard.frames_seen >= 20, 30, "20 frames at the gate")
            return rig

    rig = asyncio.run(scenario())
    assert rig.guard.frames_analysed <= 1, "only the first frame (nothing known of the car yet) goes to the model"


@pytest.mark.parametrize("how", ["fire", "operator", "time_limit", "camera_fault"])
def test_a_hold_ends_at_once_on_fire_operator_time_limit_and_camera_fault(tmp_path, media, how):
    empty, ebikes = media
    frames = 150 if how != "camera_fault" else 40  # the e-bike stays (15 s), or the stream ends while it is there
    clip = write_clip(tmp_path / "car.avi", [empty] * 5 + ebikes * (frames // 2), SIZE)
    cam = camera(tmp_path, clip, max_hold_s=1.0 if how == "time_limit" else 60.0, stall_s=5 if how == "camera_fault" else 2)

    async def scenario():
        async with Rig(tmp_path, cam, True, ebikes) as rig:
            await rig.wait_for(VisionKind.ELEVATOR_HOLD)
            answer = None
            if how == "fire":
                rig.fire = True
                rig.guard.fire_changed(True)
            elif how == "operator":
                answer = await release_request({"lift-1-cam": rig.guard}, {"operator": "tech-7", "reason": "stuck", "elevator": "lift-1"})
            released = (await rig.wait_for(VisionKind.ELEVATOR_RELEASED))[0]
            # The e-bike is still in the car: more frames are analysed, and none holds it again.
            analysed = rig.guard.frames_analysed
            if how != "camera_fault":
                await until(lambda: rig.guard.frames_analysed >= analysed + 10, 30, "10 more frames analysed")
            holds = [e for e in await rig.events() if e.kind == VisionKind.ELEVATOR_HOLD]
            return rig, released, answer, holds

    rig, released, answer, holds = asyncio.run(scenario())
    assert released.body["reason"] == how
    assert rig.relay.writes[:2] == ["release_7", "secure_7"]
    if how != "camera_fault":
        assert len(holds) == 1, "not held again while the same e-bike stays"
    if how == "operator":
        assert answer["ok"] and answer["released"][0]["was_holding"] and "result_seq" in answer
    if how == "camera_fault":
        assert any(e.kind == VisionKind.CAMERA_FAULT for e in asyncio.run(_read(tmp_path / "journal.db")))


async def _read(path: Path) -> list:
    return read_events(path, EventQuery(limit=None))


def test_an_unconfirmed_hold_relay_is_an_alarm(tmp_path, media):
    empty, ebikes = media
    clip = write_clip(tmp_path / "car.avi", [empty] * 5 + ebikes * 30, SIZE)

    async def scenario():
        async with Rig(tmp_path, camera(tmp_path, clip), True, ebikes, Relay(refuse=frozenset({"release_7"}))) as rig:
            alarm = (await rig.wait_for(VisionKind.ELEVATOR_RELAY_UNCONFIRMED))[0]
            hold = (await rig.wait_for(VisionKind.ELEVATOR_HOLD))[0]
            return alarm, hold

    alarm, hold = asyncio.run(scenario())
    assert alarm.body["command"] == "release_7" and hold.body["relay_confirmed"] is False


def test_release_request_checks_its_input():
    async def scenario():
        return (
            await release_request({}, {"reason": "x"}),
            await release_request({}, {"operator": "tech", "elevator": "nowhere"}),
        )

    no_operator, unknown = asyncio.run(scenario())
    assert not no_operator["ok"] and "operator" in no_operator["error"]
    assert not unknown["ok"] and "nowhere" in unknown["error"]


def test_qualification_needs_a_report_of_this_model_with_enough_frames(tmp_path):
    manifest = site_model(tmp_path / "site-model")
    report = tmp_path / "eval.json"
    hold = {"device": "io-lift", "hold": "release_7", "resume": "secure_7"}

    def judge(holds: tuple[str, ...] = ("ebike",), **figures) -> Verdict:
        body = {"manifest_sha256": file_sha256(manifest), "hold_classes": ["ebike"], "ebike_recall": {"k": 390, "n": 400, "rate": 0.975},
                "false_hold_rate": {"k": 2, "n": 600, "rate": 0.0033}}
        body.update(figures)
        report.write_text(json.dumps(body))
        cam = Camera.model_validate({"name": "c", "source": "x", "model": manifest, "hold": hold, "qualification": {"report": report},
                                     "hold_classes": list(holds)})
        return verdict(cam)

    assert judge().may_hold
    assert not judge(false_hold_rate={"k": 2, "n": 19, "rate": 0.0}).may_hold  # 19 negatives show nothing
    assert "recall" in judge(ebike_recall={"k": 300, "n": 400, "rate": 0.75}).reason
    assert "another model" in judge(manifest_sha256="0" * 64).reason
    assert "unreadable" in judge(ebike_recall=None).reason
    assert "unreadable" in judge(hold_classes=None).reason
    # a report that judged e-bike holds only says nothing of the wheelchairs a motorcycle hold would stop
    other = judge(("motorcycle", "ebike"))
    assert not other.may_hold and "judged holds on ebike, this camera holds on ebike, motorcycle" in other.reason
    assert judge(("motorcycle", "ebike"), hold_classes=["motorcycle", "ebike"]).may_hold
    unqualified = verdict(Camera.model_validate({"name": "c", "source": "x", "model": manifest, "hold": hold}))
    assert not unqualified.may_hold and "no eval report" in unqualified.reason
    assert "no hold relay" in verdict(Camera.model_validate({"name": "c", "source": "x", "model": manifest})).reason


class BaseModel:
    """Loads YOLOX-nano from the shared folder in the worker process."""

    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest

    def __call__(self):
        from edge.vision.runtime import load_detector

        return load_detector(self.manifest, 1, model_file=MODELS / "yolox_nano.onnx")


def test_the_real_base_model_runs_in_the_guard(tmp_path, media):
    """YOLOX-nano (COCO) through the models branch's runtime: the pipeline runs it on real frames
    in observe mode. COCO knows no e-bike, so this checks the wiring, not the recall."""
    pytest.importorskip("edge.vision.runtime", reason="edge/vision/runtime.py (the models branch) is not merged yet")

    manifest = Path(__file__).resolve().parent.parent / "models" / "yolox_nano.yaml"
    if not manifest.is_file() or not (MODELS / "yolox_nano.onnx").is_file():
        pytest.skip("models/yolox_nano.yaml or ../shared/data/models/yolox_nano.onnx is absent")
    empty, ebikes = media
    clip = write_clip(tmp_path / "car.avi", [empty] * 3 + labelled("person", 3) * 3, (640, 360))
    cam = camera(tmp_path, clip, model=manifest)

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        guard = ElevatorGuard(cam, journal, Relay(), tmp_path / "state", Verdict(False, "test"), BaseModel(manifest))
        try:
            async with in_background(guard.run()) as task:
                with contextlib.suppress(NotReached):  # fewer frames, or a worker that ended, is judged below
                    await until(lambda: guard.frames_analysed >= 3 or task.done(), 30, "three frames analysed")
                kinds = [e.kind for e in read_events(journal.path, EventQuery(limit=None))]
                return guard.frames_analysed, kinds
        finally:
            await journal.close()

    analysed, kinds = asyncio.run(scenario())
    assert analysed >= 3, f"the real model analysed {analysed} frames; journal: {kinds}"
    assert VisionKind.VISION_FAULT not in kinds


def test_a_killed_worker_releases_the_hold_and_the_guard_ends_for_the_supervisor(tmp_path, media):
    """The worker process dies (OOM killer, a crash in a decoder): the car is let go at once,
    the fault journaled, and run() fails so the supervisor starts a new worker."""
    import signal

    from edge.vision.guard import WorkerGone

    empty, ebikes = media
    clip = write_clip(tmp_path / "car.avi", [empty] * 5 + ebikes * 75, SIZE)

    async def scenario():
        async with Rig(tmp_path, camera(tmp_path, clip), True, ebikes) as rig:
            await rig.wait_for(VisionKind.ELEVATOR_HOLD)
            os.kill(rig.guard.worker_pid, signal.SIGKILL)
            released = (await rig.wait_for(VisionKind.ELEVATOR_RELEASED))[0]
            fault = (await rig.wait_for(VisionKind.VISION_FAULT))[0]
            with pytest.raises(WorkerGone):
                await asyncio.wait_for(asyncio.shield(rig.task), 10)
            return rig, released, fault

    rig, released, fault = asyncio.run(scenario())
    assert released.body["reason"] == "camera_fault" and "worker" in fault.body["reason"]
    assert rig.relay.writes[:2] == ["release_7", "secure_7"]


def test_the_worker_ends_when_the_daemon_is_gone(tmp_path, media):
    """The daemon's end of the pipe closes (a SIGKILLed daemon): the worker exits by itself."""
    import multiprocessing

    from edge.vision import worker
    from edge.vision.pipe import Analysed

    empty, ebikes = media
    clip = write_clip(tmp_path / "car.avi", [empty] * 50, SIZE)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=worker.run, args=(worker.WorkerSpec(camera(tmp_path, clip), tmp_path, Serve(LabelledDetector(ebikes))), theirs))
    process.start()
    theirs.close()
    assert ours.poll(30), "the worker sent nothing within 30 s"
    assert isinstance(ours.recv(), Analysed)
    ours.close()
    process.join(15)
    assert process.exitcode == 0, "the worker outlived the daemon"


def test_a_full_state_disk_costs_the_snapshots_and_collected_frames_not_the_guard(tmp_path, media):
    """On a full disk the worker cannot write a JPEG: it says so and goes on; the observation is
    journaled (the journal is on its own disk here) and once space is back the next one has its
    snapshot. Collect mode meets the same full disk on every motion frame."""
    from journal_disk import mount_small_disk

    disk_gen = mount_small_disk(tmp_path / "state", size="2m")
    disk = next(disk_gen)
    try:
        empty, ebikes = media
        cycle = [empty] * 10 + ebikes * 10 + [empty] * 20
        clip = write_clip(tmp_path / "car.avi", cycle * 6, SIZE)
        cam = camera(tmp_path, clip, collect={"enabled": True, "every_s": 0.5, "cap_mb": 1})
        disk.fill()

        async def scenario():
            async with Rig(tmp_path, cam, False, ebikes) as rig:
                first = (await rig.wait_for(VisionKind.ELEVATOR_OBSERVED))[0]
                seen = rig.guard.frames_seen
                await rig.wait_for(VisionKind.VISION_MODE)
                # the worker goes on after the failed writes
                await until(lambda: rig.guard.frames_seen >= seen + 10, 20, "the worker analysing on a full disk")
                unsaved = not (tmp_path / "state" / first.body["snapshot"]).exists()
                disk.free()
                second = (await rig.wait_for(VisionKind.ELEVATOR_OBSERVED, count=2, timeout_s=60))[1]
                faults = [e for e in await rig.events() if e.kind == VisionKind.VISION_FAULT]
                return first, second, unsaved, faults

        first, second, unsaved, faults = asyncio.run(scenario())
        assert unsaved, "nothing could be written on the full disk"
        wait_for_file(tmp_path / "state" / second.body["snapshot"])
        assert faults == [], "a full disk is not the model failing"
    finally:
        next(disk_gen, None)


class BrokenDetector:
    """TEST DOUBLE of a model that fails on every frame (a corrupt weight, an unexpected input)."""

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        raise RuntimeError("ONNXRuntimeError: invalid input shape")


def test_a_model_failing_on_every_frame_is_one_fault_a_minute_and_the_camera_goes_on(tmp_path, media):
    empty, ebikes = media
    clip = write_clip(tmp_path / "car.avi", ([empty] * 3 + ebikes * 3) * 40, SIZE)

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        guard = ElevatorGuard(camera(tmp_path, clip), journal, relay, tmp_path / "state", Verdict(True, "test"),
                              Serve(BrokenDetector()))
        try:
            async with in_background(guard.run()) as task:
                def analysed() -> bool:  # three seconds of frames, each one failing in the model
                    assert not task.done(), f"{guard.frames_seen} frames"
                    return guard.frames_seen >= 30

                await until(analysed, 30, lambda: f"30 frames analysed ({guard.frames_seen})")
                return [e for e in read_events(journal.path, EventQuery(limit=None)) if e.kind == VisionKind.VISION_FAULT]
        finally:
            await journal.close()

    relay = Relay()
    faults = asyncio.run(scenario())
    assert len(faults) == 1 and "the model failed on a frame: RuntimeError" in faults[0].body["reason"], faults
    assert relay.writes == [], "a failing model holds nothing"
