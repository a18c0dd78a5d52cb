"""The throttle: one journaled event per key per window, whatever the flood, with a true count."""

from __future__ import annotations

import math

import pytest

from edge.runtime.throttle import OVERFLOW_KEY, Throttle


def test_first_passes_then_counted_then_released_once():
    t = Throttle(window_s=10)
    assert t.offer("a", 0.0) == 1
    assert [t.offer("a", 0.001 * i) for i in range(1, 5000)] == [None] * 4999
    assert t.flush(9.9) == []
    assert t.flush(10.0) == [("a", 4999)]
    assert t.pending() == 0


def test_every_occurrence_is_counted_exactly_once():
    t = Throttle(window_s=1)
    journaled = 0
    now = 0.0
    for i in range(10_000):
        now = i * 0.003
        journaled += t.offer(("topic", "unsigned"), now) or 0
        journaled += sum(n for _, n in t.flush(now))
    journaled += sum(n for _, n in t.flush(math.inf))
    assert journaled == 10_000


def test_offer_after_window_releases_held_count_with_itself():
    t = Throttle(window_s=5)
    assert t.offer("k", 0) == 1
    assert t.offer("k", 1) is None
    assert t.offer("k", 2) is None
    assert t.offer("k", 6) == 3


def test_keys_are_independent_and_bounded():
    t = Throttle(window_s=60, max_keys=2)
    assert t.offer("a", 0) == 1
    assert t.offer("b", 0) == 1
    assert t.offer("c", 0) == 1  # the overflow key's first
    assert t.offer("d", 0) is None  # counted under the overflow key
    assert t.flush(60) == [(OVERFLOW_KEY, 1)]


def test_quiet_keys_are_forgotten():
    t = Throttle(window_s=1, max_keys=1)
    assert t.offer("a", 0) == 1
    assert t.flush(2) == []
    assert t.offer("b", 2) == 1  # room again: 'a' was forgotten, 'b' is not overflow


@pytest.mark.parametrize("window, keys", [(0, 1), (-1, 1), (1, 0)])
def test_bad_settings_are_refused(window, keys):
    with pytest.raises(ValueError):
        Throttle(window_s=window, max_keys=keys)
