"""Real frames for the camera tests: clips made in the test from the images in ../shared/data.

The images have no licence to be copied, so they are never stored in the repository; a test
that needs them skips, saying so, when the shared folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
EBIKE = SHARED / "ebike"
MODELS = SHARED / "models"
EMPTY_CAR = "images/cemreefe_elevator1.jpg"


def need_shared() -> Path:
    if not (EBIKE / "labels.csv").is_file():
        pytest.skip(f"the real e-bike images are not here ({EBIKE} is absent): camera tests need ../shared/data")
    return EBIKE


def labelled(column: str, limit: int | None = None, in_elevator: bool = True) -> list[Path]:
    """Images whose labels.csv `column` is 1, inside an elevator car unless told otherwise."""
    import csv

    with open(need_shared() / "labels.csv", newline="") as labels:
        rows = [r for r in csv.DictReader(labels) if r[column] == "1" and (not in_elevator or r["in_elevator"] == "1")]
    return [EBIKE / r["file"] for r in rows[:limit]]


def read(path: Path, size: tuple[int, int]):
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def write_clip(path: Path, images: list[Path], size: tuple[int, int] = (320, 180), fps: float = 10.0, repeat: int = 1) -> Path:
    """An MJPEG .avi of `images`, each shown `repeat` frames: a camera's view, made here."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    try:
        for image in images:
            frame = read(image, size)
            for _ in range(repeat):
                writer.write(frame)
    finally:
        writer.release()
    return path
