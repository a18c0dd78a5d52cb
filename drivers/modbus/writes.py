"""The commands of a device profile: named writes, the value a technician gives one, the points
that must allow it, and where the device says it was done (a result register, a read-back point).

What the gateway does with them on the wire is commands.py; these are the words a profile says them in.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from edge.drivers.modbus.points import Match, Point
from edge.drivers.modbus.tables import (
    MAX_ADDRESS,
    Address,
    Addressing,
    DataType,
    Function,
    Label,
    Name,
    Order,
    converted_address,
)
from edge.drivers.strict import Strict


class ReadBack(Strict):
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


class Argument(Strict):
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


class Result(Strict):
    """A register where the device says what it made of the command (done, refused and why)."""

    point: Name = Field(description="The result point; its enum names the codes, e.g. {1: done, 2: refused_interlock}.")
    ok: list[int | Label] = Field(min_length=1, max_length=16, description="Values (or labels) meaning done.")
    pending: list[int | Label] = Field(default_factory=list, max_length=16, description="Values meaning still working.")
    within_s: float = Field(default=1.0, gt=0, le=60, description="How long the result may stay pending.")
    settle_s: float = Field(
        default=0.0, ge=0, le=10, description="How long after the write the register still shows the previous command's "
        "result (read only after it, so an old 'done' is never taken for this command's)."
    )


class Command(Strict):
    """A named write: one coil, a block of coils, or a block of registers in one request."""

    @model_validator(mode="before")
    @classmethod
    def _to_protocol_address(cls, data: Any) -> Any:
        return converted_address(data)

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


def check_command(command: Command, names: dict[str, Point]) -> None:
    """Raise ValueError unless every point `command` names is in `names` and its tests can apply to it."""
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
