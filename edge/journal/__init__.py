"""The journal: every event, durable before anything else sees it (see journal.py).

`Journal` is the writer's asyncio face, composed of two state machines: `writer` (group
commit: batches, commits, flush, wait_beyond, maintenance) and `outage` (the disk refusing:
degrade and recover, retries, what is held, the seq lease, losses, the spill and its replay);
`store` is its SQLite side, `seqmark` the seq high-water mark kept beside the file, `faults`
tells damage from a refusing disk, `reading` holds the read-only queries the CLI and the
uplink use, and `cli` is `edge events`, the journal read back on site.
"""

from edge.journal.faults import JournalDamaged
from edge.journal.journal import Journal, JournalError
from edge.journal.reading import EventQuery, Gap, events_after, first_retained_seq, gaps_between, read_events
from edge.journal.store import _INSERT, APPLICATION_ID, JournalLimits, _rows

__all__ = [
    "APPLICATION_ID",
    "EventQuery",
    "Journal",
    "JournalDamaged",
    "JournalError",
    "JournalLimits",
    "Gap",
    "events_after",
    "first_retained_seq",
    "gaps_between",
    "read_events",
    "_INSERT",
    "_rows",
]
