"""Whether the wall clock can be believed, as a pure state machine.

Leases and rent are dates, so a gateway whose clock says 1970 (no RTC battery) or
that someone wound back a year would grant or deny by the wrong day. `ClockGuard`
watches each (wall, monotonic) reading and hands out a `TrustedTime`:

* a wall time earlier than the software's release date is impossible;
* a wall time more than `max_backward` (1 h) behind what the best trusted reading,
  carried forward by the monotonic clock, predicts is a backwards jump. The best
  reading is the highest trusted (wall - monotonic) offset ever seen, so a clock
  stepped back 59 minutes at a time cannot walk the date back. Small corrections
  (NTP slewing, a few minutes) and forward jumps (NTP after a cold boot) are accepted;
  after a wrong forward jump only `confirm` (time vouched for by the uplink) or a
  restart brings the date back.

While the wall clock is implausible, trusted time is that best reading carried forward
by the monotonic clock. If there has never been a trusted reading, there is no trusted
time and date checks deny with `clock_untrusted`. Each fault episode is reported once,
as a `ClockFault` the caller journals; a plausible reading ends the episode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import NamedTuple


class ClockFaultKind(StrEnum):
    before_release = "before_release"
    jumped_backwards = "jumped_backwards"


@dataclass(frozen=True, slots=True)
class TrustedTime:
    """The time date-dependent rules may use; `instant` is None when there is none."""

    instant: datetime | None

    @property
    def trusted(self) -> bool:
        return self.instant is not None


UNTRUSTED = TrustedTime(None)


@dataclass(frozen=True, slots=True)
class ClockFault:
    """An implausible wall clock reading, and the time used instead (None if none)."""

    kind: ClockFaultKind
    wall: datetime
    used: datetime | None


class ClockReading(NamedTuple):
    guard: ClockGuard
    now: TrustedTime
    fault: ClockFault | None


@dataclass(frozen=True, slots=True)
class ClockGuard:
    """State of the clock check; each `observe` returns the next state."""

    release: date
    max_backward: timedelta = timedelta(hours=1)
    origin: datetime | None = None  # best trusted wall time at monotonic zero (UTC)
    last_monotonic: float | None = None
    faulted: bool = False

    def observe(self, wall: datetime, monotonic: float) -> ClockReading:
        """Judge one reading of the wall clock (tz-aware) and monotonic clock (seconds)."""
        self._check_reading(wall, monotonic)
        elapsed = timedelta(seconds=monotonic)
        expected = None if self.origin is None else self.origin + elapsed
        if wall < datetime.combine(self.release, time.min, UTC):
            kind = ClockFaultKind.before_release
        elif expected is not None and wall < expected - self.max_backward:
            kind = ClockFaultKind.jumped_backwards
        else:
            origin = wall.astimezone(UTC) - elapsed
            best = origin if self.origin is None else max(origin, self.origin)
            return self._trust(wall, monotonic, best)
        fault = None if self.faulted else ClockFault(kind, wall, expected)
        state = replace(self, last_monotonic=monotonic, faulted=True)
        return ClockReading(state, TrustedTime(expected), fault)

    def confirm(self, wall: datetime, monotonic: float) -> ClockReading:
        """Trust this reading unconditionally. For a wall time vouched for from outside
        (the uplink's signed time), e.g. to recover after a bad forward jump."""
        self._check_reading(wall, monotonic)
        return self._trust(wall, monotonic, wall.astimezone(UTC) - timedelta(seconds=monotonic))

    def _trust(self, wall: datetime, monotonic: float, origin: datetime) -> ClockReading:
        state = replace(self, origin=origin, last_monotonic=monotonic, faulted=False)
        return ClockReading(state, TrustedTime(wall.astimezone(UTC)), None)

    def _check_reading(self, wall: datetime, monotonic: float) -> None:
        if wall.tzinfo is None or wall.utcoffset() is None:
            raise ValueError("wall clock reading must be timezone-aware")
        if self.last_monotonic is not None and monotonic < self.last_monotonic:
            raise ValueError(
                f"monotonic clock went backwards ({monotonic} < {self.last_monotonic}): "
                "readings must come from one time.monotonic() source"
            )
