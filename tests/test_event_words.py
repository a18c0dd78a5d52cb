"""Every event kind has words a property manager reads, kept beside the kinds."""

from __future__ import annotations

from edge.event_words import WORDS, words
from edge.events import Kind


def test_every_kind_in_the_code_has_words_and_no_words_name_a_kind_that_is_gone():
    missing = [kind for kind in Kind if not WORDS.get(kind, "").strip()]
    assert missing == [], f"add words for these kinds to edge/event_words.py: {missing}"
    assert set(WORDS) <= set(Kind)


def test_the_words_are_not_the_kind_itself_and_an_unknown_kind_still_reads():
    for kind in Kind:
        assert words(kind) != str(kind) and "_" not in words(kind), kind
    assert words("power.trip_confirmed") == "Circuit cut (breaker opened)"
    assert words("future.new_kind") == "future: new kind"
