"""Device profiles: what a Modbus device model holds where, said in data.

Supporting a new field device must be a YAML file, not code (ARCHITECTURE.md "Real devices
are odd"): the register map, word and byte order, read limits and the commands a device
accepts all live here. Every field is bounded and described; a bad profile is a pydantic
`ValidationError` whose `loc` paths the caller maps to file lines. Nothing is clamped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
ModelId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Address = Annotated[int, Field(ge=0, le=MAX_ADDRESS, description="Zero-based protocol address.")]
Label = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_]*$")]
Severity = Literal["warning", "alarm"]


class Match(_Strict):
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


class Point(_Strict):
    """One value the device reports."""

    @model_validator(mode="before")
    @classmethod
    def _to_protocol_address(cls, data: Any) -> Any:
        return _converted_address(data)

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


class ReadBack(_Strict):
    """The point that shows a command took effect, and the value it must then show."""

    point: Name = Field(description="Name of a point of this profile.")
    expect: bool | float | Label = Field(
        description="Engineering value the point shows once done; an enum label of the point; or `argument`: the value "
        "the command was given (a setpoint, a range, an address read back)."
    )
    within_s: float = Field(default=2.0, gt=0, le=60, description="How long the device may take.")

    def expected(self, point: "Point", argument: float | None = None) -> bool | float:
        """The value the point must show: `expect`, its label looked up, or the command's argument."""
        if self.expect == "argument":
            if argument is None:
                raise ValueError("expect: argument needs a command that takes an argument")
            return argument
        if isinstance(self.expect, str):
            return Match(when=[self.expect]).values(point.enum).__iter__().__next__()
        return self.expect


class Argument(_Strict):
    """A command value given at run time (a pulse length, a set point), typed and bounded:
    raw = (value - offset) / scale, written as `type` (a float32 is two registers)."""

    type: DataType = Field(description="Data type written; not bool.")
    scale: float = Field(default=1.0, description="value = raw * scale + offset, as for points.")
    offset: float = Field(default=0.0)
    min: float = Field(allow_inf_nan=False, description="Smallest value accepted (engineering units).")
    max: float = Field(allow_inf_nan=False, description="Largest value accepted (engineering units).")
    unit: str = Field(default="", max_length=16)
    word_order: Order | None = Field(default=None, description="Profile default if unset.")
    byte_order: Order | None = Field(default=None, description="Profile default if unset.")
    enum: dict[int | float, Label] | None = Field(
        default=None, max_length=256, description="The only values accepted, by name (a baud rate's codes, a range's "
        "codes): any other value is refused, and a technician may give the label instead of the code."
    )

    def code_of(self, given: float | str) -> float:
        """The value to write for `given` (a number, or a label of `enum`); ValueError says why not."""
        if isinstance(given, str):
            codes = {label: code for code, label in (self.enum or {}).items()}
            if given not in codes:
                raise ValueError(f"{given!r} is not a label of the argument; its labels: {', '.join(codes) or 'none'}")
            return float(codes[given])
        if self.enum is not None and given not in self.enum:
            known = ", ".join(f"{code:g} ({label})" for code, label in self.enum.items())
            raise ValueError(f"{given:g} is not one of its codes: {known}")
        return given

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.enum is not None and any(not self.min <= code <= self.max for code in self.enum):
            raise ValueError("every enum code must lie within min..max")
        if self.type is DataType.BOOL:
            raise ValueError("an argument is a number; a fixed on/off is 'values'")
        if self.type in (DataType.INT8, DataType.UINT8):
            raise ValueError(f"an argument cannot be {self.type.value}: a write sets whole registers, and the register's "
                             "other byte is not known to the gateway; write the register as uint16/int16 (its manual's "
                             "whole-register value)")
        if self.type is DataType.STRING:
            raise ValueError("an argument is a number, not a string")
        if self.scale == 0.0:
            raise ValueError("scale must not be 0")
        if self.min > self.max:
            raise ValueError("min is above max")
        return self


