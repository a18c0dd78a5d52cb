"""Whether a model has earned the right to hold this building's elevator, and every reason it has not.

A detector that holds a car full of people for a pram is worse than none, so a model acts
only once `edge vision eval` on this site's own labelled frames shows it meets the
configured recall and false-hold limits on enough frames to mean something (a false-hold
rate of 1 % cannot be shown on 19 negatives). The eval report is the JSON object that
`edge vision eval --json` prints, with the manifest's sha256 added:

    {"manifest_sha256": "...", "hold_classes": ["ebike"], "cannot_output": [],
     "ebike_recall": {"k": 400, "n": 412, "rate": 0.971, ...},
     "false_hold_rate": {"k": 4, "n": 655, "rate": 0.006, ...}, ...}

`manifest_sha256` ties the report to the manifest it measured (whose sha256 ties it to the
weights): a report of another model, or of this model's older version, qualifies nothing.
`hold_classes` ties it to what the camera holds for: the base model calls powered wheelchairs
motorcycles, so a report that judged holds on e-bikes alone says nothing of a camera that also
holds for motorcycles. A model whose class map has no e-bike (the COCO base model) can never
hold for one: its recall of 0 is not a measurement, and such a report never qualifies.

Until qualified, the guard runs in observe mode and says why: every reason at once (relay,
model file, class map, report and the frames it still needs), so an installer fixes them in
one visit instead of discovering them one after another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edge.vision.settings import Camera


@dataclass(frozen=True, slots=True)
class Verdict:
    may_hold: bool
    reason: str  # every reason in one line ("; "), as journaled and shown
    reasons: tuple[str, ...] = field(default=())  # each reason the guard does not hold; empty when it may
    report_sha256: str | None = None  # the qualifying report's bytes: the operators' reviews are tallied against it
    demoted: str | None = None  # why the operators' reviews returned a qualified model to observe mode

    def __post_init__(self) -> None:
        if not self.reasons and not self.may_hold:
            object.__setattr__(self, "reasons", (self.reason,))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_outputs(manifest_path: Path) -> set[str]:
    """The classes a detector manifest can report: its class map, and its second stage's when it has one.

    Raises ManifestError (edge.vision.manifest) when the detector's manifest cannot be read."""
    from edge.vision import manifest as m

    manifest = m.load(manifest_path)
    outputs = {str(c) for c in manifest.classes.values()}
    if isinstance(manifest, m.DetectorManifest) and manifest.head is not None:
        outputs.add(str(manifest.head.holds_as))  # a trained crop head says e-bike where the base cannot
    if isinstance(manifest, m.DetectorManifest) and manifest.second_stage:
        beside = manifest_path.parent / f"{manifest.second_stage}.yaml"
        second = beside if beside.exists() else manifest_path.parent.parent / manifest.second_stage / "manifest.yaml"
        try:
            outputs |= {str(c) for c in m.load(second).classes.values()}
        except m.ManifestError:
            pass  # the detector's load reports a missing second stage; its classes are not there
    return outputs


def blind_classes(manifest_path: Path, hold_classes) -> list[str]:
    """The hold classes this model can never report (not in its class map): for them it is blind."""
    outputs = model_outputs(manifest_path)
    return sorted({str(c) for c in hold_classes} - outputs)


def verdict(camera: Camera, state_dir: Path | None = None) -> Verdict:
    """May this camera's model hold the car? Every reason it may not. Reads the manifest, the model
    file (its sha256), the report and, given the state dir, the reviews (edge/vision/review.py) that
    may have demoted it since the report qualified it: call it off the loop."""
    if camera.model is None:
        return Verdict(False, "no model is configured: the camera only collects frames")
    reasons: list[str] = []
    if camera.hold is None:
        reasons.append("no hold relay is configured")
    reasons += model_reasons(camera)
    good, report_reasons = _report(camera)
    reasons += report_reasons
    if reasons:
        return Verdict(False, "; ".join(reasons), tuple(reasons))
    assert camera.qualification.report is not None
    report = file_sha256(camera.qualification.report)
    if state_dir is not None:
        from edge.vision import review

        demoted = review.load(state_dir, camera.name, report).demoted
        if demoted is not None:
            why = f"demoted by the operators' reviews until a new eval report qualifies the model: {demoted}"
            return Verdict(False, why, (why,), report, demoted)
    return Verdict(True, good, (), report)


