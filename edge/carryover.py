"""Conditions a previous run left open, and what this run does with each.

A gateway stopped (or killed) while an alarm was active must not leave the cloud holding an
alarm without an end. At start, the conditions the journal holds open are read off the loop and
each goes the way its feature declared (`Rule.at_restart`):

- kept: the state outlived the process (the fire latch, a cut circuit, a held car a new guard
  releases), and its own event ends it; a cut the state dir forgot is taken back from the journal;
- rechecked: a point's alarm is judged again on the first fresh reading (`FieldPoints.recheck`),
  raised again by its monitor if it still holds, or cleared with `condition_gone_across_restart`;
- ended: `alarm.ended` with the reason; the feature raises it again if it still holds.

A condition whose source is no longer in the config is ended with `source_gone_from_config`.
`alarm.ended` names the raising seq, so it never ends a raise of this run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import structlog
from pydantic import BaseModel

from edge.runtime import pools
from edge.conditions import Active, ActiveConditions, AtRestart, ending_kinds, raising_kinds
from edge.config.building import BuildingConfig
from edge.events import Event, Kind, Priority
from edge.power.kinds import PowerKind
from edge.doors.kinds import DoorKind
from edge.journal import EventQuery, Journal, read_events
from edge.runtime.pools import Pool

log = structlog.get_logger("edge.carryover")

GONE = "source_gone_from_config"
RESTARTED = "gateway_restarted"
# Sources that are the gateway's own parts, not names in the config.
OWN_SOURCES = frozenset({"fire", "journal", "uplink", "gateway", "state", "clock", "credentials", "care", "readers"})
MAX_DEPTH = 3  # sections nest named things this deep at most (community.zones[].inputs)


def open_conditions(path: Path, conditions: ActiveConditions) -> list[Active]:
    """Blocking (the reads pool): the conditions the journal holds open now."""
    kinds = tuple(sorted(raising_kinds(conditions.rules) | ending_kinds(conditions.rules)))
    for event in read_events(path, EventQuery(kinds=kinds, limit=None)):
        conditions.apply(event)
    return conditions.now(time.time())


def configured_names(config: BuildingConfig) -> frozenset[str]:
    """Every name a condition's source can be: the gateway's own parts and every named thing in any
    section of the config (doors, readers, devices, circuits, cameras, smoke detectors, zones...),
    whichever feature declared it."""
    names: set[str] = set(OWN_SOURCES)

    def walk(value: object, depth: int) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                walk(item, depth)
        elif isinstance(value, BaseModel) and depth <= MAX_DEPTH:
            if isinstance(name := getattr(value, "name", None), str):
                names.add(name)
            for field in type(value).model_fields:
                walk(getattr(value, field), depth + 1)

    walk(config, 0)
    return frozenset(names)


def ending(condition: Active, reason: str) -> Event:
    """The event that ends `condition` for a reason outside its feature."""
    if condition.kind == Kind.CONDITION_RAISED:  # a point's alarm ends the way the cloud already knows
        return Event(Kind.CONDITION_CLEARED, Priority.ALARM, condition.source, {**condition.body, "reason": reason})
    return Event(Kind.ALARM_ENDED, Priority.ALARM, condition.source, {
        "alarm": condition.kind, "key": condition.key, "raised_seq": condition.seq, "reason": reason, "text": condition.text})


async def carry_over(journal: Journal, config: BuildingConfig, field: object | None = None, fire: object | None = None,
                     before_seq: int | None = None) -> None:
    """Settle what the last run left open (a one-shot worker at start; the doors are already up): the
    conditions raised before `before_seq` (this run's `gateway.started`), never one this run raised."""
    conditions = ActiveConditions()
    try:
        carried = await pools.call(Pool.READS, open_conditions, journal.path, conditions)
    except (OSError, sqlite3.Error) as unreadable:  # a journal the disk never let be made holds nothing open
        log.warning("conditions of the last run not read; none carried over", error=str(unreadable))
        return
    known = configured_names(config)
    recheck: list[Active] = []
    carried = [c for c in carried if before_seq is None or c.seq < before_seq]
    for condition in carried:
        rule = conditions.rule_of(condition.kind)
        if rule is None:
            continue
        if condition.source not in known:
            await journal.append(ending(condition, GONE))
        elif rule.at_restart is AtRestart.RECHECK:
            recheck.append(condition)
        elif rule.at_restart is AtRestart.END:
            await journal.append(ending(condition, RESTARTED))
        elif condition.kind == DoorKind.FIRE_RELEASE and not getattr(fire, "active", False):
            await journal.append(ending(condition, "fire_latch_not_held_at_start"))
        elif condition.kind == PowerKind.TRIP_CONFIRMED and field is not None:
            field.adopt_cut(condition.key, condition.body)  # the journal says cut: the breaker is the gateway's
    if recheck:
        if field is None:
            for condition in recheck:
                await journal.append(ending(condition, GONE))
        else:
            field.recheck(recheck)
    log.info("conditions carried over from the last run", open=len(carried), rechecked=len(recheck))
