"""The OSDP frame reassembler and event translation: pure, no serial port."""

from __future__ import annotations

import osdp
from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.cards.observations import CardRead, DropCause, FaultReason, PinEntry, ReaderFault, ReaderRestored
from edge.drivers.osdp.events import EventTranslator
from edge.drivers.osdp.frames import FrameAssembler, crc16, seal
from edge.hil.osdp_pd import wiegand26

# osdp_POLL to address 1, CRC, SQN 0 (OSDP v2.2 annex: 53 01 08 00 04 60 then CRC low, high)
POLL = seal(bytes([0x53, 0x01, 0x08, 0x00, 0x04, 0x60]))
# osdp_ACK from address 1 with a checksum instead of a CRC
ACK = seal(bytes([0x53, 0x81, 0x07, 0x00, 0x00, 0x40]), use_crc=False)


def _frame(address: int, payload: bytes, use_crc: bool) -> bytes:
    length = 5 + len(payload) + (2 if use_crc else 1)
    header = bytes([0x53, address, length & 0xFF, length >> 8, 0x04 if use_crc else 0x00])
    return seal(header + payload, use_crc)


frames = st.lists(
    st.builds(_frame, st.integers(0, 0xFF), st.binary(min_size=1, max_size=60), st.booleans()),
    min_size=1, max_size=6,
)


def test_crc_matches_the_spec_check_value() -> None:
    # CRC-16/SPI-FUJITSU (poly 0x1021, init 0x1D0F) check value over "123456789" is 0xE5CC
    assert crc16(b"123456789") == 0xE5CC


def test_whole_frames_come_out_one_each() -> None:
    assembler = FrameAssembler()
    assert assembler.feed(POLL + ACK) == [POLL, ACK]
    assert assembler.drops.total() == 0


def test_a_frame_in_single_bytes_comes_out_once_whole() -> None:
    assembler = FrameAssembler()
    out = [frame for byte in POLL for frame in assembler.feed(bytes([byte]))]
    assert out == [POLL]
    assert assembler.pending() == 0


def test_mark_byte_stays_with_its_frame() -> None:
    assert FrameAssembler().feed(b"\xff" + POLL) == [b"\xff" + POLL]


def test_wrong_check_is_dropped_and_the_next_frame_found() -> None:
    bad = POLL[:-1] + bytes([POLL[-1] ^ 1])
    assembler = FrameAssembler()
    assert assembler.feed(bad + ACK) == [ACK]
    assert assembler.drops[DropCause.BAD_CHECKSUM] == 1


def test_false_som_with_huge_length_does_not_swallow_a_frame() -> None:
    assembler = FrameAssembler()
    assert assembler.feed(b"\x53\x01\xff\xff\x04" + POLL) == [POLL]
    assert assembler.drops[DropCause.OVERSIZED] == 1


def test_a_cut_frame_does_not_hold_back_the_next() -> None:
    assembler = FrameAssembler()
    long_frame = _frame(0x81, bytes(range(40)), use_crc=True)
    assert assembler.feed(long_frame[:12] + ACK) == [ACK]
    assert assembler.drops[DropCause.TRUNCATED] == 1


def test_a_long_run_of_som_bytes_is_dropped_without_recursion() -> None:
    assembler = FrameAssembler()
    assert assembler.feed(b"\x53" * 5000 + POLL) == [POLL]


@given(frames, st.lists(st.integers(0, 400), max_size=10))
def test_random_split_points_give_the_same_frames(sent: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(sent)
    points = sorted({min(c, len(stream)) for c in cuts})
    assembler = FrameAssembler()
    out: list[bytes] = []
    for start, end in zip([0, *points], [*points, len(stream)]):
        out += assembler.feed(stream[start:end])
    assert out == sent


@given(frames, st.lists(st.binary(max_size=30), min_size=1, max_size=7))
def test_garbage_between_frames_is_skipped(sent: list[bytes], junk: list[bytes]) -> None:
    # garbage without SOM or mark bytes cannot start a frame, so every frame survives
    clean = [bytes(b for b in j if b not in (0x53, 0xFF)) for j in junk]
    clean += [b""] * (len(sent) - len(clean))
    stream = b"".join(c + f for c, f in zip(clean, sent)) + b"".join(clean[len(sent):])
    assembler = FrameAssembler()
    assert assembler.feed(stream) == sent


@given(st.binary(max_size=500))
def test_random_bytes_never_crash_and_only_yield_check_valid_frames(data: bytes) -> None:
    for frame in FrameAssembler().feed(data):
        body = frame[1:] if frame[0] == 0xFF else frame
        assert body[0] == 0x53 and int.from_bytes(body[2:4], "little") == len(body)


def test_card_read_with_parity_becomes_the_same_serial_as_wiegand() -> None:
    translator = EventTranslator("front")
    event = {"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0,
             "format": osdp.CardFormat.Wiegand, "length": 26, "data": wiegand26(0xD41B81)}
    [read] = translator.translate(event, 1.0)
    assert isinstance(read, CardRead) and read.serial == bytes.fromhex("D41B81") and read.bits == 26


def test_card_read_with_bad_parity_is_a_counted_drop() -> None:
    translator = EventTranslator("front")
    data = bytearray(wiegand26(0xD41B81))
    data[0] ^= 0x80  # flip the even parity bit
    event = {"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0,
             "format": osdp.CardFormat.Wiegand, "length": 26, "data": bytes(data)}
    assert not any(isinstance(o, CardRead) for o in translator.translate(event, 1.0))
    assert translator.drops[DropCause.BAD_PARITY] == 1


def test_keypad_digits_submit_on_hash_and_clear_on_star() -> None:
    translator = EventTranslator("front")
    out = translator.translate({"event": osdp.Event.KeyPress, "reader_no": 0, "data": b"12*34\r"}, 2.0)
    assert out == [PinEntry("front", "34", 2.0)]


def test_tamper_raises_then_clears() -> None:
    translator = EventTranslator("front")
    status = {"event": osdp.Event.Status, "type": osdp.StatusReportType.Local}
    [fault] = translator.translate({**status, "report": b"\x01\x00"}, 1.0)
    assert isinstance(fault, ReaderFault) and fault.reason is FaultReason.TAMPER
    assert translator.translate({**status, "report": b"\x01\x00"}, 1.1) == []
    [restored] = translator.translate({**status, "report": b"\x00\x00"}, 1.2)
    assert isinstance(restored, ReaderRestored) and restored.reason is FaultReason.TAMPER


def test_malformed_events_are_counted_not_raised() -> None:
    translator = EventTranslator("front")
    translator.translate({"event": osdp.Event.CardRead}, 1.0)
    translator.translate({"event": osdp.Event.KeyPress, "reader_no": 0, "data": "12"}, 1.0)
    assert translator.drops[DropCause.MALFORMED] == 2