def model_reasons(camera: Camera) -> list[str]:
    """The model's own reasons: a manifest that does not load, a file that is missing or not the
    manifest's bytes, hold classes its class map lacks."""
    from edge.vision import manifest as m

    assert camera.model is not None
    try:
        manifest = m.load(camera.model)
    except m.ManifestError as error:
        return [f"the model's manifest {camera.model} is wrong: {error.problems[0].message}"]
    reasons = []
    model_file = camera.model.parent / manifest.file
    if not model_file.is_file():
        reasons.append(f"the model file {model_file} is missing (edge models install)")
    else:
        try:
            m.verify_file(manifest, model_file, str(camera.model))
        except m.ManifestError:
            reasons.append(f"the model file {model_file} is not the one its manifest names (sha256 differs)")
    blind = blind_classes(camera.model, camera.hold_classes)
    if blind:
        reasons.append(f"the model cannot output {', '.join(blind)}: its class map has "
                       f"{', '.join(sorted(model_outputs(camera.model)))} (install a site model that has it)")
    return reasons


def _report(camera: Camera) -> tuple[str, list[str]]:
    """(what a qualifying report shows, the reasons it does not qualify)."""
    assert camera.model is not None
    need = camera.qualification
    if need.report is None:
        return "", ["the model is not qualified on this site: no eval report is configured (qualification.report)"]
    try:
        report = json.loads(need.report.read_text())
        manifest = file_sha256(camera.model)
        measured = report["manifest_sha256"]
        judged = sorted({str(c) for c in report["hold_classes"]})
        blind = sorted(str(c) for c in report.get("cannot_output") or [])
        ebikes, recall = int(report["ebike_recall"]["n"]), float(report["ebike_recall"]["rate"] or 0.0)
        negatives = int(report["false_hold_rate"]["n"])
        false_k, false_holds = int(report["false_hold_rate"]["k"]), float(report["false_hold_rate"]["rate"] or 0.0)
    except FileNotFoundError as error:
        return "", [f"cannot read {error.filename}"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return "", [f"the eval report {need.report} is unreadable or incomplete ({type(error).__name__}: {error})"]
    if measured != manifest:
        return "", [f"the eval report measured another model (manifest sha256 {str(measured)[:12]}, installed {manifest[:12]})"]
    held = sorted(set(camera.hold_classes))
    if judged != held:
        return "", [f"the eval report judged holds on {', '.join(judged) or 'nothing'}, this camera holds on {', '.join(held)}"
                    f" (run edge vision eval with --hold-class {' --hold-class '.join(held)})"]
    short = []
    if blind:
        short.append(f"the report measured a model that cannot output {', '.join(blind)}: it qualifies nothing")
    if ebikes < need.min_ebike_frames:
        short.append(f"{ebikes} e-bike frames < {need.min_ebike_frames} (label {need.min_ebike_frames - ebikes} more)")
    if negatives < need.min_negative_frames:
        short.append(f"{negatives} negative frames < {need.min_negative_frames} (label {need.min_negative_frames - negatives} more)")
    if recall < need.min_recall:
        short.append(f"recall {recall:.3f} < {need.min_recall}")
    if false_holds > need.max_false_hold:
        short.append(f"false holds {false_holds:.3f} ({false_k}/{negatives}) > {need.max_false_hold}")
    if short:
        return "", ["the model is not qualified on this site: " + "; ".join(short)]
    return (f"qualified: recall {recall:.3f} on {ebikes} e-bike frames, false holds {false_holds:.3f} on {negatives} negatives"), []
