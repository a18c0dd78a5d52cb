"""Config validation: every error class, with its line, all reported at once."""

from __future__ import annotations

import json
import subprocess
import sys
from os import EX_CONFIG

import pytest

from edge.config import building as building_config

from conftest import MINIMAL, REPO, building, modbus_tcp, problems_of, profile_problems


def test_minimal_config_loads_with_paths_beside_the_file(write_config, building_dir):
    config = building_config.load(write_config(building()))
    assert config.building.id == "test-house"
    assert config.state_path == building_dir / "state"
    assert config.journal_path == building_dir / "state" / "journal.db"
    assert config.building.secret.read() == (building_dir / "secrets" / "building.key").read_text().encode()


def test_the_demo_config_is_valid_where_it_is():
    result = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(REPO / "config" / "demo.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_the_example_config_is_valid_beside_the_secret_edge_init_writes(tmp_path):
    edge_dir = tmp_path / "etc" / "edge"
    init = subprocess.run([sys.executable, "-m", "edge.cli", "init", str(edge_dir)], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    (edge_dir / "building.yaml").write_text((REPO / "config" / "example.yaml").read_text())  # README: copy it over the starter
    result = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(edge_dir / "building.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok: building hillside-court-7" in result.stdout


@pytest.mark.parametrize(  # text, not data: each problem names its FILE:LINE:COL in it, and some are broken YAML
    "snippet, expected",
    [
        ("building:\n  id: a\n  secret: {file: secrets/building.key}\n  colour: red\n", ":4:3: building.colour: Extra inputs are not permitted"),
        ("building:\n  id: a\n  secret: {file: secrets/building.key}\njournal:\n  cap_mb: lots\n", ":5:3: journal.cap_mb: Input should be a valid number"),
        ("building:\n  id: a\n  secret: {file: secrets/building.key}\njournal:\n  cap_mb: 0\n", ":5:3: journal.cap_mb: Input should be greater than or equal to 1"),
        ("building:\n  id: a\n  secret: {file: secrets/missing.key}\n", ":3:12: building.secret.file: file "),
        ("building:\n  id: a\n  secret: {env: EDGE_TEST_UNSET_SECRET}\n", ":3:3: building.secret: environment variable EDGE_TEST_UNSET_SECRET is not set"),
        ("building:\n  id: a\n  secret: s3cr3t\n", ":3:3: building.secret: Input should be a valid dictionary"),
        ("building:\n  id: a\n  timezone: Mars/Base\n  secret: {file: secrets/building.key}\n", ":3:3: building.timezone: unknown time zone 'Mars/Base'"),
        ("building:\n  secret: {file: secrets/building.key}\n", ":1:1: building.id: Field required"),
        ("building:\n  id: a\n  secret: {file: secrets/building.key}\nbuses:\n  - {name: b, type: rtu, port: /dev/ttyUSB0, baud: 9601}\n", ":5:46: buses.0.baud: Input should be 1200"),
        ("building:\n  id: a\n  secret: {file: secrets/building.key}\nbuses:\n  - {name: b, type: can}\n", ":5:5: buses.0: Input tag 'can' found using 'type' does not match"),
        ("building:\n  id: [\n", ":3:1: (yaml): "),
        ("building:\n  id: a\n  id: b\n", ":3:3: (yaml): duplicate key 'id'"),
        ("", ":1:1: (root): the file is empty"),
        ("- just\n- a list\n", ":1:1: (root): the file is a list, not a mapping"),
    ],
)
def test_each_error_names_file_line_column_and_path(write_config, snippet, expected):
    path = write_config(snippet)
    found = problems_of(path)
    assert any(p.startswith(str(path)) and expected in p for p in found), found


CROSS = MINIMAL + """  # text, not data: the problems name their FILE:LINE:COL in it
buses:
  - {name: rs485-1, type: rtu, port: /dev/ttyUSB0}
  - {name: rs485-1, type: tcp, host: 10.0.0.2}
devices:
  - {name: meter-1, bus: rs485-1, address: 1, profile: PROFILE}
  - {name: meter-2, bus: rs485-1, address: 1, profile: PROFILE}
  - {name: meter-3, bus: rs485-9, address: 2, profile: PROFILE}
  - {name: meter-4, bus: rs485-1, address: 3, profile: no-such-profile}
readers:
  - {name: meter-1, protocol: em4100, port: /dev/ttyUSB5}
  - {name: gate, protocol: em4100, port: /dev/ttyUSB0}
  - {name: lobby, protocol: osdp, port: /dev/ttyUSB6}
doors:
  - {name: main, readers: [gate, ghost], lock: {device: nobody, release: release_1, secure: secure_1}, contact: meter-1.no_such_point}
circuits:
  - {name: f1-c1, floor: 1, box: f1, currents: [meter-1.current_a], breaker: missing, safety: {power_cut: warn}}
  - {name: f1-c2, floor: 1, box: f1, leakage: meter-1.leakage_ma, safety: {power_cut: trip, leakage_ma: {alarm: 30}}}
"""


def test_cross_references_are_checked_and_reported_together(write_config, building_dir):
    path = write_config(CROSS.replace("PROFILE", "generic-efm8"))
    found = "\n".join(problems_of(path))
    for expected in (
        ":9:6: buses.1.name: bus 'rs485-1' is already defined (buses.0)",
        ":12:35: devices.1.address: address 1 on bus 'rs485-1' is already used by device 'meter-1'",
        ":13:21: devices.2.bus: no bus named 'rs485-9'",
        ":14:47: devices.3.profile: no profile 'no-such-profile'",
        ":16:6: readers.0.name: device name 'meter-1' is already used by devices.0",
        ":17:36: readers.1.port: port /dev/ttyUSB0 is already used by bus 'rs485-1'",
        ":18:5: readers.2: an OSDP reader needs osdp_address",
        ":20:34: doors.0.readers.1: no reader named 'ghost'",
        ":20:42: doors.0.lock: no device named 'nobody'",
        "doors.0.contact: device 'meter-1' (generic-efm8) has no point 'no_such_point'",
        "circuits.0.breaker: no device named 'missing'",
        "circuits.1.safety.power_cut: power_cut: trip needs a breaker to trip",
    ):
        assert expected in found, f"{expected!r} not in:\n{found}"


def test_cli_check_config_exits_78_and_lists_every_problem(write_config):
    path = write_config({"building": {"id": "no spaces allowed", "secret": {"file": "nope"}, "colour": "red"}, "journal": {"cap_mb": -1}})
    result = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == EX_CONFIG
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(path) + ":")]
    assert [line.split(": ")[1] for line in lines[:-1]] == ["building.id", "building.secret.file", "building.colour", "journal.cap_mb"]
    assert "4 problem(s); nothing was started" in result.stderr


def test_run_with_a_broken_config_starts_nothing(write_config, building_dir):
    path = write_config(building({"journal": {"cap_mb": "nope"}}))
    result = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == EX_CONFIG
    assert not (building_dir / "state").exists()


def test_exported_schema_is_current():
    shipped = json.loads((REPO / "config" / "schema.json").read_text())
    assert shipped == building_config.json_schema(), "run: edge schema > config/schema.json"


def test_a_broken_profile_is_reported_at_its_own_line(write_config, building_dir):
    profile, found = profile_problems(write_config, building_dir, "odd-meter",
                                      "model: odd-meter\npoints:\n  - {name: volts, function: holding, address: 0, type: float16}\n", device="m")
    assert any(p.startswith(profile + ":3:") and "points.0.type" in p for p in found), found


def test_points_must_exist_in_the_device_profile(write_config):
    path = write_config(building(modbus_tcp(None, timeout_s=None, name="b"), {
        "devices": [{"name": "f1-monitor", "bus": "b", "address": 1, "profile": "generic-efm8"},
                    {"name": "f1-breaker", "bus": "b", "address": 2, "profile": "generic-efm8"}],
        "circuits": [{"name": "f1-c1", "floor": 1, "box": "F1", "currents": ["f1-monitor.current_a", "f1-monitor.current_x"],
                      "breaker": "f1-breaker", "safety": {"power_cut": "trip", "over_current_a": {"alarm": 32}}}]}))
    found = "\n".join(problems_of(path))
    assert "circuits.0.currents.1: device 'f1-monitor' (generic-efm8) has no point 'current_x'" in found
    assert "circuits.0.breaker: device 'f1-breaker' (generic-efm8) has no command 'close'" in found


def one_monitor(profile: str = "generic-efm8", current: str = "current_a") -> dict:
    """Circuit f1-c1 on the monitor f1-monitor (of `profile`), its phase A read as `current`."""
    return building(modbus_tcp(None, timeout_s=None, name="b"), {
        "devices": [{"name": "f1-monitor", "bus": "b", "address": 1, "profile": profile}],
        "circuits": [{"name": "f1-c1", "floor": 1, "box": "F1", "currents": [f"f1-monitor.{current}"],
                      "safety": {"power_cut": "warn", "over_current_a": {"alarm": 32}}}]})


def test_a_shipped_profile_is_found_without_a_local_profiles_dir(write_config, building_dir):
    (building_dir / "profiles").rmdir()
    config = building_config.load(write_config(one_monitor()))
    assert building_config.profile_path(config, "generic-efm8") == building_config.BUILT_IN_PROFILES / "generic-efm8.yaml"
    assert building_config.device_profiles(config)["generic-efm8"].model == "generic-efm8"
    assert building_config.shadowed_profiles(config) == {}


def test_a_local_profile_replaces_the_built_in_one_and_check_config_says_so(write_config, building_dir):
    built_in = (building_config.BUILT_IN_PROFILES / "generic-efm8.yaml").read_text()
    local = building_dir / "profiles" / "generic-efm8.yaml"
    local.write_text(built_in.replace("name: current_a,", "name: current_l1,"))
    path = write_config(one_monitor())
    found = "\n".join(problems_of(path))  # the building's own file is the one read
    assert "circuits.0.currents.0: device 'f1-monitor' (generic-efm8) has no point 'current_a'" in found

    write_config(one_monitor(current="current_l1"))
    result = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{path}: profile 'generic-efm8' is read from {local}, not the built-in one" in result.stdout


def test_an_unknown_profile_names_where_it_was_looked_for(write_config, building_dir):
    found = "\n".join(problems_of(write_config(one_monitor("acme-9000"))))
    assert f"devices.0.profile: no profile 'acme-9000' in {building_dir / 'profiles'} nor built in (generic-ai8" in found


def test_a_profile_name_is_a_name_not_a_path(write_config):
    found = "\n".join(problems_of(write_config(one_monitor("../../secrets/building"))))
    assert "devices.0.profile: String should match pattern" in found


def test_a_profiles_dir_named_in_the_file_must_exist(write_config, building_dir):
    path = write_config(one_monitor() | {"profiles_dir": "site-profiles"})
    line = path.read_text().splitlines().index("profiles_dir: site-profiles") + 1
    found = problems_of(path)
    assert found == [f"{building_dir / 'building.yaml'}:{line}:1: profiles_dir: {building_dir / 'site-profiles'} is not a directory"], found


def test_udev_ports_must_name_an_identity_of_their_kind(write_config):
    udev = [{"name": "rs485-1", "vendor_id": "0403", "product_id": "6001", "serial": "BUS1SERIAL"},
            {"name": "cam", "subsystem": "video4linux", "serial": "CAM1"}]
    ports = {"buses": [{"name": "line-1", "type": "rtu", "port": "udev:rs485-1"}],
             "readers": [{"name": "front", "protocol": "em4100", "port": "udev:cam"},
                         {"name": "back", "protocol": "em4100", "port": "udev:nowhere"}]}
    path = write_config(building({"udev": [*udev, {"name": "empty"}]}, ports))
    with pytest.raises(building_config.ConfigError) as error:
        building_config.load(path)
    found = str(error.value)
    assert "udev.2: give at least one of vendor_id, product_id, serial, usb_path" in found
    path = write_config(building({"udev": udev}, ports))
    with pytest.raises(building_config.ConfigError) as error:
        building_config.load(path)
    found = str(error.value)
    assert "readers.0.port: no tty udev identity named 'cam'" in found
    assert "readers.1.port: no tty udev identity named 'nowhere'" in found
    assert "buses" not in found
