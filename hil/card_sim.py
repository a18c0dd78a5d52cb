"""Card-reader simulators: real reader frames written into a serial port (a pty end, a
`edge.hil.line.SerialLine` device port, or a USB adapter on the rig).

* EM4100 (RDM6300 kind): the 14-byte ASCII frame, repeated every `repeat_gap_s` while
  the card "lies on the reader" (`repeats` frames), as the module does.
* Wiegand bridge: the 26/34-bit card line, and keypad bursts for a PIN ('#' submits).

GA 467 and OSDP readers are request/reply peers and are simulated with their drivers'
encoders (edge.drivers.cards.ga467) and libosdp's peripheral role respectively.

Run: python -m edge.hil.card_sim --port /dev/pts/7 --protocol em4100 --card 01001293D8 [--repeats 3]
     python -m edge.hil.card_sim --port /dev/pts/7 --protocol wiegand --card D41B81 --pin 1234
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import serial

from edge.drivers.cards import em4100, wiegand

REPEAT_GAP_S = 0.1  # the RDM6300 repeats its frame about ten times a second


class CardReaderSim:
    """One simulated reader writing frames into `port` at `baud` (8N1)."""

    def __init__(self, port: str, protocol: str, baud: int = 9600) -> None:
        if protocol not in ("em4100", "wiegand"):
            raise ValueError(f"no frame simulator for protocol {protocol!r} (em4100, wiegand)")
        self.protocol = protocol
        self._serial = serial.Serial(port, baud, timeout=0, write_timeout=5)

    def frame(self, card: bytes) -> bytes:
        """The bytes the reader sends for one read of `card`."""
        if self.protocol == "em4100":
            return em4100.encode_frame(card)
        if len(card) not in (3, 4):
            raise ValueError("a Wiegand card is 3 bytes (26-bit) or 4 bytes (34-bit)")
        return wiegand.encode_card(int.from_bytes(card, "big"), 26 if len(card) == 3 else 34)

    def present(self, card: bytes, repeats: int = 1, gap_s: float = REPEAT_GAP_S) -> float:
        """Send the card's frame `repeats` times; returns time.monotonic() after the last write."""
        for index in range(repeats):
            if index:
                time.sleep(gap_s)
            self.write(self.frame(card))
        return time.monotonic()

    def pin(self, digits: str) -> None:
        """Keypad bursts for each digit, then '#' (Wiegand bridges only)."""
        if self.protocol != "wiegand":
            raise ValueError("only the Wiegand bridge carries a keypad")
        self.write(b"".join(wiegand.encode_key(key) for key in digits + "#"))

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> CardReaderSim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.card_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="serial port path to write frames into")
    parser.add_argument("--protocol", choices=("em4100", "wiegand"), required=True)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--card", required=True, help="card serial in hex (EM4100: 10 digits; Wiegand: 6 or 8)")
    parser.add_argument("--repeats", type=int, default=1, help="frames sent while the card lies on the reader")
    parser.add_argument("--pin", help="PIN typed on the keypad after the card (Wiegand)")
    args = parser.parse_args(argv)
    try:
        with CardReaderSim(args.port, args.protocol, args.baud) as reader:
            reader.present(bytes.fromhex(args.card), args.repeats)
            if args.pin:
                reader.pin(args.pin)
    except (ValueError, serial.SerialException) as exc:
        print(f"card_sim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
