"""Models from elsewhere (models/TRAINING.md): an open-vocabulary detector exported with a fixed
vocabulary (YOLO-World, YOLOE: the `yolov8` layout, any class count, a -seg export's mask
coefficients after the scores) and an e-moped detector that decodes in its graph (MEMD-style
`decoded` scores [N, C] and boxes [N, 4]).

No such export can be had here, so each test builds a real ONNX model of that output shape (its
outputs are constants the test places, whatever the frame) and loads it through a manifest as the
gateway does, on a real image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.vision import manifest as m
from edge.vision.detection import VisionClass
from edge.vision.runtime import load_detector
from tests.vision_data import image

onnx = pytest.importorskip("onnx", reason="the test builds its models with onnx (the vision_bench extra)")

VOCABULARY = ("electric scooter", "electric bicycle", "bicycle", "baby stroller", "wheelchair", "person")
OURS = ("kick_scooter", "ebike", "bicycle", "stroller", "wheelchair", "person")
SIZE = 320  # the export's input, square


def constant_model(path: Path, outputs: dict[str, np.ndarray]) -> Path:
    """An ONNX model whose named outputs are `outputs` (plus 0 times the input's mean, so the input is used)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    initialisers = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    graph_outputs = []
    for name, value in outputs.items():
        initialisers.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              graph_outputs, initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def manifest_for(tmp_path: Path, model: Path, output: str, classes: dict[int, str], num_classes: int) -> Path:
    path = tmp_path / f"{model.stem}.yaml"
    mapped = "\n".join(f"  {i}: {c}" for i, c in classes.items())
    path.write_text(f"""name: {model.stem}
file: {model.name}
sha256: {m.sha256_of(model)}
licence: GPL-3.0 (the test's own constant model)
input: {{width: {SIZE}, height: {SIZE}, layout: NCHW, colour: RGB, std: [255, 255, 255], resize: letterbox, align: centre}}
output:
{output}
num_classes: {num_classes}
classes:
{mapped}
thresholds: {{score: 0.25, nms_iou: 0.45}}
""")
    return path


@pytest.mark.parametrize("classes,masks", [(6, 0), (1, 0), (11, 0), (6, 32)])
def test_an_open_vocabulary_export_with_a_fixed_vocabulary_decodes_any_class_count(tmp_path, classes, masks):
    """YOLO-World / YOLOE exported after set_classes: output0 [1, 4 + C (+ 32 mask coefficients), N]."""
    anchors = (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2
    rows = np.zeros((1, 4 + classes + masks, anchors), np.float32)
    ebike = 1 if classes > 1 else 0
    rows[0, :4, 10] = [160, 200, 80, 120]  # centre x, y, width, height in input pixels
    rows[0, 4 + ebike, 10] = 0.83
    rows[0, :4, 500] = [60, 60, 20, 20]
    rows[0, 4 + classes - 1, 500] = 0.1  # below the threshold
    if masks:
        rows[0, 4 + classes:, :] = 5.0  # mask coefficients are no class: never read as scores
    model = constant_model(tmp_path / f"world_{classes}_{masks}.onnx", {"output0": rows})
    mapping = {i: OURS[i] for i in range(min(classes, len(OURS)))} if classes > 1 else {0: "ebike"}
    output = "  family: yolov8" + (f"\n  mask_coefficients: {masks}" if masks else "")
    detector = load_detector(manifest_for(tmp_path, model, output, mapping, classes))

    frame = image("coco_000000008690.jpg")
    found = detector.detect(frame)

    assert [(d.cls, round(d.score, 2)) for d in found] == [(VisionClass.EBIKE, 0.83)]
    h, w = frame.shape[:2]
    scale = min(SIZE / w, SIZE / h)
    ox, oy = (SIZE - round(w * scale)) // 2, (SIZE - round(h * scale)) // 2
    expected = [(120 - ox) / scale, (140 - oy) / scale, (200 - ox) / scale, (260 - oy) / scale]
    assert np.allclose(found[0].box, expected, atol=2.0), (found[0].box, expected)


@pytest.mark.parametrize("classes", [1, 2, 3])
def test_an_e_moped_detector_that_decodes_in_its_graph(tmp_path, classes):
    """MEMD-style: scores [N, C] (already probabilities) and boxes [N, 4] corners in input pixels, C e-moped classes or more."""
    n = 100
    scores, boxes = np.zeros((n, classes), np.float32), np.zeros((n, 4), np.float32)
    scores[3, 0], boxes[3] = 0.91, [40, 100, 200, 300]  # an e-moped
    scores[4, 0], boxes[4] = 0.88, [42, 102, 198, 296]  # the same one again: NMS keeps one
    if classes > 1:
        scores[7, classes - 1], boxes[7] = 0.6, [250, 20, 300, 80]  # a person, unmapped when C is 2 (a class we drop)
    model = constant_model(tmp_path / f"memd_{classes}.onnx", {"scores": scores, "boxes": boxes})
    mapping = {0: "ebike"} | ({2: "person"} if classes == 3 else {})
    detector = load_detector(manifest_for(tmp_path, model, "  family: decoded", mapping, classes))

    found = sorted(detector.detect(image("coco_000000008690.jpg")), key=lambda d: d.cls)

    assert [d.cls for d in found] == [VisionClass.EBIKE] + ([VisionClass.PERSON] if classes == 3 else [])
    assert round(found[0].score, 2) == 0.91
