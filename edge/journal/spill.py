"""Events the journal could not write before it stopped, kept elsewhere until the next start.

A state disk that refuses writes (full, read-only) at a stop would otherwise cost every event
held in memory: access decisions and fire alarms among them. So the closing journal writes
them, with their seqs, to a spill file in the first place that takes one (systemd's
RuntimeDirectory under /run, a second configured dir, the journal's own dir when only SQLite
is refused), and the next start writes them into the journal before anything new. The file
also says how far seq was handed out (`given_through`) and what was lost before it, so the
next start neither gives a seq twice nor leaves a hole unexplained.

While degraded, the journal also keeps a lease there (a spill with no events, one fixed name):
how far it may have handed seqs out. A daemon killed while the disk refuses leaves no spill, and
the seq mark in the state dir could not be moved; the lease still tells the next start where to
continue.

Blocking: used from a thread, never on the loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import structlog

from edge.events import Event, Priority

log = structlog.get_logger("edge.journal")

FORMAT = 1


@dataclass(slots=True)
class Spill:
    """One spill file's content: held events (seq None: never numbered), the losses, the seq high-water."""

    journal: str
    given_through: int | None
    events: list[tuple[int | None, Event]] = field(default_factory=list)
    lost: dict[str, Any] | None = None  # the journal's losses body: reason, lost, first_seq, last_seq, by_priority
    path: Path | None = None  # where it was read from (removed once its events are written)


def _pattern(journal: Path) -> str:
    return f"{journal.name}.spill-*.json"


def _encode(seq: int | None, event: Event) -> dict[str, Any]:
    return {"seq": seq, "id": event.id, "wall_ns": event.wall_ns, "mono_ns": event.mono_ns, "kind": str(event.kind),
            "priority": int(event.priority), "source": event.source, "body": event.body}


def _decode(row: dict[str, Any]) -> tuple[int | None, Event]:
    event = Event(kind=row["kind"], priority=Priority(row["priority"]), source=row["source"], body=row["body"],
                  id=row["id"], wall_ns=row["wall_ns"], mono_ns=row["mono_ns"])
    return row["seq"], event


def lease_name(journal: Path) -> str:
    return f"{journal.name}.spill-lease.json"


def write(places: Sequence[Path], spill: Spill, name: str | None = None) -> Path | None:
    """Write the spill (temporary file, fsync, rename, fsync of the dir) to the first place that takes it.

    Returns where it went, or None when no place would (each refusal is logged)."""
    document = json.dumps({"format": FORMAT, "journal": spill.journal, "given_through": spill.given_through,
                           "lost": spill.lost, "events": [_encode(seq, e) for seq, e in spill.events]},
                          separators=(",", ":"), default=str).encode()
    name = name or f"{Path(spill.journal).name}.spill-{time.time_ns()}-{os.getpid()}.json"
    for place in places:
        target = place / name
        temporary = place / f".{name}.tmp"
        try:
            place.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(document)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, target)
            with contextlib.suppress(OSError):
                directory = os.open(place, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            return target
        except OSError as refused:
            log.warning("journal spill refused here", place=str(place), error=f"{type(refused).__name__}: {refused}")
            with contextlib.suppress(OSError):
                temporary.unlink()
    return None


def read(places: Iterable[Path], journal: Path) -> list[Spill]:
    """Every spill of this journal found in `places`, oldest first; an unreadable one is logged and kept."""
    found: list[Spill] = []
    seen: set[Path] = set()
    for place in places:
        try:
            candidates = sorted(place.glob(_pattern(journal)))
        except OSError:
            continue
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            try:
                document = json.loads(path.read_bytes())
                if document.get("journal") != str(journal):
                    continue  # another journal's (the same name in another dir)
                events = [_decode(row) for row in document["events"]]
            except (OSError, ValueError, KeyError, TypeError) as bad:
                log.error("journal spill unreadable; kept for a person to look at", path=str(path), error=str(bad))
                continue
            found.append(Spill(document["journal"], document.get("given_through"), events, document.get("lost"), path))
    found.sort(key=lambda s: s.path.name.split(".spill-")[-1] if s.path else "")
    return found


def remove(paths: Iterable[Path]) -> None:
    """The spills' events are in the journal now (or in a newer spill): the files go."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as refused:
            log.warning("journal spill not removed; its events are skipped by id when replayed again",
                        path=str(path), error=str(refused))
