"""Device profiles: what a Modbus device model holds where, said in data.

Supporting a new field device must be a YAML file, not code (ARCHITECTURE.md "Real devices
are odd"): the register map, word and byte order, read limits and the commands a device
accepts all live in a profile. Every field is bounded and described; a bad profile is a pydantic
`ValidationError` whose `loc` paths the caller maps to file lines. Nothing is clamped.
Here: the profile (its map-wide checks and its variants by model or firmware), loading and the
JSON Schema; its points are points.py, its commands writes.py, the words both use tables.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import Field, model_validator

from edge.drivers.modbus.points import Point, check_void
from edge.drivers.modbus.tables import (
    MODBUS_MAX_BITS_PER_READ,
    MODBUS_MAX_REGISTERS_PER_READ,
    Addressing,
    Function,
    ModelId,
    Name,
    Order,
)
from edge.drivers.strict import Strict
from edge.drivers.modbus.writes import Command, check_command


class Variant(Strict):
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


class Profile(Strict):
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
                check_void(point, names)
        for command in self.commands:
            check_command(command, names)
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
