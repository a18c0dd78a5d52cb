"""Serial character framing ("8N1", "8E1", "7E2"...), parsed once and shared.

A UART sends each character as one start bit, the data bits, an optional parity bit and one
or two stop bits. Card readers state their framing as that short code (RDM6300: 8N1 at 9600;
GA 467 ID-card readers: 8N1 at 115200); the wire time of a character follows from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import serial

_CODE = re.compile(r"^([5-8])([NEOMS])(1|1\.5|2)$")
_PARITY = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}
_STOP = {"1": serial.STOPBITS_ONE, "1.5": serial.STOPBITS_ONE_POINT_FIVE, "2": serial.STOPBITS_TWO}


@dataclass(frozen=True, slots=True)
class Framing:
    """One character's framing on the wire."""

    data_bits: int
    parity: str
    stop_bits: float

    @classmethod
    def parse(cls, code: str) -> Framing:
        """Read a framing code such as "8N1"; a malformed code is a ValueError naming it."""
        match = _CODE.match(code.strip().upper())
        if match is None:
            raise ValueError(f"serial framing {code!r} is not of the form 8N1, 8E1, 7E2")
        return cls(int(match[1]), match[2], float(match[3]))

    @property
    def bits_per_char(self) -> float:
        """Bits on the wire per character: start + data + parity + stop (10 for 8N1, 11 for 8E1)."""
        return 1 + self.data_bits + (0 if self.parity == "N" else 1) + self.stop_bits

    def char_time(self, baud: int) -> float:
        """Seconds one character occupies the wire at `baud`."""
        if baud <= 0:
            raise ValueError(f"baud rate must be positive, got {baud}")
        return self.bits_per_char / baud

    def serial_kwargs(self) -> dict[str, object]:
        """Keyword arguments for serial.Serial with this framing."""
        return {
            "bytesize": self.data_bits,
            "parity": _PARITY[self.parity],
            "stopbits": _STOP[f"{self.stop_bits:g}"],
        }
