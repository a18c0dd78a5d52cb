"""The journal's conditions: a disk that refuses writes, a journal found damaged, events lost."""

from __future__ import annotations

from edge.conditions import Rule, Severity
from edge.events import Kind

ONE_SHOT_S = 3600.0
DAMAGE_S = 86400.0  # a damaged journal or lost events: on the page for a day


def _journal(e) -> str:
    return "journal"


CONDITIONS = (
    Rule(Kind.JOURNAL_UNAVAILABLE, lambda e: "The journal's disk refuses writes: events are held in memory",
         ended_by=(Kind.JOURNAL_RECOVERED,), key=_journal),
    Rule(Kind.JOURNAL_OVER_CAPACITY, lambda e: "The journal is full: the oldest telemetry is being removed", key=_journal,
         lasts_s=ONE_SHOT_S),
    Rule(Kind.JOURNAL_CORRUPT, lambda e: f"The journal was damaged and set aside ({e.body.get('moved_to')})", key=_journal,
         lasts_s=DAMAGE_S),
    Rule(Kind.JOURNAL_MISSING, lambda e: "The journal that existed was empty or gone at start", key=_journal, lasts_s=DAMAGE_S),
    Rule(Kind.JOURNAL_EVENTS_LOST, lambda e: f"{e.body.get('lost')} events never reached the disk "
         f"(seq {e.body.get('first_seq')}-{e.body.get('last_seq')})", key=lambda e: f"{e.body.get('first_seq')}", lasts_s=DAMAGE_S),
    Rule(Kind.STATE_FILE_REFUSED, lambda e: f"The state disk refuses {e.body.get('file')}: {e.body.get('degraded')} degraded",
         ended_by=(Kind.STATE_FILE_WRITTEN,), severity=Severity.FAULT, key=lambda e: str(e.body.get("file"))),
)
