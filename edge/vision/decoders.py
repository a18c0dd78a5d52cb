"""One numpy decoder per output family: raw model outputs -> candidate boxes in input pixels.

A decoder returns every candidate above the score threshold as (boxes [N, 4] x1y1x2y2 in the
model's input pixels, scores [N], model class indices [N]); NMS, the class map and the mapping
back onto the frame are shared (`runtime.py`). A new family is one parameter class in the
`manifest.Family` union and one function registered here under that class; nothing else changes.
The registry is keyed by the union's classes, not by their names typed again, and a family of the
union without a decoder (or a decoder of a class outside it) fails this module's import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from edge.vision import manifest as m

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]
Decoder = Callable[[Any, Mapping[str, np.ndarray], m.Input, float], Candidates]

DECODERS: dict[type, Decoder] = {}  # by the family's parameter class (manifest.FAMILIES)


def decoder(family: type) -> Callable[[Decoder], Decoder]:
    if family not in m.FAMILIES:
        raise TypeError(f"{family.__name__} is not an output family of manifest.Family")

    def register(function: Decoder) -> Decoder:
        DECODERS[family] = function
        return function

    return register


def decoder_for(params: Any) -> Decoder:
    """The decoder of a manifest's `output` (one of the union's parameter classes)."""
    return DECODERS[type(params)]


def output_names(params: Any) -> list[str]:
    """The output tensors a family's parameters name (the single-output families name none)."""
    if isinstance(params, m.Gfl):
        return [name for level in params.levels for name in (level.scores, level.boxes)]
    if isinstance(params, (m.Ssd, m.Decoded)):
        return [params.scores, params.boxes]
    return []


def _empty() -> Candidates:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)


