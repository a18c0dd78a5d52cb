"""Intrusion zones: armed while the tenant is away, disarmed when they are home. Pure: time passed in.

A zone is armed by its schedule, by a signed command, or by the tenant's card at the unit's
door (a card while disarmed arms after the exit delay, a card while armed disarms). On an
armed zone the entry door's contact starts the entry delay (the tenant has that long to show
their card) and any other sensor is an alarm at once; on a disarmed zone an open sensor is
only logged. A zone with a sensor open cannot be armed, and says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ZoneState(StrEnum):
    DISARMED = "disarmed"
    EXIT_DELAY = "exit_delay"
    ARMED = "armed"
    ENTRY_DELAY = "entry_delay"


class Outcome(StrEnum):
    ARMED = "armed"
    ARMING = "arming"  # exit delay running
    DISARMED = "disarmed"
    NOT_ARMED = "not_armed"  # a sensor is open
    ALARM = "alarm"
    ENTRY = "entry"  # entry delay started
    LOGGED = "logged"  # a sensor opened on a disarmed zone
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Step:
    outcome: Outcome
    sensor: str | None = None
    open_sensors: tuple[str, ...] = ()
    by: str | None = None


class Zone:
    def __init__(self, name: str, entry_sensor: str | None, exit_delay_s: float, entry_delay_s: float, state: ZoneState = ZoneState.DISARMED) -> None:
        self.name = name
        self.entry_sensor = entry_sensor
        self.exit_delay_s = exit_delay_s
        self.entry_delay_s = entry_delay_s
        self.state = ZoneState.ARMED if state in (ZoneState.ARMED, ZoneState.ENTRY_DELAY) else ZoneState.DISARMED
        self.until: float | None = None
        self.open: set[str] = set()
        self._arming_by: str | None = None

    @property
    def armed(self) -> bool:
        return self.state in (ZoneState.ARMED, ZoneState.ENTRY_DELAY)

    def arm(self, now: float, by: str, delay: bool) -> Step:
        """Arm now (schedule, command) or after the exit delay (a card at the door)."""
        if self.armed:
            return Step(Outcome.UNCHANGED, by=by)
        if delay:
            self.state, self.until, self._arming_by = ZoneState.EXIT_DELAY, now + self.exit_delay_s, by
            return Step(Outcome.ARMING, by=by)
        return self._try_arm(by)

    def disarm(self, by: str) -> Step:
        if self.state is ZoneState.DISARMED:
            return Step(Outcome.UNCHANGED, by=by)
        self.state, self.until = ZoneState.DISARMED, None
        return Step(Outcome.DISARMED, by=by)

    def card(self, now: float, by: str) -> Step:
        """The tenant's card at the unit door: home again (disarm), or leaving (arm after the delay)."""
        if self.state is ZoneState.DISARMED:
            return self.arm(now, by, delay=True)
        return self.disarm(by)

    def sensor(self, name: str, is_open: bool, now: float) -> Step:
        if not is_open:
            self.open.discard(name)
            return Step(Outcome.UNCHANGED, sensor=name)
        self.open.add(name)
        if self.state in (ZoneState.DISARMED, ZoneState.EXIT_DELAY):
            return Step(Outcome.LOGGED, sensor=name)
        if self.state is ZoneState.ARMED and name == self.entry_sensor:
            self.state, self.until = ZoneState.ENTRY_DELAY, now + self.entry_delay_s
            return Step(Outcome.ENTRY, sensor=name)
        if self.state is ZoneState.ENTRY_DELAY and name == self.entry_sensor:
            return Step(Outcome.UNCHANGED, sensor=name)
        return Step(Outcome.ALARM, sensor=name)

    def tick(self, now: float) -> Step:
        if self.until is None or now < self.until:
            return Step(Outcome.UNCHANGED)
        self.until = None
        if self.state is ZoneState.EXIT_DELAY:
            self.state = ZoneState.DISARMED
            return self._try_arm(self._arming_by or "card")
        if self.state is ZoneState.ENTRY_DELAY:
            self.state = ZoneState.ARMED  # still armed: the alarm is raised, the zone keeps watching
            return Step(Outcome.ALARM, sensor=self.entry_sensor)
        return Step(Outcome.UNCHANGED)

    def _try_arm(self, by: str) -> Step:
        if self.open:
            return Step(Outcome.NOT_ARMED, open_sensors=tuple(sorted(self.open)), by=by)
        self.state = ZoneState.ARMED
        return Step(Outcome.ARMED, by=by)
