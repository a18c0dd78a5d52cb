"""Every event kind the gateway writes, composed from the parts that declare them.

The shared parts' kinds are `edge.events.Kind` (words in edge/events/words.py); each feature
declares its own in its package (`edge/<feature>/kinds.py`: a StrEnum, its words and any typed
bodies, as one `Kinds`, named by its `Feature`). Whatever must know every kind reads it here: the uplink's alarm lane,
the page's words, the fleet contract (docs/uplink.asyncapi.yaml) and its ingest's validator. A new
feature declares its `Kinds` in its own package and touches no other feature and no shared enum.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from edge import features
from edge.events import Kinds
from edge.events import words as event_words

FEATURES: tuple[Kinds, ...] = (event_words.KINDS, *(module.KINDS for module in features.modules("kinds")))

_BY_NAME: dict[str, tuple[Kinds, StrEnum]] = {}
for _declared in FEATURES:
    for _kind in _declared.enum:
        if str(_kind) in _BY_NAME:
            raise ValueError(f"kind {_kind} is declared by {_BY_NAME[str(_kind)][0].feature} and {_declared.feature}")
        _BY_NAME[str(_kind)] = (_declared, _kind)

ENUMS: dict[str, type[StrEnum]] = {declared.enum.__name__: declared.enum for declared in FEATURES}
"""Enum class name -> the enum, as the contract finds `DoorKind.X` in the source."""

ALARMS: frozenset[str] = frozenset(name for name in _BY_NAME if name.startswith("alarm."))
"""The alarm kinds, e.g. those the uplink takes from the bus while the journal cannot write (`alarm.*`)."""


def every() -> list[StrEnum]:
    """Every kind, the shared parts' first, then each feature's in its declared order."""
    return [kind for declared in FEATURES for kind in declared.enum]


def known(kind: str) -> bool:
    return kind in _BY_NAME


def words(kind: str) -> str:
    """The words for a kind; an unknown kind (from a newer gateway's journal) as itself, readable."""
    found = _BY_NAME.get(kind)
    if found is None:
        return kind.replace("_", " ").replace(".", ": ")
    declared, member = found
    return declared.words[member]


def body(kind: str) -> type[BaseModel] | None:
    """The typed body a feature declared for the kind, if it did."""
    found = _BY_NAME.get(kind)
    return found[0].typed().get(found[1]) if found is not None else None


def table() -> dict[str, str]:
    """Kind value -> words, as the page fetches it once."""
    return {name: words(name) for name in _BY_NAME}