def _best(class_scores: np.ndarray, boxes: np.ndarray, threshold: float) -> Candidates:
    """Keep each row's best class when it passes the threshold."""
    if class_scores.size == 0:
        return _empty()
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(classes)), classes]
    keep = scores >= threshold
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), classes[keep].astype(np.int64)


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def _single(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    (first,) = list(outputs.values())[:1]
    return first


@functools.lru_cache(maxsize=8)
def _yolox_grid(strides: tuple[int, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's grid cell and stride; the same for every frame, so made once."""
    grids, steps = [], []
    for stride in strides:
        h, w = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        steps.append(np.full((h * w, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)


@decoder(m.Yolox)
def decode_yolox(params: m.Yolox, outputs: Mapping[str, np.ndarray], spec: m.Input, threshold: float) -> Candidates:
    """Rows are (dx, dy, log w, log h) on each stride's grid, objectness, class scores (sigmoid applied)."""
    raw = _single(outputs).reshape(-1, _single(outputs).shape[-1])
    grid, stride = _yolox_grid(params.strides, spec.width, spec.height)
    if len(grid) != len(raw):
        raise ValueError(f"YOLOX output has {len(raw)} rows, strides {params.strides} at {spec.width}x{spec.height} give {len(grid)}")
    keep = raw[:, 4] >= threshold  # a class score is at most 1, so objectness bounds the score
    raw, grid, stride = raw[keep], grid[keep], stride[keep]
    centre = (raw[:, :2] + grid) * stride
    size = np.exp(np.clip(raw[:, 2:4], -10, 10)) * stride
    boxes = _cxcywh_to_xyxy(np.concatenate([centre, size], axis=1))
    return _best(raw[:, 5:] * raw[:, 4:5], boxes, threshold)


def _passing(class_scores: np.ndarray, threshold: float) -> np.ndarray:
    """Rows whose best class passes: the few candidates box math is spent on."""
    return class_scores.max(axis=1) >= threshold if class_scores.size else np.zeros(len(class_scores), bool)


@decoder(m.Yolov8)
def decode_yolov8(params: m.Yolov8, outputs: Mapping[str, np.ndarray], spec: m.Input, threshold: float) -> Candidates:
    """[1, 4 + C (+ M), N]: centre boxes in input pixels, then class scores (then mask coefficients); no objectness."""
    raw = _single(outputs)[0].T
    if params.mask_coefficients:
        raw = raw[:, :raw.shape[1] - params.mask_coefficients]
    raw = raw[_passing(raw[:, 4:], threshold)]
    return _best(raw[:, 4:], _cxcywh_to_xyxy(raw[:, :4]), threshold)


@decoder(m.Yolov5)
def decode_yolov5(params: m.Yolov5, outputs: Mapping[str, np.ndarray], spec: m.Input, threshold: float) -> Candidates:
    """[1, N, 5 + C]: centre boxes in input pixels, objectness, class scores; score = obj * cls."""
    raw = _single(outputs)[0]
    raw = raw[raw[:, 4] >= threshold]  # objectness bounds the score
    return _best(raw[:, 5:] * raw[:, 4:5], _cxcywh_to_xyxy(raw[:, :4]), threshold)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@decoder(m.Gfl)
def decode_gfl(params: m.Gfl, outputs: Mapping[str, np.ndarray], spec: m.Input, threshold: float) -> Candidates:
    """Generalised focal loss heads: each side's distance is the expectation of a softmax over reg_max + 1 bins."""
    all_boxes, all_scores = [], []
    bins = np.arange(params.reg_max + 1, dtype=np.float32)
    for level in params.levels:
        scores = outputs[level.scores].reshape(-1, outputs[level.scores].shape[-1])
        dist = outputs[level.boxes].reshape(-1, 4, params.reg_max + 1)
        h, w = -(-spec.height // level.stride), -(-spec.width // level.stride)
        if len(scores) != h * w:
            raise ValueError(f"GFL level stride {level.stride} has {len(scores)} anchors, expected {h * w}")
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        if params.centre == "legacy":
            cx, cy = xs.reshape(-1) * level.stride + 0.5 * (level.stride - 1), ys.reshape(-1) * level.stride + 0.5 * (level.stride - 1)
        else:
            cx, cy = (xs.reshape(-1) + 0.5) * level.stride, (ys.reshape(-1) + 0.5) * level.stride
        keep = scores.max(axis=1) >= threshold
        sides = (_softmax(dist[keep]) @ bins) * level.stride  # l, t, r, b
        centre = np.stack([cx[keep], cy[keep]], axis=1)
        all_boxes.append(np.concatenate([centre - sides[:, :2], centre + sides[:, 2:]], axis=1))
        all_scores.append(scores[keep])
    return _best(np.concatenate(all_scores), np.concatenate(all_boxes), threshold)


@functools.lru_cache(maxsize=8)
def ssd_priors(priors: m.SsdPriors, spec: m.Input) -> np.ndarray:
    """Prior boxes (cx, cy, w, h), normalised, in level -> row -> column -> size order; the same
    for every frame, so made once (read-only)."""
    rows = []
    for (fw, fh), sizes in zip(priors.feature_maps, priors.min_boxes):
        for j in range(fh):
            for i in range(fw):
                for size in sizes:
                    rows.append(((i + 0.5) / fw, (j + 0.5) / fh, size / spec.width, size / spec.height))
    made = np.clip(np.array(rows, np.float32), 0.0, 1.0)
    made.flags.writeable = False
    return made


@decoder(m.Ssd)
def decode_ssd(params: m.Ssd, outputs: Mapping[str, np.ndarray], spec: m.Input, threshold: float) -> Candidates:
    """Scores have the background first (index 0); boxes are corners, or offsets against priors."""
    scores = outputs[params.scores].reshape(-1, outputs[params.scores].shape[-1])
    boxes = outputs[params.boxes].reshape(-1, 4).astype(np.float32)
    if params.priors is not None:
        priors = ssd_priors(params.priors, spec)
        if len(priors) != len(boxes):
            raise ValueError(f"SSD output has {len(boxes)} boxes, the manifest's priors give {len(priors)}")
    keep = _passing(scores[:, 1:], threshold)  # the background (index 0) never wins
    scores, boxes = scores[keep], boxes[keep]
    if params.priors is not None:
        priors = priors[keep]
        centre = boxes[:, :2] * params.centre_variance * priors[:, 2:] + priors[:, :2]
        size = np.exp(boxes[:, 2:] * params.size_variance) * priors[:, 2:]
        boxes = _cxcywh_to_xyxy(np.concatenate([centre, size], axis=1))
    boxes = boxes * np.array([spec.width, spec.height, spec.width, spec.height], np.float32)
    foreground = scores.copy()
    foreground[:, 0] = 0.0
    return _best(foreground, boxes, threshold)


@decoder(m.Decoded)
def decode_decoded(params: m.Decoded, outputs: Mapping[str, np.ndarray], spec: m.Input, threshold: float) -> Candidates:
    """scores [N, C] and boxes [N, 4] already decoded by the graph (MEMD-style)."""
    scores = outputs[params.scores].reshape(-1, outputs[params.scores].shape[-1])
    boxes = outputs[params.boxes].reshape(-1, 4).astype(np.float32)
    keep = _passing(scores, threshold)
    scores, boxes = scores[keep], boxes[keep]
    if params.box_format == "cxcywh":
        boxes = _cxcywh_to_xyxy(boxes)
    if params.box_units == "normalised":
        boxes = boxes * np.array([spec.width, spec.height, spec.width, spec.height], np.float32)
    return _best(scores, boxes, threshold)


_UNDECODED = [m.family_name(family) for family in m.FAMILIES if family not in DECODERS]
if _UNDECODED:
    raise TypeError(f"output families without a decoder: {', '.join(_UNDECODED)}")
