"""What the status server lets in: a bounded number of connections, whole heads in time, readers only.

The status server shares the daemon's file descriptors with the serial ports, the journal and
the field bus. A flood of idle connections must never take the descriptor a breaker trip or a
journal write needs, so the server keeps to its own budget (a share of RLIMIT_NOFILE): a
connection over it is answered 503 and closed at once (cheap: no parser, no task), before the
process could run out. aiohttp's keep-alive timer closes a connection that has not sent a whole
request head within HEAD_WITHIN_S, idle or trickling (slowloris). A stream client that does not
take what it is sent is dropped (`StreamPace`), so it cannot hold one of the few stream slots.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("edge.status")

HEAD_WITHIN_S = 10.0  # a connection's whole request head (or its next one, kept alive) within this, or it is closed
MAX_CONNECTIONS = 256  # the most the status page ever needs: a few browsers, a scraper, a tunnel
FD_SHARE = 4  # and at most a quarter of the daemon's descriptors, whatever the limit
STREAM_SNDBUF = 16 * 1024  # a stream's kernel send buffer: a client that stops reading shows soon
STREAM_STALL_S = 15.0  # a stream client whose backlog has not emptied for this long is not reading
REFUSED_LOG_EVERY_S = 60.0
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n"


def connection_cap() -> int:
    """The status server's share of the descriptors this process may open (soft RLIMIT_NOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft // FD_SHARE))


class BoundedRunner(web.AppRunner):
    """aiohttp's runner whose server admits at most `cap` connections and times out heads."""

    def __init__(self, app: web.Application, cap: int, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=HEAD_WITHIN_S, **kwargs)
        self.cap = cap

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Admission(made.request_handler, self.cap, request_factory=made.request_factory,
                          handler_cancellation=made.handler_cancellation, loop=made._loop, **made._kwargs)

    @property
    def refused(self) -> int:
        server = self.server
        return server.refused if isinstance(server, _Admission) else 0


class _Admission(web.Server):
    """Counts connections from the moment they are accepted; over the cap they get `_Refusal`."""

    def __init__(self, handler: Any, cap: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.cap = cap
        self.refused = 0
        self._opening = 0  # accepted, protocol made, connection_made not yet called
        self._logged = -REFUSED_LOG_EVERY_S

    def __call__(self) -> Any:
        if len(self._connections) + self._opening >= self.cap:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged >= REFUSED_LOG_EVERY_S:  # one line a minute, not one per connection
                self._logged = now
                log.warning("status server full: connections refused", cap=self.cap, refused=self.refused)
            return _Refusal()
        self._opening += 1
        return super().__call__()

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        self._opening = max(0, self._opening - 1)
        super().connection_made(handler, transport)


class _Refusal(asyncio.Protocol):
    """A connection over the cap: a fixed 503 and the descriptor is closed again at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        try:
            transport.write(_REFUSAL)
        finally:
            transport.close()


def malformed(headers: Mapping[str, str]) -> str | None:
    """Why these request headers are not usable (bytes that are not UTF-8, control characters, a
    credential that is not ASCII), or None. Checked before anything reads them, so a bad byte is a
    400 and never a traceback."""
    for name, value in headers.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"header {name}: not UTF-8"
        if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
            return f"header {name}: control character"
    if not headers.get("Authorization", "").isascii():
        return "header Authorization: not ASCII"
    return None


class StreamPace:
    """One stream client's pace: it is not reading when its backlog has not emptied for STREAM_STALL_S."""

    def __init__(self, request: web.Request) -> None:
        self.transport = request.transport
        self.emptied = time.monotonic()
        sock = None if self.transport is None else self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)

    async def write(self, response: web.StreamResponse, message: bytes) -> bool:
        """Send one message; False when the client does not read (the connection is then aborted:
        close() would wait forever to flush to a peer that takes nothing, holding the descriptor)."""
        try:
            async with asyncio.timeout(STREAM_STALL_S):
                await response.write(message)
        except TimeoutError:
            return self._drop()
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        now = time.monotonic()
        if transport.get_write_buffer_size() == 0:
            self.emptied = now
        elif now - self.emptied > STREAM_STALL_S:
            return self._drop()
        return True

    def _drop(self) -> bool:
        log.info("status stream dropped: the client does not read", stalled_s=STREAM_STALL_S)
        if self.transport is not None:
            self.transport.abort()
        return False