class Precondition(Match):
    """A point that must match before the command is sent; otherwise it is refused with `refuse`."""

    point: Name = Field(description="Point read just before the write, e.g. local_mode.")
    refuse: str = Field(min_length=1, max_length=120, description="Why it is refused, e.g. 'breaker in local mode'.")


class Result(_Strict):
    """A register where the device says what it made of the command (done, refused and why)."""

    point: Name = Field(description="The result point; its enum names the codes, e.g. {1: done, 2: refused_interlock}.")
    ok: list[int | Label] = Field(min_length=1, max_length=16, description="Values (or labels) meaning done.")
    pending: list[int | Label] = Field(default_factory=list, max_length=16, description="Values meaning still working.")
    within_s: float = Field(default=1.0, gt=0, le=60, description="How long the result may stay pending.")
    settle_s: float = Field(
        default=0.0, ge=0, le=10, description="How long after the write the register still shows the previous command's "
        "result (read only after it, so an old 'done' is never taken for this command's)."
    )


class Command(_Strict):
    """A named write: one coil, a block of coils, or a block of registers in one request."""

    @model_validator(mode="before")
    @classmethod
    def _to_protocol_address(cls, data: Any) -> Any:
        return _converted_address(data)

    name: Name = Field(description="Command name, e.g. trip, close, reset.")
    function: Function = Field(description="coil or holding.")
    function_code: Literal[5, 6, 15, 16] | None = Field(
        default=None,
        description="Modbus function code; default: 5 for one coil, 15 for several, 16 for registers. FC05 sends "
        "ON as 0xFF00 and OFF as 0x0000 (values 1/0xFF00 and 0/0x0000); a device's own word is `raw_word`.",
    )
    address: Address
    values: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=123,
        description="Values written in one request: 0/1 for coils, 0-65535 for registers.",
    )
    raw_word: int | None = Field(
        default=None, ge=0, le=0xFFFF, description="FC05 with the device's own 16-bit word, as its manual spells it "
        "(a relay module's 0x5500 toggle, 0x0203 flash): sent as is, instead of ON/OFF.",
    )
    argument: Argument | None = Field(default=None, description="A value given at run time instead of fixed values.")
    preconditions: list[Precondition] = Field(default_factory=list, max_length=4, description="Checked before the write.")
    result: Result | None = Field(default=None, description="Where the device says what it made of the command.")
    readback: ReadBack | None = Field(default=None, description="Point confirming the command.")
    addressing: Addressing = Field(
        default=Addressing.PROTOCOL, description="How `address` is written; the profile's `addressing` if unset."
    )
    description: str = Field(default="", max_length=200)

    @property
    def code(self) -> int:
        """The function code this command is written with."""
        if self.function_code is not None:
            return self.function_code
        if self.function is Function.HOLDING:
            return 16
        return 5 if self.raw_word is not None or (self.values is not None and len(self.values) == 1) else 15

    @property
    def width(self) -> int:
        """Coils or registers written."""
        if self.raw_word is not None:
            return 1
        return len(self.values) if self.values is not None else self.argument.type.width

    @model_validator(mode="after")
    def _check_values(self) -> Self:
        if self.function not in (Function.COIL, Function.HOLDING):
            raise ValueError("commands write coils or holding registers only")
        if sum(x is not None for x in (self.values, self.argument, self.raw_word)) != 1:
            raise ValueError("give exactly one of 'values' (fixed), 'raw_word' (a coil's vendor word) or 'argument' (given at run time)")
        if self.raw_word is not None and (self.function is not Function.COIL or self.function_code not in (None, 5)):
            raise ValueError("raw_word is a coil's FC05 word: give function: coil (function_code 5)")
        code = self.function_code
        if code is not None and (self.function is Function.COIL) != (code in (5, 15)):
            raise ValueError(f"function code {code} does not write {self.function.value}s")
        if code in (5, 6) and self.width != 1:
            raise ValueError(f"function code {code} writes exactly one {self.function.value}")
        if self.function is Function.COIL and self.argument is not None and code != 5:
            raise ValueError("an argument written to a coil needs function_code: 5 (a raw word)")
        if self.function is Function.COIL and self.code == 5:
            for value in self.values or ():
                if value not in (0, 1, 0x0000, 0xFF00):
                    raise ValueError(f"FC05 sends a coil ON (0xFF00) or OFF (0x0000), and {value} (0x{value:04X}) is neither: "
                                     f"a device's own word is written raw_word: 0x{value:04X}, as its manual spells it")
        top = 1 if self.function is Function.COIL and self.code != 5 else 0xFFFF
        if any(not 0 <= value <= top for value in self.values or ()):
            raise ValueError(f"{self.function.value} values must be within 0..{top}")
        if self.address + self.width - 1 > MAX_ADDRESS:
            raise ValueError(f"command block runs past {MAX_ADDRESS}")
        return self


