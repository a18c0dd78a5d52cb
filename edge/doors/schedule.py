"""A tenant's weekly access hours, in the building's local wall-clock time.

Written as text so it fits a CSV cell, a JSON string and a SQLite column alike:
``"mon-fri 07:00-22:00, sat-sun 09:00-18:00"``. Entries are separated by ``,`` or
``;``; a day spec is one day or a range (``fri-mon`` wraps round the week); a window
is ``HH:MM-HH:MM``, start inclusive, end exclusive, ``24:00`` meaning midnight at the
end of the day. An overnight window is written as two entries (``fri 22:00-24:00,
sat 00:00-02:00``), so every window belongs to exactly one local day.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENTRY = re.compile(r"^([a-z]{3})(?:-([a-z]{3}))?\s+(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_DAY_SECONDS = 24 * 3600

Window = tuple[int, int]
"""Seconds since local midnight: [start, end)."""


class WeeklySchedule:
    """Open windows per weekday (Monday = 0), checked against local wall-clock time."""

    __slots__ = ("_days", "_text")

    def __init__(self, days: tuple[tuple[Window, ...], ...]) -> None:
        if len(days) != 7:
            raise ValueError("a weekly schedule needs exactly 7 days")
        for windows in days:
            for start, end in windows:
                if not 0 <= start < end <= _DAY_SECONDS:
                    raise ValueError(f"bad window {start}-{end} seconds")
        if not any(days):
            raise ValueError("a weekly schedule that opens at no time: revoke or suspend instead")
        self._days = tuple(tuple(sorted(windows)) for windows in days)
        self._text = _render(self._days)

    @staticmethod
    def parse(text: str) -> WeeklySchedule:
        """Read the text form; raise ValueError naming the entry that is wrong.
        Memoised: a building has a handful of distinct schedules across its tenants."""
        return _parse(text)

    def allows(self, local: datetime) -> bool:
        """True when the local wall-clock time falls inside an open window."""
        second = local.hour * 3600 + local.minute * 60 + local.second
        for start, end in self._days[local.weekday()]:
            if start <= second < end:
                return True
        return False

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"WeeklySchedule.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WeeklySchedule) and self._days == other._days

    def __hash__(self) -> int:
        return hash(self._days)


@lru_cache(maxsize=1024)
def _parse(text: str) -> WeeklySchedule:
    days: list[list[Window]] = [[] for _ in DAYS]
    entries = [e.strip().lower() for e in re.split(r"[,;]", text) if e.strip()]
    if not entries:
        raise ValueError("empty schedule: write at least one 'day HH:MM-HH:MM' entry")
    for entry in entries:
        match = _ENTRY.match(re.sub(r"\s+", " ", entry))
        if match is None:
            raise ValueError(f"schedule entry {entry!r}: expected e.g. 'mon-fri 08:00-18:00'")
        first, last, h1, m1, h2, m2 = match.groups()
        start, end = _seconds(entry, h1, m1), _seconds(entry, h2, m2)
        if end <= start:
            raise ValueError(
                f"schedule entry {entry!r}: end must be after start "
                "(split an overnight window into two days)"
            )
        for day in _day_range(entry, first, last or first):
            days[day].append((start, end))
    return WeeklySchedule(tuple(tuple(w) for w in days))


def _seconds(entry: str, hours: str, minutes: str) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m):
        raise ValueError(f"schedule entry {entry!r}: {hours}:{minutes} is not a time of day")
    return h * 3600 + m * 60


def _day_range(entry: str, first: str, last: str) -> list[int]:
    for name in (first, last):
        if name not in DAYS:
            raise ValueError(f"schedule entry {entry!r}: unknown day {name!r}, use {', '.join(DAYS)}")
    start, stop = DAYS.index(first), DAYS.index(last)
    return [(start + i) % 7 for i in range((stop - start) % 7 + 1)]


def _render(days: tuple[tuple[Window, ...], ...]) -> str:
    """Canonical text: consecutive days with the same windows are written as a range."""
    entries: list[str] = []
    day = 0
    while day < 7:
        last = day
        while last + 1 < 7 and days[last + 1] == days[day]:
            last += 1
        span = DAYS[day] if last == day else f"{DAYS[day]}-{DAYS[last]}"
        entries.extend(f"{span} {_hhmm(s)}-{_hhmm(e)}" for s, e in days[day])
        day = last + 1
    return ", ".join(entries)


def _hhmm(second: int) -> str:
    return f"{second // 3600:02d}:{second % 3600 // 60:02d}"
