"""Registers <-> values: pure decode and encode of each data type and order.

A value that cannot be decoded (wrong number of registers, NaN or infinite float, outside
the point's valid range) raises `DecodeError`: it is no reading, never a number.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from edge.drivers.modbus.points import Point
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import DataType, Order
from edge.drivers.modbus.writes import Command

Value = bool | int | float | str

_STRUCT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.FLOAT32: ">f",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT64: ">d",
}
_FLOATS = (DataType.FLOAT32, DataType.FLOAT64)


class DecodeError(ValueError):
    """These registers hold no trustworthy value for the point."""


class EncodeError(ValueError):
    """This value does not fit the point's data type."""


def _to_bytes(registers: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    """Reorder device registers into one big-endian byte string."""
    words = list(registers) if word_order is Order.BIG else list(reversed(registers))
    raw = bytearray()
    for word in words:
        pair = word.to_bytes(2, "big")
        raw += pair if byte_order is Order.BIG else pair[::-1]
    return bytes(raw)


def _to_registers(raw: bytes, word_order: Order, byte_order: Order) -> list[int]:
    """Split a big-endian byte string into registers in the device's order."""
    pairs = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if byte_order is Order.LITTLE:
        pairs = [pair[::-1] for pair in pairs]
    if word_order is Order.LITTLE:
        pairs.reverse()
    return [int.from_bytes(pair, "big") for pair in pairs]


def decode_raw(
    data_type: DataType,
    registers: Sequence[int],
    word_order: Order = Order.BIG,
    byte_order: Order = Order.BIG,
    bit: int | None = None,
    bit_count: int | None = None,
    byte: str | None = None,
) -> Value:
    """The raw value in `registers` (exactly the point's width of them; any number for a string)."""
    if data_type is not DataType.STRING and len(registers) != data_type.width:
        raise DecodeError(f"{data_type.value} needs {data_type.width} registers, got {len(registers)}")
    if any(not 0 <= word <= 0xFFFF for word in registers):
        raise DecodeError("register value outside 0..65535")
    if data_type is DataType.BOOL:
        word = registers[0]
        return bool(word) if bit is None else bool((word >> bit) & 1)
    if bit_count is not None:  # a field of bits of one register: a code, a count
        return (registers[0] >> (bit or 0)) & ((1 << bit_count) - 1)
    if byte is not None:
        octet = registers[0] >> 8 if byte == "high" else registers[0] & 0xFF
        return octet - 256 if data_type is DataType.INT8 and octet > 127 else octet
    if data_type is DataType.STRING:  # two characters a register; padding (NUL, space) dropped
        return _to_bytes(registers, Order.BIG, byte_order).rstrip(b"\x00 ").decode("latin-1")
    (value,) = struct.unpack(_STRUCT[data_type], _to_bytes(registers, word_order, byte_order))
    if data_type in _FLOATS and not math.isfinite(value):
        raise DecodeError(f"{data_type.value} is {value}")
    return value


def encode_raw(
    data_type: DataType,
    value: Value,
    word_order: Order = Order.BIG,
    byte_order: Order = Order.BIG,
) -> list[int]:
    """Registers holding raw `value` in the device's order (bool: one register, 0 or 1)."""
    if data_type is DataType.BOOL:
        return [1 if value else 0]
    if data_type in (DataType.INT8, DataType.UINT8, DataType.STRING):
        raise EncodeError(f"{data_type.value} is written through its point (encode_point)")
    if data_type in _FLOATS:
        if not math.isfinite(value):
            raise EncodeError(f"cannot encode {value} as float32")
    elif not float(value).is_integer():
        raise EncodeError(f"{data_type.value} needs a whole number, got {value}")
    try:
        raw = struct.pack(_STRUCT[data_type], value if data_type in _FLOATS else int(value))
    except (struct.error, OverflowError) as error:
        raise EncodeError(f"{value} does not fit {data_type.value}") from error
    return _to_registers(raw, word_order, byte_order)


def decode_point(profile: Profile, point: Point, registers: Sequence[int]) -> Value:
    """The engineering value of `point` (bool points stay bool; scaled values are float)."""
    raw = decode_raw(
        point.type, registers, profile.word_order_of(point), profile.byte_order_of(point), point.bit,
        point.bit_count, point.byte,
    )
    if isinstance(raw, bool | str):
        return raw
    value: Value = raw if point.scale == 1.0 and point.offset == 0.0 else raw * point.scale + point.offset
    if point.valid_min is not None and value < point.valid_min:
        raise DecodeError(f"{value} {point.unit} is below valid_min {point.valid_min}")
    if point.valid_max is not None and value > point.valid_max:
        raise DecodeError(f"{value} {point.unit} is above valid_max {point.valid_max}")
    return value


def encode_point(profile: Profile, point: Point, value: Value) -> list[int]:
    """Registers a device shows for engineering `value` of `point` (used by simulators). For a
    view of part of a register (a bit, a field, a byte) the view's bits in place, the rest 0."""
    if point.type is DataType.BOOL:
        return encode_raw(point.type, value)
    if point.type is DataType.STRING:
        text = str(value).encode("latin-1")[: 2 * point.width].ljust(2 * point.width, b"\x00")
        return _to_registers(text, Order.BIG, profile.byte_order_of(point))
    raw = (value - point.offset) / point.scale
    if point.type not in _FLOATS:
        raw = round(raw)
    if point.bits is not None:  # a field or a byte: shift into place
        shift = (point.bits & -point.bits).bit_length() - 1
        return [(int(raw) << shift) & point.bits]
    return encode_raw(point.type, raw, profile.word_order_of(point), profile.byte_order_of(point))


def command_words(profile: Profile, command: Command, value: float | str | None) -> list[int]:
    """The words a command writes: its fixed values, or its argument `value` encoded (raises
    `EncodeError` for a missing, unexpected or out-of-range value)."""
    argument = command.argument
    if argument is None:
        if value is not None:
            raise EncodeError(f"command {command.name} takes no value")
        return [command.raw_word] if command.raw_word is not None else list(command.values)
    if value is None or (not isinstance(value, str) and not math.isfinite(value)):
        raise EncodeError(f"command {command.name} needs a value ({argument.min:g}..{argument.max:g} {argument.unit})".rstrip())
    try:
        value = argument.code_of(value)
    except ValueError as error:
        raise EncodeError(str(error)) from None
    if not argument.min <= value <= argument.max:
        raise EncodeError(f"{value:g} is outside {argument.min:g}..{argument.max:g} {argument.unit}".rstrip())
    raw = (value - argument.offset) / argument.scale
    if argument.type.is_integer:  # a float32 or float64 keeps its fraction: 2.5 is sent as 2.5
        raw = round(raw)
    return encode_raw(
        argument.type, raw, argument.word_order or profile.word_order, argument.byte_order or profile.byte_order
    )
