"""The Modbus data model a device profile is written in: its four tables, addresses as manuals
print them, value types and word orders, and the bounded names every part of a profile uses.

Kept apart from the profile's points and commands because the read planner, the decoder and the
wire speak it too, without needing a profile.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

MAX_ADDRESS = 65535
MODBUS_MAX_REGISTERS_PER_READ = 125
MODBUS_MAX_BITS_PER_READ = 2000


class Function(StrEnum):
    """The four Modbus data tables."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bit(self) -> bool:
        return self in (Function.COIL, Function.DISCRETE)


class DataType(StrEnum):
    """How the registers of one point are to be read."""

    BOOL = "bool"
    INT8 = "int8"  # one byte of a register (`byte: high|low`)
    UINT8 = "uint8"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT64 = "float64"
    STRING = "string"  # `length` registers of text, two characters each (a model name, a serial)

    @property
    def width(self) -> int:
        """Registers (or bits, for bool on a bit table) the value occupies (a string: see `length`)."""
        return _WIDTHS.get(self, 1)

    @property
    def is_integer(self) -> bool:
        return self in _INTEGERS


_WIDTHS = {
    DataType.INT32: 2, DataType.UINT32: 2, DataType.FLOAT32: 2,
    DataType.INT64: 4, DataType.UINT64: 4, DataType.FLOAT64: 4,
}
_INTEGERS = frozenset({
    DataType.INT8, DataType.UINT8, DataType.INT16, DataType.UINT16,
    DataType.INT32, DataType.UINT32, DataType.INT64, DataType.UINT64,
})


class Addressing(StrEnum):
    """How a profile writes register addresses: as the protocol sends them, or as manuals print them."""

    PROTOCOL = "protocol"  # zero-based, as on the wire
    ONE_BASED = "one_based"  # register 1 is protocol address 0
    MODICON = "modicon"  # 00001 coils, 10001 discrete inputs, 30001 input and 40001 holding registers (or 400001)


_MODICON_PREFIX = {"coil": 0, "discrete": 1, "input": 3, "holding": 4}


def protocol_address(written: int, addressing: Addressing, function: str) -> int:
    """The zero-based address of a register number as a manual prints it; ValueError if it cannot be."""
    if addressing is Addressing.PROTOCOL:
        return written
    if addressing is Addressing.ONE_BASED:
        if written < 1:
            raise ValueError(f"register numbers start at 1 (addressing: one_based), got {written}")
        return written - 1
    prefix = _MODICON_PREFIX.get(function)
    if prefix is None:
        raise ValueError(f"unknown table {function!r}")
    if prefix == 0:
        number = written
    elif written >= 100_000:
        number = written - prefix * 100_000 if written // 100_000 == prefix else -1
    else:
        number = written - prefix * 10_000 if written // 10_000 == prefix else -1
    if not 1 <= number <= MAX_ADDRESS + 1:
        raise ValueError(
            f"{written} is not a {function} register number (modicon: {prefix}0001.. or {prefix}00001..)"
        )
    return number - 1


class Order(StrEnum):
    """Big: most significant first. Word order x byte order covers ABCD, CDAB, BADC, DCBA."""

    BIG = "big"
    LITTLE = "little"


def converted_address(data: Any) -> Any:
    """Turn an address written as a manual prints it into the protocol address, once."""
    if not isinstance(data, dict) or data.get("addressing", "protocol") == "protocol":
        return data
    written, function = data.get("address"), data.get("function")
    if not isinstance(written, int) or isinstance(written, bool) or not isinstance(function, str):
        return data  # the field validators report what is wrong with them
    address = protocol_address(written, Addressing(data["addressing"]), function)
    return {**data, "address": address, "addressing": "protocol"}


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
ModelId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Address = Annotated[int, Field(ge=0, le=MAX_ADDRESS, description="Zero-based protocol address.")]
Label = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_]*$")]
Severity = Literal["warning", "alarm"]
