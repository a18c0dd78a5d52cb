"""`edge vision train` on real labelled frames and the real base model: a crop-level head, its files
and manifest, a held-out time split of the site's frames and the report qualification reads.

Small on purpose (car 89's 52 frames and 30 others, about 80 frames): it checks what is written and
that the gateway loads and qualifies by it, never how good the head is (edge.hil.bench.vision_quality
reports that, with intervals)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from edge import cli
from edge.vision.settings import Camera
from edge.vision import manifest as m
from edge.vision.train import group_folds, time_split
from edge.vision.evaluation import LabelledFrame
from tests.vision_data import EBIKE, MANIFESTS, MODELS, need

pytest.importorskip("onnx", reason="training exposes the detector's feature maps with onnx (the vision_bench extra)")
SITE = "x112_car89"


def small_labels(path: Path) -> list[dict]:
    with open(need(EBIKE / "labels.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    site = [r for r in rows if r["group"] == SITE]
    others = [r for r in rows if r["group"] != SITE]
    chosen = site + [r for r in others if r["ebike"] == "1"][:10] + [r for r in others if r["ebike"] == "0"][:20]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return chosen


def test_train_writes_a_crop_head_its_manifest_and_a_held_out_report_that_qualification_reads(tmp_path, capsys):
    need(MODELS / "yolox_nano.onnx")
    rows = small_labels(tmp_path / "labels.csv")
    out = tmp_path / "trained"
    code = cli.main(["vision", "train", "--base", str(MANIFESTS / "yolox_nano.yaml"), "--model-file", str(MODELS / "yolox_nano.onnx"),
                     "--images", str(EBIKE), "--labels", str(tmp_path / "labels.csv"), "--boxes", str(EBIKE / "boxes"),
                     "--site-group", SITE, "--out", str(out), "--name", "site-ebike"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "held-out site frames (21, from x112_89_" in printed.out and "95% CI" in printed.out

    manifest = m.load(out / "site-ebike.yaml")
    assert manifest.sha256 == m.sha256_of(out / "site-ebike.onnx") and manifest.head.sha256 == m.sha256_of(out / "site-ebike.head.npz")
    assert manifest.trained.base == "yolox_nano" and manifest.trained.base_sha256 == m.load(MANIFESTS / "yolox_nano.yaml").sha256
    assert manifest.trained.frames == len(rows) - 21 and manifest.trained.held_out == 21 and manifest.trained.boxes > 0
    assert 0 < manifest.head.threshold <= 1

    report = json.loads((out / "site-ebike.eval.json").read_text())
    site_files = sorted(r["file"] for r in rows if r["group"] == SITE)
    assert report["split"] == {"site_group": SITE, "held_out_from": Path(site_files[31]).stem, "train_frames": len(rows) - 21, "test_frames": 21}
    assert report["frames"] == 21 and report["cannot_output"] == [] and report["hold_classes"] == ["ebike"]
    assert report["manifest_sha256"] == m.sha256_of(out / "site-ebike.yaml") and report["train_s"] > 0

    # installed on the gateway, the trained model runs and its report is judged: too few frames to qualify, and it says so
    state = tmp_path / "state"
    assert cli.main(["models", "install", str(out / "site-ebike.yaml"), "--state-dir", str(state)]) == 0
    installed = state / "models" / "site-ebike" / "manifest.yaml"
    assert (installed.parent / "site-ebike.head.npz").is_file()
    from edge.vision.qualification import verdict
    from edge.vision.runtime import HeadDetector, load_detector
    from tests.vision_data import image

    detector = load_detector(installed)
    assert isinstance(detector, HeadDetector)
    assert all(d.score >= 0 for d in detector.detect(image(Path(site_files[-1]).name)))
    camera = Camera.model_validate({"name": "c", "source": "x", "model": installed, "qualification": {"report": out / "site-ebike.eval.json"},
                                    "hold": {"device": "io", "hold": "h", "resume": "r"}})
    judged = verdict(camera)
    assert not judged.may_hold and len(judged.reasons) == 1
    assert "e-bike frames < 300" in judged.reason and "cannot output" not in judged.reason and "another model" not in judged.reason


def test_folds_never_split_a_group_and_the_time_split_holds_out_the_sites_latest_frames():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + ["e"] * 2
    for train, held in group_folds(groups, 3):
        assert not {groups[i] for i in train} & {groups[i] for i in held}
    frames = [LabelledFrame(f"images/s_{t}.jpg", frozenset(), "site", t) for t in (5, 1, 4, 2, 3)]
    frames += [LabelledFrame("images/other.jpg", frozenset(), "other", 9)]
    train, test = time_split(frames, "site", 0.4)
    assert sorted(frames[i].file for i in test) == ["images/s_4.jpg", "images/s_5.jpg"]
    assert "images/other.jpg" in [frames[i].file for i in train]
