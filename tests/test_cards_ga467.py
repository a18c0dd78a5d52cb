"""GA 467 ID-card reader frames: literal frames, round trips, privacy, drops, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.cards.ga467 import (
    PREAMBLE,
    Command,
    Direction,
    Ga467Parser,
    IdentityText,
    Reply,
    Request,
    Status,
    encode_basic_info,
    encode_reply,
    encode_request,
    id_number_is_valid,
    parse_basic_info,
)
from edge.drivers.cards.observations import DropCause, FrameDropped

# Literal frames from the reader interface description and public drivers (module docstring).
FIND = bytes.fromhex("AAAAAA9669 0003 2001 22")
SELECT = bytes.fromhex("AAAAAA9669 0003 2002 21")
READ = bytes.fromhex("AAAAAA9669 0003 3001 32")
FIND_OK = bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97")
SELECT_OK = bytes.fromhex("AAAAAA9669 000C 000090 0000000000000000 9C")
FIND_FAILED = bytes.fromhex("AAAAAA9669 0004 000080 84")
READ_REPLY_HEAD = bytes.fromhex("AAAAAA9669 0508 000090 0100 0400")

EXAMPLE_ID = "11010519491231002X"  # the example number of GB 11643-1999
NAME = "张三"


def replies(items):
    return [item for item in items if isinstance(item, Reply)]


def drops(items):
    return [item.cause for item in items if isinstance(item, FrameDropped)]


def read_reply(name=NAME, id_number=EXAMPLE_ID, photo=bytes(1024)) -> bytes:
    return encode_reply(0, 0, Status.SUCCESS, encode_basic_info(name, id_number, photo=photo))


@pytest.mark.parametrize(("command", "frame"), [(Command.FIND_CARD, FIND), (Command.SELECT_CARD, SELECT), (Command.READ_BASIC_INFO, READ)])
def test_request_encoder_matches_literal_frames(command, frame):
    assert encode_request(*command.value) == frame
    assert Ga467Parser(Direction.REQUEST).feed(frame) == [Request(*command.value)]


@pytest.mark.parametrize(
    ("frame", "reply"),
    [
        (FIND_OK, Reply(0, 0, Status.CARD_FOUND, bytes(4))),
        (SELECT_OK, Reply(0, 0, Status.SUCCESS, bytes(8))),
        (FIND_FAILED, Reply(0, 0, Status.FIND_FAILED)),
    ],
)
def test_reply_parser_and_encoder_match_literal_frames(frame, reply):
    assert Ga467Parser().feed(frame) == [reply]
    assert encode_reply(reply.sw1, reply.sw2, reply.sw3, reply.data) == frame
    assert reply.ok is (reply.sw3 != Status.FIND_FAILED)


def test_read_basic_info_reply_has_the_documented_size_and_header():
    frame = read_reply()
    assert len(frame) == 1295
    assert frame.startswith(READ_REPLY_HEAD)


def test_basic_info_round_trips_to_name_and_id_number_only():
    [reply] = Ga467Parser().feed(read_reply())
    identity = parse_basic_info(reply.data)
    assert (identity.name, identity.id_number, identity.last_four) == (NAME, EXAMPLE_ID, "002X")


def test_text_layout_follows_ga_t_490():
    data = encode_basic_info(NAME, EXAMPLE_ID, sex="1", nation="01", birth="19491231")
    text = data[4 : 4 + 256]
    assert text[0:4] == NAME.encode("utf-16-le")
    assert text[30:32] == "1".encode("utf-16-le")
    assert text[36:52] == "19491231".encode("utf-16-le")
    assert text[122:158] == EXAMPLE_ID.encode("utf-16-le")


def test_identity_never_shows_in_repr_or_reply_repr():
    [reply] = Ga467Parser().feed(read_reply())
    identity = parse_basic_info(reply.data)
    for shown in (repr(identity), str(identity), repr(reply)):
        assert EXAMPLE_ID not in shown and "1949" not in shown and NAME not in shown


@pytest.mark.parametrize(
    ("number", "valid"),
    [(EXAMPLE_ID, True), ("110105194912310021", False), ("11010519491231002x", False), ("1101051949123100", False)],
)
def test_id_number_check_character(number, valid):
    assert id_number_is_valid(number) is valid


@pytest.mark.parametrize(
    "data",
    [
        encode_basic_info(NAME, "110105194912310021"),  # wrong check character
        encode_basic_info("", EXAMPLE_ID),  # no name
        encode_basic_info(NAME, EXAMPLE_ID)[:-1],  # short
        bytes.fromhex("0100 0300") + encode_basic_info(NAME, EXAMPLE_ID)[4:],  # wrong declared sizes
        bytes.fromhex("0100 0400") + b"\x00\xd8" * 128 + bytes(1024),  # lone surrogates
    ],
)
def test_bad_basic_info_is_refused_without_quoting_it(data):
    with pytest.raises(ValueError) as error:
        parse_basic_info(data)
    assert EXAMPLE_ID not in str(error.value)


def test_bad_frames_are_dropped_by_cause_and_parsing_resumes():
    parser = Ga467Parser()
    bad_checksum = FIND_OK[:-1] + b"\x00"
    oversized = PREAMBLE + b"\xff\xff" + bytes(8)
    too_short = PREAMBLE + b"\x00\x02\x00\x02"
    items = parser.feed(b"\x01\x02garbage" + bad_checksum + oversized + too_short + FIND_OK)
    assert drops(items) == [
        DropCause.GARBAGE,
        DropCause.BAD_CHECKSUM,
        DropCause.OVERSIZED,
        DropCause.MALFORMED,
    ]
    assert replies(items) == [Reply(0, 0, Status.CARD_FOUND, bytes(4))]


def test_flush_drops_a_frame_cut_short_at_the_end_of_a_reply_window():
    parser = Ga467Parser()
    assert parser.feed(read_reply()[:600]) == []
    assert drops(parser.flush()) == [DropCause.TRUNCATED]
    assert replies(parser.feed(SELECT_OK)) == [Reply(0, 0, Status.SUCCESS, bytes(8))]


def test_a_frame_cut_short_by_the_next_is_dropped_and_the_next_survives():
    parser = Ga467Parser()
    cut = FIND_OK[:10]
    items = parser.feed(cut + SELECT_OK)
    assert replies(items) == [Reply(0, 0, Status.SUCCESS, bytes(8))]
    assert drops(items) == [DropCause.BAD_CHECKSUM]


def test_encoder_refuses_oversized_frames():
    with pytest.raises(ValueError, match="exceeds"):
        encode_reply(0, 0, 0x90, bytes(3000))


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(noise):
    for direction in Direction:
        parser = Ga467Parser(direction)
        for item in parser.feed(noise) + parser.flush():
            assert isinstance(item, Request | Reply | FrameDropped)


@settings(max_examples=200)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=64))
def test_request_round_trip(cmd, para, data):
    assert Ga467Parser(Direction.REQUEST).feed(encode_request(cmd, para, data)) == [Request(cmd, para, data)]


@settings(max_examples=200)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=64))
def test_reply_round_trip(sw1, sw2, sw3, data):
    assert Ga467Parser().feed(encode_reply(sw1, sw2, sw3, data)) == [Reply(sw1, sw2, sw3, data)]


def identities_in(stream: bytes) -> list[IdentityText]:
    found = []
    for reply in replies(Ga467Parser().feed(stream)):
        try:
            found.append(parse_basic_info(reply.data))
        except ValueError:
            pass
    return found


# Photos are binary; keep them free of 0xAA so a photo can never hold a preamble of its own.
photos = st.binary(min_size=1024, max_size=1024).map(lambda p: p.replace(b"\xaa", b"\x00"))


@settings(max_examples=150, deadline=None)
@given(photos, st.data())
def test_a_single_mutated_byte_never_yields_a_different_identity(photo, data):
    frame = bytearray(read_reply(photo=photo))
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] = data.draw(st.integers(0, 255).filter(lambda b: b != frame[index]))
    for identity in identities_in(bytes(frame)):
        assert (identity.name, identity.id_number) == (NAME, EXAMPLE_ID)


frames = st.one_of(
    st.sampled_from([FIND_OK, SELECT_OK, FIND_FAILED]),
    st.binary(max_size=16).map(lambda d: encode_reply(0, 0, 0x90, d)),
    st.binary(max_size=16),
    st.just(read_reply()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, max_size=6), st.data())
def test_splitting_the_stream_anywhere_gives_the_same_observations(chunks, data):
    stream = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    split = Ga467Parser()
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    whole = Ga467Parser()
    assert [i for p in pieces for i in split.feed(p)] + split.flush() == whole.feed(stream) + whole.flush()
