"""A real status server on a real journal in this process, for the page's tests that need a week of
history, a camera's snapshot or repeated faults a live building would take too long to make.

The events are appended through `Journal.append` with the wall times they would have had; the
server runs as the daemon runs it (`StatusServer.run`), on a port the kernel picks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import cv2
import numpy

from edge.config import building as building_config
from edge.events import Event, Kind, Priority
from edge.community.kinds import CommunityKind
from edge.vision.kinds import VisionKind
from edge.journal import Journal
from edge.status.server import StatusServer

from conftest import building, modbus_tcp, tank_level
from status_rig import served_url

BUILDING = building(modbus_tcp(9, name="site-bus"), {
    "http": {"port": 0}, "devices": [{"name": "water-ai", "bus": "site-bus", "address": 3, "profile": "generic-ai8"}],
    "pressure_points": [tank_level("roof-tank-level", "water-ai.ch3_ma")],
    "cameras": [{"name": "lift-1-cam", "elevator": "lift-1", "source": "/dev/null"}]})
DAY = 86400
WEEK_RAISES = 45  # low-level warnings raised and cleared in the last six days
SNAPSHOT = "vision/snapshots/lift-1-cam/20261207T101500-observed.jpg"


def week(now: float) -> list[Event]:
    """A gateway started eight days ago; smoke then (outside the week), 45 warnings raised and cleared
    in the week, smoke an hour ago still active, a camera watching only with an e-bike it saw, and one
    device fault journaled three times within a second, then its identify failing."""
    def at(seconds: float) -> int:
        return int(seconds * 1e9)

    events = [Event(Kind.GATEWAY_STARTED, Priority.FAULT, "gateway", {}, wall_ns=at(now - 8 * DAY)),
              Event(CommunityKind.SMOKE_ALARM, Priority.ALARM, "smoke-301", {"area": "unit-301"}, wall_ns=at(now - 8 * DAY + 60)),
              Event(CommunityKind.SMOKE_CLEARED, Priority.ALARM, "smoke-301", {"area": "unit-301"}, wall_ns=at(now - 8 * DAY + 120))]
    for n in range(WEEK_RAISES):
        raised = now - 6 * DAY + n * 3600
        body = {"point": "water-ai.ch3_ma", "condition": "under_threshold", "severity": "warning", "reading": 2.8,
                "threshold": 3.0, "unit": "m"}
        events.append(Event(Kind.CONDITION_RAISED, Priority.ALARM, "roof-tank-level", body, wall_ns=at(raised)))
        events.append(Event(Kind.CONDITION_CLEARED, Priority.ALARM, "roof-tank-level",
                            {"point": "water-ai.ch3_ma", "condition": "under_threshold"}, wall_ns=at(raised + 600)))
    events += [
        Event(CommunityKind.SMOKE_ALARM, Priority.ALARM, "smoke-301", {"area": "unit-301"}, wall_ns=at(now - 3600)),
        Event(VisionKind.VISION_MODE, Priority.FAULT, "lift-1-cam", {"mode": "observe", "reason": "no qualification report"},
              wall_ns=at(now - 1800)),
        Event(VisionKind.ELEVATOR_OBSERVED, Priority.ALARM, "lift-1-cam", {"elevator": "lift-1", "class": "ebike", "snapshot": SNAPSHOT},
              wall_ns=at(now - 900)),
    ]
    events += [Event(Kind.DEVICE_FAULT, Priority.FAULT, "water-ai", {"fault": "exception", "detail": "illegal data address"},
                     wall_ns=at(now - 60 + n * 0.3)) for n in range(3)]
    events.append(Event(Kind.DEVICE_UNIDENTIFIED, Priority.FAULT, "water-ai",  # its model register answered an exception
                        {"point": "model", "detail": "exception 2 (illegal data address)", "retry_in_s": 30}, wall_ns=at(now - 30)))
    return events


def write_snapshot(state_dir: Path) -> bytes:
    """A real JPEG where the vision worker would have written it."""
    frame = numpy.zeros((90, 160, 3), numpy.uint8)
    frame[:, :80] = (40, 160, 40)
    ok, data = cv2.imencode(".jpg", frame)
    assert ok
    path = state_dir / SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())
    return data.tobytes()


@contextlib.asynccontextmanager
async def serving(write_config, now: float | None = None):
    """(config, url, the snapshot's bytes) of a status server over the week's journal."""
    config = building_config.load(write_config(BUILDING))
    now = time.time() if now is None else now
    journal = await Journal.open(config.journal_path)
    server = StatusServer(config, journal)
    running = None
    try:
        for event in week(now):
            await journal.append(event)
        snapshot = write_snapshot(config.state_path)
        running = asyncio.create_task(server.run())
        yield config, await served_url(config, running), snapshot
    finally:
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        await journal.close()
