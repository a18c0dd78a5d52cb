"""Labelling on the gateway: the frames the guard collected are listed by the status page, labelled
one key a frame with the page's token (read-only without it), journaled with who and when, and
exported with their labels for CVAT / Label Studio and `edge vision eval`.

A real status server over a real journal; the frames are real images written where collect mode and
observe mode write theirs."""

from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path

import pytest

from edge import cli
from edge.config import building as building_config
from edge.events import Event, Priority
from edge.vision.kinds import VisionKind
from edge.journal import EventQuery, Journal, read_events
from edge.status.server import StatusServer
from status_rig import served_url
from vision_media import EBIKE, labelled, need_shared
from vision_rig import page_camera
from conftest import in_background

SECRET = "page-token-label-1"
OBSERVED = "1765100000009-ebike_observed.jpg"  # the newest


def frames_on_disk(state: Path) -> list[str]:
    """Three motion samples and one would-hold snapshot, as the worker writes them."""
    need_shared()
    collect = state / "vision" / "collect" / "lift-1-cam"
    snapshots = state / "vision" / "snapshots" / "lift-1-cam"
    collect.mkdir(parents=True)
    snapshots.mkdir(parents=True)
    names = []
    for n, image in enumerate(labelled("person", 3)):
        name = f"17651000{n:05d}.jpg"
        shutil.copyfile(image, collect / name)
        names.append(name)
    shutil.copyfile(labelled("ebike", 1)[0], snapshots / OBSERVED)
    shutil.copyfile(EBIKE / "images" / "cemreefe_elevator1.jpg", snapshots / "1765100000001-elevator_hold.jpg")  # a hold: reviewed, not listed
    return names


async def serve(config, token: bool, work):
    journal = await Journal.open(config.journal_path)
    await journal.append(Event(VisionKind.ELEVATOR_OBSERVED, Priority.FAULT, "lift-1-cam", {
        "camera": "lift-1-cam", "class": "ebike", "box": [0.2, 0.3, 0.6, 0.9], "snapshot": f"vision/snapshots/lift-1-cam/{OBSERVED}"}))
    server = StatusServer(config, journal)
    try:
        async with in_background(server.run()) as running:
            url = await served_url(config, running)
            import aiohttp

            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {SECRET}"} if token else {}) as session:
                result = await work(session, url)
            return result, read_events(journal.path, EventQuery(limit=None))
    finally:
        await journal.close()


def test_frames_are_listed_labelled_with_the_token_journaled_and_exported(write_config, tmp_path, capsys):
    path = page_camera(write_config, tmp_path, SECRET, token=True)
    config = building_config.load(path)
    names = frames_on_disk(config.state_path)

    async def work(session, url):
        async with session.get(f"{url}api/cameras/lift-1-cam/frames") as answer:
            listed = await answer.json()
        async with session.get(f"{url}frames/lift-1-cam/collect/{names[0]}") as answer:
            picture = (answer.status, await answer.read())
        async with session.get(f"{url}frames/lift-1-cam/collect/..%2Fbuilding.yaml") as answer:
            outside = answer.status
        said = []
        for body in ({"frame": f"snapshot/{OBSERVED}", "label": "ebike", "box": [0.2, 0.3, 0.6, 0.9], "operator": "T-17"},
                     {"frame": f"collect/{names[0]}", "label": "person", "operator": "T-17"},
                     {"frame": f"collect/{names[1]}", "label": "stroller", "box": [0.1, 0.1, 0.5, 0.8], "operator": "M-2"},
                     {"frame": f"collect/{names[2]}", "label": "giraffe", "operator": "T-17"},
                     {"frame": "collect/nothing.jpg", "label": "empty", "operator": "T-17"},
                     {"frame": f"collect/{names[2]}", "label": "empty", "operator": ""}):
            async with session.post(f"{url}api/cameras/lift-1-cam/label", json=body) as answer:
                said.append((answer.status, await answer.text()))
        async with session.get(f"{url}api/cameras/lift-1-cam/frames") as answer:
            after = await answer.json()
        import aiohttp

        async with aiohttp.ClientSession() as stranger:
            async with stranger.post(f"{url}api/cameras/lift-1-cam/label", json={"frame": f"collect/{names[2]}", "label": "empty"}) as answer:
                unauthorised = answer.status
        return listed, picture, outside, said, after, unauthorised

    (listed, picture, outside, said, after, unauthorised), events = asyncio.run(serve(config, True, work))
    assert listed["writable"] is True and [f["name"] for f in listed["frames"]] == [OBSERVED, *reversed(names)]
    assert listed["frames"][0]["detector"] == {"class": "ebike", "box": [0.2, 0.3, 0.6, 0.9]}
    assert picture[0] == 200 and picture[1] == (config.state_path / "vision" / "collect" / "lift-1-cam" / names[0]).read_bytes()
    assert outside == 404 and unauthorised == 401
    assert [status for status, _ in said] == [200, 200, 200, 409, 409, 400]
    assert "label is one of" in said[3][1] and "no collected frame" in said[4][1]
    marks = {f["name"]: f.get("label", {}).get("label") for f in after["frames"]}
    assert marks == {OBSERVED: "ebike", names[0]: "person", names[1]: "stroller", names[2]: None}
    journaled = [e for e in events if e.kind == VisionKind.FRAME_LABELLED]
    assert [(e.body["frame"], e.body["label"], e.body["operator"], e.body["via"]) for e in journaled] == [
        (f"snapshot/{OBSERVED}", "ebike", "T-17", "page"), (f"collect/{names[0]}", "person", "T-17", "page"),
        (f"collect/{names[1]}", "stroller", "M-2", "page")]
    assert all(e.wall_ns > 0 for e in journaled)

    # export keeps its YOLO form, now with the page's boxes and a labels.csv; import reads it back
    out = tmp_path / "dataset"
    assert cli.main(["vision", "export", "--out", str(out), "-c", str(path)]) == 0
    assert (out / "labels" / f"lift-1-cam_{Path(names[1]).stem}.txt").read_text() == "6 0.300000 0.450000 0.400000 0.700000\n"
    assert (out / "labels" / f"lift-1-cam_{Path(names[0]).stem}.txt").read_text() == ""
    assert (out / "labels" / f"lift-1-cam_{Path(OBSERVED).stem}.txt").read_text().startswith("0 0.400000 0.600000")
    with open(out / "labels.csv", newline="") as handle:
        rows = {r["file"]: r for r in csv.DictReader(handle)}
    assert rows[f"images/lift-1-cam_{Path(OBSERVED).stem}.jpg"]["ebike"] == "1"
    assert rows[f"images/lift-1-cam_{Path(names[0]).stem}.jpg"]["person"] == "1"
    assert f"images/lift-1-cam_{Path(names[2]).stem}.jpg" not in rows
    assert cli.main(["vision", "import", str(out), "--out", str(tmp_path / "site")]) == 0
    capsys.readouterr()


