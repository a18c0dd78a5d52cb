"""Wrong-PIN lockout: per credential and per reader, over a sliding window, ending by itself."""

from __future__ import annotations

from edge.doors.settings import PinLockoutSettings
from edge.doors.lockout import PinLockout, Scope

SETTINGS = PinLockoutSettings(attempts=3, reader_attempts=5, window_s=60, lockout_s=300)


def test_a_card_is_locked_out_at_every_reader_and_the_lockout_expires():
    lockout = PinLockout(SETTINGS)
    assert lockout.wrong("card-a", "lobby", 0) == [] and lockout.wrong("card-a", "garage", 1) == []
    [started] = lockout.wrong("card-a", "lobby", 2)
    assert (started.scope, started.subject, started.attempts, started.until) == (Scope.credential, "card-a", 3, 302)
    assert lockout.locked("card-a", "garage", 100) is Scope.credential, "the card, at any PIN reader"
    assert lockout.locked("card-b", "lobby", 100) is None, "other cards are not held"
    assert lockout.locked("card-a", "lobby", 302) is None, "ended by itself"
    assert lockout.wrong("card-a", "lobby", 303) == [], "a fresh count after a lockout"


def test_wrong_pins_older_than_the_window_do_not_count_and_a_right_pin_clears_the_card():
    lockout = PinLockout(SETTINGS)
    lockout.wrong("card-a", "lobby", 0)
    lockout.wrong("card-a", "lobby", 1)
    assert lockout.wrong("card-a", "lobby", 61.5) == [], "the first two aged out"
    lockout.wrong("card-b", "lobby", 100)
    lockout.wrong("card-b", "lobby", 101)
    lockout.passed("card-b")
    assert lockout.wrong("card-b", "lobby", 102) == []
    assert lockout.locked("card-b", "lobby", 102) is None


def test_one_reader_cycling_cards_is_locked_for_every_card():
    lockout = PinLockout(SETTINGS)
    started = [lockout.wrong(f"card-{n}", "lobby", n) for n in range(5)]
    assert started[:4] == [[], [], [], []]
    assert [(s.scope, s.subject) for s in started[4]] == [(Scope.reader, "lobby")]
    assert lockout.locked("card-new", "lobby", 10) is Scope.reader
    assert lockout.locked("card-new", "garage", 10) is None


def test_counters_are_forgotten_once_quiet():
    lockout = PinLockout(SETTINGS)
    for n in range(1000):
        lockout.wrong(f"card-{n}", f"reader-{n % 7}", n * 100.0)
    assert len(lockout) <= 4, "only what the window or a lockout still holds"