class Variant(_Strict):
    """A model or firmware revision whose map differs: the points and commands it moves or adds
    (by name: a point named as in the base replaces it) and the base points it lacks (`drop`), picked
    by the `identify` register. With `drop` the base map can hold every point of the family's common
    model, not only those all share."""

    @model_validator(mode="before")
    @classmethod
    def _one_is_a_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("when") is not None and not isinstance(data["when"], list):
            return {**data, "when": [data["when"]]}
        return data

    name: Name = Field(description="Variant name, e.g. fw2, shown when the device is identified.")
    when: list[int | str] | None = Field(
        default=None, min_length=1, max_length=32, description="Identify values (codes, or a model string) it covers."
    )
    at_least: float | None = Field(default=None, description="Covers identify values from this one up (firmware 2.0 and later).")
    below: float | None = Field(default=None, description="Covers identify values below this one.")
    points: list[Point] = Field(default_factory=list, description="Points moved or added.")
    commands: list[Command] = Field(default_factory=list, description="Commands moved or added.")
    drop: list[Name] = Field(
        default_factory=list, max_length=256, description="Base points this model or firmware lacks: not polled once identified."
    )
    description: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _check(self) -> Self:
        clash = sorted({p.name for p in self.points} & set(self.drop))
        if clash:
            raise ValueError(f"{', '.join(clash)}: a point is either dropped or given, not both")
        if self.when is None and self.at_least is None and self.below is None:
            raise ValueError("a variant needs 'when', 'at_least' or 'below'")
        if self.when is not None and (self.at_least is not None or self.below is not None):
            raise ValueError("give 'when', or a range ('at_least', 'below'), not both")
        return self

    def covers(self, identity: Any) -> bool:
        if self.when is not None:
            return identity in self.when
        if not isinstance(identity, int | float) or isinstance(identity, bool):
            return False
        return (self.at_least is None or identity >= self.at_least) and (self.below is None or identity < self.below)


