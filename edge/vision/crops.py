"""A crop-level head: is this candidate box an e-bike? Judged on the frozen detector's own features
of the box, never on the whole image.

A head that pools the whole frame learns "overhead elevator camera", not "e-bike": on a car's later
frames it held every child's bicycle and pram. This head scores each candidate box the base
detector proposes (a COCO bicycle or motorcycle at a low score: what an e-bike looks like to it)
from three things about that box alone:

- the class-branch feature maps RoI-pooled at the box (mean and max of each channel over the
  cells the box covers, on each of the three strides);
- the box's geometry in the frame (centre, size, aspect, where it stands);
- the detector's objectness and its 80 class scores for the box.

The head is an L2-regularised logistic regression in numpy (weights, the feature scaling and the
threshold in one .npz), so the gateway runs it with what the camera extra already installs. YOLOX
exports only: the features are named tensors of its graph, exposed as outputs of the model file
that `edge vision train` writes (edge/vision/train.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CANDIDATE_CLASSES = (1, 3)  # COCO bicycle, motorcycle: the base model's words for an e-bike
CANDIDATE_FLOOR = 0.05  # a candidate's best bicycle/motorcycle score (objectness times class)
CANDIDATE_NMS_IOU = 0.5
MAX_CANDIDATES = 8  # per frame, best first
GEOMETRY = 8


@dataclass(frozen=True, slots=True)
class Candidate:
    """One box the base detector proposes: in input pixels, its row's objectness and class scores."""

    box: tuple[float, float, float, float]
    score: float
    scores: np.ndarray  # objectness then the model's class scores (objectness times class)


def yolox_candidates(raw: np.ndarray, strides: tuple[int, ...], width: int, height: int) -> list[Candidate]:
    """The rows of a YOLOX output [1, N, 5 + C] that may be an e-bike, class-agnostic NMS, best first."""
    from edge.vision.decoders import _yolox_grid
    from edge.vision.runtime import nms

    rows = raw.reshape(-1, raw.shape[-1])
    grid, stride = _yolox_grid(tuple(strides), width, height)
    classes = rows[:, 5:] * rows[:, 4:5]
    best = classes[:, list(CANDIDATE_CLASSES)].max(axis=1)
    keep = np.flatnonzero(best >= CANDIDATE_FLOOR)
    if len(keep) == 0:
        return []
    centre = (rows[keep, :2] + grid[keep]) * stride[keep]
    size = np.exp(np.clip(rows[keep, 2:4], -10, 10)) * stride[keep]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    kept = nms(boxes, best[keep].astype(np.float32), np.zeros(len(keep), np.int64), CANDIDATE_NMS_IOU)
    kept = kept[np.argsort(-best[keep][kept])][:MAX_CANDIDATES]
    return [Candidate(tuple(float(v) for v in boxes[i]), float(best[keep[i]]),
                      np.concatenate([rows[keep[i], 4:5], classes[keep[i]]]).astype(np.float32)) for i in kept]


def box_features(candidate: Candidate, maps: list[np.ndarray], strides: tuple[int, ...], width: int, height: int) -> np.ndarray:
    """The candidate's features: RoI mean and max per channel on each level, its geometry, its scores."""
    x1, y1, x2, y2 = candidate.box
    pooled = []
    for fmap, stride in zip(maps, strides):
        f = fmap[0]
        h, w = f.shape[1:]
        c1, r1 = min(w - 1, max(0, int(math.floor(x1 / stride)))), min(h - 1, max(0, int(math.floor(y1 / stride))))
        c2, r2 = max(c1 + 1, min(w, int(math.ceil(x2 / stride)))), max(r1 + 1, min(h, int(math.ceil(y2 / stride))))
        region = f[:, r1:r2, c1:c2].reshape(f.shape[0], -1)
        pooled += [region.mean(axis=1), region.max(axis=1)]
    bw, bh = max(1.0, x2 - x1) / width, max(1.0, y2 - y1) / height
    geometry = np.array([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, bw, bh, math.log(bw / bh), bw * bh, y2 / height,
                         min(1.0, x2 / width) - max(0.0, x1 / width)], np.float32)
    return np.concatenate([*pooled, geometry, candidate.scores]).astype(np.float32)


@dataclass
class Head:
    """Standardisation, weights and the hold threshold of a logistic regression over box features."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float = 0.5

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def save(self, path: Path, **meta: str) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, mean=self.mean, scale=self.scale, weights=self.weights, bias=np.float64(self.bias),
                     threshold=np.float64(self.threshold), **{k: np.array(v) for k, v in meta.items()})

    @classmethod
    def load(cls, path: Path) -> "Head":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["scale"], data["weights"], float(data["bias"]), float(data["threshold"]))


def fit(x: np.ndarray, y: np.ndarray, c: float = 0.1, iterations: int = 50) -> Head:
    """L2 logistic regression (sklearn's C: loss = sum of class-balanced log losses + |w|^2 / 2C) by Newton steps."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    positives = max(1, int(y.sum()))
    sample = np.where(y == 1, n / (2 * positives), n / (2 * max(1, n - positives)))  # balanced classes
    design = np.concatenate([z, np.ones((n, 1))], axis=1)
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, 1.0 / c)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -30, 30)))
        gradient = design.T @ (sample * (p - y)) + penalty * w
        hessian = (design * (sample * p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return Head(mean.astype(np.float32), scale.astype(np.float32), w[:-1].astype(np.float32), float(w[-1]))
