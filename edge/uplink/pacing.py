"""The bandwidth cap: a token bucket in bytes, so a week's backlog does not flood a cellular link.

Pure: time is passed in. Alarms are not paced (they bypass the bucket); only the backlog waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Pacer:
    rate_bytes_per_s: float
    burst_bytes: float
    _tokens: float = field(init=False)
    _at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst_bytes

    def wait_s(self, now: float, size: int) -> float:
        """How long to wait before `size` bytes may go (0 when they may go now)."""
        self._refill(now)
        need = min(size, self.burst_bytes)  # a message larger than the burst waits for a full bucket
        return 0.0 if self._tokens >= need else (need - self._tokens) / self.rate_bytes_per_s

    def spend(self, now: float, size: int) -> None:
        self._refill(now)
        self._tokens -= size

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(self.burst_bytes, self._tokens + (now - self._at) * self.rate_bytes_per_s)
        self._at = now
