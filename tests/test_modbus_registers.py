"""Decoding and encoding of every data type in every word and byte order."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import DataType, Order
from edge.drivers.modbus.registers import DecodeError, EncodeError, decode_point, decode_raw, encode_point, encode_raw

B, L = Order.BIG, Order.LITTLE
ORDERS = [(B, B), (L, B), (B, L), (L, L)]  # ABCD, CDAB, BADC, DCBA

# (type, value, {(word order, byte order): registers})
VECTORS = [
    (DataType.FLOAT32, 1.0, {(B, B): [0x3F80, 0x0000], (L, B): [0x0000, 0x3F80], (B, L): [0x803F, 0x0000], (L, L): [0x0000, 0x803F]}),
    (DataType.INT32, 0x01020304, {(B, B): [0x0102, 0x0304], (L, B): [0x0304, 0x0102], (B, L): [0x0201, 0x0403], (L, L): [0x0403, 0x0201]}),
    (DataType.INT32, -2, {(B, B): [0xFFFF, 0xFFFE], (L, B): [0xFFFE, 0xFFFF], (B, L): [0xFFFF, 0xFEFF], (L, L): [0xFEFF, 0xFFFF]}),
    (DataType.UINT32, 0xA1B2C3D4, {(B, B): [0xA1B2, 0xC3D4], (L, B): [0xC3D4, 0xA1B2], (B, L): [0xB2A1, 0xD4C3], (L, L): [0xD4C3, 0xB2A1]}),
    (DataType.INT16, -2, {(B, B): [0xFFFE], (L, B): [0xFFFE], (B, L): [0xFEFF], (L, L): [0xFEFF]}),
    (DataType.UINT16, 0x1234, {(B, B): [0x1234], (L, B): [0x1234], (B, L): [0x3412], (L, L): [0x3412]}),
    (DataType.BOOL, True, {(B, B): [1], (L, B): [1], (B, L): [1], (L, L): [1]}),
]


@pytest.mark.parametrize("orders", ORDERS, ids=["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize(("data_type", "value", "table"), VECTORS, ids=lambda v: str(v)[:12])
def test_known_vectors_decode_and_encode(data_type, value, table, orders):
    registers = table[orders]
    assert decode_raw(data_type, registers, *orders) == value
    assert encode_raw(data_type, value, *orders) == registers


def _round_trip(data_type, value):
    for orders in ORDERS:
        registers = encode_raw(data_type, value, *orders)
        assert len(registers) == data_type.width
        assert all(0 <= r <= 0xFFFF for r in registers)
        assert decode_raw(data_type, registers, *orders) == value


@given(st.integers(-(2**15), 2**15 - 1))
def test_int16_round_trip(value):
    _round_trip(DataType.INT16, value)


@given(st.integers(0, 2**16 - 1))
def test_uint16_round_trip(value):
    _round_trip(DataType.UINT16, value)


@given(st.integers(-(2**31), 2**31 - 1))
def test_int32_round_trip(value):
    _round_trip(DataType.INT32, value)


@given(st.integers(0, 2**32 - 1))
def test_uint32_round_trip(value):
    _round_trip(DataType.UINT32, value)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip(value):
    _round_trip(DataType.FLOAT32, value)


@given(st.booleans())
def test_bool_round_trip(value):
    _round_trip(DataType.BOOL, value)


@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2), st.sampled_from(ORDERS))
def test_any_two_registers_give_a_finite_float_or_a_decode_error(registers, orders):
    try:
        value = decode_raw(DataType.FLOAT32, registers, *orders)
    except DecodeError:
        return
    assert math.isfinite(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("orders", ORDERS)
def test_non_finite_float_is_no_reading(bad, orders):
    registers = _to_registers_unchecked(bad, orders)
    with pytest.raises(DecodeError):
        decode_raw(DataType.FLOAT32, registers, *orders)


def _to_registers_unchecked(value, orders):
    word_order, byte_order = orders
    raw = struct.pack(">f", value)
    pairs = [raw[0:2], raw[2:4]]
    if byte_order is L:
        pairs = [p[::-1] for p in pairs]
    if word_order is L:
        pairs.reverse()
    return [int.from_bytes(p, "big") for p in pairs]


@pytest.mark.parametrize(
    ("data_type", "registers"),
    [(DataType.FLOAT32, [0x3F80]), (DataType.INT32, [1, 2, 3]), (DataType.UINT16, []), (DataType.INT16, [1, 2])],
)
def test_wrong_length_is_no_reading(data_type, registers):
    with pytest.raises(DecodeError):
        decode_raw(data_type, registers)


def test_register_outside_16_bits_is_no_reading():
    with pytest.raises(DecodeError):
        decode_raw(DataType.UINT16, [0x10000])


@pytest.mark.parametrize(
    ("data_type", "value"),
    [(DataType.INT16, 40000), (DataType.UINT16, -1), (DataType.UINT32, 2**32), (DataType.INT32, 1.5), (DataType.FLOAT32, float("nan"))],
)
def test_values_that_do_not_fit_are_refused(data_type, value):
    with pytest.raises(EncodeError):
        encode_raw(data_type, value)


def _profile(**point) -> Profile:
    return Profile.model_validate({"model": "t", "points": [{"name": "p", "function": "input", "address": 0, **point}]})


def test_scale_and_offset_give_engineering_units():
    profile = _profile(type="int16", scale=0.1, offset=-40.0, unit="degC")
    point = profile.points[0]
    assert decode_point(profile, point, [650]) == pytest.approx(25.0)
    assert encode_point(profile, point, 25.0) == [650]


def test_unscaled_integer_stays_an_integer():
    profile = _profile(type="uint16")
    assert decode_point(profile, profile.points[0], [7]) == 7
    assert isinstance(decode_point(profile, profile.points[0], [7]), int)


def test_value_outside_valid_range_is_no_reading():
    profile = _profile(type="float32", unit="mA", valid_min=3.6, valid_max=21.0)
    point = profile.points[0]
    assert decode_point(profile, point, encode_point(profile, point, 12.0)) == pytest.approx(12.0)
    with pytest.raises(DecodeError):
        decode_point(profile, point, encode_point(profile, point, 0.0))  # broken 4-20 mA loop
    with pytest.raises(DecodeError):
        decode_point(profile, point, encode_point(profile, point, 22.0))


def test_profile_word_order_applies_unless_the_point_overrides_it():
    profile = Profile.model_validate(
        {
            "model": "t",
            "word_order": "little",
            "points": [
                {"name": "a", "function": "input", "address": 0, "type": "float32"},
                {"name": "b", "function": "input", "address": 2, "type": "float32", "word_order": "big"},
            ],
        }
    )
    a, b = profile.points
    assert decode_point(profile, a, [0x0000, 0x3F80]) == 1.0
    assert decode_point(profile, b, [0x3F80, 0x0000]) == 1.0


def test_status_word_bits():
    profile = Profile.model_validate(
        {
            "model": "t",
            "points": [
                {"name": "leak", "function": "input", "address": 5, "type": "bool", "bit": 0},
                {"name": "fault", "function": "input", "address": 5, "type": "bool", "bit": 15},
            ],
        }
    )
    leak, fault = profile.points
    assert decode_point(profile, leak, [0x8000]) is False
    assert decode_point(profile, fault, [0x8000]) is True
