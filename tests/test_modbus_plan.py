"""Read planning: as few requests as the device allows, never a value split in two."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.modbus.plan import plan_reads
from edge.drivers.modbus.points import Point
from edge.drivers.modbus.tables import Function


def _point(address: int, type_: str = "uint16", function: str = "holding", name: str | None = None, **extra) -> Point:
    return Point(name=name or f"p{address}_{function}", function=function, address=address, type=type_, **extra)


def _spans(reads):
    return [(r.function, r.address, r.count) for r in reads]


def test_adjacent_points_are_one_request():
    reads = plan_reads([_point(0), _point(1), _point(2, "float32")])
    assert _spans(reads) == [(Function.HOLDING, 0, 4)]
    assert [p.name for p in reads[0].points] == ["p0_holding", "p1_holding", "p2_holding"]


def test_gap_up_to_max_gap_is_read_across():
    assert _spans(plan_reads([_point(0), _point(9)], max_gap=8)) == [(Function.HOLDING, 0, 10)]


def test_gap_past_max_gap_splits():
    assert _spans(plan_reads([_point(0), _point(10)], max_gap=8)) == [(Function.HOLDING, 0, 1), (Function.HOLDING, 10, 1)]


def test_zero_gap_device_only_joins_touching_ranges():
    assert _spans(plan_reads([_point(0), _point(1), _point(3)], max_gap=0)) == [(Function.HOLDING, 0, 2), (Function.HOLDING, 3, 1)]


def test_limit_exactly_hit_is_one_request():
    points = [_point(a) for a in range(10)]
    assert _spans(plan_reads(points, max_registers=10)) == [(Function.HOLDING, 0, 10)]
    assert _spans(plan_reads(points, max_registers=9)) == [(Function.HOLDING, 0, 9), (Function.HOLDING, 9, 1)]


def test_32_bit_value_is_never_split_at_the_limit():
    points = [_point(0), _point(1), _point(2, "float32")]  # registers 0..3
    reads = plan_reads(points, max_registers=3)
    assert _spans(reads) == [(Function.HOLDING, 0, 2), (Function.HOLDING, 2, 2)]


def test_tables_are_planned_apart():
    points = [_point(0, function="input"), _point(0), _point(0, "bool", "coil"), _point(1, "bool", "discrete")]
    assert sorted(_spans(plan_reads(points))) == sorted(
        [(Function.INPUT, 0, 1), (Function.HOLDING, 0, 1), (Function.COIL, 0, 1), (Function.DISCRETE, 1, 1)]
    )


def test_bits_use_the_bit_limit():
    coils = [_point(a, "bool", "coil") for a in range(20)]
    assert _spans(plan_reads(coils, max_registers=2, max_bits=16)) == [(Function.COIL, 0, 16), (Function.COIL, 16, 4)]


def test_bits_of_one_status_word_are_one_register():
    points = [_point(5, "bool", "input", name="a", bit=0), _point(5, "bool", "input", name="b", bit=7)]
    (read,) = plan_reads(points)
    assert (read.address, read.count, len(read.points)) == (5, 1, 2)


def test_nothing_due_is_no_request():
    assert plan_reads([]) == []


@given(
    st.sets(st.integers(0, 300), min_size=1, max_size=40),
    st.integers(2, 125),
    st.integers(0, 10),
)
def test_every_point_is_read_whole_within_the_limit(starts, limit, gap):
    points, taken = [], set()
    for start in sorted(starts):
        type_ = "float32" if start % 3 == 0 else "uint16"
        span = set(range(start, start + (2 if type_ == "float32" else 1)))
        if span & taken:
            continue
        taken |= span
        points.append(_point(start, type_))
    reads = plan_reads(points, max_registers=limit, max_gap=gap)
    assert sorted(p.name for r in reads for p in r.points) == sorted(p.name for p in points)
    for read in reads:
        assert 1 <= read.count <= limit
        for point in read.points:
            assert read.address <= point.address and point.last_address < read.address + read.count
    for first, second in zip(reads, reads[1:]):
        assert first.address + first.count <= second.address  # no register read twice
