"""EM4100 125 kHz readers with an ASCII serial output (RDM6300, RDM630, ID-12/ID-20 kind).

Frame, 14 bytes, 9600 baud 8N1, sent repeatedly while a tag is in the field:

    0x02 | 10 ASCII hex digits | 2 ASCII hex digits | 0x03
    STX  | 5 data bytes: 1 version/customer + 4 id | XOR of the 5 data bytes | ETX

Source: the RDM630/RDM6300 module datasheet (Seeed Studio, "125K RFID reader", output format
"02 | 10 ASCII data characters | 2 ASCII checksum | 03"), and readers of it in public code, e.g.
Tasmota `xsns_51_rdm6300.ino`. A public trace (forum.arduino.cc, "Trouble converting Wiegand W26
output to dec", 2024) shows `01001293D858` for a fob printed 0001217496: data 01 00 12 93 D8,
checksum 58, id 0x1293D8 = 1217496 in its low three bytes.
"""

from __future__ import annotations

import enum

from edge.drivers.cards.observations import BytewiseParser, CardFrame, DropCause, DropCounts, ParsedItem, Protocol

STX = 0x02
ETX = 0x03
_PAYLOAD_LEN = 12  # 10 data digits + 2 checksum digits
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


class _State(enum.Enum):
    HUNT = enum.auto()  # between frames, looking for STX
    FRAME = enum.auto()  # after STX, collecting payload
    SKIP = enum.auto()  # inside an oversized frame, waiting for its end


def encode_frame(serial: bytes) -> bytes:
    """The frame a reader sends for a 5-byte tag (version/customer byte + 4-byte id)."""
    if len(serial) != 5:
        raise ValueError(f"an EM4100 serial is 5 bytes, got {len(serial)}")
    checksum = 0
    for byte in serial:
        checksum ^= byte
    return bytes([STX]) + (serial.hex() + f"{checksum:02x}").upper().encode() + bytes([ETX])


class Em4100Parser(BytewiseParser):
    """Incremental frame parser: feed any chunks, get the frames completed so far."""

    def __init__(self) -> None:
        self.drops = DropCounts()
        self._state = _State.HUNT
        self._payload = bytearray()
        self._in_garbage = False

    def _step(self, byte: int) -> ParsedItem | None:
        if byte == STX:
            truncated = self._state is _State.FRAME
            self._start_frame()
            return self.drops.add(DropCause.TRUNCATED) if truncated else None
        if self._state is _State.HUNT:
            if self._in_garbage:
                return None
            self._in_garbage = True
            return self.drops.add(DropCause.GARBAGE)
        if self._state is _State.SKIP:
            if byte == ETX:
                self._state = _State.HUNT
            return None
        if byte == ETX:
            self._state = _State.HUNT
            return self._decode(bytes(self._payload))
        self._payload.append(byte)
        if len(self._payload) > _PAYLOAD_LEN:
            self._state = _State.SKIP
            return self.drops.add(DropCause.OVERSIZED)
        return None

    def _start_frame(self) -> None:
        self._state = _State.FRAME
        self._payload.clear()
        self._in_garbage = False

    def _decode(self, payload: bytes) -> ParsedItem:
        if len(payload) < _PAYLOAD_LEN:
            return self.drops.add(DropCause.TRUNCATED)
        if not _HEX_DIGITS.issuperset(payload):
            return self.drops.add(DropCause.MALFORMED)
        raw = bytes.fromhex(payload.decode("ascii"))
        serial, checksum = raw[:5], raw[5]
        for byte in serial:
            checksum ^= byte
        if checksum != 0:
            return self.drops.add(DropCause.BAD_CHECKSUM)
        return CardFrame(serial=serial, protocol=Protocol.EM4100, bits=40)
