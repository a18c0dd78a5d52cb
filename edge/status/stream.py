"""The status page itself (its HTML, style and script, served from the package) and the stream of
server-sent events that keeps it live: the whole state first, then journal events, readings and state
as they come. A browser that does not take what it is sent is dropped (`StreamPace`): it would hold a
slot forever.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from edge.status.admission import StreamPace
from edge.status.tail import TooManyListeners, sse

if TYPE_CHECKING:
    from edge.status.server import StatusServer

KEEPALIVE_S = 15.0
PAGE = resources.files("edge.status") / "page"
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


class PageEndpoints:
    """`/`, its assets and `/api/stream` of one server."""

    def __init__(self, server: StatusServer) -> None:
        self.server = server  # its tail is new at each run: read through it

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self._page), web.get("/page.css", self._asset), web.get("/page.js", self._asset),
                web.get("/api/stream", self._stream)]

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the whole state first, then journal events, readings and state as they come."""
        tail = self.server.tail
        try:
            listener = tail.listen()
        except TooManyListeners as full:
            raise web.HTTPServiceUnavailable(text=str(full)) from None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        pace = StreamPace(request)  # a client that does not read is dropped: it would hold a slot forever
        try:
            await response.prepare(request)
            if not await pace.write(response, tail.state_message()):
                return response
            while True:
                if listener.lagged:
                    listener.lagged = False
                    if not await pace.write(response, sse("lagged", {}) + tail.state_message()):
                        break
                try:
                    message = await asyncio.wait_for(listener.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                if message is None or not await pace.write(response, message):
                    break
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            tail.leave(listener)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=(PAGE / "index.html").read_text(encoding="utf-8"), content_type="text/html", headers=PAGE_HEADERS)

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.path.lstrip("/")
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(text=(PAGE / name).read_text(encoding="utf-8"), content_type=kind, headers=PAGE_HEADERS)
