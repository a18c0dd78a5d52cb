"""`./dev deb`: building-edge_VERSION_ARCH.deb from this repository, offline once the wheelhouse is filled.

    python packaging/deb.py [--out DIR] [--wheelhouse DIR] [--camera] [--offline]

Why a venv under /opt/edge built from a wheelhouse (and not dh-virtualenv or Debian's own python3-*
packages): the gateway pins libraries Debian 12 does not carry at those versions (pydantic 2,
pymodbus 3, paho-mqtt 2, libosdp), so they are bundled; a plain `python3 -m venv` with
`pip install --no-index` from the wheelhouse (packaging/wheelhouse.py) is the same install the tests
check, needs nothing beyond dpkg-deb and Debian's python3 on the build machine, and every file of
the venv is in the package's file list (dpkg -S, clean removal). dh-virtualenv would add a build
dependency and a debian/ source tree for the same result. The venv is made with Debian's
/usr/bin/python3, so the package depends on that Python's minor version.

The venv is built in a staging folder and its few absolute paths (scripts' #! lines, pyvenv.cfg)
are rewritten to /opt/edge, as dh-virtualenv does. No byte-code is shipped: postinst compiles it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBIAN = REPO / "packaging" / "debian"
TARGET = Path("/opt/edge")
SYSTEM_PYTHON = Path("/usr/bin/python3")
MAINTAINER = "building-edge maintainers <maintainers@building-edge.invalid>"
DESCRIPTION = """Building-safety edge gateway
 One daemon per building, under systemd: it reads card readers, the floor
 boxes' current monitors, hydrant pressure and roof-tank sensors over RS-485
 and Modbus, decides door access and safety actions locally, keeps every
 event in a local journal and hands it to the cloud over MQTT when connected.
 .
 The gateway and its Python libraries are bundled in a virtual environment
 under /opt/edge; nothing is fetched from a package index on the gateway."""

CAMERA_NOTE = """
 .
 This build bundles the elevator camera's libraries (OpenCV, onnxruntime,
 numpy): the e-bike guard runs."""

sys.path.insert(0, str(REPO / "packaging"))
import wheelhouse  # noqa: E402  (packaging/wheelhouse.py)


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"deb: {' '.join(map(str, args))} failed\n{result.stdout}{result.stderr}")
    return result


def source_date() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time: the same tree gives the same timestamps."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    commit = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    return int(commit.stdout.strip()) if commit.returncode == 0 and commit.stdout.strip() else int(time.time())


def python_minor(python: Path) -> str:
    return run(python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')").stdout.strip()


def build_venv(root: Path, house: Path, requirement: str) -> None:
    """The venv at root/opt/edge, filled offline, with its paths rewritten to /opt/edge."""
    venv = root / TARGET.relative_to("/")
    run(SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv)
    # pip runs from this environment against the new interpreter (pip --python): no pip in the package.
    run(sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", venv / "bin" / "python", "install",
        "-q", "--no-index", "--find-links", house, "--no-compile", "--no-warn-script-location", requirement)
    staged = str(venv)
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        if script.name.startswith("activate") or script.name.startswith("Activate"):
            script.unlink()  # a service's venv is never activated; its scripts name it by path
            continue
        text = script.read_bytes()
        if text.startswith(b"#!") and staged.encode() in text.split(b"\n", 1)[0]:
            script.write_bytes(text.replace(staged.encode(), str(TARGET).encode(), 1))
    cfg = venv / "pyvenv.cfg"
    cfg.write_text("".join(line for line in cfg.read_text().splitlines(keepends=True) if not line.startswith("command")))
    for cache in list(venv.rglob("__pycache__")):
        shutil.rmtree(cache)
    # Debug symbols out of the wheels' extension modules, as dh_strip does for a Debian package.
    for shared in venv.rglob("*.so*"):
        if shared.is_file() and not shared.is_symlink() and shared.read_bytes()[:4] == b"\x7fELF":
            run("strip", "--strip-unneeded", "--remove-section=.comment", "--remove-section=.note", shared)
    # Libraries are loaded, never run: 0644 under lib/ (some wheels ship 0755 modules and .so files), as dh_fixperms does.
    for path in (venv / "lib").rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o644)


def manual_page(venv: Path, version: str, epoch: int) -> str:
    """edge(1) from the CLI's own help (the venv's interpreter runs it from the staging folder)."""
    usage = run(venv / "bin" / "python", "-m", "edge.cli", "--help").stdout
    escaped = usage.replace("\\", "\\e").replace("\n.", "\n\\&.").replace("\n'", "\n\\&'")
    day = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    return (f'.TH EDGE 1 "{day}" "building-edge {version}" "User Commands"\n'
            ".SH NAME\nedge \\- building-safety edge gateway: run it, check its config, operate it on site\n"
            ".SH SYNOPSIS\n.B edge\n.I COMMAND\n[\\fIOPTIONS\\fR]\n"
            ".SH DESCRIPTION\n.nf\n" + escaped + ".fi\n"
            ".PP\n\\fBedge\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR describes each command.\n"
            ".SH FILES\n/etc/edge/building.yaml, /etc/edge/secrets/building.key, /var/lib/edge (the journal)\n"
            ".SH SEE ALSO\n/usr/share/doc/building-edge/README.md, /usr/share/doc/building-edge/README.Debian\n")


def staged_paths_left(root: Path) -> list[str]:
    """Text files that still name the staging folder (none may)."""
    found = subprocess.run(["grep", "-rlI", "--", str(root), str(root)], capture_output=True, text=True)
    return found.stdout.split()


def install(source: Path, destination: Path, mode: int = 0o644) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    destination.chmod(mode)


def gzip_doc(text: str, destination: Path, mtime: int) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=mtime) as packed:
        packed.write(text.encode())


def build(out: Path, house: Path, camera: bool = False, offline: bool = False) -> Path:
    version = wheelhouse.version(REPO)
    arch = run("dpkg", "--print-architecture").stdout.strip()
    minor = python_minor(SYSTEM_PYTHON)
    epoch = source_date()
    extras = ("camera",) if camera else ()
    requirement = wheelhouse.build(house, REPO, extras=extras, offline=offline)[0]

    out.mkdir(parents=True, exist_ok=True)
    root = out / f"building-edge_{version}_{arch}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    build_venv(root, house, requirement)
    left = staged_paths_left(root)
    if left:
        raise SystemExit(f"deb: files still name the staging folder {root}: {left[:10]}")

    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "edge").symlink_to(TARGET / "bin" / "edge")
    install(REPO / "systemd" / "edge.service", root / "lib" / "systemd" / "system" / "edge.service")
    install(REPO / "config" / "example.yaml", root / "etc" / "edge" / "example.yaml")
    doc = root / "usr" / "share" / "doc" / "building-edge"
    install(DEBIAN / "copyright", doc / "copyright")
    install(DEBIAN / "README.Debian", doc / "README.Debian")
    install(REPO / "README.md", doc / "README.md")
    for page in sorted((REPO / "docs").glob("*.md")):  # the README's links resolve beside it on the gateway
        install(page, doc / "docs" / page.name)
    install(REPO / "systemd" / "99-edge-serial.rules", doc / "examples" / "99-edge-serial.rules")
    install(REPO / "config" / "schema.json", doc / "examples" / "schema.json")
    overrides = root / "usr" / "share" / "lintian" / "overrides" / "building-edge"
    install(DEBIAN / "lintian-overrides", overrides)
    if camera:
        with open(overrides, "a") as more:
            more.write((DEBIAN / "lintian-overrides.camera").read_text())
    gzip_doc(manual_page(root / TARGET.relative_to("/"), version, epoch), root / "usr" / "share" / "man" / "man1" / "edge.1.gz", epoch)
    gzip_doc(f"building-edge ({version}) unstable; urgency=medium\n\n  * Release {version}.\n\n"
             f" -- {MAINTAINER}  {formatdate(epoch)}\n", doc / "changelog.gz", epoch)

    control = root / "DEBIAN"
    control.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        install(DEBIAN / script, control / script, 0o755)
    (control / "conffiles").write_text("/etc/edge/example.yaml\n")
    size_kib = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir() and control not in p.parents) // 1024
    next_minor = f"{minor.split('.')[0]}.{int(minor.split('.')[1]) + 1}"
    (control / "control").write_text(
        f"Package: building-edge\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n"
        f"Installed-Size: {size_kib}\n"
        f"Depends: python3 (>= {minor}), python3 (<< {next_minor}), libc6 (>= 2.34), adduser, init-system-helpers (>= 1.54~)\n"
        f"Section: net\nPriority: optional\nHomepage: https://github.com/building-edge/building-edge\n"
        f"Description: {DESCRIPTION}{CAMERA_NOTE if camera else ''}\n")
    sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and control not in p.parents):
        sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(root)}\n")
    (control / "md5sums").write_text("".join(sums))
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, (epoch, epoch))
            if path.is_dir():
                path.chmod(0o755)
    deb = out / f"building-edge_{version}_{arch}.deb"
    run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb, env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)})
    shutil.rmtree(root)
    return deb


def main() -> int:
    parser = argparse.ArgumentParser(prog="./dev deb", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the .deb goes (default: dist/)")
    parser.add_argument("--wheelhouse", type=Path, default=REPO / "var" / "wheelhouse", help="default: var/wheelhouse")
    parser.add_argument("--camera", action="store_true", help="bundle the camera extra (OpenCV, onnxruntime, numpy)")
    parser.add_argument("--offline", action="store_true", help="never ask the package index (the wheelhouse must be full)")
    args = parser.parse_args()
    deb = build(args.out.resolve(), args.wheelhouse.resolve(), args.camera, args.offline)
    print(f"{deb} ({deb.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
