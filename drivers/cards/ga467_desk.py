"""The registration desk's GA 467 reader: one resident ID card read, request by reply.

Unlike a door reader, a GA 467 reader speaks only when asked. A desk read is the session the
reader interface description gives: find card (repeated until a card lies on the reader),
select card, read basic info. Each request gets a reply window; bytes that do not make a
reply in it (noise, a frame cut short) are dropped and the session starts again from find,
until the caller's deadline. The identity is parsed by `ga467.parse_basic_info`, which keeps
only the name and ID number and never shows them; hashing the number is the credential
store's job (with the building secret), not the driver's.
"""

from __future__ import annotations

import time

import serial

from edge.drivers.cards.ga467 import Command, Ga467Parser, IdentityText, Reply, Status, encode_request, parse_basic_info

REPLY_S = 1.0  # the longest reply (1295 bytes) takes 0.11 s at 115200 baud
FIND_EVERY_S = 0.2  # how often an empty reader is asked again
READ_CHUNK = 4096


class Ga467Desk:
    """A GA 467 reader on `port`; `read_identity` waits for one ID card and reads it."""

    def __init__(self, port: str, baud: int = 115200, reply_s: float = REPLY_S) -> None:
        self.path = port
        self.reply_s = reply_s
        self._parser = Ga467Parser()
        try:
            self._port = serial.Serial(port, baud, timeout=0.05)
        except serial.SerialException as error:
            raise OSError(f"cannot open the ID card reader at {port}: {error}") from None

    def read_identity(self, wait_s: float) -> IdentityText:
        """The identity on the next card placed on the reader within `wait_s` seconds.

        TimeoutError: no card (or no readable card) within `wait_s`; ValueError: the card
        answered with data that is not a valid GA/T 490 identity (message names no content);
        OSError: the port failed."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            found = self._ask(Command.FIND_CARD)
            if found is None or found.sw3 != Status.CARD_FOUND:
                time.sleep(FIND_EVERY_S)
                continue
            selected = self._ask(Command.SELECT_CARD)
            if selected is None or not selected.ok:
                continue
            basic = self._ask(Command.READ_BASIC_INFO)
            if basic is None or basic.sw3 != Status.SUCCESS:
                continue
            return parse_basic_info(basic.data)
        raise TimeoutError(f"no ID card read at {self.path} within {wait_s:g} s")

    def _ask(self, command: Command) -> Reply | None:
        """Send one request and return its reply, or None when none came in the window."""
        try:
            self._port.reset_input_buffer()  # a late reply to an earlier request is not this one's
            self._parser.flush()
            self._port.write(encode_request(*command.value))
            self._port.flush()
            window_ends = time.monotonic() + self.reply_s
            while time.monotonic() < window_ends:
                data = self._port.read(max(1, min(self._port.in_waiting, READ_CHUNK)))
                for item in self._parser.feed(data):
                    if isinstance(item, Reply):
                        return item
        except (serial.SerialException, OSError) as error:
            raise OSError(f"the ID card reader at {self.path} failed: {error}") from None
        self._parser.flush()
        return None

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> Ga467Desk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
