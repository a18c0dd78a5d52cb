"""Wiegand 26/34 card lines and keypad bursts from the serial bridge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.cards.observations import CardFrame, DropCause, FrameDropped, PinFrame, Protocol
from edge.drivers.cards.wiegand import WiegandParser, encode_card, encode_key

from access_rig import split_anywhere


def cards(items):
    return [item for item in items if isinstance(item, CardFrame)]


def drops(items):
    return [item.cause for item in items if isinstance(item, FrameDropped)]


# Civintec CN56 reader manual, section 6.4: literal bit strings with their parity bits.
CN56_W26 = b"1" + b"110101000001101110000001" + b"0\r\n"
CN56_W34 = b"1" + b"10001001110101000001101110000001" + b"1\r\n"


def test_public_26_bit_vector():
    [card] = WiegandParser().feed(CN56_W26)
    assert card == CardFrame(serial=bytes.fromhex("D41B81"), protocol=Protocol.WIEGAND, bits=26)


def test_public_34_bit_vector():
    [card] = WiegandParser().feed(CN56_W34)
    assert card == CardFrame(serial=bytes.fromhex("89D41B81"), protocol=Protocol.WIEGAND, bits=34)


def test_h10301_facility_and_card_number():
    """0x21A6616 as 26 raw bits: facility 13, card 13067 (HID standard 26-bit layout)."""
    line = f"{0x21A6616:026b}\r\n".encode()
    [card] = WiegandParser().feed(line)
    assert card.serial[0] == 13
    assert int.from_bytes(card.serial[1:], "big") == 13067
    assert encode_card(0x0D330B, 26) == line


@pytest.mark.parametrize("bits", [26, 34])
def test_encoder_parity_matches_the_spec(bits):
    half = (bits - 2) // 2
    data = (1 << (2 * half)) - 3  # all ones but one bit in the second half
    line = encode_card(data, bits).strip()
    first, second = line[1 : 1 + half], line[1 + half : -1]
    assert (first.count(b"1") + int(line[:1])) % 2 == 0
    assert (second.count(b"1") + int(line[-1:])) % 2 == 1


def test_a_flipped_parity_bit_is_dropped():
    parser = WiegandParser()
    flipped = b"0" + CN56_W26[1:]
    assert drops(parser.feed(flipped)) == [DropCause.BAD_PARITY]
    assert parser.drops[DropCause.BAD_PARITY] == 1


def test_other_lengths_garbage_and_oversize_are_counted_and_resync():
    parser = WiegandParser()
    stream = b"10101\r\n" + b"xx\r\n" + b"1012\r\n" + b"1" * 70 + b"\r\n" + CN56_W34
    items = parser.feed(stream)
    assert drops(items) == [
        DropCause.UNSUPPORTED,
        DropCause.GARBAGE,
        DropCause.MALFORMED,
        DropCause.OVERSIZED,
    ]
    assert len(cards(items)) == 1


def test_keypad_pin_with_4_bit_and_8_bit_bursts():
    keys = [encode_key(k) for k in "12"] + [encode_key(k, bits=8) for k in "34#"]
    assert WiegandParser().feed(b"".join(keys)) == [PinFrame("1234")]


def test_literal_key_codes():
    """Keyking 6630KE: '#' is 1011; 8-bit bursts send the complement nibble first."""
    assert encode_key("#") == b"1011\r\n"
    assert encode_key("1", bits=8) == b"11100001\r\n"
    assert WiegandParser().feed(b"0101\r\n0000\r\n1011\r\n") == [PinFrame("50")]


def test_star_clears_and_empty_hash_submits_nothing():
    keys = b"".join(encode_key(k) for k in "99*7#") + encode_key("#")
    assert WiegandParser().feed(keys) == [PinFrame("7")]


def test_8_bit_key_with_a_bad_complement_is_dropped():
    parser = WiegandParser()
    assert drops(parser.feed(b"11110001\r\n")) == [DropCause.BAD_PARITY]


def test_over_long_pin_is_dropped_and_cleared():
    keys = b"".join(encode_key("1") for _ in range(13)) + b"".join(encode_key(k) for k in "42#")
    items = WiegandParser().feed(keys)
    assert drops(items) == [DropCause.OVERSIZED]
    assert items[-1] == PinFrame("42")


def test_pin_is_not_in_repr():
    assert "1234" not in repr(PinFrame("1234"))


card_lines = st.one_of(
    st.integers(0, (1 << 24) - 1).map(lambda d: encode_card(d, 26)),
    st.integers(0, (1 << 32) - 1).map(lambda d: encode_card(d, 34)),
)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(noise):
    for item in WiegandParser().feed(noise):
        assert isinstance(item, CardFrame | PinFrame | FrameDropped)


@settings(max_examples=300)
@given(card_lines, st.data())
def test_a_single_mutated_byte_never_yields_a_different_card(line, data):
    [original] = WiegandParser().feed(line)
    frame = bytearray(line)
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] = data.draw(st.integers(0, 255).filter(lambda b: b != frame[index]))
    for item in WiegandParser().feed(bytes(frame)):
        assert not isinstance(item, PinFrame)
        if isinstance(item, CardFrame):
            assert item == original


keys = st.sampled_from("0123456789*#").flatmap(lambda k: st.sampled_from([4, 8]).map(lambda b: encode_key(k, b)))


@settings(max_examples=200)
@given(st.lists(st.one_of(card_lines, keys, st.binary(max_size=12)), max_size=10), st.data())
def test_splitting_the_stream_anywhere_gives_the_same_observations(chunks, data):
    in_pieces, whole = split_anywhere(WiegandParser, chunks, data)
    assert in_pieces == whole


@pytest.mark.parametrize("terminator", [b"\n", b"\r"])
def test_a_byte_turned_terminator_never_makes_the_tail_of_a_34_bit_card_a_26_bit_one(terminator):
    # Found by the property test above: card 0 at 34 bits with byte 7 turned into a terminator
    # left a tail of 26 bits with valid parity, read as a different card.
    line = bytearray(encode_card(0, 34))
    line[7:8] = terminator
    parser = WiegandParser()
    assert not [item for item in parser.feed(bytes(line)) if isinstance(item, CardFrame)]
    assert parser.drops.total() >= 2  # the split head and the voided tail are both counted


def test_after_a_lone_terminator_only_the_next_line_is_voided():
    parser = WiegandParser()
    items = parser.feed(b"0101\n" + encode_card(0xD41B81, 26) + encode_card(0xD41B81, 26))
    cards = [item for item in items if isinstance(item, CardFrame)]
    assert [c.serial for c in cards] == [bytes.fromhex("D41B81")]  # the second tap reads


def test_garbage_ended_by_cr_lf_does_not_cost_the_next_card():
    items = WiegandParser().feed(b"01x1\r\n" + encode_card(0xD41B81, 26))
    assert [item.serial for item in items if isinstance(item, CardFrame)] == [bytes.fromhex("D41B81")]
