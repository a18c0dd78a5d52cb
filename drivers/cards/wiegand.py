"""Wiegand 26/34-bit card frames and keypad bursts, as forwarded by a Wiegand-to-serial bridge.

Wire format on the serial side (9600 8N1): each Wiegand burst the bridge captured, as ASCII
'0'/'1' characters in the order the bits arrived on D0/D1, ended by CR LF. The bridge forwards
bits untouched, so parity is checked here. Only CR LF completes a line: a lone CR or LF ends the
line without decoding it and voids the next line too, because one noisy byte that turns into a
terminator splits a frame, and the tail of a 34-bit card can be a valid 26-bit card (seen by the
property test: card 0 at 34 bits, byte 7 turned into LF, read as a different 26-bit card). Catalogue
converters (Priority 1 Design WIE232-A: "XXYYZZ<CR>", 6 hex digits of the 24 data bits; S4A
Wiegand converter: 10 decimal digits + CR LF) check parity themselves and strip it; we found no
vendor serial format that keeps the parity bits, so this bridge format is ours, chosen so the
gateway can verify every frame. It is what the HIL simulator speaks.

Bit layouts (HID H10301 "standard 26-bit"; Civintec CN56 reader manual section 6.4; Rosslare
AY-Q6x50 manual section 5.9.7):
  26 bits: E | 8-bit facility | 16-bit card number | O
  34 bits: E | 16-bit facility | 16-bit card number | O
E is even parity over the first half of the data bits, O odd parity over the second half.
The serial is the data bits as bytes, most significant first (3 bytes for 26, 4 for 34).
CN56 manual examples: data D4 1B 81 -> 1 11010100 00011011 10000001 0, and data 89 D4 1B 81 ->
1 10001001 11010100 00011011 10000001 1.

Keypads on the same Wiegand lines send one burst per key (Keyking 6630KE and EverFocus ERK-871
manuals; ESPHome `wiegand` component):
  4 bits: the key code, 0-9 for digits, 10 for '*', 11 for '#';
  8 bits: the complement of the key code in the first nibble, the key code in the second.
Digits collect into a PIN; '#' submits it (`PinFrame`), '*' clears it. 4-bit bursts carry no
check at all, so a noisy line can change a digit: a PIN is a second factor, never the only one.
The pending digits have no timeout here (the parser reads no clock); the reader's owner starts a
new `WiegandParser` to forget them.
"""

from __future__ import annotations

import enum

from edge.drivers.cards.observations import (
    BytewiseParser,
    CardFrame,
    DropCause,
    DropCounts,
    ParsedItem,
    PinFrame,
    Protocol,
)

MAX_LINE_BITS = 64
MAX_PIN_DIGITS = 12
_KEY_STAR = 10
_KEY_HASH = 11
_CR, _LF = 0x0D, 0x0A
_BITS = frozenset(b"01")
_CARD_HALVES = {26: 12, 34: 16}  # frame bits -> data bits per parity half


class _State(enum.Enum):
    LINE = enum.auto()
    SKIP = enum.auto()  # rest of a bad line, up to its terminator


def encode_card(data: int, bits: int) -> bytes:
    """The bridge's line for a card whose data bits (24 or 32) are `data`, parity added."""
    half = _CARD_HALVES.get(bits)
    if half is None:
        raise ValueError(f"Wiegand cards are 26 or 34 bits here, got {bits}")
    if not 0 <= data < 1 << (2 * half):
        raise ValueError(f"{bits}-bit Wiegand data must fit in {2 * half} bits")
    first, second = data >> half, data & ((1 << half) - 1)
    even = first.bit_count() & 1
    odd = 1 - (second.bit_count() & 1)
    return (f"{even}{data:0{2 * half}b}{odd}\r\n").encode()


def encode_key(key: str, bits: int = 4) -> bytes:
    """The bridge's line for one keypad key ('0'-'9', '*', '#') sent as a 4- or 8-bit burst."""
    code = "0123456789*#".index(key)
    if bits == 4:
        return f"{code:04b}\r\n".encode()
    if bits == 8:
        return f"{code ^ 0xF:04b}{code:04b}\r\n".encode()
    raise ValueError(f"keypad bursts are 4 or 8 bits, got {bits}")


class WiegandParser(BytewiseParser):
    """Incremental parser of the bridge's lines into card frames and PIN entries."""

    def __init__(self) -> None:
        self.drops = DropCounts()
        self._state = _State.LINE
        self._line = bytearray()
        self._pin: list[str] = []
        self._after_cr = False  # the last byte was a CR: only an LF next makes the line whole
        self._void_next = False  # a lone CR or LF came: the next line may be the tail of a split frame

    def _step(self, byte: int) -> ParsedItem | None:
        if self._after_cr:
            self._after_cr = False
            if byte == _LF:
                return self._end(whole=True)
            dropped = self._end(whole=False)  # a lone CR; this byte already belongs to the next line
            item = self._step(byte)
            return dropped if dropped is not None else item
        if byte == _CR:
            self._after_cr = True
            return None
        if byte == _LF:
            return self._end(whole=False)  # a lone LF
        if self._state is _State.SKIP:
            return None
        if byte not in _BITS:
            cause = DropCause.MALFORMED if self._line else DropCause.GARBAGE
            self._state = _State.SKIP
            return self.drops.add(cause)
        self._line.append(byte)
        if len(self._line) > MAX_LINE_BITS:
            self._state = _State.SKIP
            return self.drops.add(DropCause.OVERSIZED)
        return None

    def _end(self, whole: bool) -> ParsedItem | None:
        """A line ends: decoded only when CR LF ended it and no lone terminator ended the one before."""
        line = bytes(self._line)
        self._line.clear()
        skipped, self._state = self._state is _State.SKIP, _State.LINE
        void, self._void_next = self._void_next, not whole
        if skipped or not line:
            return None  # a skipped line was counted when it went bad
        if void or not whole:
            return self.drops.add(DropCause.MALFORMED)
        return self._decode(line)

    def _decode(self, line: bytes) -> ParsedItem | None:
        bits = len(line)
        value = int(line, 2)
        if bits in _CARD_HALVES:
            return self._card(value, bits)
        if bits == 4:
            return self._key(value)
        if bits == 8:
            complement, code = value >> 4, value & 0xF
            if complement != code ^ 0xF:
                return self.drops.add(DropCause.BAD_PARITY)
            return self._key(code)
        return self.drops.add(DropCause.UNSUPPORTED)

    def _card(self, value: int, bits: int) -> ParsedItem:
        half = _CARD_HALVES[bits]
        even_bit = value >> (bits - 1)
        odd_bit = value & 1
        data = (value >> 1) & ((1 << (2 * half)) - 1)
        first, second = data >> half, data & ((1 << half) - 1)
        if (first.bit_count() + even_bit) % 2 != 0 or (second.bit_count() + odd_bit) % 2 != 1:
            return self.drops.add(DropCause.BAD_PARITY)
        return CardFrame(serial=data.to_bytes(half // 4, "big"), protocol=Protocol.WIEGAND, bits=bits)

    def _key(self, code: int) -> ParsedItem | None:
        if code <= 9:
            self._pin.append(str(code))
            if len(self._pin) > MAX_PIN_DIGITS:
                self._pin.clear()
                return self.drops.add(DropCause.OVERSIZED)
            return None
        if code == _KEY_STAR:
            self._pin.clear()
            return None
        if code == _KEY_HASH:
            pin, self._pin = "".join(self._pin), []
            return PinFrame(pin) if pin else None
        return self.drops.add(DropCause.MALFORMED)
