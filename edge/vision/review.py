"""Operators' reviews of the guard's holds, and the demotion they force.

An eval report qualifies a model on the frames someone labelled; the holds it then makes are the
frames nobody chose. So every hold asks the operator to confirm it (an e-bike) or deny it (what
was really there), and the guard demotes itself to observe mode at once when the reviews show it
holds what it must not:

- a hold denied as a wheelchair or a pram: one is enough (never trap a wheelchair user);
- the confirmed false-hold rate (denials of all reviewed holds) whose 95 % Wilson lower bound is
  above the site's `qualification.max_false_hold`: the reviews alone show it is worse than allowed
  (1 denial in 1 review: lower bound 0.21; 1 in 200: 0.0009, no demotion at a 1 % target).

The tally lives in STATE_DIR/vision/reviews/CAMERA.json, tied to the sha256 of the eval report
that qualified the model: a demotion lasts until a new report (another file's bytes) qualifies
it, and a new report starts a new tally. Pure but for `load` and `save`, which run off the loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.vision.evaluation import wilson

OUTCOMES = ("confirm", "deny")
# What an operator may say was in the car; a denial as one of DEMOTE_AT_ONCE demotes on its own.
SEEN = ("ebike", "kick_scooter", "motorcycle", "bicycle", "wheelchair", "stroller", "person", "empty", "other")
DEMOTE_AT_ONCE = frozenset({"wheelchair", "stroller"})
MAX_PENDING = 200  # holds awaiting review that are remembered; the oldest is forgotten beyond


@dataclass
class Tally:
    """The reviews of one camera's holds since its report qualified it."""

    report_sha256: str | None = None
    confirmed: int = 0
    denied: int = 0
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # hold seq (as text) -> class, at
    demoted: str | None = None  # why, once demoted

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.denied

    def as_dict(self) -> dict[str, Any]:
        low, high = wilson(self.denied, self.reviewed)
        return {"confirmed": self.confirmed, "denied": self.denied, "false_hold_ci95": [round(low, 4), round(high, 4)],
                "pending": len(self.pending), "demoted": self.demoted}


def place(state_dir: Path, camera: str) -> Path:
    return Path(state_dir) / "vision" / "reviews" / f"{camera}.json"


def load(state_dir: Path, camera: str, report_sha256: str | None) -> Tally:
    """The camera's tally for this report; a fresh one for another report (or none yet). Blocking."""
    try:
        data = json.loads(place(state_dir, camera).read_text())
    except (OSError, ValueError):
        return Tally(report_sha256)
    if not isinstance(data, dict) or data.get("report_sha256") != report_sha256:
        return Tally(report_sha256)
    try:
        return Tally(report_sha256, int(data.get("confirmed", 0)), int(data.get("denied", 0)),
                     {str(k): dict(v) for k, v in (data.get("pending") or {}).items()}, data.get("demoted"))
    except (TypeError, ValueError):
        return Tally(report_sha256)


def save(state_dir: Path, camera: str, tally: Tally) -> None:
    """Write the tally whole (a temporary file renamed over it). Blocking: in the files pool."""
    path = place(state_dir, camera)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{camera}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(tally), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def held(tally: Tally, seq: int, cls: str, at: float) -> None:
    """A hold now awaits review."""
    tally.pending[str(seq)] = {"class": cls, "at": at}
    while len(tally.pending) > MAX_PENDING:
        tally.pending.pop(next(iter(tally.pending)))


def review(tally: Tally, seq: int, outcome: str, seen: str, max_false_hold: float) -> str | None:
    """Count one review of hold `seq`; the reason to demote the camera now, or None.

    Raises ValueError for an outcome or a seen class it does not know, or a hold that awaits no review."""
    if outcome not in OUTCOMES:
        raise ValueError(f"the review is one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if seen not in SEEN:
        raise ValueError(f"what was in the car is one of {', '.join(SEEN)}, not {seen!r}")
    hold = tally.pending.pop(str(seq), None)
    if hold is None:
        raise ValueError(f"hold {seq} awaits no review (reviewed already, or not a hold of this camera)")
    if outcome == "confirm":
        tally.confirmed += 1
    else:
        tally.denied += 1
    if tally.demoted is not None:
        return None
    if outcome == "deny" and seen in DEMOTE_AT_ONCE:
        words = "a wheelchair" if seen == "wheelchair" else "a pram"
        return f"hold {seq} was denied as {words}: the guard must never hold one"
    low, high = wilson(tally.denied, tally.reviewed)
    if tally.denied and low > max_false_hold:
        return (f"operators denied {tally.denied} of {tally.reviewed} reviewed holds (false holds 95% CI {low:.3f}-{high:.3f}): "
                f"even the lower bound is above the site's limit {max_false_hold}")
    return None
