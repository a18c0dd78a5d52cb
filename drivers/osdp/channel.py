"""The RS-485 port libosdp talks through: pyserial underneath, whole frames on top.

libosdp calls `read`, `write` and `flush` from its refresh thread. `read` never blocks (the
port has timeout 0) and returns at most one whole OSDP frame (see `edge.drivers.osdp.frames`): the
control panel of libosdp 3.2.9 rejects a reply handed over in pieces. A port error is kept
in `error` for the reader's monitor to report and reads as silence to libosdp, which then
takes the reader offline by its own reply timeout.
"""

from __future__ import annotations

from collections import deque

import time

import osdp
import serial

from edge.drivers.cards.framing import Framing
from edge.drivers.cards.observations import DropCause
from edge.drivers.osdp.frames import MARK, FrameAssembler


class SerialChannel(osdp.Channel):
    """One RS-485 bus (one serial port) as a libosdp channel that yields whole frames."""

    def __init__(self, path: str, baud: int, framing: str = "8N1") -> None:
        super().__init__()
        self.path = path
        self.assembler = FrameAssembler()
        self.frames_received = 0
        self.error: str | None = None
        self.last_reply: dict[int, float] = {}  # OSDP address -> monotonic time of its last frame
        self._frames: deque[bytes] = deque()
        self._port = serial.Serial(path, baud, timeout=0, **Framing.parse(framing).serial_kwargs())

    def read(self, max_bytes: int) -> bytes:
        if not self._frames:
            try:
                waiting = self._port.in_waiting
                data = self._port.read(waiting) if waiting else b""
            except (serial.SerialException, OSError) as exc:
                self.error = str(exc)
                return b""
            if data:
                self._frames.extend(self.assembler.feed(data))
        while self._frames:
            frame = self._frames.popleft()
            if len(frame) <= max_bytes:
                self.frames_received += 1
                self.last_reply[frame[2 if frame[0] == MARK else 1] & 0x7F] = time.monotonic()
                return frame
            self.assembler.drops.add(DropCause.OVERSIZED)
        return b""

    def write(self, buf: bytes) -> int:
        try:
            return self._port.write(buf) or 0
        except (serial.SerialException, OSError) as exc:
            self.error = str(exc)
            return -1

    def flush(self) -> None:
        """Drop whatever was received and not yet read: libosdp calls this to resync."""
        self._frames.clear()
        self.assembler.clear()
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self.error = str(exc)

    def close(self) -> None:
        self._port.close()
