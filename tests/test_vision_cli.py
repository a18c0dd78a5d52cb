"""`edge models install|list` and `edge vision eval`, run as a technician runs them."""

from __future__ import annotations

import json
from pathlib import Path

from edge import cli
from edge.vision import evaluation
from edge.vision.manifest import sha256_of as manifest_sha256
from edge.vision.detection import Detection, VisionClass
from tests.vision_data import EBIKE, MANIFESTS, MODELS, need

YOLOX = MANIFESTS / "yolox_nano.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_install_checks_sha256_and_copies_beside_its_manifest(tmp_path, capsys):
    weights = need(MODELS / "yolox_nano.onnx")
    state = tmp_path / "state"
    code, out, err = run(capsys, "models", "install", str(YOLOX), "--from", str(weights), "--state-dir", str(state))
    assert code == 0, err
    assert "installed yolox_nano (Apache-2.0)" in out
    assert (state / "models" / "yolox_nano" / "yolox_nano.onnx").read_bytes() == weights.read_bytes()
    code, out, _ = run(capsys, "models", "list", "--state-dir", str(state))
    assert code == 0 and out.split()[:3] == ["yolox_nano", "detector", "Apache-2.0"]

    from edge.vision.runtime import load_detector  # the installed copy loads without naming the file

    found = load_detector(state / "models" / "yolox_nano" / "manifest.yaml").detect(__import__("tests.vision_data", fromlist=["image"]).image("darknet_dog.jpg"))
    assert [d.cls for d in found] == [VisionClass.BICYCLE]


def test_install_refuses_a_file_that_is_not_the_manifests(tmp_path, capsys):
    wrong = tmp_path / "yolox_nano.onnx"
    wrong.write_bytes(b"not the model")
    code, _, err = run(capsys, "models", "install", str(YOLOX), "--from", str(wrong), "--state-dir", str(tmp_path / "state"))
    assert code == 65 and "the manifest says 695e750a" in err and "not installed" in err
    assert not (tmp_path / "state" / "models").exists() or not any((tmp_path / "state" / "models").rglob("*.onnx"))


def test_install_without_the_file_says_where_it_looked(tmp_path, capsys):
    code, _, err = run(capsys, "models", "install", str(YOLOX), "--state-dir", str(tmp_path / "state"))
    assert code == 66 and "no model file at" in err and "--from FILE" in err


def test_a_non_permissive_licence_must_be_accepted_by_name(tmp_path, capsys):
    weights = need(MODELS / "yolov8n_int8.onnx")
    manifest = MANIFESTS / "yolov8n_int8.yaml"
    state = tmp_path / "state"
    code, _, err = run(capsys, "models", "install", str(manifest), "--from", str(weights), "--state-dir", str(state))
    assert code == 77 and "AGPL-3.0" in err and "--accept-licence" in err
    assert not (state / "models" / "yolov8n_int8").exists()
    licence = "AGPL-3.0 (Ultralytics YOLOv8n weights, per the model's metadata)"
    code, out, err = run(capsys, "models", "install", str(manifest), "--from", str(weights), "--state-dir", str(state), "--accept-licence", licence)
    assert code == 0, err


def test_install_reports_manifest_errors_by_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(YOLOX.read_text().replace("licence: Apache-2.0", "licence: ''"))
    code, _, err = run(capsys, "models", "install", str(bad), "--state-dir", str(tmp_path / "state"))
    assert code == 65 and f"{bad}:6:1: licence:" in err


