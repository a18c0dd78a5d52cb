"""Frames kept as JPEG files in the state dir: each file and each folder has a size cap.

Snapshots of holds and frames collected for labelling live on the gateway's SD card beside
the journal, so neither one large frame nor months of them may fill it: a frame is shrunk
until its JPEG fits `max_bytes`, and a folder deletes its oldest files beyond `cap_bytes`.
Called from the vision worker threads only (encoding and writing block).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

MAX_JPEG_BYTES = 300 * 1024


def encode_capped(image: np.ndarray, max_bytes: int = MAX_JPEG_BYTES) -> bytes:
    """JPEG of `image`, at lower quality and then smaller until it fits `max_bytes`."""
    quality = 85
    while True:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        if len(data) <= max_bytes or min(image.shape[:2]) <= 16:
            return data.tobytes()
        if quality > 60:
            quality -= 15
        else:
            image = cv2.resize(image, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)


class FrameFolder:
    """A folder of JPEGs that never grows past `cap_bytes` (the oldest go first)."""

    def __init__(self, directory: Path, cap_bytes: int, max_file_bytes: int = MAX_JPEG_BYTES) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.max_file_bytes = min(max_file_bytes, cap_bytes)
        self._lock = threading.Lock()
        self._sizes: dict[Path, int] | None = None  # file -> bytes, in name (= time) order

    def save(self, image: np.ndarray, stem: str) -> Path:
        data = encode_capped(image, self.max_file_bytes)
        with self._lock:
            sizes = self._scan()
            path = self.directory / f"{stem}.jpg"
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            os.replace(partial, path)  # a reader (export) never sees half a file
            sizes[path] = len(data)
            total = sum(sizes.values())
            for oldest in sorted(sizes):
                if total <= self.cap_bytes or oldest == path:
                    break
                oldest.unlink(missing_ok=True)
                total -= sizes.pop(oldest)
        return path

    def _scan(self) -> dict[Path, int]:
        if self._sizes is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sizes = {p: p.stat().st_size for p in sorted(self.directory.glob("*.jpg"))}
        return self._sizes
