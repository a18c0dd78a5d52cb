"""The live status page in a real browser (Debian's chromium, headless) on a running simulated building."""

from __future__ import annotations

import asyncio
import time

import pytest

from browser_rig import CHROMIUM, Chromium
from conftest import edge
from edge.journal import EventQuery, read_events
from status_rig import TENANT, Site, until

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./dev test installs the Debian package)"),
]

PAGE_BUDGET_S = 2.0  # from the journal commit to the browser's DOM


def test_a_tap_an_alarm_and_a_door_state_change_appear_on_the_page(write_config):
    async def scenario():
        async with Site(write_config) as site:
            await site.start()
            async with Chromium(site.url) as browser:
                await until(lambda: browser.evaluate("document.getElementById('link').textContent === 'live'"), 30, "the page's stream open")
                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]')?.dataset.state === 'locked'"), 10, "the door drawn")

                site.reader.present(TENANT, repeats=2)
                committed = await _journaled(site, "access.decision")
                await until(lambda: browser.evaluate("!!document.querySelector('#events tr[data-kind=\"access.decision\"]')"),
                            _left(committed), "the tap in the event list")
                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]').dataset.state === 'released'"),
                            _left(committed), "the door shown released")

                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]').dataset.state === 'locked'"),
                            10, "the door locked again after its 1 s unlock")
                site.io.set_value("input_1", True)  # the door opens after the grant ended: forced
                committed = await _journaled(site, "alarm.door_forced")
                await until(lambda: browser.evaluate("document.querySelector('[data-door=front]').dataset.state === 'forced'"),
                            _left(committed), "the forced door")

                site.monitor.set_value("current_a", 35.0)
                committed = await _journaled(site, "alarm.raised")
                await until(lambda: browser.evaluate("!!document.querySelector('#alarms li[data-source=\"f1-c1\"]')"),
                            _left(committed), "the over-current alarm among the active alarms")
                assert await browser.evaluate("document.querySelector('[data-point=\"f1-c1-monitor.current_a\"]').dataset.state") in ("warning", "alarm")
                assert await browser.evaluate("document.querySelectorAll('[data-point] svg polyline').length") > 0, "charts drawn"
            assert await site.stop() == 0

    asyncio.run(scenario())


async def _journaled(site: Site, kind: str) -> float:
    """Wait for the event in the journal (the page's clock starts there); returns when it was seen."""
    await until(lambda: read_events(site.config.journal_path, EventQuery(kinds=(kind,), limit=1)), 15, f"{kind} journaled")
    return time.monotonic()


def _left(committed: float) -> float:
    return max(0.1, PAGE_BUDGET_S - (time.monotonic() - committed))


def test_a_held_lift_car_is_an_alarm_on_the_page_until_the_car_is_let_go(write_config, building_dir, tmp_path):
    """The real base model holds the car for what it calls a motorcycle (the e-moped of a real
    elevator frame), qualified by a real `edge vision eval` report with a test's own limits (as
    the rig scenario elevator-motorcycle-held-until-it-leaves does); the page shows the camera
    holding and the hold among the active alarms, then both gone once the car is empty."""
    import json
    from pathlib import Path

    from vision_media import EBIKE, EMPTY_CAR, MODELS, need_shared, write_clip

    need_shared()
    repo = Path(__file__).resolve().parent.parent
    weights = MODELS / "yolox_nano.onnx"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent: the base model is in ../shared/data/models")

    state = building_dir / "state"
    installed = edge("models", "install", str(repo / "models" / "yolox_nano.yaml"), "--from", str(weights), "--state-dir", str(state))
    assert installed.returncode == 0, installed.stderr
    manifest = state / "models" / "yolox_nano" / "manifest.yaml"
    rows = [line for line in (EBIKE / "labels.csv").read_text().splitlines()
            if line.startswith(("file,", "images/etoiles_2024-01-01_12-07-27.jpg", "images/lexrawc_wheelchair_00045.jpg"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    evaluated = edge("vision", "eval", "--model", str(manifest), "--images", str(EBIKE), "--labels", str(tmp_path / "labels.csv"),
                     "--hold-class", "motorcycle", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    (tmp_path / "eval.json").write_text(evaluated.stdout)
    assert json.loads(evaluated.stdout)["ebike_recall"]["k"] == 1, "the base model finds the e-moped a motorcycle"

    moped = EBIKE / "images" / "etoiles_2024-01-01_12-07-27.jpg"
    clip = write_clip(tmp_path / "car.avi", [EBIKE / EMPTY_CAR] * 10 + [moped] * 20 + [EBIKE / EMPTY_CAR] * 300, (640, 360), fps=5.0)
    camera = f"""
cameras:
  - name: lift-1-cam
    elevator: lift-1
    source: {clip}
    region: [[0.05, 0.3], [0.95, 0.3], [0.95, 1.0], [0.05, 1.0]]
    analysis_fps: 5
    model: {manifest}
    hold: {{device: doors-io, hold: release_7, resume: secure_7}}
    hold_classes: [motorcycle]
    leave_s: 1
    qualification: {{report: {tmp_path / "eval.json"}, min_recall: 0.5, max_false_hold: 0.5, min_ebike_frames: 1, min_negative_frames: 1}}
"""

    def camera_state() -> str:
        return "document.querySelector('[data-camera=\"lift-1-cam\"]')?.dataset.state"

    async def scenario():
        async with Site(write_config, more=camera) as site:
            await site.start()
            async with Chromium(site.url) as browser:
                await until(lambda: browser.evaluate(f"{camera_state()} === 'hold mode'"), 60, "the camera drawn in hold mode")
                await until(lambda: browser.evaluate(f"{camera_state()} === 'holding'"), 60, "the camera shown holding the car")
                assert await browser.evaluate("!!document.querySelector('#alarms li[data-kind=\"alarm.elevator_hold\"]')"), \
                    "the held car among the active alarms"
                await until(lambda: browser.evaluate(f"{camera_state()} === 'hold mode'"), 60, "the car let go once empty")
                assert not await browser.evaluate("!!document.querySelector('#alarms li[data-kind=\"alarm.elevator_hold\"]')")
            assert await site.stop() == 0
        kinds = [e.kind for e in read_events(site.config.journal_path, EventQuery(limit=None))]
        assert "alarm.elevator_hold" in kinds and "elevator.released" in kinds

    asyncio.run(scenario())
