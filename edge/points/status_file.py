"""The status of every field point, as `edge points` shows it.

The daemon writes a small snapshot file into the state dir every couple of seconds (temp
file + rename, so a reader never sees half of it). A file rather than a question over the
control socket: `edge points` then works for any user who may read the state dir, costs the
daemon nothing per call, and still shows the last known values (with their growing age)
when the daemon is down, which is exactly when a technician wants them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from edge.points.transition import Condition, Severity

SNAPSHOT_NAME = "points.json"
SNAPSHOT_EVERY_S = 2.0


class PointState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ALARM = "alarm"
    SENSOR_FAULT = "sensor_fault"
    INVALID = "invalid"  # the device says its reading is not valid now
    STALE = "stale"
    OFFLINE = "offline"
    CUT = "cut"  # the gateway opened the circuit's breaker: no power until a confirmed re-close


def point_state(online: bool, active: Iterable[tuple[Condition, Severity]]) -> PointState:
    """The one word for a point: what keeps us from knowing comes first, then how bad it is."""
    active = set(active)
    if not online:
        return PointState.OFFLINE
    conditions = {condition for condition, _ in active}
    if Condition.SENSOR_FAULT in conditions:
        return PointState.SENSOR_FAULT
    if Condition.INVALID in conditions:
        return PointState.INVALID
    if Condition.STALE in conditions:
        return PointState.STALE
    if any(severity is Severity.ALARM for _, severity in active):
        return PointState.ALARM
    if active:
        return PointState.WARNING
    return PointState.OK


@dataclass(frozen=True, slots=True)
class PointStatus:
    """One row: `read_at` is the wall time (Unix seconds) of the last reading, None if never."""

    name: str  # circuit or pressure point
    point: str  # DEVICE.POINT
    quantity: str
    value: float | None
    unit: str
    read_at: float | None
    state: PointState
    label: str | None = None  # a state or code as the device manual names it (closed, overload, on)
    alarms: list[str] | None = None  # a device status: the texts of its alarms that are raised


def write_snapshot(state_dir: Path, rows: list[PointStatus], written_at: float) -> Path:
    """Replace the snapshot atomically; returns its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SNAPSHOT_NAME
    document = {"written_at": written_at, "points": [asdict(row) for row in rows]}
    fd, temporary = tempfile.mkstemp(prefix=".points-", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


@dataclass(frozen=True, slots=True)
class Snapshot:
    written_at: float
    points: list[PointStatus]


def read_snapshot(state_dir: Path) -> Snapshot:
    """Raises FileNotFoundError when the daemon never wrote one, ValueError when it is unreadable."""
    document = json.loads((state_dir / SNAPSHOT_NAME).read_text(encoding="utf-8"))
    try:
        rows = [PointStatus(**{**row, "state": PointState(row["state"])}) for row in document["points"]]
        return Snapshot(float(document["written_at"]), rows)
    except (KeyError, TypeError) as error:
        raise ValueError(f"points snapshot is malformed: {error}") from None


def as_rows(snapshot: Snapshot, now: float, stale_after_s: float) -> list[dict]:
    """Rows for display; if the snapshot itself is old the daemon is not updating it, so every
    point is shown stale (its value may be anything by now)."""
    daemon_silent = now - snapshot.written_at > stale_after_s
    rows = []
    for status in snapshot.points:
        state = PointState.STALE if daemon_silent and status.state is not PointState.OFFLINE else status.state
        age = None if status.read_at is None else max(0.0, now - status.read_at)
        rows.append({
            "name": status.name, "point": status.point, "quantity": status.quantity, "value": status.value,
            "unit": status.unit, "age_s": None if age is None else round(age, 1), "state": str(state),
            "label": status.label, "alarms": status.alarms or [],
        })
    return rows


def render_table(rows: list[dict]) -> str:
    header = f"{'NAME':<20}  {'POINT':<28}  {'QUANTITY':<18}  {'VALUE':>10}  {'UNIT':<5}  {'AGE':>8}  STATE"
    lines = [header]
    for row in rows:
        if row.get("label") is not None:
            value = row["label"]
        else:
            value = "-" if row["value"] is None else f"{row['value']:.3f}".rstrip("0").rstrip(".")
        age = "never" if row["age_s"] is None else f"{row['age_s']:.1f}s"
        lines.append(
            f"{row['name']:<20}  {row['point']:<28}  {row['quantity']:<18}  {value:>10}  {row['unit']:<5}  {age:>8}  {row['state']}"
            + "".join(f"  ({text})" for text in row.get("alarms") or [])
        )
    return "\n".join(lines)
