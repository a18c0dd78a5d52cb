"""The benchmarks' one percentile: linear between closest ranks, never outside the samples."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.hil.bench.stats import percentile

samples = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=300)


@given(samples)
def test_p50_is_the_median_and_every_percentile_lies_within_the_samples(values):
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    for q in (0, 1, 50, 90, 99, 100):
        assert min(values) <= percentile(values, q) <= max(values)
    assert percentile(values, 0) == min(values) and percentile(values, 100) == max(values)


def test_p99_interpolates_between_the_closest_ranks_as_percentile_cont_does():
    assert percentile(range(1, 101), 99) == pytest.approx(99.01)  # rank 98.01 of 0..99
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.5


def test_no_samples_or_a_q_outside_0_to_100_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 99)
    with pytest.raises(ValueError):
        percentile([1.0], 99.5 * 2)
