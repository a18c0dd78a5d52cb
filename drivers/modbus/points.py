"""The points of a device profile: one value the device reports each, where it lies and how it
reads, and the tests on values (`Match`) that alarms, validity, preconditions and read-backs share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from edge.drivers.modbus.tables import (
    MAX_ADDRESS,
    Address,
    Addressing,
    DataType,
    Function,
    Label,
    Name,
    Order,
    Severity,
    converted_address,
)
from edge.drivers.strict import Strict


class Match(Strict):
    """A test on a point's value: one of the values (or enum labels) in `when`, or above or
    below a limit. Exactly one of the three is given."""

    when: list[bool | int | float | Label] | bool | int | float | Label | None = Field(
        default=None, description="Values or enum labels that match, e.g. [overload, short_circuit] (one value alone: a list of it)."
    )
    above: float | None = Field(default=None, allow_inf_nan=False, description="Matches values above this.")
    below: float | None = Field(default=None, allow_inf_nan=False, description="Matches values below this.")

    @field_validator("when", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, list) and not 1 <= len(value) <= 32:
            raise ValueError("give 1 to 32 values")
        return value if isinstance(value, list) or value is None else [value]

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.when, self.above, self.below)) != 1:
            raise ValueError("give exactly one of 'when', 'above' or 'below'")
        return self

    def check_against(self, point: "Point") -> None:
        """Raise ValueError if this test cannot apply to `point` (a label it does not have, a
        limit on an on/off value)."""
        if self.when is None:
            if point.type is DataType.BOOL:
                raise ValueError(f"'above'/'below' need a number, and {point.name} is {point.type.value}")
            return
        self.values(point.enum)

    def values(self, enum: Mapping[float, str] | None) -> frozenset[Any]:
        """The raw values `when` names, labels looked up in `enum`."""
        names = {label: raw for raw, label in (enum or {}).items()}
        wanted: set[Any] = set()
        for item in self.when or ():
            if isinstance(item, str):
                if item not in names:
                    known = ", ".join(sorted(names)) or "none (the point has no enum)"
                    raise ValueError(f"{item!r} is not a label of the point; its labels: {known}")
                wanted.add(names[item])
            else:
                wanted.add(item)
        return frozenset(wanted)

    def predicate(self, enum: Mapping[float, str] | None) -> Callable[[Any], bool]:
        """A function telling whether a decoded value matches (True == 1, as Python has it)."""
        if self.above is not None:
            above = self.above
            return lambda value: value > above
        if self.below is not None:
            below = self.below
            return lambda value: value < below
        wanted = self.values(enum)
        return lambda value: value in wanted


class PointAlarm(Match):
    """A value of a point that is an alarm or a warning in itself: a trip bit, a fault code, a
    CT-break flag, a reading over the device's own limit."""

    severity: Severity = Field(default="alarm", description="warning or alarm.")
    text: str = Field(min_length=1, max_length=120, description="What the technician reads, e.g. 'tripped by its own protection'.")


class VoidIf(Match):
    """Another point of the device that, when it matches, says this point's reading is not valid
    (a CT-break bit voiding the leakage reading, a cleared bit of a validity bitmap)."""

    point: Name = Field(description="The point that voids this one, e.g. ct_break.")


