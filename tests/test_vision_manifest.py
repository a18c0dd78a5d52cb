"""Manifest checks: a model that is not what its manifest says never runs, and errors carry lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.vision import manifest
from edge.vision.runtime import load_detector
from tests.vision_data import MANIFESTS, MODELS, need

BASE = (MANIFESTS / "yolox_nano.yaml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[manifest.ManifestProblem]:
    with pytest.raises(manifest.ManifestError) as caught:
        manifest.load(path)
    return caught.value.problems


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_manifest_validates(path):
    assert manifest.load(path).sha256


def test_wrong_sha256_is_refused_before_the_model_runs(tmp_path):
    shutil.copy(need(MODELS / "yolox_nano.onnx"), tmp_path / "yolox_nano.onnx")
    path = write(tmp_path, BASE.replace("695e750a", "00000000"))
    with pytest.raises(manifest.ManifestError, match="has sha256 695e750a.*the manifest says 00000000") as caught:
        load_detector(path)
    assert str(caught.value).startswith(f"{path}:{line_of(path.read_text(), 'sha256:')}:1: sha256: ")


def test_a_model_file_absent_beside_the_manifest_is_named(tmp_path):
    with pytest.raises(manifest.ManifestError, match="cannot read model file .*yolox_nano.onnx"):
        load_detector(write(tmp_path, BASE))


def test_missing_licence_is_an_error_on_its_line(tmp_path):
    text = BASE.replace("licence: Apache-2.0", "licence: '  '")
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "licence" and "licence" in problem.message
    assert problem.line == line_of(text, "licence:")

    text = "\n".join(line for line in BASE.splitlines() if not line.startswith("licence:"))
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "licence" and problem.message == "Field required"


def test_bad_class_map(tmp_path):
    text = BASE.replace("  3: motorcycle", "  3: moped")
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "classes.3" and problem.line == line_of(text, "3: moped") and "ebike" in problem.message

    text = BASE.replace("  3: motorcycle", "  80: motorcycle")
    (problem,) = problems(write(tmp_path, text))
    assert "model class 80" in problem.message and "80 classes" in problem.message


def test_errors_in_family_parameters_carry_their_line(tmp_path):
    text = BASE.replace("strides: [8, 16, 32]", "strides: [8, sixteen, 32]")
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "output.strides.1" and problem.line == line_of(text, "strides:")

    text = BASE.replace("family: yolox", "family: yolov9")
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "output" and "yolox" in problem.message and problem.line == line_of(text, "family:") - 1


def test_unknown_keys_and_yaml_syntax_errors_carry_their_line(tmp_path):
    text = BASE.replace("  pad_value: 114", "  pad_value: 114\n  pad_colour: 114")
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "input.pad_colour" and problem.line == line_of(text, "pad_colour")
    assert str(problem).startswith(f"{tmp_path / 'model.yaml'}:{problem.line}:3: input.pad_colour")

    text = BASE.replace("  width: 416", "  width: [416")
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "(yaml)" and problem.line > line_of(text, "width:") - 1


def test_a_manifest_that_does_not_fit_its_model_is_refused_at_load(tmp_path):
    weights = need(MODELS / "yolox_nano.onnx")
    text = BASE.replace("width: 416", "width: 320")
    with pytest.raises(manifest.ManifestError, match=r"input 'images' is \[1, 3, 416, 416\]; the manifest says NCHW 320x416"):
        load_detector(write(tmp_path, text), model_file=weights)
    picodet = (MANIFESTS / "picodet_s_416_coco.yaml").read_text().replace("scale_7.tmp_1", "scale_9.tmp_1")
    with pytest.raises(manifest.ManifestError, match=r"no output 'save_infer_model/scale_9.tmp_1'"):
        load_detector(write(tmp_path, picodet), model_file=need(MODELS / "picodet_s_416_coco.onnx"))


def test_a_file_onnxruntime_cannot_load_is_a_manifest_error(tmp_path):
    (tmp_path / "yolox_nano.onnx").write_bytes(b"not an onnx model")
    text = BASE.replace("695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14", manifest.sha256_of(tmp_path / "yolox_nano.onnx"))
    with pytest.raises(manifest.ManifestError, match="onnxruntime cannot load the model"):
        load_detector(write(tmp_path, text))


def test_threads_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="every core"):
        load_detector(MANIFESTS / "yolox_nano.yaml", threads=0, model_file=need(MODELS / "yolox_nano.onnx"))
