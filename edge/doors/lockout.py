"""Wrong-PIN lockout: the door's attempt counter, the other half of the PIN's defence.

A 4-digit PIN falls to 10,000 guesses; scrypt makes each guess slow, this makes them few.
Wrong PINs are counted per credential (a stolen card tried at any keypad) and per reader
(someone cycling cards at one keypad) over a sliding window. Reaching the limit locks
that credential (at every card+PIN reader) or that reader's PIN entry for `lockout_s`;
while locked, PINs are not even checked (no guess is answered), and the lockout ends by
itself. A right PIN clears its credential's count. Pure: time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from edge.doors.settings import PinLockoutSettings


class Scope(StrEnum):
    """What a lockout holds: one credential everywhere, or one reader for every card."""

    credential = "credential"
    reader = "reader"


@dataclass(frozen=True, slots=True)
class Lockout:
    """A lockout that has just started: journaled once."""

    scope: Scope
    subject: str  # the credential key's journal prefix, or the reader's name
    attempts: int
    until: float  # monotonic


@dataclass(slots=True)
class _Counter:
    wrong: deque[float] = field(default_factory=deque)  # times of wrong PINs within the window
    locked_until: float = float("-inf")


class PinLockout:
    """The counters of every credential and reader that got a wrong PIN lately."""

    def __init__(self, settings: PinLockoutSettings) -> None:
        self.settings = settings
        self._limits = {Scope.credential: settings.attempts, Scope.reader: settings.reader_attempts}
        self._counters: dict[tuple[Scope, str], _Counter] = {}

    def retune(self, settings: PinLockoutSettings) -> None:
        """New limits from a reload; the counts and lockouts running now go on under them."""
        self.settings = settings
        self._limits = {Scope.credential: settings.attempts, Scope.reader: settings.reader_attempts}

    def locked(self, credential: str | None, reader: str, now: float) -> Scope | None:
        """Which lockout, if any, holds a PIN for `credential` at `reader` now."""
        for scope, subject in ((Scope.reader, reader), (Scope.credential, credential)):
            counter = self._counters.get((scope, subject)) if subject is not None else None
            if counter is not None and now < counter.locked_until:
                return scope
        return None

    def wrong(self, credential: str, reader: str, now: float) -> list[Lockout]:
        """Count a wrong PIN; returns the lockouts it starts."""
        self._forget(now)
        started: list[Lockout] = []
        for scope, subject in ((Scope.credential, credential), (Scope.reader, reader)):
            counter = self._counters.setdefault((scope, subject), _Counter())
            counter.wrong.append(now)
            if len(counter.wrong) >= self._limits[scope] and now >= counter.locked_until:
                counter.locked_until = now + self.settings.lockout_s
                started.append(Lockout(scope, subject, len(counter.wrong), counter.locked_until))
                counter.wrong.clear()  # after the lockout, a fresh count
        return started

    def passed(self, credential: str) -> None:
        """A right PIN: the credential's count starts again (a reader's count only decays)."""
        counter = self._counters.get((Scope.credential, credential))
        if counter is not None:
            counter.wrong.clear()

    def _forget(self, now: float) -> None:
        """Drop attempts older than the window, and counters with nothing left to hold."""
        horizon = now - self.settings.window_s
        for key, counter in list(self._counters.items()):
            while counter.wrong and counter.wrong[0] <= horizon:
                counter.wrong.popleft()
            if not counter.wrong and now >= counter.locked_until:
                del self._counters[key]

    def __len__(self) -> int:
        return len(self._counters)
