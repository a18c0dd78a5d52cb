"""The Debian package (`./dev deb`, packaging/deb.py): what it holds, lintian, and its life on a
throwaway Debian root (install, upgrade, remove, purge) with `edge` run there as the edge user.

The package is built from the wheelhouse in var/wheelhouse (tests/test_install.py and `./dev deb`
fill it; it is filled here if empty). The throwaway root is made by debootstrap (this machine's
Debian release, minbase with python3 and adduser: about 45 s) once and kept as
var/debian-root/RELEASE.tar, so later runs only unpack it; it lives in the test's temporary folder and the machine itself is left as it was (no mounts,
nothing installed outside that folder). The root test needs root (chroot) and is skipped without.
"""

from __future__ import annotations

import configparser
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO

VERSION = configparser.ConfigParser()
VERSION.read(REPO / "setup.cfg")
VERSION = VERSION["metadata"]["version"]
PYTHON = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                        capture_output=True, text=True).stdout.strip()  # Debian's, which the package's venv runs
RELEASE = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line).get("VERSION_CODENAME", "bookworm").strip('"')
ROOT_CACHE = REPO / "var" / "debian-root" / f"{RELEASE}.tar"  # the root is this machine's release: its python3 is the package's
MIRROR = os.environ.get("EDGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()


def run(*args: str | Path, timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    built = run(sys.executable, REPO / "packaging" / "deb.py", "--out", out, "--wheelhouse", REPO / "var" / "wheelhouse")
    package = out / f"building-edge_{VERSION}_{ARCH}.deb"
    assert package.is_file(), built.stdout
    return package


def contents(deb: Path) -> dict[str, str]:
    """Path -> the `dpkg-deb -c` line (mode, owner, size, target)."""
    listed = run("dpkg-deb", "-c", deb).stdout.splitlines()
    return {line.split()[5].removeprefix("."): line for line in listed}


def test_the_package_holds_the_unit_the_command_the_config_the_docs_and_the_venv(deb):
    files = contents(deb)
    for path in ("/lib/systemd/system/edge.service", "/etc/edge/example.yaml", "/usr/share/doc/building-edge/copyright",
                 "/usr/share/doc/building-edge/README.md", "/usr/share/doc/building-edge/README.Debian",
                 "/usr/share/doc/building-edge/docs/architecture.md", "/usr/share/doc/building-edge/docs/profiles.md",
                 "/usr/share/doc/building-edge/changelog.gz", "/usr/share/doc/building-edge/examples/99-edge-serial.rules",
                 "/usr/share/man/man1/edge.1.gz", "/opt/edge/bin/edge", "/opt/edge/pyvenv.cfg",
                 f"/opt/edge/lib/python{PYTHON}/site-packages/edge/status/page/index.html",
                 f"/opt/edge/lib/python{PYTHON}/site-packages/edge/shipped/systemd/edge.service"):
        assert path in files, path
    assert "-> /opt/edge/bin/edge" in files["/usr/bin/edge"]
    assert "-> /usr/bin/python3" in files["/opt/edge/bin/python3"]  # Debian's Python runs the venv
    assert all(" root/root " in line for line in files.values())
    assert not [p for p in files if "__pycache__" in p or p.endswith(".pyc")]  # postinst compiles
    assert not [p for p in files if "/site-packages/edge/hil/" in p or "/cv2/" in p or "/onnxruntime/" in p]
    assert not [p for p in files if p.startswith("/etc/edge/") and p not in ("/etc/edge/", "/etc/edge/example.yaml")]

    info = run("dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends").stdout
    assert f"Version: {VERSION}" in info and f"Architecture: {ARCH}" in info
    major, minor = PYTHON.split(".")
    assert f"python3 (>= {PYTHON}), python3 (<< {major}.{int(minor) + 1})" in info and "adduser" in info
    control = run("dpkg-deb", "-I", deb, "conffiles").stdout.split()
    assert control == ["/etc/edge/example.yaml"]  # building.yaml is the operator's: postinst writes it once


def test_the_venv_names_no_build_folder_and_its_unit_is_the_repositorys(deb, tmp_path):
    run("dpkg-deb", "-x", deb, tmp_path / "x")
    unit = tmp_path / "x" / "lib" / "systemd" / "system" / "edge.service"
    assert "ExecStart=/opt/edge/bin/edge run --config /etc/edge/building.yaml" in unit.read_text()
    script = (tmp_path / "x" / "opt" / "edge" / "bin" / "edge").read_text()
    assert script.startswith("#!/opt/edge/bin/python\n")
    stray = subprocess.run(["grep", "-rlI", "--", str(deb.parent), str(tmp_path / "x" / "opt")], capture_output=True, text=True)
    assert stray.stdout == ""  # the staging folder is named nowhere
    with gzip.open(tmp_path / "x" / "usr" / "share" / "man" / "man1" / "edge.1.gz", "rt") as page:
        assert "check-config" in page.read()


def test_the_maintainer_scripts_are_valid_shell(deb, tmp_path):
    run("dpkg-deb", "-e", deb, tmp_path / "control")
    for script in ("postinst", "prerm", "postrm"):
        path = tmp_path / "control" / script
        assert os.access(path, os.X_OK), script
        run("sh", "-n", path)


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian is not installed (./dev test installs it)")
def test_lintian_finds_nothing_beyond_the_justified_overrides(deb):
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "--pedantic", str(deb)], capture_output=True, text=True, timeout=600)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line[:2] in ("E:", "W:", "P:")]
    assert result.returncode == 0 and findings == [], "\n".join(findings) or result.stderr
    overrides = (REPO / "packaging" / "debian" / "lintian-overrides").read_text().splitlines()
    rules = [n for n, line in enumerate(overrides) if line.startswith("building-edge:")]
    for n in rules:  # every override says why, in the comment just above it (or above its group)
        above = n - 1
        while above >= 0 and overrides[above].startswith("building-edge:"):
            above -= 1
        assert above >= 0 and overrides[above].startswith("#"), overrides[n]


