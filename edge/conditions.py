"""What is active in the building now: one model, folded from the journal, read by every view.

A state a safety action creates (a cut circuit, released doors, a held car) or an alarm raised
by a rule is active until an event ends it. The page, `edge status`, `/metrics` and the uplink's
`state` answer all read `ActiveConditions`, so a kind of alarm cannot be shown in one and missed
in another. Each feature declares the conditions it can hold (`CONDITIONS` in its own module:
which event raises one, which events end it, how it is named), named by its `Feature`; this
module only composes them.

An alarm always ends: by its feature's own end event, by `alarm.ended` (journaled for it when
the gateway restarts and the condition is gone, or its source left the config), or, for a
one-shot alarm that nothing ends (a flagged card at a door), after its `lasts_s`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edge import features
from edge.events import Kind, StoredEvent

SHARED = ("edge.points.conditions", "edge.journal.conditions")
"""The shared parts' conditions: field points' alarms (circuits' and water points' alike), the journal's."""
MAX_ACTIVE = 4096  # conditions held at once; beyond it the oldest one-shot alarms go first


class Severity(StrEnum):
    ALARM = "alarm"
    WARNING = "warning"
    FAULT = "fault"  # the gateway cannot watch something (a device offline, the uplink down)


class AtRestart(StrEnum):
    """What a new run of the gateway does with a condition the journal holds open."""

    KEEP = "keep"  # the state outlives the process (the fire latch, a cut circuit): ends by its own event
    RECHECK = "recheck"  # judged again on the first fresh reading: raised again, or cleared
    END = "end"  # ended at start (`alarm.ended`); the feature raises it again if it still holds


def by_source(event: StoredEvent) -> str:
    return event.source


def by_body(*fields: str) -> Callable[[StoredEvent], str]:
    """A key from body fields (falling back to the source), e.g. the door or the incident."""

    def key(event: StoredEvent) -> str:
        return "|".join(str(event.body.get(name, event.source)) for name in fields)

    return key


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of condition: the event that raises it, the events that end it (matched on the
    same key), its severity, its words, and what a restart does with it."""

    raised_by: str
    text: Callable[[StoredEvent], str]
    ended_by: tuple[str, ...] = ()
    severity: Severity | Callable[[StoredEvent], Severity] = Severity.ALARM
    key: Callable[[StoredEvent], str] = by_source
    end_key: Callable[[StoredEvent], str] | None = None  # how an end event names it (default: `key`)
    lasts_s: float | Callable[[StoredEvent], float] | None = None  # one-shot: ends by itself after this
    at_restart: AtRestart = AtRestart.END
    listed_as: str | None = None  # a state a safety action creates, also listed by key under this name (the uplink's `state`)


@dataclass(frozen=True, slots=True)
class Active:
    """One condition active now."""

    kind: str  # the event kind that raised it
    key: str
    source: str
    severity: Severity
    since: float  # wall seconds
    seq: int  # the raising event's seq
    event_id: str
    text: str
    until: float | None = None  # a one-shot alarm ends by itself then
    body: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row every view shows (`at` is when it was raised)."""
        return {"kind": self.kind, "source": self.source, "severity": str(self.severity), "at": self.since,
                "seq": self.seq, "text": self.text, "key": self.key, "point": self.body.get("point"), "until": self.until}


def all_rules() -> tuple[Rule, ...]:
    """Every feature's conditions (edge/feature.py), then the shared parts'."""
    rules: list[Rule] = []
    for module in [*features.modules("conditions"), *map(importlib.import_module, SHARED)]:
        rules += module.CONDITIONS
    return tuple(rules)


class ActiveConditions:
    """A pure fold of stored events (in seq order) into the conditions active now."""

    def __init__(self, rules: Iterable[Rule] | None = None) -> None:
        self.rules = tuple(all_rules() if rules is None else rules)
        self._raising = {rule.raised_by: rule for rule in self.rules}
        self._ending: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for kind in rule.ended_by:
                self._ending.setdefault(kind, []).append(rule)
        self.active: dict[tuple[str, str], Active] = {}  # (raising kind, key) -> condition

    def apply(self, event: StoredEvent) -> Active | None:
        """Fold one event in; returns the condition it ended, if any (the page says how long it lasted)."""
        ended = None
        for rule in self._ending.get(event.kind, ()):
            ended = self.active.pop((rule.raised_by, (rule.end_key or rule.key)(event)), None) or ended
        if event.kind == Kind.ALARM_ENDED:  # only the raise it names: never one raised after it was decided
            key = (str(event.body.get("alarm")), str(event.body.get("key")))
            open_ = self.active.get(key)
            if open_ is not None and event.body.get("raised_seq", open_.seq) == open_.seq:
                ended = self.active.pop(key)
        rule = self._raising.get(event.kind)
        if rule is not None:
            self._raise(rule, event)
        return ended

    def _raise(self, rule: Rule, event: StoredEvent) -> None:
        at = event.wall_ns / 1e9
        lasts = rule.lasts_s(event) if callable(rule.lasts_s) else rule.lasts_s
        severity = rule.severity(event) if callable(rule.severity) else rule.severity
        key = rule.key(event)
        self.active.pop((rule.raised_by, key), None)  # raised again: the newest raise stands, in order
        self.active[(rule.raised_by, key)] = Active(
            str(rule.raised_by), key, event.source, severity, at, event.seq, event.id, rule.text(event),
            None if lasts is None else at + lasts, dict(event.body),
        )
        if len(self.active) > MAX_ACTIVE:
            oldest = next((k for k, c in self.active.items() if c.until is not None), next(iter(self.active)))
            del self.active[oldest]

    def now(self, at: float) -> list[Active]:
        """Active at wall time `at`, newest first (one-shot alarms past their time are gone)."""
        for key in [k for k, c in self.active.items() if c.until is not None and c.until <= at]:
            del self.active[key]
        return sorted(self.active.values(), key=lambda c: -c.since)

    def rule_of(self, kind: str) -> Rule | None:
        return self._raising.get(kind)

    def listed(self, active: Iterable[Active]) -> dict[str, list[str]]:
        """The states safety actions created, by their rules' `listed_as` (e.g. cut_circuits: the circuits' names)."""
        lists: dict[str, list[str]] = {rule.listed_as: [] for rule in self.rules if rule.listed_as}
        for condition in active:
            rule = self._raising.get(condition.kind)
            if rule is not None and rule.listed_as:
                lists[rule.listed_as].append(condition.key)
        return lists


def raising_kinds(rules: Iterable[Rule]) -> frozenset[str]:
    return frozenset(rule.raised_by for rule in rules)


def ending_kinds(rules: Iterable[Rule]) -> frozenset[str]:
    return frozenset(kind for rule in rules for kind in rule.ended_by) | {str(Kind.ALARM_ENDED)}
