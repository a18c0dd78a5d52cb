"""The loop that reads one passive card reader's serial port and reports what it parsed.

A reader port is dumb and tough: it opens the port, reads in its own thread (blocking reads
with a short timeout so `stop()` is honoured), feeds the parser, stamps each frame with the
monotonic time of the read that completed it, and hands observations on. When the port is
missing or goes away (SerialException: unplugged USB adapter, dead socat) it reports a
`ReaderFault` and raises, so the supervisor that runs `run()` restarts it with backoff;
`on_open` is called each time the port opens, so whoever saw the fault can report it cleared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol as TypingProtocol

import serial

from edge.drivers.cards.framing import Framing
from edge.drivers.cards.observations import (
    CardFrame,
    CardRead,
    FaultReason,
    FrameDropped,
    ParsedItem,
    PinEntry,
    PinFrame,
    ReaderFault,
)

READ_TIMEOUT_S = 0.1
Observation = CardRead | PinEntry | FrameDropped


class FrameParser(TypingProtocol):
    def feed(self, data: bytes) -> list[ParsedItem]: ...


class ReaderPort:
    """Reads `path` at `baud` and turns parsed frames into stamped observations."""

    def __init__(
        self,
        reader: str,
        path: str,
        baud: int,
        parser: FrameParser,
        on_observation: Callable[[Observation], None],
        on_fault: Callable[[ReaderFault], None],
        framing: str = "8N1",
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.reader = reader
        self.path = path
        self.baud = baud
        self._framing = Framing.parse(framing)
        self._parser = parser
        self._on_observation = on_observation
        self._on_fault = on_fault
        self._on_open = on_open
        self._stop = threading.Event()
        # Set once the port is open: bytes that arrive before that are flushed by the open.
        self.opened = threading.Event()

    def run(self) -> None:
        """Read until `stop()`; on a port fault call on_fault, then raise the SerialException."""
        try:
            port = serial.Serial(
                self.path, self.baud, timeout=READ_TIMEOUT_S, **self._framing.serial_kwargs()
            )
        except serial.SerialException as exc:
            self._fault(FaultReason.PORT_MISSING, exc)
            raise
        self.opened.set()
        if self._on_open is not None:
            self._on_open()
        with port:
            while not self._stop.is_set():
                try:
                    data = port.read(max(1, port.in_waiting))
                    received_mono = time.monotonic()
                except (serial.SerialException, OSError) as exc:
                    self._fault(FaultReason.DISCONNECTED, exc)
                    if isinstance(exc, serial.SerialException):
                        raise
                    raise serial.SerialException(str(exc)) from exc
                if data:
                    self._deliver(self._parser.feed(data), received_mono)

    def stop(self) -> None:
        """Ask `run()` to return after its current read (within READ_TIMEOUT_S)."""
        self._stop.set()

    def _deliver(self, items: list[ParsedItem], received_mono: float) -> None:
        for item in items:
            if isinstance(item, CardFrame):
                self._on_observation(
                    CardRead(self.reader, item.serial, item.protocol, item.bits, received_mono)
                )
            elif isinstance(item, PinFrame):
                self._on_observation(PinEntry(self.reader, item.pin, received_mono))
            else:
                self._on_observation(item)

    def _fault(self, reason: FaultReason, exc: BaseException) -> None:
        self._on_fault(ReaderFault(self.reader, reason, str(exc)))
