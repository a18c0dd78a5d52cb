"""The motion gate: inference runs only while something moves on the car's floor.

An empty elevator stands still most of the day; running the detector on every frame of it
would spend the CPU the doors need. The gate shrinks each frame to a few thousand grey
pixels, compares it with a slowly learned background and says whether enough of the
configured region (the floor inside the door, a polygon in 0..1 frame coordinates) changed.
It costs well under a millisecond a frame; a lighting change merely costs one inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Point = tuple[float, float]


class MotionGate:
    def __init__(
        self,
        region: Sequence[Point],
        width: int = 64,
        pixel_threshold: int = 20,
        min_fraction: float = 0.02,
        learn_rate: float = 0.05,
    ) -> None:
        """`pixel_threshold` in grey levels (0..255) above sensor noise; `min_fraction` of the
        region's pixels that must change; `learn_rate` how fast a parked change becomes background."""
        if len(region) < 3:
            raise ValueError("the region needs at least 3 corners")
        self.region = [(float(x), float(y)) for x, y in region]
        self.width = width
        self.pixel_threshold = pixel_threshold
        self.min_fraction = min_fraction
        self.learn_rate = learn_rate
        self._background: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self.last_fraction = 0.0

    def moved(self, frame_bgr: np.ndarray) -> bool:
        """True when the region changed since the background; the first frame counts as motion
        (nothing is known of the car yet)."""
        return self.compare(self.shrink(frame_bgr))

    def compare(self, grey: np.ndarray) -> bool:
        """`moved` for a frame already shrunk by `shrink` (which may run in another thread)."""
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            self._mask = _polygon_mask(self.region, grey.shape)
            self.last_fraction = 1.0
            return True
        assert self._mask is not None
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        changed = np.count_nonzero((diff > self.pixel_threshold) & self._mask)
        self.last_fraction = changed / max(1, int(np.count_nonzero(self._mask)))
        cv2.accumulateWeighted(grey, self._background, self.learn_rate)
        return self.last_fraction >= self.min_fraction

    def shrink(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The small grey image the gate compares; touches no state, so any thread may call it."""
        h, w = frame_bgr.shape[:2]
        height = max(1, round(self.width * h / w))
        step = max(1, w // (self.width * 4))  # a 1080p frame: every 7th pixel, then averaged (6 ms -> <1 ms)
        small = cv2.resize(frame_bgr[::step, ::step], (self.width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (3, 3), 0)


def _polygon_mask(region: Sequence[Point], shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    corners = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in region], dtype=np.int32)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, [corners], 1)
    return mask.astype(bool)
