"""The field points as rows: what `edge points`, its `--all` and the page show of each point.

Rows are built from what the monitors last saw (values, active conditions, the cut circuits and the
trips a breaker refused) and written to STATE_DIR/points.json every couple of seconds, so `edge
points` works without the daemon (edge/points/status_file.py says why a file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge.runtime import pools
from edge.points.device_status import StatusPoint
from edge.fieldbus.devices import PointKey
from edge.journal import Journal
from edge.points.status_file import SNAPSHOT_EVERY_S, SNAPSHOT_NAME, PointState, PointStatus, point_state, write_snapshot
from edge.runtime.pools import Pool
from edge.points import Condition, Quantity, TripCommand
from edge.runtime.state_files import StateFile

if TYPE_CHECKING:
    from edge.power.points import FieldPoint


def point_rows(
    points: list[FieldPoint],
    status: dict[PointKey, StatusPoint],
    cuts: dict[str, dict],
    refused: dict[str, tuple[TripCommand, str]],
    online: Callable[[str], bool],
    now: float,
    wall: float,
) -> list[PointStatus]:
    """One row per monitored point and per device-status point; a cut circuit's points read `cut`."""
    rows = [
        PointStatus(
            name=p.owner, point=str(p.key), quantity=str(p.quantity), value=p.value, unit=p.unit,
            read_at=None if p.read_at is None else wall - (now - p.read_at),
            state=PointState.CUT if p.circuit is not None and p.circuit.name in cuts
            else point_state(online(p.key.device), p.active.items()),
            alarms=alarm_words(p, refused),
        )
        for p in points
    ]
    breakers = {cut["breaker"] for cut in cuts.values()}
    for s in status.values():
        number = s.value if isinstance(s.value, int | float) and not isinstance(s.value, bool) else None
        rows.append(PointStatus(
            name=s.owner, point=str(s.key), quantity=str(Quantity.DEVICE_STATUS), value=number, unit=s.point.unit,
            read_at=None if s.read_at is None else wall - (now - s.read_at),
            state=PointState.CUT if s.key.device in breakers
            else point_state(online(s.key.device), [(Condition.STATUS, v) for v in s.active.values()]),
            label=s.label(), alarms=sorted(s.active),
        ))
    return rows


def alarm_words(point: FieldPoint, refused: dict[str, tuple[TripCommand, str]]) -> list[str]:
    """Every condition active on the point (an `invalid` row still shows the alarm it holds), and a
    cut the breaker refused, on the point that asked for it."""
    words = [f"{severity}: {condition}".replace("_", " ") for condition, severity in sorted(point.active.items())]
    refusal = refused.get(point.circuit.name) if point.circuit is not None else None
    if refusal is not None and refusal[0].cause.point == str(point.key):
        words.append(f"could not cut: {refusal[1]}")
    return words


def alarms_at(key: PointKey, points: list[FieldPoint], status: dict[PointKey, StatusPoint],
              refused: dict[str, tuple[TripCommand, str]]) -> list[tuple[str, str]]:
    """(severity, words) of everything active on one device point, for `edge points --all`."""
    found = []
    for point in points:
        if point.key != key:
            continue
        words = alarm_words(point, refused)
        severities = [str(severity) for _, severity in sorted(point.active.items())]
        severities += ["alarm"] * (len(words) - len(severities))  # a cut the breaker refused
        found += [(severity, f"{point.owner}: {text}") for severity, text in zip(severities, words)]
    found_status = status.get(key)
    if found_status is not None:
        found += [(str(severity), text) for text, severity in sorted(found_status.active.items())]
    return found


async def keep_snapshot(state_dir: Path, journal: Journal, rows: Callable[[], list[PointStatus]], wall: Callable[[], float]) -> None:
    """points.json for `edge points` and the page, until cancelled. A disk that refuses it (ENOSPC,
    EROFS) costs that file only: an uncaught refusal here ended the task group and, with it, the trips."""
    snapshot = StateFile(state_dir / SNAPSHOT_NAME, "points.json (edge points without the daemon)", journal)
    while True:
        try:
            await pools.call(Pool.FILES, write_snapshot, state_dir, rows(), wall())
        except OSError as refused:
            await snapshot.refused(refused)
        else:
            await snapshot.written()
        await asyncio.sleep(SNAPSHOT_EVERY_S)
