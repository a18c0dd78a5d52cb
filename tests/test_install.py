"""The README's installation, as a technician does it: a non-editable install into its own virtual
environment, the config outside the repository (as /etc/edge would be), then `edge init`,
`edge check-config` on the copied example, `edge schema`, and the installed daemon serving its
page, health and metrics over HTTP. The rig (building-edge-rig) is installed the same way beside
it and plays a scenario from its installed files.

Offline installs: both distributions are built from a copy of the source tree (the build leaves
nothing in the repository) into a wheelhouse by packaging/wheelhouse.py, which reuses the wheels
already there and asks the package index (through pip's cache) only for what is missing; the
venvs are then filled with `pip install --no-index --find-links WHEELHOUSE`, exactly what the
Debian package's build does.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

from edge.hil.waiting import until_sync

from conftest import REPO, Daemon, building
from field_rig import journal_until

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "var")
WHEELHOUSE = REPO / "var" / "wheelhouse"  # kept between runs (var/ is ignored by git): the second run is offline
VERSION = configparser.ConfigParser()
VERSION.read(REPO / "setup.cfg")
VERSION = VERSION["metadata"]["version"]
CAMERA_LIBRARIES = ("cv2", "numpy", "onnxruntime")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def site_packages(venv: Path, cwd: Path) -> Path:
    return Path(run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=cwd).stdout.strip())


def tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WHEELHOUSE filled for the gateway, its camera and the rig, from a copy of the source tree."""
    root = tmp_path_factory.mktemp("source")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE, symlinks=True)
    for stale in WHEELHOUSE.glob("building_edge*.whl"):
        stale.unlink()  # always this tree's wheels
    built = run(sys.executable, REPO / "packaging" / "wheelhouse.py", WHEELHOUSE, "--source", source, "--extra", "camera", "--rig", cwd=root)
    assert "arning" not in built.stderr, built.stderr  # setuptools builds both distributions without a warning
    shutil.rmtree(source)  # an installed gateway has no source tree
    return WHEELHOUSE


def packaged(wheelhouse: Path, name: str) -> bytes:
    """A file as the gateway's wheel holds it (the repository's copy may be changing under the test)."""
    with zipfile.ZipFile(next(wheelhouse.glob(f"building_edge-{VERSION}-*.whl"))) as wheel:
        return wheel.read(name)


def install(venv: Path, wheelhouse: Path, *requirements: str) -> subprocess.CompletedProcess[str]:
    """A fresh venv (with pip, as `python3 -m venv` makes it) and an offline install into it."""
    run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    return run(venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
               "--find-links", wheelhouse, *requirements, cwd=venv.parent)


