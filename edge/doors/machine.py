"""One door's contact, exit button and grants, as a pure state machine (time passed in).

An opening is authorised while a grant or an exit request window is open (the unlock
pulse); an opening outside one is `door_forced`. A door open longer than `held_open_s`
is `door_held_open`, reported once per opening. Closing ends the opening and, if an
alarm was raised for it, reports `closed` so the alarm can be cleared. Fire release
authorises every opening while it lasts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple


class DoorAlarm(StrEnum):
    forced = "door_forced"
    held_open = "door_held_open"
    closed = "door_closed"  # closed again after an alarm: the alarm clears


class DoorStep(NamedTuple):
    door: DoorMachine
    alarms: tuple[DoorAlarm, ...]


@dataclass(frozen=True, slots=True)
class DoorMachine:
    """State of one door; every method returns the next state (and any alarms)."""

    held_open_s: float
    is_open: bool = False
    opened_at: float | None = None
    authorised_until: float = float("-inf")
    released: bool = False  # fire release: open to all
    alarmed: bool = False  # an alarm was raised for the current opening
    held_reported: bool = False

    def grant(self, now: float, unlock_s: float) -> DoorMachine:
        """A granted card or an exit request: opening within `unlock_s` is authorised."""
        return replace(self, authorised_until=max(self.authorised_until, now + unlock_s))

    def release(self, released: bool) -> DoorMachine:
        return replace(self, released=released)

    def contact(self, is_open: bool, now: float) -> DoorStep:
        """A contact reading (true = open). Repeated readings of the same state are no news."""
        if is_open == self.is_open:
            return self.tick(now)
        if is_open:
            forced = not self.released and now > self.authorised_until
            door = replace(self, is_open=True, opened_at=now, alarmed=forced, held_reported=False)
            return DoorStep(door, (DoorAlarm.forced,) if forced else ())
        closed = (DoorAlarm.closed,) if self.alarmed else ()
        return DoorStep(replace(self, is_open=False, opened_at=None, alarmed=False, held_reported=False), closed)

    def tick(self, now: float) -> DoorStep:
        """Time passing: an opening longer than held_open_s raises door_held_open once."""
        if not self.is_open or self.held_reported or self.released or self.opened_at is None:
            return DoorStep(self, ())
        if now - self.opened_at <= self.held_open_s:
            return DoorStep(self, ())
        return DoorStep(replace(self, held_reported=True, alarmed=True), (DoorAlarm.held_open,))
