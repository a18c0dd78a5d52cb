"""Tools that say why: eval names a hold class the model cannot output and its report qualifies
nothing; `edge vision status`, `edge doctor` and the page's view list every reason a camera's
guard does not hold; the replay draws the counted box's frames, median and threshold, and keeps
the last boxes, marked, on frames the motion gate left to the still car.

Real parts: the base model (YOLOX-nano, COCO) from the shared folder, the real images."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from edge.config import building as building_config
from edge import cli
from edge.vision.kinds import VisionKind
from edge.vision.qualification import file_sha256, verdict
from edge.vision.settings import Camera
from tests.vision_data import EBIKE, MANIFESTS, MODELS, need
from conftest import building
from vision_media import EMPTY_CAR, labelled, write_clip
from vision_rig import FLOOR, camera_event, lift_camera, lift_io, site_model

YOLOX = MANIFESTS / "yolox_nano.yaml"


def reasons_building(model: Path, **camera) -> dict:
    """Lift 1's camera (on /dev/null) with `model` over the car's floor, `camera` more of its settings,
    beside the lift's IO module."""
    return building(lift_io(), {"cameras": [lift_camera("/dev/null", model=str(model), region=[list(corner) for corner in FLOOR], **camera)]})


def installed_base_model(folder: Path) -> Path:
    """The base model as `edge models install` leaves it: manifest.yaml with its file beside it."""
    weights = need(MODELS / "yolox_nano.onnx")
    folder.mkdir(parents=True)
    shutil.copyfile(YOLOX, folder / "manifest.yaml")
    shutil.copyfile(weights, folder / "yolox_nano.onnx")
    return folder / "manifest.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_names_the_hold_class_the_base_model_cannot_output_and_its_report_qualifies_nothing(tmp_path, capsys):
    need(MODELS / "yolox_nano.onnx")
    labels = tmp_path / "labels.csv"
    with open(need(EBIKE / "labels.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["ebike"] == "1"][:3] + [r for r in rows if r["wheelchair"] == "1"][:3]
    with open(labels, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    common = ("vision", "eval", "--model", str(YOLOX), "--model-file", str(MODELS / "yolox_nano.onnx"),
              "--images", str(EBIKE), "--labels", str(labels))

    code, out, err = run(capsys, *common)
    assert code == 0, err
    assert "THE MODEL CANNOT OUTPUT EBIKE" in out and "qualifies no camera" in out
    assert "cannot output ebike" in err

    code, out, err = run(capsys, *common, "--json")
    report = json.loads(out)
    assert code == 0 and report["cannot_output"] == ["ebike"] and report["may_qualify"] is False

    # the same figures from a report that says the model was blind qualify no camera, however good they look
    manifest = site_model(tmp_path / "site-model")
    body = {"manifest_sha256": file_sha256(manifest), "hold_classes": ["ebike"], "cannot_output": ["ebike"],
            "ebike_recall": {"k": 400, "n": 400, "rate": 1.0}, "false_hold_rate": {"k": 0, "n": 700, "rate": 0.0}}
    (tmp_path / "eval.json").write_text(json.dumps(body))
    camera = Camera.model_validate({
        "name": "c", "source": "x", "model": manifest, "hold": {"device": "io", "hold": "h", "resume": "r"},
        "qualification": {"report": tmp_path / "eval.json"}})
    judged = verdict(camera)
    assert not judged.may_hold and judged.reasons == ("the model is not qualified on this site: the report measured a model "
                                                       "that cannot output ebike: it qualifies nothing",)
    (tmp_path / "eval.json").write_text(json.dumps({**body, "cannot_output": []}))
    assert verdict(camera).may_hold


def test_status_and_doctor_list_every_reason_the_guard_is_not_holding(tmp_path, write_config, capsys):
    model = installed_base_model(tmp_path / "models" / "yolox_nano")
    path = write_config(reasons_building(model, hold={"device": "io-lift", "hold": "release_7", "resume": "secure_7"},
                                         qualification={"report": "eval.json", "min_ebike_frames": 300, "min_negative_frames": 300}))
    report = path.parent / "eval.json"
    report.write_text(json.dumps({"manifest_sha256": file_sha256(model), "hold_classes": ["ebike"], "cannot_output": [],
                                  "ebike_recall": {"k": 11, "n": 12, "rate": 0.917}, "false_hold_rate": {"k": 3, "n": 40, "rate": 0.075}}))

    code, out, _ = run(capsys, "vision", "status", "-c", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "lift-1-cam (lift-1): OBSERVE, for 2 reasons:", out
    assert "cannot output ebike: its class map has bicycle, motorcycle, person" in lines[1]
    assert ("12 e-bike frames < 300 (label 288 more); 40 negative frames < 300 (label 260 more); recall 0.917 < 0.95; "
            "false holds 0.075 (3/40) > 0.01") in lines[2]

    (model.parent / "yolox_nano.onnx").write_bytes(b"a truncated copy")
    from edge.status import doctor

    config = building_config.load(path)
    results = {r.check: r for r in doctor.check_guards(config)}
    assert not results["model lift-1-cam"].passed
    assert "not the one its manifest names" in results["model lift-1-cam"].found
    assert "cannot output ebike" in results["model lift-1-cam"].found
    guard = results["guard lift-1-cam"]
    assert not guard.passed and "3 reason(s)" in guard.found and "label 288 more" in guard.found  # a relay is wired: it should hold

    # without a relay the camera observes by design: the doctor lists why and passes it
    write_config(reasons_building(model, qualification={"report": "eval.json", "min_ebike_frames": 300, "min_negative_frames": 300}))
    guard = {r.check: r for r in doctor.check_guards(building_config.load(path))}["guard lift-1-cam"]
    assert guard.passed and "no hold relay is configured" in guard.found and "OBSERVE" in guard.found


def test_the_page_view_keeps_every_reason_a_camera_gave_at_start(write_config, tmp_path):
    from edge.status.view import BuildingView

    config = building_config.load(write_config(reasons_building(tmp_path / "m.yaml")))
    view = BuildingView(config)
    reasons = ["no hold relay is configured", "the model cannot output ebike: its class map has bicycle, motorcycle, person"]
    view.apply(camera_event(1, VisionKind.VISION_MODE, {"mode": "observe", "reason": "; ".join(reasons), "reasons": reasons}))
    assert view.tile("vision").cameras["lift-1-cam"]["reasons"] == reasons
    view.apply(camera_event(2, VisionKind.VISION_MODE, {"mode": "observe", "reason": "an older gateway said one thing"}))
    assert view.tile("vision").cameras["lift-1-cam"]["reasons"] == ["an older gateway said one thing"]
    view.apply(camera_event(3, VisionKind.VISION_MODE, {"mode": "hold", "reason": "qualified", "reasons": []}))
    assert view.tile("vision").cameras["lift-1-cam"]["reasons"] == []


def test_replay_draws_the_counted_box_with_its_frames_median_and_threshold_and_keeps_gated_boxes_marked(tmp_path):
    """The base model with its person class read as an e-bike: a person standing in the car is the
    candidate the machine counts, so the labels are the real model's scores, counted as the guard counts."""
    need(MODELS / "yolox_nano.onnx")
    from edge.vision.replay import replay
    from edge.vision.runtime import load_detector

    person = labelled("person", 1)[0]  # one person standing in a car, 10 s, after 1 s of the empty car
    clip = write_clip(tmp_path / "car.avi", [EBIKE / EMPTY_CAR] * 10 + [person] * 100, (640, 360), fps=10.0)
    manifest = tmp_path / "persons-as-ebikes.yaml"
    manifest.write_text(YOLOX.read_text().replace("  0: person\n", "  0: ebike\n"))
    detector = load_detector(manifest, 1, model_file=MODELS / "yolox_nano.onnx")
    camera = Camera.model_validate({"name": "lift-1-cam", "source": str(clip), "analysis_fps": 10, "leave_s": 30,
                                                    "region": [[0, 0], [1, 0], [1, 1], [0, 1]]})
    frames = []
    summary = replay(camera, clip, tmp_path / "out.avi", detector, drawn=frames.append)

    assert summary.frames == len(frames) == 110
    counted = [label for f in frames if not f.gated for label in f.labels if "frames, median" in label]
    assert counted, [f.labels for f in frames]
    assert any(" 1/3 frames, median " in label for label in counted)  # the first frame of a run, counted
    assert all(label.startswith("ebike ") and (" >= 0.50" in label or " < 0.50" in label) for label in counted)
    assert summary.confirmations >= 1

    # the floor region drawn on the car's top half: the standing people's feet are not on it, so their boxes
    # say so, nothing is watched, and once the car is still the gate idles the model; the last boxes stay, marked
    top = camera.model_copy(update={"region": [(0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (0.0, 0.5)]})
    frames = []
    summary = replay(top, clip, tmp_path / "top.avi", detector, drawn=frames.append)
    assert summary.confirmations == 0
    outside = [label for f in frames for label in f.labels if label.startswith("ebike ")]
    assert outside and all(label.endswith(": not on the floor region") for label in outside), outside
    gated = [f for f in frames if f.gated and f.labels]
    assert gated and summary.gated == len(gated)
    analysed_last = next(f for f in reversed(frames[:frames.index(gated[0])]) if not f.gated)
    assert gated[0].labels == analysed_last.labels