@pytest.fixture(scope="module")
def installed(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway alone, as on a building without a camera: TMP/opt-edge."""
    venv = tmp_path_factory.mktemp("install") / "opt-edge"
    result = install(venv, wheelhouse, f"building-edge=={VERSION}")
    assert "arning" not in result.stdout + result.stderr, result.stdout + result.stderr  # no setuptools (or pip) warnings
    return venv


@pytest.fixture(scope="module")
def rig(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway with the rig (and so the camera) in a venv of their own."""
    venv = tmp_path_factory.mktemp("install-rig") / "rig"
    install(venv, wheelhouse, f"building-edge-rig=={VERSION}")
    return venv


def test_the_wheels_hold_the_gateway_and_its_files_and_the_rig_apart(wheelhouse):
    gateway = zipfile.ZipFile(next(wheelhouse.glob(f"building_edge-{VERSION}-*.whl")))
    names = set(gateway.namelist())
    for shipped in ("edge/status/page/index.html", "edge/status/page/page.js", "edge/status/page/page.css",
                    "edge/config/starter.yaml", "edge/shipped/systemd/edge.service", "edge/shipped/systemd/99-edge-serial.rules",
                    "edge/shipped/config/example.yaml", "edge/shipped/config/schema.json"):
        assert shipped in names, shipped
    for manifest in (REPO / "models").glob("*.yaml"):
        assert f"edge/shipped/models/{manifest.name}" in names
    for profile in (REPO / "drivers" / "modbus" / "profiles").glob("*.yaml"):
        assert f"edge/drivers/modbus/profiles/{profile.name}" in names
    # one import name: drivers/ and fleet/ are edge.drivers and edge.fleet; no edge/hil (the rig's own wheel)
    assert {n.split("/")[0] for n in names if not n.startswith("building_edge-")} == {"edge"}
    assert {n.split("/")[1] for n in names if n.startswith("edge/") and n.count("/") > 1} >= {"drivers", "fleet", "status"}
    assert not any(n.startswith("edge/hil/") for n in names)
    assert not any("demo" in n or n.endswith(".key") for n in names), "the demo building ships with the rig"
    metadata = gateway.read(f"building_edge-{VERSION}.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for library in ("opencv", "onnxruntime", "numpy"):
        assert all(library not in r or "extra ==" in r for r in requires), (library, requires)  # only with [camera]
    assert any("opencv" in r and 'extra == "camera"' in r for r in requires)

    rig_wheel = zipfile.ZipFile(next(wheelhouse.glob(f"building_edge_rig-{VERSION}-*.whl")))
    rig_names = set(rig_wheel.namelist())
    assert {n.split("/")[0] for n in rig_names if not n.startswith("building_edge_rig-")} == {"edge"}
    assert all(n.startswith(("edge/hil/", "building_edge_rig-")) for n in rig_names), "the rig adds edge.hil and nothing else"
    for scenario in (REPO / "hil" / "scenarios").rglob("*.yaml"):
        assert f"edge/hil/{scenario.relative_to(REPO / 'hil')}" in rig_names
    assert {"edge/hil/config/demo.yaml", "edge/hil/config/secrets/demo-building.key"} <= rig_names
    rig_project = tomllib.loads((REPO / "rig" / "pyproject.toml").read_text())["project"]
    assert rig_project["version"] == VERSION  # one version for both distributions
    assert f"building-edge[camera]=={VERSION}" in rig_project["dependencies"]


def test_the_installed_package_is_its_own_not_the_repository(installed, wheelhouse, tmp_path):
    site = site_packages(installed, tmp_path)
    found = run(installed / "bin" / "python", "-c",
                "import edge, edge.drivers.modbus, edge.config.building as c, edge.version as v, edge.shipped as s; "
                "print(edge.__file__); print(edge.drivers.modbus.__file__); print(c.BUILT_IN_PROFILES); print(v.VERSION); "
                "print(s.file('systemd', 'edge.service'))", cwd=tmp_path)
    edge_file, drivers_file, profiles, version, unit = found.stdout.splitlines()
    for path in (edge_file, drivers_file, profiles, unit):
        assert Path(path).is_relative_to(site), (path, site)
        assert not Path(path).is_relative_to(REPO), path
    assert sorted(p.name for p in Path(profiles).glob("*.yaml")) == sorted(p.name for p in (REPO / "drivers" / "modbus" / "profiles").glob("*.yaml"))
    assert (Path(edge_file).parent / "config" / "starter.yaml").is_file()
    assert Path(unit).read_bytes() == packaged(wheelhouse, "edge/shipped/systemd/edge.service")
    assert b"ExecStart=/opt/edge/bin/edge run" in Path(unit).read_bytes()
    assert version == VERSION
    assert run(installed / "bin" / "edge", "--version", cwd=tmp_path).stdout.strip() == f"edge {VERSION}"
    assert not (site / "edge" / "hil").exists() and not (site / "drivers").exists()
    missing = run(installed / "bin" / "python", "-c",
                  "import importlib.util as u; print(' '.join(m for m in " + repr(CAMERA_LIBRARIES) + " if u.find_spec(m) is None))", cwd=tmp_path)
    assert missing.stdout.split() == list(CAMERA_LIBRARIES), "the base install has no camera libraries"


def test_readme_steps_init_check_config_and_schema(installed, rig, tmp_path):
    edge = installed / "bin" / "edge"
    etc = tmp_path / "etc" / "edge"
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()

    init = run(edge, "init", etc, "--building", "hillside-court-7", cwd=elsewhere)
    assert "wrote" in init.stdout
    assert oct((etc / "secrets" / "building.key").stat().st_mode & 0o777) == "0o600"
    starter = run(edge, "check-config", etc / "building.yaml", cwd=elsewhere)
    assert "ok: building hillside-court-7" in starter.stdout

    # README: copy the example over the starter, with no profiles/ beside it: the shipped ones are used.
    # The example has an elevator camera: without the camera extra that is its one problem, at its line.
    shutil.copy(REPO / "config" / "example.yaml", etc / "building.yaml")
    camera_line = next(n for n, line in enumerate((etc / "building.yaml").read_text().splitlines(), 1) if "elevator-1-camera" in line)
    refused = subprocess.run([str(edge), "check-config", str(etc / "building.yaml")], cwd=elsewhere, capture_output=True, text=True)
    assert refused.returncode == 78, refused
    problems = [line for line in (refused.stdout + refused.stderr).splitlines() if line.startswith(f"{etc / 'building.yaml'}:")]
    assert len(problems) == 2, problems  # the camera's line and the count
    assert problems[0].startswith(f"{etc / 'building.yaml'}:{camera_line}:")
    assert "pip install 'building-edge[camera]'" in problems[0]
    with_camera = run(rig / "bin" / "edge", "check-config", etc / "building.yaml", cwd=elsewhere)
    assert "ok: building hillside-court-7, 4 buses, 50 devices" in with_camera.stdout
    assert "profile" not in with_camera.stdout  # nothing shadowed

    schema = run(edge, "schema", cwd=elsewhere)
    assert json.loads(schema.stdout) == json.loads((REPO / "config" / "schema.json").read_text())


def test_only_the_camera_and_vision_modules_need_the_camera_libraries(installed, tmp_path):
    """Every other module of the gateway imports on a base install (OpenCV, onnxruntime and numpy are absent)."""
    imported = run(installed / "bin" / "python", "-c", """
import importlib, pkgutil, edge
failed = []
for package in (edge,):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if module.name.startswith(("edge.vision.", "edge.drivers.camera.", "edge.fleet.")):  # the camera and fleet extras
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as error:
            failed.append(f"{module.name}: {error}")
print("\\n".join(failed))
""", cwd=tmp_path)
    assert imported.stdout.strip() == ""


def test_the_base_install_stays_small(installed):
    assert tree_bytes(installed) <= 100_000_000  # edge.hil.bench.install measures it against the camera extra


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as answered:
        return answered.code, answered.headers.get("Content-Type", ""), answered.read()


def test_the_installed_daemon_serves_its_page_health_and_metrics(installed, wheelhouse, tmp_path):
    edge = installed / "bin" / "edge"
    etc = tmp_path / "etc"
    run(edge, "init", etc, "--building", "page-house", cwd=tmp_path)
    config = etc / "building.yaml"
    state = tmp_path / "state"
    # text: added to the file edge init wrote, as a technician edits it; the page on a free port
    config.write_text(config.read_text() + f"\nstate_dir: {state}\nhttp: {{port: 0}}\n")
    daemon = subprocess.Popen([str(edge), "run", "--config", str(config)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        endpoint = state / "http.json"
        until_sync(lambda: endpoint.exists() or daemon.poll() is not None, 60, "the endpoint file or the daemon's exit", every_s=0.1)
        assert endpoint.exists(), f"no endpoint file; exit {daemon.poll()}"
        url = json.loads(endpoint.read_text())["url"].rstrip("/")

        status, kind, page = fetch(url + "/")
        assert status == 200 and kind.startswith("text/html"), (status, page[:500])
        assert page == packaged(wheelhouse, "edge/status/page/index.html")
        status, kind, script = fetch(url + "/page.js")
        assert status == 200 and "javascript" in kind
        assert script == packaged(wheelhouse, "edge/status/page/page.js") and script.startswith(b"// The live status page")
        status, _, health = fetch(url + "/healthz")
        assert status in (200, 503) and isinstance(json.loads(health), dict)  # a judgement, not a crash
        status, _, metrics = fetch(url + "/metrics")
        assert status == 200 and b"edge_journal_head_seq" in metrics
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_the_installed_rig_plays_a_scenario_from_its_own_files(rig, tmp_path):
    site = site_packages(rig, tmp_path)
    scenarios = site / "edge" / "hil" / "scenarios"
    assert sorted(p.name for p in scenarios.glob("*.yaml")) == sorted(p.name for p in (REPO / "hil" / "scenarios").glob("*.yaml"))
    env = {**os.environ, "PATH": f"{rig / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    played = run(rig / "bin" / "python", "-m", "edge.hil", "run", scenarios / "power-leakage.yaml",
                 "--json", tmp_path / "results.json", cwd=tmp_path, env=env)
    results = json.loads((tmp_path / "results.json").read_text())["scenarios"]
    assert [r["outcome"] for r in results] == ["passed"], played.stdout
    assert Path(results[0]["path"]).is_relative_to(site)


def test_the_installed_demo_finds_its_building_and_keeps_to_its_folder(rig, tmp_path):
    folder = tmp_path / "demo"
    env = {**os.environ, "PATH": f"{rig / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    shown = run(rig / "bin" / "python", "-m", "edge.hil.demo", "--seconds", "8", "--dir", folder, cwd=tmp_path, env=env)
    assert f"demo folder: {folder}" in shown.stdout
    assert "status page: http://127.0.0.1:" in shown.stdout, shown.stdout[-2000:]
    assert "newest events above telemetry" in shown.stdout
    assert (folder / "demo.yaml").is_file() and (folder / "state").is_dir()
    site = site_packages(rig, tmp_path)
    assert not list((site / "edge" / "hil").rglob("*.sqlite*")) and not (site / "var").exists()  # nothing written beside the code


@pytest.fixture(scope="module")
def with_lift_phone(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed gateway with one more feature dropped into its package: tests/lift_phone_feature's
    `lift_phone` (written against edge/feature.py alone), no file of the gateway changed."""
    venv = tmp_path_factory.mktemp("install-feature") / "opt-edge"
    install(venv, wheelhouse, f"building-edge=={VERSION}")
    shutil.copytree(LIFT_PHONE, site_packages(venv, venv.parent) / "edge" / "lift_phone")
    return venv


LIFT_PHONE = REPO / "tests" / "lift_phone_feature" / "lift_phone"


def _phones(*pairs: tuple[str, str]) -> dict:
    return building({"lift_phones": [{"name": name, "elevator": lift} for name, lift in pairs]})


def test_a_feature_dropped_into_the_installed_package_adds_its_section_check_command_and_schema(installed, with_lift_phone, write_config, tmp_path):
    """Issue 20: adding a feature touches no other feature's package and no shared enum."""
    config = write_config(_phones(("lp-1", "L1"), ("lp-2", "L1")))
    without = subprocess.run([str(installed / "bin" / "edge"), "check-config", str(config)], capture_output=True, text=True, cwd=tmp_path)
    assert without.returncode == 78 and "lift_phones: Extra inputs are not permitted" in without.stderr  # the gateway alone has no such section

    edge = str(with_lift_phone / "bin" / "edge")
    checked = subprocess.run([edge, "check-config", str(config)], capture_output=True, text=True, cwd=tmp_path)
    assert checked.returncode == 78, checked
    assert f"{config}:" in checked.stderr and "lift_phones.1.elevator: elevator 'L1' has a phone already" in checked.stderr
    run(edge, "check-config", write_config(_phones(("lp-1", "L1"), ("lp-2", "L2"))), cwd=tmp_path)
    assert "lift-phone" in run(edge, "--help", cwd=tmp_path).stdout
    assert "lift_phones" in json.loads(run(edge, "schema", cwd=tmp_path).stdout)["properties"]


def test_a_feature_dropped_into_the_installed_package_is_wired_journaled_shown_and_ended(with_lift_phone, write_config, tmp_path):
    config = write_config(_phones(("lp-1", "L1")))
    edge = str(with_lift_phone / "bin" / "edge")

    def status() -> dict | None:
        answer = subprocess.run([edge, "status", "--json", "--config", str(config)], capture_output=True, text=True, cwd=tmp_path)
        return json.loads(answer.stdout) if answer.stdout.startswith("{") else None

    with Daemon(config, interpreter=str(with_lift_phone / "bin" / "python"), strict=True, cwd=tmp_path) as daemon:
        raised = journal_until(lambda: daemon.events("alarm.lift_phone_off_hook"), what="the feature's wiring ran and journaled")
        assert raised[0].source == "lp-1" and raised[0].body == {"doors_here": False}
        shown = journal_until(lambda: (s := status()) and s.get("lift_phones") and s, what="edge status showed the feature's tile")
        assert shown["lift_phones"] == [{"name": "lp-1", "off_hook": True}]
        assert [(a["kind"], a["text"]) for a in shown["alarms"]] == [("alarm.lift_phone_off_hook", "Lift phone lp-1 off the hook")]

        assert subprocess.run([edge, "lift-phone", "lp-9", "--config", str(config)], capture_output=True, cwd=tmp_path).returncode == 1
        run(edge, "lift-phone", "lp-1", "--config", config, cwd=tmp_path)  # the feature's operation, over the control socket
        journal_until(lambda: daemon.events("lift_phone.hung_up"), what="the hang-up journaled")
        ended = status()
        assert ended["lift_phones"] == [{"name": "lp-1", "off_hook": False}] and ended["alarms"] == []