class Profile(_Strict):
    """The register map and habits of one device model (one firmware revision)."""

    @model_validator(mode="before")
    @classmethod
    def _lend_addressing(cls, data: Any) -> Any:
        """Points and commands write addresses as the profile says unless they say otherwise."""
        if not isinstance(data, dict) or data.get("addressing", "protocol") == "protocol":
            return data
        addressing = data["addressing"]

        def lend(item: Any) -> Any:
            return {"addressing": addressing, **item} if isinstance(item, dict) else item

        def lend_all(document: dict) -> dict:
            document = dict(document)
            for section in ("points", "commands"):
                if isinstance(document.get(section), list):
                    document[section] = [lend(item) for item in document[section]]
            return document

        data = lend_all(data)
        if isinstance(data.get("identify"), dict):
            data["identify"] = lend(data["identify"])
        if isinstance(data.get("variants"), list):
            data["variants"] = [lend_all(v) if isinstance(v, dict) else v for v in data["variants"]]
        return data

    model: ModelId = Field(description="Model id the building config refers to.")
    description: str = Field(default="", max_length=300)
    addressing: Addressing = Field(
        default=Addressing.PROTOCOL,
        description="How addresses are written: protocol (zero-based), one_based, or modicon (40001 = holding 0).",
    )
    word_order: Order = Field(default=Order.BIG, description="Default word order of 32-bit values.")
    byte_order: Order = Field(default=Order.BIG, description="Default byte order in a register.")
    interval_s: float = Field(default=1.0, gt=0, le=86400, description="Default poll interval.")
    max_registers_per_read: int = Field(
        default=MODBUS_MAX_REGISTERS_PER_READ,
        ge=1,
        le=MODBUS_MAX_REGISTERS_PER_READ,
        description="Most registers the device returns in one request.",
    )
    max_bits_per_read: int = Field(
        default=MODBUS_MAX_BITS_PER_READ,
        ge=1,
        le=MODBUS_MAX_BITS_PER_READ,
        description="Most coils/discrete inputs the device returns in one request.",
    )
    max_gap: int = Field(
        default=8,
        ge=0,
        le=MODBUS_MAX_REGISTERS_PER_READ,
        description="Unused addresses that may be read across to join two blocks (0: device refuses).",
    )
    points: list[Point] = Field(min_length=1, description="Values the device reports.")
    commands: list[Command] = Field(default_factory=list, description="Named writes.")
    identify: Point | None = Field(
        default=None, description="A model or firmware register read at first contact to pick a variant."
    )
    variants: list[Variant] = Field(
        default_factory=list, max_length=16, description="Maps that differ by model or firmware; the first that covers the identify value wins."
    )

    @model_validator(mode="after")
    def _check_map(self) -> Self:
        _require_unique([p.name for p in self.points], "point")
        _require_unique([c.name for c in self.commands], "command")
        _require_no_overlap(self.points)
        widest = max((p for p in self.points if not p.function.is_bit), key=lambda p: p.width, default=None)
        if widest is not None and widest.width > self.max_registers_per_read:
            raise ValueError(f"point {widest.name!r} spans {widest.width} registers, more than max_registers_per_read")
        names = {p.name: p for p in self.points}
        for point in self.points:
            if point.void_if is not None:
                _check_void(point, names)
        for command in self.commands:
            _check_command(command, names)
        if self.variants and self.identify is None:
            raise ValueError("variants need an 'identify' register to choose between them")
        _require_unique([v.name for v in self.variants], "variant")
        for variant in self.variants:
            try:
                self.variant(variant)
            except ValueError as error:  # pydantic's ValidationError is a ValueError
                raise ValueError(f"variant {variant.name!r}: {_first_message(error)}") from None
        return self

    def variant_for(self, identity: Any) -> tuple[str | None, Profile]:
        """The variant the identify value picks (its name, and the merged map); the base if none."""
        for variant in self.variants:
            if variant.covers(identity):
                return variant.name, self.variant(variant)
        return None, self.without_variants()

    def variant(self, variant: Variant) -> Profile:
        """The base map with `variant`'s points and commands in place of those of the same name, less
        the points it drops."""
        unknown = sorted(set(variant.drop) - {p.name for p in self.points})
        if unknown:
            raise ValueError(f"drop: {', '.join(unknown)} is not a point of the base map")
        points = {p.name: p for p in self.points if p.name not in variant.drop} | {p.name: p for p in variant.points}
        commands = {c.name: c for c in self.commands} | {c.name: c for c in variant.commands}
        document = self.model_dump(exclude={"identify", "variants", "points", "commands", "addressing"})
        return Profile.model_validate({
            **document,
            "points": [p.model_dump(exclude_defaults=True) for p in points.values()],
            "commands": [c.model_dump(exclude_defaults=True) for c in commands.values()],
        })

    def without_variants(self) -> Profile:
        return self.model_copy(update={"identify": None, "variants": []})

    def point(self, name: str) -> Point:
        return next(p for p in self.points if p.name == name)

    def command(self, name: str) -> Command:
        return next(c for c in self.commands if c.name == name)

    def word_order_of(self, point: Point) -> Order:
        return point.word_order or self.word_order

    def byte_order_of(self, point: Point) -> Order:
        return point.byte_order or self.byte_order

    def interval_of(self, point: Point) -> float:
        return point.interval_s or self.interval_s


