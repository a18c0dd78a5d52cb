"""The daemon's end of the pipe to a vision worker: never blocks the loop.

A `multiprocessing` connection blocks: `send` waits while the worker does not read (a worker
stuck in a long inference fills the socket buffer), and `recv` waits for the rest of a
message that arrived in parts. Here the daemon's end is a non-blocking socket read and written
only when ready: incoming bytes are framed as `multiprocessing.connection` frames them (a 4-byte
length, then a pickle), so the worker keeps its ordinary blocking `Connection`; outgoing
messages wait in a bounded buffer, and a message that does not fit is dropped and counted
(the worker is told again at the next change; its stop is backed by terminate).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import structlog

log = structlog.get_logger("edge.vision")

MAX_MESSAGE = 1 << 20  # a frame's detections are a few KB; anything this big is a broken worker
MAX_PENDING = 64 * 1024  # bytes waiting for the worker to read; beyond this messages are dropped
_HEADER = struct.Struct("!i")


class ChannelBroken(Exception):
    """The worker's end closed, or sent what is not a message."""


class WorkerChannel:
    """Messages to and from one worker process, on the loop, without ever waiting."""

    def __init__(self, connection: Connection, on_message: Callable[[Any], None], on_broken: Callable[[str], None]) -> None:
        self._socket = socket.socket(fileno=os.dup(connection.fileno()))  # the same socketpair end, our own fd
        connection.close()
        self._socket.setblocking(False)
        self._on_message, self._on_broken = on_message, on_broken
        self._incoming = bytearray()
        self._outgoing = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False
        self.dropped = 0  # messages to the worker that did not fit
        self.broken: str | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._socket.fileno(), self._readable)

    def send(self, message: object) -> bool:
        """Queue `message` for the worker; False (counted) when the channel is broken or full."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if self.broken is not None or len(self._outgoing) + _HEADER.size + len(data) > MAX_PENDING:
            self.dropped += 1
            return False
        self._outgoing += _HEADER.pack(len(data)) + data
        self._flush()
        return True

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._socket.fileno())
            if self._writing:
                self._loop.remove_writer(self._socket.fileno())
        self._writing = False
        self._socket.close()

    def _flush(self) -> None:
        try:
            sent = self._socket.send(self._outgoing) if self._outgoing else 0
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._break(f"send: {error}")
            return
        del self._outgoing[:sent]
        want = bool(self._outgoing)
        if want != self._writing and self._loop is not None:
            if want:
                self._loop.add_writer(self._socket.fileno(), self._flush)
            else:
                self._loop.remove_writer(self._socket.fileno())
            self._writing = want

    def _readable(self) -> None:
        try:
            while chunk := self._socket.recv(65536):
                self._incoming += chunk
        except BlockingIOError:
            pass
        except OSError as error:
            self._break(f"recv: {error}")
            return
        else:
            self._deliver()
            self._break("the worker closed its end")
            return
        self._deliver()

    def _deliver(self) -> None:
        while len(self._incoming) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._incoming)
            if not 0 <= size <= MAX_MESSAGE:
                self._break(f"a message of {size} bytes")
                return
            if len(self._incoming) < _HEADER.size + size:
                return  # the rest comes with the next read
            payload = bytes(self._incoming[_HEADER.size:_HEADER.size + size])
            del self._incoming[:_HEADER.size + size]
            try:
                message = pickle.loads(payload)
            except Exception as error:  # noqa: BLE001 - an undecodable message ends the worker's channel
                self._break(f"an undecodable message: {type(error).__name__}")
                return
            self._on_message(message)

    def _break(self, why: str) -> None:
        if self.broken is not None:
            return
        self.broken = why
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._socket.fileno())
            if self._writing:
                self._loop.remove_writer(self._socket.fileno())
                self._writing = False
        self._on_broken(why)
