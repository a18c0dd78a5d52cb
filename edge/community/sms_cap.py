"""The per-hour SMS cap per recipient: a flapping sensor must not spend the SIM's credit.

The cap never hides news: the first message of a kind (smoke, intrusion, ...) that the
recipient has not had within the hour always goes, even over the cap. Pure: time passed in.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 3600.0


class SmsCap:
    def __init__(self, per_hour: int, max_recipients: int = 1024) -> None:
        self.per_hour = per_hour
        self.max_recipients = max_recipients
        self._sent: dict[str, deque[tuple[float, str]]] = {}  # recipient: (mono, kind), oldest first

    def allow(self, recipient: str, kind: str, now: float) -> bool:
        """True (and counted) when a message of `kind` to `recipient` may go now."""
        sent = self._sent.get(recipient)
        if sent is None:
            if len(self._sent) >= self.max_recipients:  # bounded: forget the quietest recipient
                self._sent.pop(min(self._sent, key=lambda r: self._sent[r][-1][0] if self._sent[r] else 0.0))
            sent = self._sent[recipient] = deque(maxlen=self.per_hour + 64)
        while sent and now - sent[0][0] >= WINDOW_S:
            sent.popleft()
        new_kind = all(k != kind for _, k in sent)
        if len(sent) >= self.per_hour and not new_kind:
            return False
        sent.append((now, kind))
        return True