def _first_message(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(map(str, first["loc"]))
        return f"{where}: {first['msg'].removeprefix('Value error, ')}" if where else first["msg"].removeprefix("Value error, ")
    return str(error)


def _converted_address(data: Any) -> Any:
    """Turn an address written as a manual prints it into the protocol address, once."""
    if not isinstance(data, dict) or data.get("addressing", "protocol") == "protocol":
        return data
    written, function = data.get("address"), data.get("function")
    if not isinstance(written, int) or isinstance(written, bool) or not isinstance(function, str):
        return data  # the field validators report what is wrong with them
    address = protocol_address(written, Addressing(data["addressing"]), function)
    return {**data, "address": address, "addressing": "protocol"}


def _check_command(command: Command, names: dict[str, Point]) -> None:
    named = [(command.readback, "readback"), (command.result, "result")]
    named += [(condition, "precondition") for condition in command.preconditions]
    for part, what in named:
        if part is not None and part.point not in names:
            raise ValueError(f"command {command.name!r}: {what} point {part.point!r} is not a point")
    try:
        if command.readback is not None and command.readback.expect == "argument" and command.argument is None:
            raise ValueError("readback expect: argument needs a command with an argument")
        if command.readback is not None and isinstance(command.readback.expect, str) and command.readback.expect != "argument":
            Match(when=[command.readback.expect]).values(names[command.readback.point].enum)
        for condition in command.preconditions:
            condition.check_against(names[condition.point])
        if command.result is not None:
            enum = names[command.result.point].enum
            Match(when=command.result.ok).values(enum)
            Match(when=command.result.pending or [0]).values(enum)
    except ValueError as error:
        raise ValueError(f"command {command.name!r}: {error}") from None


def _check_void(point: Point, names: dict[str, Point]) -> None:
    voider = names.get(point.void_if.point)
    if voider is None:
        raise ValueError(f"point {point.name!r}: void_if names {point.void_if.point!r}, which is not a point")
    if voider is point or voider.void_if is not None:
        raise ValueError(f"point {point.name!r}: void_if must name a point that is not voided itself")
    try:
        point.void_if.check_against(voider)
    except ValueError as error:
        raise ValueError(f"point {point.name!r}: void_if: {error}") from None


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} name {name!r} appears twice")
        seen.add(name)


def _require_no_overlap(points: list[Point]) -> None:
    """Points may share a register only as views of one status word: the raw word once, and
    bit views whose bits do not overlap."""
    owners: dict[tuple[Function, int], list[Point]] = {}
    for point in points:
        for address in range(point.address, point.last_address + 1):
            owners.setdefault((point.function, address), []).append(point)
    for (function, address), sharing in owners.items():
        if len(sharing) < 2:
            continue
        words = [p for p in sharing if p.bits is None]
        taken = 0
        clash = len(words) > 1 or function.is_bit
        for view in sharing:
            if view.bits is not None:
                clash = clash or bool(taken & view.bits)
                taken |= view.bits
        if clash:
            names = ", ".join(p.name for p in sharing)
            raise ValueError(f"{function.value} address {address} is claimed by {names}")


def json_schema() -> dict[str, Any]:
    """The profile language as JSON Schema (config/profile.schema.json, `edge schema --profile`): an editor
    with it completes and checks a profile while it is written, fields the README only shows by example."""
    schema = Profile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "Modbus device profile"}


def load_profile(path: Path | str) -> Profile:
    """Read one profile; raises `pydantic.ValidationError` or `yaml.YAMLError`."""
    with open(path, encoding="utf-8") as handle:
        return Profile.model_validate(yaml.safe_load(handle))


def load_profiles(directory: Path | str) -> dict[str, Profile]:
    """Every `*.yaml` profile in `directory`, by model id; a model id used twice is an error."""
    profiles: dict[str, Profile] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        profile = load_profile(path)
        if profile.model in profiles:
            raise ValueError(f"{path}: model {profile.model!r} is defined twice")
        profiles[profile.model] = profile
    return profiles
