"""Coalescing: as few read requests as a device allows for the points due now.

On a 9600-baud RS-485 line each request costs a turnaround of several milliseconds, so
reading ten neighbouring registers in one request beats ten requests. The device sets the
limits (`max_registers_per_read`, `max_bits_per_read`, `max_gap`); a point is never split
across two requests, because a 32-bit value read in two halves can tear.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.drivers.modbus.points import Point
from edge.drivers.modbus.tables import Function


@dataclass(frozen=True, slots=True)
class Read:
    """One read request and the points its answer holds."""

    function: Function
    address: int
    count: int
    points: tuple[Point, ...]
    slices: tuple[tuple[Point, slice], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once per plan, not once per answer: the poller decodes every answer.
        object.__setattr__(self, "slices", tuple((point, self.slice_of(point)) for point in self.points))

    def slice_of(self, point: Point) -> slice:
        """Where `point` sits in this request's answer."""
        start = point.address - self.address
        return slice(start, start + point.width)


def plan_reads(
    points: Iterable[Point],
    *,
    max_registers: int = 125,
    max_bits: int = 2000,
    max_gap: int = 8,
) -> list[Read]:
    """Group `points` by table and merge near ranges greedily, left to right.

    Greedy is optimal here: with points sorted by address, extending the current request
    whenever the limits allow never needs more requests than any other grouping.
    """
    by_function: dict[Function, list[Point]] = {}
    for point in points:
        by_function.setdefault(point.function, []).append(point)
    reads: list[Read] = []
    for function in Function:
        members = sorted(by_function.get(function, []), key=lambda p: (p.address, p.width))
        limit = max_bits if function.is_bit else max_registers
        reads.extend(_merge(function, members, limit, max_gap))
    return reads


def _merge(function: Function, members: list[Point], limit: int, max_gap: int) -> list[Read]:
    reads: list[Read] = []
    group: list[Point] = []
    start = end = 0
    for point in members:
        if point.width > limit:
            raise ValueError(f"point {point.name} is wider than {limit}, the read limit")
        new_end = max(end, point.last_address)
        joins = bool(group) and point.address <= end + 1 + max_gap and new_end - start + 1 <= limit
        if joins:
            group.append(point)
            end = new_end
            continue
        if group:
            reads.append(Read(function, start, end - start + 1, tuple(group)))
        group, start, end = [point], point.address, point.last_address
    if group:
        reads.append(Read(function, start, end - start + 1, tuple(group)))
    return reads