def test_without_a_token_the_page_lists_frames_but_never_writes_a_label(write_config, tmp_path):
    config = building_config.load(page_camera(write_config, tmp_path, SECRET, token=False))
    names = frames_on_disk(config.state_path)

    async def work(session, url):
        async with session.get(f"{url}api/cameras/lift-1-cam/frames") as answer:
            listed = await answer.json()
        async with session.post(f"{url}api/cameras/lift-1-cam/label",
                                json={"frame": f"collect/{names[0]}", "label": "empty", "operator": "x"}) as answer:
            return listed, answer.status, await answer.text()

    (listed, status, text), events = asyncio.run(serve(config, False, work))
    assert listed["writable"] is False and len(listed["frames"]) == 4
    assert status == 403 and "read-only" in text
    assert not [e for e in events if e.kind == VisionKind.FRAME_LABELLED]
    assert not (config.state_path / "vision" / "labels").exists()


def test_an_operator_labels_a_frame_with_one_key_in_chromium(write_config, tmp_path):
    """The page as a technician uses it: the camera card's frames opened, the newest frame focused,
    one key pressed; the label is saved with the detector's box and journaled with who."""
    from browser_rig import CHROMIUM, Chromium
    from status_rig import until

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (./dev installs it)")
    config = building_config.load(page_camera(write_config, tmp_path, SECRET, token=True))
    frames_on_disk(config.state_path)

    async def work(session, url):
        async with Chromium("about:blank") as browser:
            await browser.send("Network.enable")
            await browser.send("Network.setExtraHTTPHeaders", headers={"Authorization": f"Bearer {SECRET}"})
            await browser.send("Page.navigate", url=url)
            await until(lambda: browser.evaluate("!!document.querySelector('.labelling button.label-frames')"), 30, "the labelling button")
            await browser.evaluate("localStorage.setItem('edge-operator', 'T-17'); document.querySelector('.labelling button.label-frames').click()")
            await until(lambda: browser.evaluate("document.querySelectorAll('.labelling .frame').length === 4"), 20, "the four frames listed")
            await until(lambda: browser.evaluate("document.activeElement?.classList.contains('frame')"), 10, "the newest frame focused")
            await browser.send("Input.dispatchKeyEvent", type="keyDown", key="w", text="w")
            await until(lambda: browser.evaluate("document.querySelector('.labelling .frame').dataset.label === 'wheelchair'"), 20,
                        "the frame labelled")
            await browser.screenshot(tmp_path / "labelling.png")
            return await browser.evaluate("document.activeElement?.dataset.frame")

    focused, events = asyncio.run(serve(config, True, work))
    assert focused and focused.startswith("collect/"), "the next unlabelled frame takes the focus"
    journaled = [e.body for e in events if e.kind == VisionKind.FRAME_LABELLED]
    assert [(b["frame"], b["label"], b["box"], b["operator"]) for b in journaled] == [
        (f"snapshot/{OBSERVED}", "wheelchair", [0.2, 0.3, 0.6, 0.9], "T-17")]
