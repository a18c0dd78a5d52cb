"""How often a repeated nuisance may reach the journal: one event per key per window, with a count.

Whatever anyone can cause without a credential (garbage on a card line, unsigned or
malformed downlinks, a flood of pulls) must cost the journal at most one event per window,
however fast it comes, or whoever causes it grows the journal at will. The first of a burst
is let through at once (a technician sees that it started); the rest are counted, and the
count is released as one event when the window ends. Keys are bounded too: past `max_keys`
distinct keys, new ones are counted under `OVERFLOW_KEY`.

Pure: time is passed in, so the caller's clock and tests decide what "now" is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

OVERFLOW_KEY = "(other)"


@dataclass(slots=True)
class _Window:
    opened: float
    held: int = 0  # occurrences counted since the last release


class Throttle:
    """At most one release per key per `window_s`; each release carries how many it stands for."""

    def __init__(self, window_s: float = 60.0, max_keys: int = 256) -> None:
        if window_s <= 0 or max_keys < 1:
            raise ValueError("window_s must be positive and max_keys at least 1")
        self.window_s, self.max_keys = window_s, max_keys
        self._windows: dict[Hashable, _Window] = {}

    def offer(self, key: Hashable, now: float) -> int | None:
        """Count one occurrence; returns how many to journal now (the first of a window: 1), or None."""
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                key = OVERFLOW_KEY
                window = self._windows.get(key)
            if window is None:
                self._windows[key] = _Window(opened=now)
                return 1
        if now - window.opened >= self.window_s:
            count = window.held + 1
            window.opened, window.held = now, 0
            return count
        window.held += 1
        return None

    def flush(self, now: float) -> list[tuple[Hashable, int]]:
        """Counts held back by windows that have ended, to journal now; quiet keys are forgotten."""
        released: list[tuple[Hashable, int]] = []
        for key, window in list(self._windows.items()):
            if now - window.opened < self.window_s:
                continue
            if window.held:
                released.append((key, window.held))
                window.opened, window.held = now, 0
            else:
                del self._windows[key]
        return released

    def pending(self) -> int:
        """Occurrences counted but not yet released (a stop journals them with `flush(inf)`)."""
        return sum(w.held for w in self._windows.values())
