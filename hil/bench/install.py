"""Benchmark: the size of a gateway's install, base against with the camera extra.

Prints one JSON object. Each figure is a fresh `python3 -m venv` (with pip, as a technician makes
it) filled offline from a wheelhouse (packaging/wheelhouse.py, built from this repository):
`building-edge` alone is what a building without a camera carries (goal: at most 100 MB), and
`building-edge[camera]` (OpenCV, onnxruntime, numpy) is measured in the same run as the
baseline; the empty venv is the floor both stand on. Needs the source tree (run it from the
repository); the wheelhouse is kept in var/wheelhouse, so a second run is offline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = REPO / "var" / "wheelhouse"
GOAL_BASE_MB = 100.0
MB = 1_000_000


def tree_bytes(path: Path) -> int:
    """Bytes of every file and link under `path` (apparent sizes, as `du --apparent-size` counts)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def venv_with(root: Path, wheelhouse: Path, *requirements: str) -> int:
    """A fresh venv at `root` with `requirements` installed offline; returns its size in bytes."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    if requirements:
        subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-index", "--find-links", str(wheelhouse), *requirements], check=True)
    return tree_bytes(root)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.install", description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path, default=WHEELHOUSE, help=f"default: {WHEELHOUSE}")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "packaging"))
    import wheelhouse  # packaging/wheelhouse.py: a script of the repository, not of the installed rig

    version = wheelhouse.version(REPO)
    with tempfile.TemporaryDirectory(prefix="edge-bench-install-") as tmp:
        wheelhouse.build(args.wheelhouse, REPO, extras=("camera",))
        empty = venv_with(Path(tmp) / "empty", args.wheelhouse)
        base = venv_with(Path(tmp) / "base", args.wheelhouse, f"building-edge=={version}")
        camera = venv_with(Path(tmp) / "camera", args.wheelhouse, f"building-edge[camera]=={version}")
    print(json.dumps({
        "base_venv_mb": round(base / MB, 1),
        "camera_venv_mb": round(camera / MB, 1),
        "empty_venv_mb": round(empty / MB, 1),
        "camera_extra_mb": round((camera - base) / MB, 1),
        "base_goal_mb": GOAL_BASE_MB,
        "base_within_goal": base <= GOAL_BASE_MB * MB,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
