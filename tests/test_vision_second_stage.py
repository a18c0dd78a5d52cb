"""The optional second stage: a crop classifier (its own manifest) re-labels the detector's candidate boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.vision import manifest
from edge.vision.detection import VisionClass
from edge.vision.runtime import load_detector
from tests.vision_data import MANIFESTS, MODELS, image, need

onnx = pytest.importorskip("onnx", reason="the second-stage test builds its classifier with onnx (test extra)")


def classifier_model(path: Path, weights: np.ndarray) -> str:
    """A tiny real classifier: global average pool of the crop, then a linear layer to 2 logits."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["crop"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "crop_classifier",
        [helper.make_tensor_value_info("crop", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return manifest.sha256_of(path)


def install_pair(tmp_path: Path, weights: np.ndarray, min_score: float = 0.6) -> Path:
    sha = classifier_model(tmp_path / "crop.onnx", weights)
    (tmp_path / "ebike_crop.yaml").write_text(f"""\
kind: classifier
name: ebike_crop
file: crop.onnx
sha256: {sha}
licence: Apache-2.0
input: {{width: 32, height: 32, colour: RGB, std: [255, 255, 255], resize: stretch}}
num_classes: 2
classes: {{0: bicycle, 1: ebike}}
applies_to: [bicycle, motorcycle]
min_score: {min_score}
""")
    detector = (MANIFESTS / "yolox_nano.yaml").read_text() + "second_stage: ebike_crop\n"
    (tmp_path / "yolox_nano.yaml").write_text(detector)
    return tmp_path / "yolox_nano.yaml"




@pytest.fixture
def dog():
    need(MODELS / "yolox_nano.onnx")
    return image("darknet_dog.jpg")


def test_the_classifier_relabels_a_candidate_it_is_sure_of(tmp_path, dog):
    # logits = mean channel values x weights: class 1 (ebike) wins strongly on any real crop
    path = install_pair(tmp_path, np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]]))
    detector = load_detector(path, model_file=MODELS / "yolox_nano.onnx")
    (found,) = detector.detect(dog)
    assert found.cls is VisionClass.EBIKE and found.score > 0.6
    bicycle_box = load_detector(MANIFESTS / "yolox_nano.yaml", model_file=MODELS / "yolox_nano.onnx").detect(dog)[0].box
    assert found.box == bicycle_box  # the box is the detector's; only class and score change


def test_an_unsure_classifier_leaves_the_detectors_class(tmp_path, dog):
    path = install_pair(tmp_path, np.zeros((3, 2)), min_score=0.6)  # 50/50 on everything
    (found,) = load_detector(path, model_file=MODELS / "yolox_nano.onnx").detect(dog)
    assert found.cls is VisionClass.BICYCLE and found.score > 0.5


def test_a_second_stage_with_a_wrong_sha256_is_refused(tmp_path):
    path = install_pair(tmp_path, np.zeros((3, 2)))
    (tmp_path / "crop.onnx").write_bytes(b"\x00" * 10)
    with pytest.raises(manifest.ManifestError, match="crop.onnx has sha256"):
        load_detector(path, model_file=need(MODELS / "yolox_nano.onnx"))


def test_installed_detector_finds_its_installed_second_stage(tmp_path, dog):
    from edge.vision.install import install

    source = tmp_path / "source"
    source.mkdir()
    detector_manifest = install_pair(source, np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]]))
    state = tmp_path / "state"
    install(source / "ebike_crop.yaml", state)
    done = install(detector_manifest, state, source=MODELS / "yolox_nano.onnx")
    (found,) = load_detector(done.manifest).detect(dog)
    assert found.cls is VisionClass.EBIKE
