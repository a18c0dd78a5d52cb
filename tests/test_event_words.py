"""Every event kind has words a property manager reads, declared beside the kind by the part that owns it."""

from __future__ import annotations

from enum import StrEnum

import pytest

from edge.events import kinds
from edge.events import Kinds


def test_every_kind_has_words_and_no_words_name_a_kind_that_is_gone():
    assert [str(kind) for kind in kinds.every() if not kinds.words(kind).strip()] == []
    assert len({str(kind) for kind in kinds.every()}) == len(kinds.every()), "one wire name, one owner"


def test_the_words_are_not_the_kind_itself_and_an_unknown_kind_still_reads():
    for kind in kinds.every():
        assert kinds.words(kind) != str(kind) and "_" not in kinds.words(kind), kind
    assert kinds.words("power.trip_confirmed") == "Circuit cut (breaker opened)"
    assert kinds.words("alarm.smoke") == "Smoke"
    assert kinds.words("future.new_kind") == "future: new kind"


def test_a_feature_cannot_declare_a_kind_without_words_nor_words_for_another_features_kind():
    class Lift(StrEnum):
        STUCK = "lift.stuck"
        MOVING = "lift.moving"

    class Other(StrEnum):
        GONE = "other.gone"

    with pytest.raises(ValueError, match="lift.moving"):
        Kinds("lift", Lift, {Lift.STUCK: "Lift stuck"})
    with pytest.raises(ValueError, match="other.gone"):
        Kinds("lift", Lift, {Lift.STUCK: "Lift stuck", Lift.MOVING: "Lift moving", Other.GONE: "Gone"})


def test_the_alarm_kinds_are_every_part_s():
    assert {"alarm.smoke", "alarm.door_forced", "alarm.elevator_hold", "alarm.journal_unavailable"} <= kinds.ALARMS