# ---- install, upgrade, remove, purge on a throwaway Debian root ----

def debian_root(into: Path) -> Path:
    """A Debian 12 minbase root with python3 and adduser, unpacked from the cache (made once)."""
    if not ROOT_CACHE.is_file():
        fresh = into.parent / "debootstrap"
        run("debootstrap", "--variant=minbase", "--include=python3,adduser", RELEASE, fresh, MIRROR, timeout=1800)
        ROOT_CACHE.parent.mkdir(parents=True, exist_ok=True)
        run("tar", "-C", fresh, "-cf", f"{ROOT_CACHE}.part", ".")
        os.replace(f"{ROOT_CACHE}.part", ROOT_CACHE)
        shutil.rmtree(fresh)
    into.mkdir()
    run("tar", "-C", into, "-xf", ROOT_CACHE)
    return into


def in_root(root: Path, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
    return run("chroot", root, *command, env=clean)


def as_edge(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return in_root(root, "setpriv", "--reuid=edge", "--regid=edge", "--init-groups", *command)


def bumped(deb: Path, version: str, folder: Path) -> Path:
    """The same package under a later version: what an upgrade installs."""
    tree = folder / "tree"
    run("dpkg-deb", "-R", deb, tree)
    control = tree / "DEBIAN" / "control"
    control.write_text(control.read_text().replace(f"Version: {VERSION}\n", f"Version: {version}\n"))
    newer = folder / f"building-edge_{version}_{ARCH}.deb"
    run("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", tree, newer)
    shutil.rmtree(tree)
    return newer


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("debootstrap") is None,
                    reason="needs root (chroot) and debootstrap (./dev test installs it)")
def test_install_upgrade_remove_and_purge_on_a_throwaway_debian_root(deb, tmp_path):
    root = debian_root(tmp_path / "root")
    newer = bumped(deb, f"{VERSION}+upgrade1", tmp_path)
    shutil.copy(deb, root / "tmp" / "first.deb")
    shutil.copy(newer, root / "tmp" / "newer.deb")

    # Install: the user, a starter config where none was, the unit enabled (not started: no systemd here).
    installed = in_root(root, "dpkg", "-i", "/tmp/first.deb")
    assert "wrote /etc/edge/building.yaml" in installed.stdout
    groups = in_root(root, "id", "-nG", "edge").stdout.split()
    assert {"edge", "dialout", "video"} <= set(groups)
    assert (root / "etc/systemd/system/multi-user.target.wants/edge.service").is_symlink()
    assert as_edge(root, "/usr/bin/edge", "--version").stdout.strip() == f"edge {VERSION}"
    checked = as_edge(root, "/usr/bin/edge", "check-config", "/etc/edge/building.yaml")
    assert "ok: building" in checked.stdout
    assert in_root(root, "stat", "-c", "%U:%G %a", "/etc/edge/secrets/building.key").stdout.split() == ["root:edge", "640"]
    assert list((root / "opt/edge/lib").rglob("*.pyc")), "postinst compiles the venv"

    # A model fetched by root (from an HTTP server of this test's, on a free port) is the service's to read.
    blob = os.urandom(50_000)
    served = tmp_path / "served"
    served.mkdir()
    (served / "site.onnx").write_bytes(blob)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        (root / "tmp" / "site.yaml").write_text(
            f"name: site\nfile: site.onnx\nsha256: {hashlib.sha256(blob).hexdigest()}\nlicence: MIT\n"
            f"url: http://127.0.0.1:{web.server_address[1]}/site.onnx\nsize: {len(blob)}\n"
            "input: {width: 416, height: 416, colour: BGR, resize: letterbox}\noutput: {family: yolox}\n"
            "num_classes: 80\nclasses: {1: bicycle}\n")
        fetched = in_root(root, "/usr/bin/edge", "models", "fetch", "/tmp/site.yaml", "--config", "/etc/edge/building.yaml")
        web.shutdown()
    assert "installed site" in fetched.stdout
    model = "/var/lib/edge/models/site/site.onnx"
    assert in_root(root, "stat", "-c", "%U:%G %a", model).stdout.split() == ["root:edge", "640"]
    assert as_edge(root, "sha256sum", model).stdout.split()[0] == hashlib.sha256(blob).hexdigest()
    in_root(root, "rm", "-rf", "/var/lib/edge")

    # Upgrade: the operator's config and secret and an edited conffile are kept.
    config, key, example = root / "etc/edge/building.yaml", root / "etc/edge/secrets/building.key", root / "etc/edge/example.yaml"
    config.write_text(config.read_text() + "# edited on site\n")
    example.write_text(example.read_text() + "# an operator's note\n")
    secret = key.read_bytes()
    in_root(root, "dpkg", "-i", "/tmp/newer.deb")
    assert config.read_text().endswith("# edited on site\n") and key.read_bytes() == secret
    assert example.read_text().endswith("# an operator's note\n")
    assert in_root(root, "dpkg-query", "-W", "-f=${Version}", "building-edge").stdout == f"{VERSION}+upgrade1"
    assert "ok: building" in as_edge(root, "/usr/bin/edge", "check-config", "/etc/edge/building.yaml").stdout

    # A journal as the daemon would leave it (StateDirectory=edge: owned by the service user).
    in_root(root, "install", "-d", "-o", "edge", "-g", "edge", "-m", "0750", "/var/lib/edge")
    in_root(root, "install", "-o", "edge", "-g", "edge", "-m", "0640", "/dev/null", "/var/lib/edge/journal.sqlite")

    # Remove: the code and the unit go, the config stays.
    in_root(root, "dpkg", "-r", "building-edge")
    assert not (root / "opt/edge").exists() and not (root / "usr/bin/edge").exists()
    assert not (root / "lib/systemd/system/edge.service").exists()
    assert config.is_file() and key.is_file()

    # Purge: the config, the secret and the example go; the journal and its user stay unless asked.
    purged = in_root(root, "dpkg", "-P", "building-edge")
    assert "kept the journal" in purged.stdout
    assert not (root / "etc/edge").exists()
    assert (root / "var/lib/edge/journal.sqlite").is_file()
    assert in_root(root, "getent", "passwd", "edge").stdout.startswith("edge:")

    # Asked: a second life, then a purge that takes the journal and the user too.
    in_root(root, "dpkg", "-i", "/tmp/newer.deb")
    in_root(root, "dpkg", "-P", "building-edge", env={"EDGE_PURGE_JOURNAL": "yes"})
    assert not (root / "var/lib/edge").exists() and not (root / "etc/edge").exists() and not (root / "opt/edge").exists()
    assert subprocess.run(["chroot", str(root), "getent", "passwd", "edge"], capture_output=True).returncode != 0
    status = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "building-edge"], capture_output=True, text=True)
    assert status.returncode != 0 or status.stdout.strip() in ("", "un"), status  # dpkg has forgotten it


@pytest.mark.skipif(not os.environ.get("EDGE_TEST_CAMERA_DEB") or shutil.which("lintian") is None,
                    reason="builds the 80 MB camera package (about 5 minutes of xz on 2 cores): EDGE_TEST_CAMERA_DEB=1 runs it")
@pytest.mark.timeout(1800)
def test_the_camera_build_bundles_the_camera_and_is_lintian_clean_too(tmp_path):
    run(sys.executable, REPO / "packaging" / "deb.py", "--camera", "--out", tmp_path, "--wheelhouse", REPO / "var" / "wheelhouse")
    package = tmp_path / f"building-edge_{VERSION}_{ARCH}.deb"
    files = contents(package)
    assert any("/site-packages/cv2/" in p for p in files) and any("/site-packages/onnxruntime/" in p for p in files)
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "--pedantic", str(package)], capture_output=True, text=True, timeout=900)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line[:2] in ("E:", "W:", "P:")]
    assert result.returncode == 0 and findings == [], "\n".join(findings[:40]) or result.stderr
