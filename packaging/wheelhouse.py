"""A wheelhouse: every wheel a gateway install needs, so the install itself needs no package index.

    python packaging/wheelhouse.py OUT [--source DIR] [--extra camera] [--rig] [--offline]

builds building-edge (and with --rig building-edge-rig, from rig/) from the source tree into OUT
without build isolation (offline: setuptools and wheel come from the running environment), then
puts every dependency's wheel beside them with `pip wheel` (a dependency published only as a
source archive, such as sdnotify, is built into a wheel once). That step is tried without the
index first (OUT already holds everything: offline); only when something is missing does it ask
the package index, through pip's own cache. --offline refuses to ask.

The versions are those of packaging/constraints.txt (the lock: every dependency pinned, written
from a wheelhouse with --write-lock), so a package built next month bundles what was tested; a
dependency the lock does not name yet is resolved from the index as usual.

Then `pip install --no-index --find-links OUT building-edge` installs offline (tests/test_install.py,
./dev deb). Wheels are for this machine's Python and architecture, which is what a gateway of the
same Debian release runs.
"""

from __future__ import annotations

import argparse
import configparser
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "packaging" / "constraints.txt"
OURS = {"building-edge", "building-edge-rig"}


def version(source: Path) -> str:
    """The one version, written in setup.cfg."""
    parsed = configparser.ConfigParser()
    parsed.read(source / "setup.cfg", encoding="utf-8")
    return parsed["metadata"]["version"]


def pip(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
                          capture_output=True, text=True)


def build(out: Path, source: Path = REPO, extras: tuple[str, ...] = (), rig: bool = False, offline: bool = False) -> list[str]:
    """Fills `out`; returns the requirements it was filled for (what to `pip install` from it)."""
    out.mkdir(parents=True, exist_ok=True)
    projects = [source] + ([source / "rig"] if rig else [])
    built = pip("wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", out, *projects)
    if built.returncode != 0:
        raise SystemExit(f"wheelhouse: building {', '.join(map(str, projects))} failed\n{built.stdout}{built.stderr}")
    sys.stderr.write(built.stderr)  # the build backend's warnings, if any (tests/test_install.py wants none)
    v = version(source)
    wanted = [f"building-edge[{','.join(extras)}]=={v}" if extras else f"building-edge=={v}"]
    if rig:
        wanted.append(f"building-edge-rig=={v}")
    lock = ["--constraint", LOCK] if LOCK.is_file() else []
    download = ["wheel", "-q", "--wheel-dir", out, "--find-links", out, *lock, *wanted]
    fetched = pip(*download[:1], "--no-index", *download[1:])
    if fetched.returncode != 0:
        if offline:
            raise SystemExit(f"wheelhouse: {out} lacks wheels and --offline was given\n{fetched.stderr}")
        fetched = pip(*download)  # the index, through pip's cache
        if fetched.returncode != 0:
            raise SystemExit(f"wheelhouse: pip wheel failed\n{fetched.stdout}{fetched.stderr}")
    return wanted


def write_lock(house: Path, lock: Path = LOCK) -> list[str]:
    """packaging/constraints.txt from the wheels in `house`: one `name==version` per dependency."""
    pins = {}
    for wheel in house.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        name = name.replace("_", "-").lower()
        if name not in OURS:
            pins[name] = version
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    lock.write_text("# The lock: every dependency of building-edge[camera] and building-edge-rig, pinned to the\n"
                    "# versions tested. Written by `python packaging/wheelhouse.py DIR --extra camera --rig --write-lock`.\n"
                    + "\n".join(lines) + "\n")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the wheelhouse folder (created; wheels already there are reused)")
    parser.add_argument("--source", type=Path, default=REPO, help="the source tree (default: this repository)")
    parser.add_argument("--extra", action="append", default=[], help="an extra of building-edge to include (camera)")
    parser.add_argument("--rig", action="store_true", help="also building-edge-rig, the hardware-in-the-loop rig")
    parser.add_argument("--offline", action="store_true", help="never ask the package index")
    parser.add_argument("--write-lock", action="store_true", help=f"then write {LOCK.relative_to(REPO)} from the wheelhouse")
    args = parser.parse_args()
    for requirement in build(args.out, args.source.resolve(), tuple(args.extra), args.rig, args.offline):
        print(requirement)
    if args.write_lock:
        write_lock(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
