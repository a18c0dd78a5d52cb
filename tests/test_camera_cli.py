"""Collect mode and its dataset round trip, `edge vision status`, the gateway's wiring of a camera,
and `edge elevator release` through the real control socket."""

from __future__ import annotations

import asyncio
import contextlib
import csv
from pathlib import Path

import pytest

from edge.hil.waiting import NotReached, until
from edge.config import building as building_config
from edge.cli import main
from edge.runtime.control import ControlServer, ask
from edge.vision.kinds import VisionKind
from edge.gateway import Gateway
from edge.journal import EventQuery, Journal, read_events
from edge.vision.collect import CLASSES
from edge.vision.guard import ElevatorGuard
from edge.vision.qualification import Verdict
from edge.vision.wiring import assemble_vision
from conftest import building, in_background
from vision_rig import FLOOR, lift_camera, lift_io
from vision_media import EBIKE, EMPTY_CAR, labelled, need_shared, write_clip



def camera_config(write_config, clip: Path) -> Path:
    return write_config(building({"cameras": [lift_camera(clip, analysis_fps=10, region=[list(corner) for corner in FLOOR],
                                                          collect={"enabled": True, "every_s": 0.5, "cap_mb": 1})]}))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    need_shared()
    frames = []
    for image in labelled("ebike", 6):  # something moves on the floor in every second of the clip
        frames += [EBIKE / EMPTY_CAR] * 5 + [image] * 5
    return write_clip(tmp_path / "car.avi", frames, (320, 180))


def test_collect_export_label_import(tmp_path, write_config, clip, capsys):
    path = camera_config(write_config, clip)
    config = building_config.load(path)
    collected = config.state_path / "vision" / "collect" / "lift-1-cam"

    async def collect():
        journal = await Journal.open(tmp_path / "journal.db")
        vision = assemble_vision(config, journal, None, None)
        assert list(vision.work) == ["camera:lift-1-cam"] and vision.control.keys() == {"elevator.release", "elevator.review"}
        guard = vision.guards["lift-1-cam"]
        try:
            async with in_background(guard.run()):
                with contextlib.suppress(NotReached):  # fewer than 3 is judged below, with what was seen
                    await until(lambda: len(list(collected.glob("*.jpg"))) >= 3, 20, "three frames collected")
                seen = guard.frames_seen
        finally:
            await journal.close()
        return seen

    seen = asyncio.run(collect())
    saved = sorted(collected.glob("*.jpg"))
    assert len(saved) >= 3, "motion frames are collected"
    assert len(saved) <= seen / 2, "rate-limited: not every motion frame (every_s 0.5 at 10 fps)"
    assert sum(p.stat().st_size for p in saved) <= 1024 * 1024

    out = tmp_path / "dataset"
    assert main(["vision", "export", "-c", str(path), "--out", str(out)]) == 0
    images = sorted((out / "images").glob("*.jpg"))
    assert len(images) == len(saved) and (out / "classes.txt").read_text().split() == CLASSES
    assert all((out / "labels" / f"{i.stem}.txt").read_text() == "" for i in images)
    assert main(["vision", "export", "-c", str(path), "--out", str(out)]) == 73, "never into a folder that holds a dataset"

    # A labeller marks an e-bike in the first frame and a bad line in the second.
    (out / "labels" / f"{images[0].stem}.txt").write_text("0 0.5 0.7 0.3 0.4\n")
    (out / "labels" / f"{images[1].stem}.txt").write_text("9 0.5 0.5 2.0\n")
    site = tmp_path / "site"
    capsys.readouterr()
    assert main(["vision", "import", str(out), "--out", str(site)]) == 65
    err = capsys.readouterr().err
    assert f"{images[1].stem}.txt:1:" in err and "nothing was written" in err and not site.exists()
    (out / "labels" / f"{images[1].stem}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    assert main(["vision", "import", str(out), "--out", str(site)]) == 0
    with open(site / "labels.csv", newline="") as handle:
        rows = {r["file"]: r for r in csv.DictReader(handle)}
    assert rows[f"images/{images[0].name}"]["ebike"] == "1" and rows[f"images/{images[1].name}"]["bicycle"] == "1"
    assert rows[f"images/{images[2].name}"]["ebike"] == "0" and rows[f"images/{images[2].name}"]["group"] == "lift-1-cam"
    assert (site / "images" / images[0].name).is_file()


def test_status_says_observe_and_why(tmp_path, write_config, clip, capsys):
    path = camera_config(write_config, clip)
    assert main(["vision", "status", "-c", str(path)]) == 0
    assert "lift-1-cam (lift-1): OBSERVE: no model is configured" in capsys.readouterr().out


def test_a_camera_without_model_or_collect_is_not_opened(tmp_path, write_config, clip):
    path = write_config(building({"cameras": [{"name": "cam", "source": str(clip)}]}))
    config = building_config.load(path)

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        try:
            return assemble_vision(config, journal, None, None)
        finally:
            await journal.close()

    vision = asyncio.run(scenario())
    assert vision.work == {} and vision.guards == {}
    # The release command is there (a reload may add a guard), and says no car is guarded.
    answer = asyncio.run(vision.control["elevator.release"]({"operator": "tech-7", "reason": "test"}))
    assert answer["ok"] is False and "elevator" in answer["error"]


def test_the_gateway_wires_the_camera_and_its_release_command(tmp_path, write_config, clip):
    path = camera_config(write_config, clip)
    gateway = Gateway(building_config.load(path), path)

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        try:
            return gateway.assemble(journal)
        finally:
            await journal.close()

    work = asyncio.run(scenario())
    assert "camera:lift-1-cam" in work and "control" in work


def test_hold_relay_commands_are_checked_against_the_profile(write_config, clip):
    path = write_config(building(lift_io(), {"cameras": [
        {"name": "lift-1-cam", "source": str(clip), "hold": {"device": "io-lift", "hold": "release_7", "resume": "secure_99"}}]}))
    with pytest.raises(building_config.ConfigError) as error:
        building_config.load(path)
    assert "cameras.0.hold" in str(error.value) and "secure_99" in str(error.value)


def test_elevator_release_through_the_control_socket_is_audited(tmp_path, clip):
    from edge.vision.settings import Camera
    from edge.vision.wiring import release_request

    socket = tmp_path / "control.sock"

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        cam = Camera(name="lift-1-cam", elevator="lift-1", source=str(clip), collect={"enabled": True})
        guard = ElevatorGuard(cam, journal, None, tmp_path / "state", Verdict(False, "test"), None)

        async def release(request):
            return await release_request({"lift-1-cam": guard}, request)

        try:
            async with in_background(ControlServer(socket, {"elevator.release": release}).run()):
                await until(socket.exists, 2, "the control socket", every_s=0.01)
                request = {"op": "elevator.release", "elevator": "lift-1", "operator": "tech-7", "reason": "rider asked"}
                answer = await asyncio.to_thread(ask, socket, request, 10.0)
                refused = await asyncio.to_thread(ask, socket, {"op": "elevator.release", "reason": "x"}, 10.0)
                return answer, refused, read_events(journal.path, EventQuery(limit=None))
        finally:
            await journal.close()

    answer, refused, events = asyncio.run(scenario())
    assert answer["ok"] and answer["released"][0]["was_holding"] is False
    audit = [e for e in events if e.kind == VisionKind.ELEVATOR_RELEASE_REQUESTED]
    assert len(audit) == 1 and audit[0].body["operator"] == "tech-7" and audit[0].body["reason"] == "rider asked"
    assert audit[0].seq == answer["result_seq"]
    assert not refused["ok"] and "operator" in refused["error"]
