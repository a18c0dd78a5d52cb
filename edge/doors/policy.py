"""What the access rules need to know about a door: its name, groups, zone and keypads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo


class DoorState(StrEnum):
    """The door's life-safety state, owned by the safety rules, not by access."""

    secured = "secured"
    fire_released = "fire_released"  # released for egress by the fire alarm: open to all


@dataclass(frozen=True, slots=True)
class DoorPolicy:
    """A door as the access decision sees it.

    `zone` is the building's time zone: lease, rent and schedule are read in it.
    `pin_readers` names the readers of this door that ask for card+PIN (the keypad
    outside); a reader not listed there needs the card alone (the exit reader inside).
    """

    name: str
    zone: ZoneInfo
    groups: frozenset[str] = field(default_factory=frozenset)
    pin_readers: frozenset[str] = field(default_factory=frozenset)
