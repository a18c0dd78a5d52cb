"""Whether a model has earned the right to hold this building's elevator.

A detector that holds a car full of people for a pram is worse than none, so a model acts
only once `edge vision eval` on this site's own labelled frames shows it meets the
configured recall and false-hold limits on enough frames to mean something (a false-hold
rate of 1 % cannot be shown on 19 negatives). The eval report is the JSON object that
`edge vision eval --json` prints, with the manifest's sha256 added:

    {"manifest_sha256": "...", "hold_classes": ["ebike"],
     "ebike_recall": {"k": 400, "n": 412, "rate": 0.971, ...},
     "false_hold_rate": {"k": 4, "n": 655, "rate": 0.006, ...}, ...}

`manifest_sha256` ties the report to the manifest it measured (whose sha256 ties it to the
weights): a report of another model, or of this model's older version, qualifies nothing.
`hold_classes` ties it to what the camera holds for: the base model calls powered wheelchairs
motorcycles, so a report that judged holds on e-bikes alone says nothing of a camera that also
holds for motorcycles.
Until qualified, the guard runs in observe mode and says why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edge.config import Camera


@dataclass(frozen=True, slots=True)
class Verdict:
    may_hold: bool
    reason: str


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verdict(camera: Camera) -> Verdict:
    """May this camera's model hold the car? Reads two small files: call it off the loop."""
    if camera.model is None:
        return Verdict(False, "no model is configured: the camera only collects frames")
    if camera.hold is None:
        return Verdict(False, "no hold relay is configured")
    need = camera.qualification
    if need.report is None:
        return Verdict(False, "the model is not qualified on this site: no eval report is configured (qualification.report)")
    try:
        report = json.loads(need.report.read_text())
        manifest = file_sha256(camera.model)
        measured = report["manifest_sha256"]
        judged = sorted({str(c) for c in report["hold_classes"]})
        ebikes, recall = int(report["ebike_recall"]["n"]), float(report["ebike_recall"]["rate"] or 0.0)
        negatives, false_holds = int(report["false_hold_rate"]["n"]), float(report["false_hold_rate"]["rate"] or 0.0)
    except FileNotFoundError as error:
        return Verdict(False, f"cannot read {error.filename}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return Verdict(False, f"the eval report {need.report} is unreadable or incomplete ({type(error).__name__}: {error})")
    if measured != manifest:
        return Verdict(False, f"the eval report measured another model (manifest sha256 {str(measured)[:12]}, installed {manifest[:12]})")
    held = sorted(set(camera.hold_classes))
    if judged != held:
        return Verdict(False, f"the eval report judged holds on {', '.join(judged) or 'nothing'}, this camera holds on {', '.join(held)}"
                              f" (run edge vision eval with --hold-class {' --hold-class '.join(held)})")
    short = []
    if ebikes < need.min_ebike_frames:
        short.append(f"{ebikes} e-bike frames < {need.min_ebike_frames}")
    if negatives < need.min_negative_frames:
        short.append(f"{negatives} negative frames < {need.min_negative_frames}")
    if recall < need.min_recall:
        short.append(f"recall {recall:.3f} < {need.min_recall}")
    if false_holds > need.max_false_hold:
        short.append(f"false holds {false_holds:.3f} > {need.max_false_hold}")
    if short:
        return Verdict(False, "the model is not qualified on this site: " + "; ".join(short))
    return Verdict(True, f"qualified: recall {recall:.3f} on {ebikes} e-bike frames, false holds {false_holds:.3f} on {negatives} negatives")
