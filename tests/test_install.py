"""The README's installation, as a technician does it: `pip install .` (not editable) into its
own virtual environment, the config outside the repository (as /etc/edge would be), then
`edge init`, `edge check-config` on the copied example and `edge schema`.

Offline and quick: the new venv sees this venv's dependencies through a .pth file, and the
package is built with --no-deps --no-build-isolation from a copy of the source tree, so the
build leaves nothing in the repository and nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "var")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv at TMP/opt-edge with the package installed from a copy of the source; returns the venv."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE, symlinks=True)
    venv = root / "opt-edge"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # pip, pydantic, ... from this venv
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", source, cwd=root)
    shutil.rmtree(source)  # an installed gateway has no source tree
    return venv


def test_the_installed_package_is_its_own_not_the_repository(installed, tmp_path):
    site = Path(run(installed / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).stdout.strip())
    found = run(installed / "bin" / "python", "-c",
                "import edge, drivers.modbus, edge.config as c, edge.version as v; "
                "print(edge.__file__); print(drivers.modbus.__file__); print(c.BUILT_IN_PROFILES); print(v.VERSION)", cwd=tmp_path)
    edge_file, drivers_file, profiles, version = found.stdout.splitlines()
    for path in (edge_file, drivers_file, profiles):
        assert Path(path).is_relative_to(site), (path, site)
        assert not Path(path).is_relative_to(REPO), path
    assert sorted(p.name for p in Path(profiles).glob("*.yaml")) == sorted(p.name for p in (REPO / "drivers" / "modbus" / "profiles").glob("*.yaml"))
    assert (Path(edge_file).parent / "starter.yaml").is_file()
    assert version == "0.1.0"


def test_readme_steps_init_check_config_and_schema(installed, tmp_path):
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
    shutil.copy(REPO / "config" / "example.yaml", etc / "building.yaml")
    example = run(edge, "check-config", etc / "building.yaml", cwd=elsewhere)
    assert "ok: building hillside-court-7, 4 buses, 50 devices" in example.stdout
    assert "profile" not in example.stdout  # nothing shadowed

    schema = run(edge, "schema", cwd=elsewhere)
    assert json.loads(schema.stdout) == json.loads((REPO / "config" / "schema.json").read_text())
