"""The status server's read-only additions for the manager's page: the 7-day alarm history (paged),
event kinds in words, and a camera's snapshot served only from STATE_DIR/vision/snapshots/."""

from __future__ import annotations

import asyncio
import json
import os

import aiohttp
import pytest

from edge.events import kinds
from edge.status.cameras import SNAPSHOT_MAX_BYTES
from edge.status.history import ALARM_PAGE_MAX
from status_server_rig import SNAPSHOT, WEEK_RAISES, serving

pytestmark = pytest.mark.timeout(120)


async def _get(url: str, path: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + path, timeout=aiohttp.ClientTimeout(total=10)) as answer:
            return answer.status, await answer.read(), answer.headers.get("Content-Type", "")


def test_the_alarm_history_pages_through_the_week_each_alarm_once_with_its_severity_and_end(write_config):
    async def scenario():
        async with serving(write_config) as (config, url, _):
            rows, before, pages = [], None, 0
            while True:
                status, body, _ = await _get(url, "api/alarms?limit=20" + (f"&before={before}" if before else ""))
                assert status == 200
                page = json.loads(body)
                assert len(page["rows"]) <= 20 and page["days"] == 7
                rows += page["rows"]
                pages += 1
                if (before := page["next"]) is None:
                    break
            assert pages == 3 and len(rows) == WEEK_RAISES + 1 == page["total"]
            seqs = [r["seq"] for r in rows]
            assert seqs == sorted(set(seqs), reverse=True), "newest first, each once"
            smoke, *warnings = rows
            assert smoke["kind"] == "alarm.smoke" and smoke["severity"] == "alarm" and smoke["ended_at"] is None, "still active"
            assert all(r["severity"] == "warning" and r["ended_by"] == "alarm.cleared" and r["ended_at"] - r["at"] == pytest.approx(600)
                       for r in warnings)
            assert min(r["at"] for r in rows) >= page["since"], "the smoke of eight days ago is not in the week"

            status, body, _ = await _get(url, "api/alarms?limit=100000")
            assert status == 200 and len(json.loads(body)["rows"]) == min(ALARM_PAGE_MAX, WEEK_RAISES + 1)
            for bad in ("limit=many", "before=x"):
                assert (await _get(url, f"api/alarms?{bad}"))[0] == 400

    asyncio.run(scenario())


def test_the_words_endpoint_gives_every_kind(write_config):
    async def scenario():
        async with serving(write_config) as (_, url, _snapshot):
            status, body, _ = await _get(url, "api/words")
            assert status == 200 and set(json.loads(body)) == {str(kind) for kind in kinds.every()}

    asyncio.run(scenario())


def test_a_snapshot_is_served_only_from_its_cameras_folder_and_only_while_small(write_config, tmp_path):
    async def scenario():
        async with serving(write_config) as (config, url, snapshot):
            name = SNAPSHOT.rsplit("/", 1)[1]
            status, body, kind = await _get(url, f"snapshots/lift-1-cam/{name}")
            assert (status, body, kind) == (200, snapshot, "image/jpeg")

            folder = config.state_path / "vision" / "snapshots" / "lift-1-cam"
            outside = tmp_path / "secret.jpg"
            outside.write_bytes(snapshot)
            (folder / "link.jpg").symlink_to(outside)  # a link out of the folder
            (folder / "dir.jpg").mkdir()
            (folder / "big.jpg").write_bytes(b"\xff" * (SNAPSHOT_MAX_BYTES + 1))
            (config.state_path / "vision" / "snapshots" / "other.jpg").write_bytes(snapshot)
            for path in ("snapshots/lift-1-cam/link.jpg", "snapshots/lift-1-cam/dir.jpg", "snapshots/lift-1-cam/big.jpg",
                         "snapshots/lift-1-cam/missing.jpg", "snapshots/lift-2-cam/" + name, "snapshots/lift-1-cam/..%2Fother.jpg",
                         "snapshots/lift-1-cam/%2E%2E%2F%2E%2E%2F%2E%2E%2Fhttp.json", "snapshots/lift-1-cam/.hidden.jpg",
                         "snapshots/..%2Fsnapshots/other.jpg", "snapshots/lift-1-cam/" + name.replace(".jpg", ".png")):
                assert (await _get(url, path))[0] == 404, path
            assert os.path.exists(config.state_path / "http.json")

    asyncio.run(scenario())
