"""Percentiles for every benchmark, computed one way.

The benchmarks used to take p99 three ways (`statistics.quantiles`' exclusive method, which
reaches past the slowest sample when there are fewer than a hundred; its inclusive method; and
two different nearest ranks), so the same latencies gave different figures in different
reports. This is the one way: linear interpolation between the closest ranks, as numpy's
default and SQL's `percentile_cont` (the fleet benchmark's ingest window) compute it, never
outside the samples; p50 is the median.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The `q`-th percentile (0 to 100) of `values`; a single sample is every percentile of itself."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("a percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"q is a percent (0 to 100), not {q}")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