class Point(Strict):
    """One value the device reports."""

    @model_validator(mode="before")
    @classmethod
    def _to_protocol_address(cls, data: Any) -> Any:
        return converted_address(data)

    name: Name = Field(description="Point name, unique within the profile (snake_case).")
    function: Function = Field(description="Data table the point is read from.")
    address: Address
    type: DataType = Field(description="Data type of the raw value.")
    bit: int | None = Field(
        default=None,
        ge=0,
        le=15,
        description="For a bool in a holding/input register: the bit (0 = least significant); for a "
        "uint16 field: its lowest bit.",
    )
    bit_count: int | None = Field(
        default=None, ge=1, le=16, description="A uint16 field of this many bits from `bit` (a multi-bit code)."
    )
    byte: Literal["high", "low"] | None = Field(default=None, description="For int8/uint8: which byte of the register.")
    length: int | None = Field(default=None, ge=1, le=64, description="For a string: registers it spans.")
    addressing: Addressing = Field(
        default=Addressing.PROTOCOL, description="How `address` is written; the profile's `addressing` if unset."
    )
    word_order: Order | None = Field(
        default=None, description="Order of the two words of a 32-bit value; profile default if unset."
    )
    byte_order: Order | None = Field(
        default=None, description="Order of the two bytes in each register; profile default if unset."
    )
    scale: float = Field(default=1.0, description="Engineering value = raw * scale + offset.")
    offset: float = Field(default=0.0, description="Engineering value = raw * scale + offset.")
    unit: str = Field(default="", max_length=16, description="Unit of the engineering value.")
    interval_s: float | None = Field(
        default=None, gt=0, le=86400, description="Poll interval; profile default if unset."
    )
    valid_min: float | None = Field(
        default=None, description="Engineering values below this are a sensor fault, not a reading."
    )
    valid_max: float | None = Field(
        default=None, description="Engineering values above this are a sensor fault, not a reading."
    )
    enum: dict[int | float, Label] | None = Field(
        default=None, max_length=256, description="Names of the values of a state or code point, e.g. {0: none, 1: overload}; "
        "on any numeric type, a float code matched exactly (a meter's {9600.0: b9600})."
    )
    alarms: list[PointAlarm] = Field(
        default_factory=list, max_length=8, description="Values that raise an alarm or a warning by themselves."
    )
    void_if: VoidIf | None = Field(default=None, description="Another point that says when this reading is not valid.")
    description: str = Field(default="", max_length=200)

    @property
    def width(self) -> int:
        return self.length or 1 if self.type is DataType.STRING else self.type.width

    @property
    def bits(self) -> int | None:
        """The mask of the register's bits this point views; None for a whole-register point."""
        if self.byte is not None:
            return 0xFF00 if self.byte == "high" else 0x00FF
        if self.bit is None:
            return None
        return ((1 << (self.bit_count or 1)) - 1) << self.bit

    @property
    def last_address(self) -> int:
        return self.address + self.width - 1

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        if self.function.is_bit and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.function.value} point must be of type bool")
        if self.function.is_bit and self.bit is not None:
            raise ValueError("bit applies only to a bool in a holding or input register")
        if not self.function.is_bit and self.type is DataType.BOOL and self.bit is None:
            raise ValueError("a bool in a register needs bit: 0-15")
        if self.bit_count is not None and (self.type is not DataType.UINT16 or self.bit is None):
            raise ValueError("bit_count makes a field of a uint16: give type uint16 and its lowest bit")
        if self.bit_count is not None and self.bit + self.bit_count > 16:
            raise ValueError(f"bits {self.bit}..{self.bit + self.bit_count - 1} run past bit 15")
        if self.type is not DataType.BOOL and self.bit is not None and self.bit_count is None:
            raise ValueError("bit applies only to type bool, or to a uint16 field with bit_count")
        if (self.type in (DataType.INT8, DataType.UINT8)) != (self.byte is not None):
            raise ValueError("int8/uint8 need byte: high or low, and byte applies only to them")
        if (self.type is DataType.STRING) != (self.length is not None):
            raise ValueError("a string needs length (registers), and length applies only to strings")
        if self.type is DataType.STRING and (self.scale != 1.0 or self.offset != 0.0 or self.valid_min is not None
                                             or self.valid_max is not None):
            raise ValueError("a string has no scale, offset or valid range")
        if self.type is DataType.BOOL and (self.scale != 1.0 or self.offset != 0.0):
            raise ValueError("a bool point cannot have scale or offset")
        if self.scale == 0.0:
            raise ValueError("scale must not be 0")
        if self.last_address > MAX_ADDRESS:
            raise ValueError(
                f"registers {self.address}..{self.last_address} run past {MAX_ADDRESS}"
            )
        if self.valid_min is not None and self.valid_max is not None and self.valid_min > self.valid_max:
            raise ValueError("valid_min is above valid_max")
        if self.enum is not None and self.type in (DataType.BOOL, DataType.STRING):
            raise ValueError(f"enum names numeric codes; a {self.type.value} has none")
        for alarm in self.alarms:
            alarm.check_against(self)
        return self


def check_void(point: Point, names: dict[str, Point]) -> None:
    """Raise ValueError unless `point`'s void_if names another point of `names` that is not voided itself
    and that its test can apply to."""
    voider = names.get(point.void_if.point)
    if voider is None:
        raise ValueError(f"point {point.name!r}: void_if names {point.void_if.point!r}, which is not a point")
    if voider is point or voider.void_if is not None:
        raise ValueError(f"point {point.name!r}: void_if must name a point that is not voided itself")
    try:
        point.void_if.check_against(voider)
    except ValueError as error:
        raise ValueError(f"point {point.name!r}: void_if: {error}") from None
