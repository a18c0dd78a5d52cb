"""Access-path set-up shared by the access tests and the runtime's: the keypad tenant, enrolling a card, and feeding a reader's parser a stream cut anywhere."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.doors.wiring import credentials_path

KEYPAD_TENANT = bytes.fromhex("d41b81")
PIN = "4321"


def enrol(config, serial: bytes, status: str = "active", pin: str | None = None) -> None:
    """Issue the card `serial` (with `pin`) to a tenant of the `entrances` doors, valid until 2099."""
    credentials_path(config).parent.mkdir(parents=True, exist_ok=True)
    with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
        store.issue(Enrolment(serial=serial, tenant=f"t-{serial.hex()}", status=status, door_groups=frozenset({"entrances"}),
                              valid_from=date(2024, 1, 1), valid_until=date(2099, 1, 1), paid_through=date(2099, 1, 1), pin=pin))


def split_anywhere(parser_of, chunks: list[bytes], data) -> tuple[list, list]:
    """What a reader's parser (`parser_of()` makes a fresh one) sees of the stream `chunks` make, fed in
    the pieces hypothesis's `data` cuts it into, and fed whole: the two must be the same."""
    stream = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    split = parser_of()
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    return [item for piece in pieces for item in split.feed(piece)], parser_of().feed(stream)
