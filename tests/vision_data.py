"""Where the shared models and labelled images are: never in the repository, read in place.

`EDGE_SHARED_DATA` names the folder; by default it is ../shared/data beside the repository.
Tests that need it skip with a message saying what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
MODELS = SHARED / "models"
EBIKE = SHARED / "ebike"
MANIFESTS = REPO / "models"


def need(path: Path) -> Path:
    """`path` if it exists, else skip the test saying which shared file is absent."""
    if not path.exists():
        pytest.skip(f"shared test data absent: {path} (set EDGE_SHARED_DATA to the folder holding models/ and ebike/)")
    return path


def image(name: str):
    import cv2

    frame = cv2.imread(str(need(EBIKE / "images" / name)))
    assert frame is not None, f"cannot decode {name}"
    return frame
