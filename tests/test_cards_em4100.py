"""EM4100 (RDM6300-style) frames: vectors, drops, resynchronisation, properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.cards.em4100 import Em4100Parser, encode_frame
from edge.drivers.cards.observations import CardFrame, DropCause, FrameDropped, Protocol

from access_rig import split_anywhere

# Public trace (forum.arduino.cc 1221511): fob printed 0001217496 read "01001293D858".
PUBLIC_FRAME = b"\x0201001293D858\x03"


def cards(items):
    return [item for item in items if isinstance(item, CardFrame)]


def drops(items):
    return [item.cause for item in items if isinstance(item, FrameDropped)]


def test_public_vector_decodes_to_the_printed_number():
    [card] = Em4100Parser().feed(PUBLIC_FRAME)
    assert card == CardFrame(serial=bytes.fromhex("01001293D8"), protocol=Protocol.EM4100, bits=40)
    assert int.from_bytes(card.serial[1:], "big") == 1217496


def test_encoder_computes_xor_checksum_per_spec():
    serial = bytes.fromhex("13005D1DA5")
    checksum = 0x13 ^ 0x00 ^ 0x5D ^ 0x1D ^ 0xA5
    assert encode_frame(serial) == b"\x02" + b"13005D1DA5" + f"{checksum:02X}".encode() + b"\x03"
    assert encode_frame(bytes.fromhex("01001293D8")) == PUBLIC_FRAME


def test_card_serial_is_not_in_repr():
    [card] = Em4100Parser().feed(PUBLIC_FRAME)
    assert "1293" not in repr(card) and "x12" not in repr(card)


def test_bad_frames_are_dropped_by_cause_and_counted():
    parser = Em4100Parser()
    bad_checksum = PUBLIC_FRAME[:-3] + b"00\x03"
    truncated = b"\x020100129\x03"
    oversized = b"\x02" + b"0" * 20 + b"\x03"
    malformed = b"\x020100129XD858\x03"
    cut_by_next_stx = b"\x02010012"
    items = parser.feed(bad_checksum + truncated + oversized + malformed + cut_by_next_stx + PUBLIC_FRAME)
    assert drops(items) == [
        DropCause.BAD_CHECKSUM,
        DropCause.TRUNCATED,
        DropCause.OVERSIZED,
        DropCause.MALFORMED,
        DropCause.TRUNCATED,
    ]
    assert len(cards(items)) == 1
    assert parser.drops.total() == 5
    assert parser.drops.as_dict()["truncated"] == 2


def test_resynchronises_after_garbage():
    parser = Em4100Parser()
    items = parser.feed(b"\xff\x00noise\x03\x03" + PUBLIC_FRAME + b"junk" + PUBLIC_FRAME)
    assert drops(items) == [DropCause.GARBAGE, DropCause.GARBAGE]
    assert len(cards(items)) == 2


serials = st.binary(min_size=5, max_size=5)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(noise):
    parser = Em4100Parser()
    for item in parser.feed(noise):
        assert isinstance(item, CardFrame | FrameDropped)


@settings(max_examples=300)
@given(serials, st.data())
def test_a_single_mutated_byte_never_yields_a_different_card(serial, data):
    frame = bytearray(encode_frame(serial))
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] = data.draw(st.integers(0, 255).filter(lambda b: b != frame[index]))
    for card in cards(Em4100Parser().feed(bytes(frame))):
        assert card.serial == serial


@settings(max_examples=200)
@given(st.lists(st.one_of(serials.map(encode_frame), st.binary(max_size=20)), max_size=8), st.data())
def test_splitting_the_stream_anywhere_gives_the_same_observations(chunks, data):
    in_pieces, whole = split_anywhere(Em4100Parser, chunks, data)
    assert in_pieces == whole
