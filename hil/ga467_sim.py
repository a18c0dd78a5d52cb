"""A GA 467 resident-ID reader on one end of a serial line: answers find, select and read.

It reads request frames with the driver's parser (request direction) and answers with the
reply frames the reader interface description gives: find card 9F (card found) or 80 (none),
select 90 with 8 zero bytes (as common SAM modules send), read basic info 90 with the GA/T 490
text and a 1024-byte photo. `place()` lays a card on it, `remove()` takes it away.

    with SimulatedIdReader(pty.a) as reader:
        reader.place("张三", "11010519491231002X")
"""

from __future__ import annotations

import threading

import serial

from edge.drivers.cards.ga467 import Command, Direction, Ga467Parser, Request, Status, encode_basic_info, encode_reply


class SimulatedIdReader:
    """One desk reader answering requests on `port` in its own thread."""

    def __init__(self, port: str, baud: int = 115200) -> None:
        self._serial = serial.Serial(port, baud, timeout=0.05)
        self._parser = Ga467Parser(Direction.REQUEST)
        self._card: bytes | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.requests: list[tuple[int, int]] = []
        self._thread = threading.Thread(target=self._serve, name="ga467-sim", daemon=True)
        self._thread.start()

    def place(self, name: str, id_number: str, **text: str) -> None:
        """Lay a card with this identity on the reader (an invalid number is sent as is)."""
        with self._lock:
            self._card = encode_basic_info(name, id_number, **text)

    def remove(self) -> None:
        with self._lock:
            self._card = None

    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self._serial.read(max(1, self._serial.in_waiting))
            for item in self._parser.feed(data):
                if isinstance(item, Request):
                    self.requests.append((item.cmd, item.para))
                    self._serial.write(self._answer(item))

    def _answer(self, request: Request) -> bytes:
        with self._lock:
            card = self._card
        command = (request.cmd, request.para)
        if command == Command.FIND_CARD.value:
            return encode_reply(0, 0, Status.CARD_FOUND, bytes(4)) if card else encode_reply(0, 0, Status.FIND_FAILED)
        if command == Command.SELECT_CARD.value:
            return encode_reply(0, 0, Status.SUCCESS, bytes(8)) if card else encode_reply(0, 0, Status.SELECT_FAILED)
        if command == Command.READ_BASIC_INFO.value:
            return encode_reply(0, 0, Status.SUCCESS, card) if card else encode_reply(0, 0, Status.READ_FAILED)
        return encode_reply(0, 0, Status.COMMAND_ERROR)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._serial.close()

    def __enter__(self) -> SimulatedIdReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
