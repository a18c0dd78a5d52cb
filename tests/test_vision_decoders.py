"""Each output family decoded from a real model's output on real COCO images (SOURCES.md's sanity lines)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.vision import decoders, manifest
from edge.vision.detection import Detection, VisionClass
from edge.vision.runtime import load_detector, preprocess
from tests.vision_data import MANIFESTS, MODELS, image, need

COCO_DOG, COCO_TV, COCO_CHAIR, COCO_BICYCLE = 16, 62, 56, 1


def detector(name: str):
    path = MANIFESTS / f"{name}.yaml"
    file = manifest.load(path).file
    return load_detector(path, threads=1, model_file=need(MODELS / file))


def best(candidates, cls):
    found = [c for c in candidates if c[0] == cls]
    assert found, f"class {cls} not found in {candidates}"
    return max(found, key=lambda c: c[1])


def inside(box, expected, tolerance):
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected))


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


@pytest.mark.parametrize("name", ["yolox_nano", "yolov8n_int8", "picodet_s_416_coco", "nanodet_m_416"])
def test_coco_families_find_the_dog_bicycle_and_tv(name):
    model = detector(name)
    dog = model.candidates(image("darknet_dog.jpg"))
    # darknet's dog.jpg: a bicycle across the middle (about x 120-570, y 130-420) and a dog lower left
    _, score, box = best(dog, COCO_BICYCLE)
    assert score > 0.5 and iou(box, (130, 140, 570, 420)) > 0.75, box
    if name != "nanodet_m_416":  # NanoDet-m calls this dog a cat (SOURCES.md)
        _, score, box = best(dog, COCO_DOG)
        assert score > 0.8 and iou(box, (132, 215, 315, 542)) > 0.75, box
    # COCO 139: a tv on the left (about x 5-155, y 165-263) and chairs
    _, score, box = best(model.candidates(image("coco_000000000139.jpg")), COCO_TV)
    assert score > 0.6 and iou(box, (5, 166, 155, 263)) > 0.8, box
    assert best(model.candidates(image("coco_000000000139.jpg")), COCO_CHAIR)[1] > 0.4


def test_detect_maps_classes_and_drops_unmapped():
    found = detector("yolox_nano").detect(image("darknet_dog.jpg"))
    assert [d.cls for d in found] == [VisionClass.BICYCLE]  # the dog and the truck have no class of ours
    assert isinstance(found[0], Detection) and found[0].score > 0.5


@pytest.mark.parametrize("name", ["ultraface_rfb320", "ultraface_rfb320_without_postprocessing"])
def test_ssd_finds_the_faces_with_and_without_post_processing(name):
    model = detector(name)
    faces = model.detect(image("coco_000000008690.jpg"))
    assert len(faces) == 2 and all(f.cls is VisionClass.PERSON and f.score > 0.99 for f in faces)
    boxes = sorted(f.box for f in faces)
    assert inside(boxes[0], (267, 65, 333, 155), 4) and inside(boxes[1], (405, 110, 472, 201), 4), boxes


def test_ssd_priors_reproduce_the_models_own_post_processing():
    with_post, raw = detector("ultraface_rfb320"), detector("ultraface_rfb320_without_postprocessing")
    frame = image("coco_000000001296.jpg")
    decoded, _ = with_post.raw(frame)
    offsets, _ = raw.raw(frame)
    priors = decoders.ssd_priors(raw.manifest.output.priors, raw.manifest.input)
    centre = offsets["boxes"][0, :, :2] * 0.1 * priors[:, 2:] + priors[:, :2]
    size = np.exp(offsets["boxes"][0, :, 2:] * 0.2) * priors[:, 2:]
    corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    assert np.abs(corners - decoded["boxes"][0]).max() < 1e-5


def test_already_decoded_scores_and_boxes(tmp_path):
    """The `decoded` family (MEMD-style scores [N, C] + boxes [N, 4]) on the face model's decoded outputs."""
    text = (MANIFESTS / "ultraface_rfb320.yaml").read_text()
    text = text.replace("family: ssd", "family: decoded\n  box_units: normalised").replace("name: ultraface_rfb320", "name: ultraface_decoded")
    text = text.replace("num_classes: 1 ", "num_classes: 2 ")
    path = tmp_path / "ultraface_decoded.yaml"
    path.write_text(text)
    model = load_detector(path, model_file=need(MODELS / "ultraface_rfb320.onnx"))
    faces = sorted(d.box for d in model.detect(image("coco_000000008690.jpg")))
    assert len(faces) == 2 and inside(faces[0], (267, 65, 333, 155), 4), faces


def test_yolov5_documented_layout():
    """No YOLOv5 export could be had: a synthetic [1, N, 5 + C] tensor in the documented layout."""
    params = manifest.Yolov5(family="yolov5")
    spec = manifest.Input(width=640, height=640, colour="RGB", resize="letterbox")
    rows = np.zeros((1, 4, 5 + 3), np.float32)
    rows[0, 0, :4] = [100, 200, 40, 80]; rows[0, 0, 4] = 0.9; rows[0, 0, 5 + 2] = 0.8  # class 2, score 0.72
    rows[0, 1, :4] = [300, 300, 10, 10]; rows[0, 1, 4] = 0.2; rows[0, 1, 5 + 0] = 0.9  # 0.18: below threshold
    rows[0, 2, :4] = [500, 100, 20, 20]; rows[0, 2, 4] = 0.6; rows[0, 2, 5 + 1] = 0.5  # class 1, 0.30
    boxes, scores, classes = decoders.decoder_for(params)(params, {"output0": rows}, spec, 0.25)
    assert classes.tolist() == [2, 1]
    assert np.allclose(scores, [0.72, 0.30])
    assert np.allclose(boxes[0], [80, 160, 120, 240])


def test_letterbox_maps_boxes_back_to_the_frame():
    spec = manifest.Input(width=416, height=416, colour="BGR", resize="letterbox", align="top_left")
    frame = np.zeros((200, 400, 3), np.uint8)
    tensor, placement = preprocess(frame, spec)
    assert tensor.shape == (1, 3, 416, 416) and tensor[0, 0, 300, 0] == 114  # padding below the image
    assert np.allclose(placement.to_frame(np.array([[0, 0, 416, 208]], np.float32), 400, 200), [[0, 0, 400, 200]])


def test_every_family_of_the_union_has_its_decoder():
    assert set(decoders.DECODERS) == set(manifest.FAMILIES)
    assert {manifest.family_name(f) for f in manifest.FAMILIES} == {"yolox", "yolov8", "yolov5", "gfl", "ssd", "decoded"}


def test_session_uses_the_given_threads_and_lets_the_caller_tune_it():
    seen = []
    path = MANIFESTS / "yolox_nano.yaml"
    load_detector(path, threads=1, model_file=need(MODELS / "yolox_nano.onnx"),
                  session_options=lambda options: seen.append((options.intra_op_num_threads, options.inter_op_num_threads)))
    assert seen == [(1, 1)]


def test_a_frame_prepared_in_another_thread_gives_what_detect_gives():
    """The vision worker prepares frames in the capture thread and runs the model on them later."""
    import threading

    model = detector("yolox_nano")
    frame = image("darknet_dog.jpg")
    prepared = {}
    worker = threading.Thread(target=lambda: prepared.setdefault("p", model.prepare(frame)))
    worker.start()
    worker.join(30)
    assert model.infer(prepared["p"]) == model.detect(frame)
    assert model.candidates(prepared["p"]) == model.candidates(frame)
