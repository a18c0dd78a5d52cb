"""The page's camera endpoints: a camera's snapshots and collected frames, read-only from its own
folders in the state dir; an operator's review of an elevator hold and a frame's label, the page's only
writes (the server's guard lets them through with the token only), each journaled with who.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from edge.runtime import pools
from edge.events import Event, Priority
from edge.journal import EventQuery, read_events
from edge.runtime.pools import Pool
from edge.status.tail import dumps
from edge.vision.kinds import VisionKind

if TYPE_CHECKING:
    from edge.status.server import StatusServer

SNAPSHOT_MAX_BYTES = 4 * 1024 * 1024  # a camera's JPEG; anything bigger is not one the worker wrote
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.jpg")
WRITES = ("/review", "/label")  # POST /api/cameras/CAMERA/...: the page's writes, with the token only


class CameraEndpoints:
    """Snapshots, frames, reviews and labels of one server's configured cameras."""

    def __init__(self, server: StatusServer) -> None:
        self.server = server  # its config (a reload), reader threads (a run) change: read through it

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/snapshots/{camera}/{name}", self._snapshot),
                web.post("/api/cameras/{camera}/review", self._review),
                web.get("/api/cameras/{camera}/frames", self._frames),
                web.get("/frames/{camera}/{kind}/{name}", self._frame),
                web.post("/api/cameras/{camera}/label", self._label)]

    async def _review(self, request: web.Request) -> web.Response:
        """An operator's review of a hold from the page (token checked by the middleware): {hold, outcome, seen, operator}."""
        from edge.vision.wiring import review_request

        camera = request.match_info["camera"]
        if camera not in self.server.cameras:
            raise web.HTTPNotFound()
        try:
            body = await request.json() if request.content_length and request.content_length <= 4096 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="a review is a small JSON object: {hold, outcome, seen, operator}")
        fields = {k: body.get(k) for k in ("hold", "outcome", "seen", "operator")}
        if not all(v is None or isinstance(v, int | str) for v in fields.values()) or len(str(fields.get("operator") or "")) > 64:
            raise web.HTTPBadRequest(text="hold is a number; outcome, seen and operator are short texts")
        answer = await review_request({camera: self.server.cameras[camera]}, {**fields, "elevator": camera, "via": "page"})
        return web.json_response(answer, status=200 if answer.get("ok") else 409, dumps=dumps)

    def _camera_named(self, request: web.Request) -> str:
        camera = request.match_info["camera"]
        if camera not in {c.name for c in self.server.config.cameras}:
            raise web.HTTPNotFound()
        return camera

    async def _frames(self, request: web.Request) -> web.Response:
        """The camera's collected frames and would-hold snapshots to label, newest first, with their labels
        and the detector's box where the guard journaled one."""
        from edge.vision import labels

        camera = self._camera_named(request)
        query = EventQuery(kinds=(VisionKind.ELEVATOR_OBSERVED,), sources=(camera,), limit=labels.MAX_LISTED, newest_first=True)
        loop = asyncio.get_running_loop()
        seen = await loop.run_in_executor(self.server.reader, read_events, self.server.journal.path, query)
        observed = {Path(str(e.body["snapshot"])).name: {"class": e.body.get("class"), "box": e.body.get("box")}
                    for e in seen if e.body.get("snapshot")}
        found = await loop.run_in_executor(self.server.reader, labels.listing, self.server.config.state_path, camera, observed)
        return web.json_response({"camera": camera, "labels": list(labels.LABELS), "writable": self.server.token is not None,
                                  "frames": found}, dumps=dumps)

    async def _frame(self, request: web.Request) -> web.Response:
        """A collected frame or a snapshot, read-only from the camera's own folders."""
        from edge.vision import labels

        camera = self._camera_named(request)
        path = labels.frame_path(self.server.config.state_path, camera, request.match_info["kind"], request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        data = await asyncio.get_running_loop().run_in_executor(self.server.reader, read_snapshot, path.parent, path.name)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    async def _label(self, request: web.Request) -> web.Response:
        """One frame's label from the page (token checked by the middleware): {frame, label, box?, operator};
        kept in the camera's label file and journaled with who and when."""
        from edge.vision import labels

        camera = self._camera_named(request)
        try:
            body = await request.json() if request.content_length and request.content_length <= 4096 else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("frame"), str) or not isinstance(body.get("label"), str):
            raise web.HTTPBadRequest(text="a label is a small JSON object: {frame, label, box (optional), operator}")
        operator = body.get("operator")
        if not isinstance(operator, str) or not operator.strip() or len(operator) > 64:
            raise web.HTTPBadRequest(text="say who labels (operator, at most 64 characters)")
        at = time.time()
        try:
            kept = await pools.call(Pool.FILES, labels.write, self.server.config.state_path, camera, body["frame"][:200], body["label"],
                                      body.get("box"), operator.strip(), at)
        except labels.LabelError as refused:
            return web.json_response({"ok": False, "error": str(refused)}, status=409)
        seq = await self.server.journal.append(Event(VisionKind.FRAME_LABELLED, Priority.ACCESS, camera, {
            "camera": camera, "frame": body["frame"][:200], "label": kept["label"], "box": kept["box"], "operator": kept["by"], "via": "page"}))
        return web.json_response({"ok": True, "seq": seq, **kept}, dumps=dumps)

    async def _snapshot(self, request: web.Request) -> web.Response:
        """A configured camera's snapshot JPEG, read-only from STATE_DIR/vision/snapshots/CAMERA/ and nowhere else."""
        camera, name = request.match_info["camera"], request.match_info["name"]
        if camera not in {c.name for c in self.server.config.cameras} or not SNAPSHOT_NAME.fullmatch(name):
            raise web.HTTPNotFound()
        folder = self.server.config.state_path / "vision" / "snapshots" / camera
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self.server.reader, read_snapshot, folder, name)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


def is_write(method: str, path: str) -> bool:
    """A camera write from the page: allowed with the token only."""
    return method == "POST" and path.startswith("/api/cameras/") and path.endswith(WRITES)


def read_snapshot(folder: Path, name: str) -> bytes | None:
    """The file's bytes if it is a regular file inside `folder` (after links) and small enough (blocking)."""
    try:
        base = folder.resolve(strict=True)
        path = (base / name).resolve(strict=True)
        if path.parent != base or not path.is_file():
            return None
        with path.open("rb") as file:
            data = file.read(SNAPSHOT_MAX_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= SNAPSHOT_MAX_BYTES else None
