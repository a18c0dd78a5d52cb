"""libosdp event dicts to reader observations: pure, one translator per reader.

libosdp 3.2.9's control panel reports (`osdp_sys` data.c):
  card read  {"event": EVENT_CARDREAD, "reader_no", "format", "direction", "data", ["length"]}
             raw formats carry `length` in bits and the bits packed MSB first in `data`;
  key press  {"event": EVENT_KEYPRESS, "reader_no", "data"} (one or more key codes);
  status     {"event": EVENT_STATUS, "type", "report"}; a local status report is
             [tamper, power] (OSDP v2.2 osdp_LSTATR), 0 = normal, 1 = tamper / power failure.
A raw 26- or 34-bit Wiegand read is checked and stripped of its parity bits exactly as the
Wiegand driver does, so one card gives one serial whichever reader it is shown to; other
formats keep their bytes as the serial.
Keypad codes (OSDP v2.2 osdp_KEYPAD): ASCII digits, '*' as 0x7F (or '*'), '#' as 0x0D (or
'#'). Digits collect into a PIN; '#' submits it, '*' clears it; a PIN longer than MAX_PIN_LEN
is dropped as malformed.
"""

from __future__ import annotations

import osdp

from edge.drivers.cards.observations import (
    CardFrame,
    CardRead,
    DropCause,
    DropCounts,
    FaultReason,
    FrameDropped,
    PinEntry,
    Protocol,
    ReaderFault,
    ReaderRestored,
)
from edge.drivers.cards.wiegand import WiegandParser

MAX_PIN_LEN = 16
_SUBMIT = {0x0D, ord("#")}
_CLEAR = {0x7F, ord("*")}
_CHECKED_WIEGAND_BITS = {26, 34}

Observation = CardRead | PinEntry | FrameDropped | ReaderFault | ReaderRestored


class EventTranslator:
    """Turns one reader's libosdp events into observations, keeping its keypad and status state."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self.drops = DropCounts()
        self._pin: list[str] = []
        self._status: dict[FaultReason, bool] = {FaultReason.TAMPER: False, FaultReason.POWER: False}

    def translate(self, event: dict[str, object], received_mono: float) -> list[Observation]:
        """Observations for one event dict; anything unexpected is a counted drop."""
        try:
            kind = event["event"]
            if kind == osdp.Event.CardRead:
                return [self._card(event, received_mono)]
            if kind == osdp.Event.KeyPress:
                return self._keys(_bytes(event["data"]), received_mono)
            if kind == osdp.Event.Status:
                return self._local_status(event)
        except (KeyError, TypeError, ValueError):
            return [self.drops.add(DropCause.MALFORMED)]
        return [self.drops.add(DropCause.UNSUPPORTED)]

    def _card(self, event: dict[str, object], received_mono: float) -> Observation:
        data = _bytes(event["data"])
        if event["format"] == osdp.CardFormat.ASCII:
            if not data:
                return self.drops.add(DropCause.MALFORMED)
            return CardRead(self.reader, data, Protocol.OSDP, None, received_mono)
        bits = int(event["length"])  # type: ignore[call-overload]
        if bits <= 0 or len(data) != (bits + 7) // 8:
            return self.drops.add(DropCause.MALFORMED)
        if bits not in _CHECKED_WIEGAND_BITS:
            return CardRead(self.reader, data, Protocol.OSDP, bits, received_mono)
        value = int.from_bytes(data, "big") >> (len(data) * 8 - bits)
        parsed = WiegandParser().feed(format(value, f"0{bits}b").encode() + b"\r\n")
        if len(parsed) == 1 and isinstance(parsed[0], CardFrame):
            return CardRead(self.reader, parsed[0].serial, Protocol.OSDP, bits, received_mono)
        return self.drops.add(DropCause.BAD_PARITY)

    def _keys(self, data: bytes, received_mono: float) -> list[Observation]:
        out: list[Observation] = []
        for code in data:
            if code in _SUBMIT:
                if self._pin:
                    out.append(PinEntry(self.reader, "".join(self._pin), received_mono))
                self._pin.clear()
            elif code in _CLEAR:
                self._pin.clear()
            elif ord("0") <= code <= ord("9") and len(self._pin) < MAX_PIN_LEN:
                self._pin.append(chr(code))
            else:
                self._pin.clear()
                out.append(self.drops.add(DropCause.MALFORMED))
        return out

    def _local_status(self, event: dict[str, object]) -> list[Observation]:
        if event["type"] != osdp.StatusReportType.Local:
            return []
        report = _bytes(event["report"])
        if len(report) < 2:
            return [self.drops.add(DropCause.MALFORMED)]
        out: list[Observation] = []
        for reason, raised in ((FaultReason.TAMPER, report[0] != 0), (FaultReason.POWER, report[1] != 0)):
            if raised == self._status[reason]:
                continue
            self._status[reason] = raised
            if raised:
                out.append(ReaderFault(self.reader, reason, f"reader reports {reason.value}"))
            else:
                out.append(ReaderRestored(self.reader, reason, f"reader {reason.value} cleared"))
        return out


def _bytes(value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)
