"""The pure door state machine: forced, held open, closed again, exit and fire release."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.doors.machine import DoorAlarm, DoorMachine


def test_opening_without_a_grant_is_forced_and_closing_clears_it():
    door, alarms = DoorMachine(held_open_s=30).contact(True, now=100.0)
    assert alarms == (DoorAlarm.forced,)
    door, alarms = door.contact(True, now=101.0)
    assert alarms == (), "a repeated reading is no news"
    door, alarms = door.contact(False, now=102.0)
    assert alarms == (DoorAlarm.closed,)


def test_opening_within_a_grant_is_not_forced_but_after_it_is():
    door = DoorMachine(held_open_s=30).grant(now=10.0, unlock_s=5)
    door, alarms = door.contact(True, now=14.0)
    assert alarms == ()
    door, alarms = door.contact(False, now=15.0)
    assert alarms == ()
    door, alarms = door.contact(True, now=15.5)
    assert alarms == (DoorAlarm.forced,)


def test_held_open_is_raised_once_after_its_limit_and_cleared_by_closing():
    door, _ = DoorMachine(held_open_s=30).grant(0.0, 5).contact(True, now=1.0)
    door, alarms = door.tick(now=31.0)
    assert alarms == ()
    door, alarms = door.tick(now=31.5)
    assert alarms == (DoorAlarm.held_open,)
    door, alarms = door.tick(now=60.0)
    assert alarms == ()
    door, alarms = door.contact(False, now=61.0)
    assert alarms == (DoorAlarm.closed,)


def test_a_fire_released_door_is_neither_forced_nor_held_open():
    door, alarms = DoorMachine(held_open_s=30).release(True).contact(True, now=5.0)
    assert alarms == ()
    door, alarms = door.tick(now=500.0)
    assert alarms == ()


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 10)), max_size=40))
def test_every_alarm_is_cleared_by_the_closing_that_ends_its_opening(steps):
    door, now = DoorMachine(held_open_s=3), 0.0
    for is_open, delta in steps:
        now += delta
        door, _ = door.tick(now)
        was_alarmed, was_open = door.alarmed, door.is_open
        door, alarms = door.contact(is_open, now)
        if was_open and not is_open:
            assert (DoorAlarm.closed in alarms) == was_alarmed
        assert alarms.count(DoorAlarm.forced) <= 1
    door, _ = door.contact(False, now + 1)
    assert not door.alarmed and not door.is_open
