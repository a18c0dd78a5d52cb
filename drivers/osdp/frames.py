"""Whole OSDP frames out of a byte stream that arrives in pieces.

libosdp 3.2.9's control panel rejects a reply its channel hands over in pieces (a real UART
at 9600 baud delivers a frame over many reads), so the channel reassembles frames first and
hands libosdp one whole frame per read. The reassembler is pure: bytes in, frames out.

Frame layout (SIA OSDP v2.2, section 5.7, "Message structure"; libosdp `osdp_phy.c`):

    [0xFF mark]  SOM 0x53 | ADDR | LEN_LSB LEN_MSB | CTRL | [SCB] | CMD/REPLY | DATA | [MAC] | CHECK

LEN is the whole packet from SOM to the last check byte, little-endian. CTRL bit 2 set means
the check is a CRC-16 (poly 0x1021, initial 0x1D0F, not reflected, sent low byte first);
clear means a one-byte checksum (the two's complement of the byte sum). The optional 0xFF mark
byte of OSDP 2.2 is passed through in front of the frame it precedes. Bytes that do not start a
valid frame are skipped one at a time, so a false SOM inside garbage costs one byte and the
real frame behind it is still found; a candidate still waiting for its claimed length is given
up as soon as a whole, check-valid frame is found after its start (a cut frame or a false SOM
never holds back the frames behind it).
"""

from __future__ import annotations

import binascii

from edge.drivers.cards.observations import DropCause, DropCounts

SOM = 0x53
MARK = 0xFF
CTRL_CRC = 0x04
CRC_INIT = 0x1D0F
MIN_FRAME_LEN = 7  # SOM ADDR LEN LEN CTRL REPLY CHECKSUM
MAX_FRAME_LEN = 1024  # above libosdp's packet buffer; longer claims are noise
_HEADER_LEN = 5


def crc16(data: bytes) -> int:
    """OSDP's CRC-16: CCITT polynomial 0x1021 from 0x1D0F (binascii's crc_hqx)."""
    return binascii.crc_hqx(data, CRC_INIT)


def checksum(data: bytes) -> int:
    """OSDP's 8-bit checksum: the two's complement of the sum of the bytes."""
    return -sum(data) & 0xFF


def seal(body: bytes, use_crc: bool = True) -> bytes:
    """Complete a frame whose LEN already counts the check bytes (for tests and simulators)."""
    if use_crc:
        return body + crc16(body).to_bytes(2, "little")
    return body + bytes([checksum(body)])


def _check_ok(frame: bytes) -> bool:
    if frame[4] & CTRL_CRC:
        return int.from_bytes(frame[-2:], "little") == crc16(frame[:-2])
    return frame[-1] == checksum(frame[:-1])


class FrameAssembler:
    """Collects bytes and returns each complete, check-valid OSDP frame once."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.drops = DropCounts()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames they complete, in order (mark byte kept)."""
        self._buffer += data
        frames: list[bytes] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return frames
            frames.append(frame)

    def clear(self) -> None:
        """Forget a partial frame (the link was reset)."""
        self._buffer.clear()

    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            start = buf.find(SOM)
            if start < 0:
                self._skip(len(buf))
                return None
            marked = start > 0 and buf[start - 1] == MARK
            self._skip(start - 1 if marked else start)
            som = 1 if marked else 0
            if len(buf) - som < _HEADER_LEN:
                return None
            length = int.from_bytes(buf[som + 2 : som + 4], "little")
            crc_len = 2 if buf[som + 4] & CTRL_CRC else 1
            if length > MAX_FRAME_LEN:
                self._reject(som, DropCause.OVERSIZED)
                continue
            if length < MIN_FRAME_LEN + crc_len - 1:
                self._reject(som, DropCause.MALFORMED)
                continue
            if len(buf) - som < length:
                later = self._complete_frame_after(som + 1)
                if later < 0:
                    return None
                self._reject(som, DropCause.TRUNCATED)  # a whole frame follows: this one was cut
                continue
            if not _check_ok(bytes(buf[som : som + length])):
                self._reject(som, DropCause.BAD_CHECKSUM)
                continue
            whole = bytes(buf[: som + length])
            del buf[: som + length]
            return whole

    def _complete_frame_after(self, start: int) -> int:
        """Index of the first SOM at or after `start` that begins a whole, check-valid frame."""
        buf = self._buffer
        index = buf.find(SOM, start)
        while index >= 0:
            if len(buf) - index >= _HEADER_LEN:
                length = int.from_bytes(buf[index + 2 : index + 4], "little")
                if MIN_FRAME_LEN <= length <= min(MAX_FRAME_LEN, len(buf) - index) and _check_ok(
                    bytes(buf[index : index + length])
                ):
                    return index
            index = buf.find(SOM, index + 1)
        return -1

    def _skip(self, count: int) -> None:
        if count > 0:
            del self._buffer[:count]
            self.drops.add(DropCause.GARBAGE)

    def _reject(self, som: int, cause: DropCause) -> None:
        """Drop the SOM (and its mark) that did not start a valid frame, then rescan after it."""
        del self._buffer[: som + 1]
        self.drops.add(cause)