def labels(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("file,ebike,bicycle,motorcycle,stroller,wheelchair,person,in_elevator,group,notes\n" + "\n".join(rows) + "\n")
    return path


def test_eval_prints_rates_with_their_intervals(tmp_path, capsys):
    need(MODELS / "yolox_nano.onnx")
    need(EBIKE / "images")
    # A small set where a COCO motorcycle stands in for an e-bike: the chopper is the one "e-bike"
    path = labels(tmp_path, [
        "images/coco_000000007386.jpg,1,0,1,0,0,0,0,a,",
        "images/darknet_dog.jpg,0,1,0,0,0,0,0,b,",
        "images/coco_000000000139.jpg,0,0,0,0,0,1,0,c,",
        "images/darknet_horses.jpg,0,0,0,0,0,0,0,d,",
    ])
    argv = ["vision", "eval", "--model", str(YOLOX), "--model-file", str(MODELS / "yolox_nano.onnx"),
            "--images", str(EBIKE / "images"), "--labels", str(path), "--hold-class", "motorcycle"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "e-bike recall (frames with an e-bike that would hold)    1.000  (1/1, 95% CI 0.207-1.000)" in out
    assert "false holds (frames without an e-bike that would hold)  0.000  (0/3, 95% CI 0.000-0.561)" in out
    assert "bicycle        0.000  (0/1, 95% CI 0.000-0.793)" in out
    assert "confusion" in out
    code, out, _ = run(capsys, *argv, "--json")
    figures = json.loads(out)
    assert figures["manifest_sha256"] == manifest_sha256(YOLOX)  # what qualification ties the report to
    assert figures["ebike_recall"] == {"k": 1, "n": 1, "rate": 1.0, "ci95": [0.2065, 1.0]}
    assert figures["false_hold_rate"]["n"] == 3 and figures["recall"]["bicycle"]["k"] == 1
    assert figures["confusion"]["motorcycle"] == {"bicycle": 1, "motorcycle": 1, "HOLD": 1}  # the chopper is seen as both


def test_eval_names_the_line_of_a_bad_label_and_a_missing_image(tmp_path, capsys):
    path = labels(tmp_path, ["images/a.jpg,1,0,0,0,0,0,0,a,", "images/b.jpg,yes,0,0,0,0,0,0,b,"])
    (tmp_path / "images").mkdir()
    code, _, err = run(capsys, "vision", "eval", "--model", str(YOLOX), "--images", str(tmp_path / "images"), "--labels", str(path))
    assert code == 65 and f"{path}:3: column 'ebike' is 'yes'" in err
    path = labels(tmp_path, ["images/a.jpg,1,0,0,0,0,0,0,a,"])
    code, _, err = run(capsys, "vision", "eval", "--model", str(YOLOX), "--images", str(tmp_path / "images"), "--labels", str(path))
    assert code == 66 and f"{path}:2: no image images/a.jpg" in err


def test_wilson_interval_matches_the_textbook():
    low, high = evaluation.wilson(0, 19)
    assert low == 0.0 and round(high, 3) == 0.168  # 0 false holds in 19 negatives cannot show 1 %
    low, high = evaluation.wilson(47, 50)
    assert round(low, 3) == 0.838 and round(high, 3) == 0.979


def test_tally_false_holds_by_what_is_in_the_frame():
    frame = lambda f, *c: evaluation.LabelledFrame(f, frozenset(c), f, 2)  # noqa: E731
    ebike = Detection(VisionClass.EBIKE, 0.9, (0, 0, 1, 1))
    report = evaluation.tally([
        (frame("a", VisionClass.EBIKE, VisionClass.PERSON), [ebike]),
        (frame("b", VisionClass.EBIKE), []),
        (frame("c", VisionClass.WHEELCHAIR, VisionClass.PERSON), [ebike]),
        (frame("d", VisionClass.STROLLER), []),
        (frame("e"), []),
    ])
    assert (report.ebike_recall.k, report.ebike_recall.n) == (1, 2)
    assert (report.false_hold_rate.k, report.false_hold_rate.n) == (1, 3)
    assert (report.false_hold[VisionClass.WHEELCHAIR].k, report.false_hold[VisionClass.STROLLER].k) == (1, 0)
    assert report.false_hold["empty"].n == 1
    assert report.confusion[VisionClass.WHEELCHAIR] == {VisionClass.EBIKE: 1, "HOLD": 1}


def test_a_frame_of_another_class_the_site_holds_for_is_no_false_hold():
    """A site that holds kick scooters too: a held kick scooter is what it asked for."""
    frame = lambda f, *c: evaluation.LabelledFrame(f, frozenset(c), f, 2)  # noqa: E731
    scooter = Detection(VisionClass.KICK_SCOOTER, 0.9, (0, 0, 1, 1))
    outcomes = [
        (frame("a", VisionClass.KICK_SCOOTER, VisionClass.PERSON), [scooter]),
        (frame("b", VisionClass.KICK_SCOOTER), []),
        (frame("c", VisionClass.WHEELCHAIR), [scooter]),
        (frame("d", VisionClass.EBIKE), [scooter]),
    ]
    both = evaluation.tally(outcomes, (VisionClass.EBIKE, VisionClass.KICK_SCOOTER))
    assert (both.false_hold_rate.k, both.false_hold_rate.n) == (1, 1)  # only the wheelchair frame is a negative
    assert (both.ebike_recall.k, both.ebike_recall.n) == (1, 1)
    assert (both.recall[VisionClass.KICK_SCOOTER].k, both.recall[VisionClass.KICK_SCOOTER].n) == (1, 2)
    ebike_only = evaluation.tally(outcomes, (VisionClass.EBIKE,))  # scooters are negatives when not held for
    assert (ebike_only.false_hold_rate.k, ebike_only.false_hold_rate.n) == (0, 3)


def test_the_cli_does_not_import_numpy_opencv_or_onnxruntime():
    import subprocess
    import sys

    probe = "import sys, edge.cli; edge.cli._parser(); print(sorted(m for m in ('numpy', 'cv2', 'onnxruntime', 'onnx', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
