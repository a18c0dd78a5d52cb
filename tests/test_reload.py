"""Changing a running building's config: `edge reload` and SIGHUP, in place, alone, or by a restart."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest

from edge.config import building as building_config
from edge.drivers.modbus.profile import load_profile
from edge.gateway import config_digest
from edge.hil.card_sim import CardReaderSim
from edge.hil.modbus_sim import SimulatedDevice
from edge.hil.pty import pty_pair

from access_rig import enrol
from vision_media import EBIKE, EMPTY_CAR, need_shared, write_clip
from conftest import Daemon, building, merged, modbus_device, modbus_tcp
from field_rig import PROFILES, SimulatorThread, devices, edge_cli, journal_until, points_building, socket_ready

pytestmark = pytest.mark.timeout(120)

TENANT = b"\x01\x00\x12\x93\xd8"


def door(name: str, port: str) -> dict:
    """Door `name` of the entrances group and its card reader `name`-reader on the pty `port`."""
    return {"readers": [{"name": f"{name}-reader", "protocol": "em4100", "port": port}],
            "doors": [{"name": name, "readers": [f"{name}-reader"], "groups": ["entrances"]}]}


def port_fds(pid: int, port: str) -> dict[str, str]:
    """The daemon's descriptors open on the tty `port` links to: fd -> its position line (a reopened
    port is a new descriptor)."""
    tty = os.path.realpath(port)
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == tty:
                fds[fd] = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
    return fds


def granted_at(daemon: Daemon, door: str) -> list:
    return [e for e in daemon.events("access.decision") if e.body.get("door") == door and e.body.get("granted")]


def test_a_threshold_changed_under_a_running_daemon_takes_effect_without_reopening_a_port(write_config, capsys):
    monitor, breaker, tank = devices()  # 10 A on the circuit, whose alarm limit is 32 A
    field = SimulatorThread([monitor, breaker, tank])
    with pty_pair() as cards, field as modbus_port:
        house = merged(points_building(modbus_port), door("hall", cards.b))
        config = write_config(house)
        enrol(building_config.load(config), TENANT)
        with Daemon(config) as daemon, CardReaderSim(cards.a, "em4100") as reader:
            journal_until(lambda: socket_ready(config), what="the control socket")
            journal_until(lambda: port_fds(daemon.process.pid, cards.b), what="the reader's port open")
            reader.present(TENANT)
            journal_until(lambda: granted_at(daemon, "hall"), what="a card granted before the reload")
            connections, fds = field.simulator.connections, port_fds(daemon.process.pid, cards.b)
            assert connections >= 1 and fds
            assert not daemon.events("power.trip_sent")

            house["circuits"][0]["safety"]["over_current_a"]["alarm"] = 8  # was 32
            write_config(house)
            code, out, err = edge_cli(capsys, "reload", "--config", str(config), "--operator", "tech-7")

            assert code == 0, err
            assert "f2-c1: in place" in out and "reader:" not in out and "restart" not in out
            raised = journal_until(lambda: [e for e in daemon.events("alarm.raised")
                                            if e.source == "f2-c1" and e.body.get("condition") == "over_threshold"],
                                   what="the over-current alarm at the new limit")
            assert raised[0].body["threshold"] == 8
            journal_until(lambda: daemon.events("power.trip_confirmed"), what="the trip the new limit asks for")
            reader.present(TENANT)
            journal_until(lambda: len(granted_at(daemon, "hall")) >= 2, what="a card granted after the reload")
            assert field.simulator.connections == connections, "the Modbus line was not reopened"
            assert port_fds(daemon.process.pid, cards.b) == fds, "the reader's port was not reopened"
            (reloaded,) = daemon.events("config.reloaded")
            assert reloaded.body["applied"] == ["f2-c1: in place"] and reloaded.body["restart"] is False
            assert reloaded.body["digest"] == config_digest(config) != reloaded.body["previous"]
            assert reloaded.body["operator"] == "tech-7" and reloaded.body["via"] == "control"
            url = json.loads((config.parent / "state" / "http.json").read_text())["url"]
            metrics = urllib.request.urlopen(url + "metrics", timeout=10).read().decode()
            assert f'edge_config_info{{digest="{config_digest(config)}"}} 1.0' in metrics
            status = json.loads(urllib.request.urlopen(url + "api/status", timeout=10).read())
            assert status["building"]["config"] == config_digest(config)


def test_a_line_changed_restarts_the_field_bus_alone(write_config, capsys):
    monitor, breaker, tank = devices()
    field = SimulatorThread([monitor, breaker, tank])
    with pty_pair() as cards, field as modbus_port:
        house = merged(points_building(modbus_port), door("hall", cards.b))
        config = write_config(house)
        with Daemon(config) as daemon:
            journal_until(lambda: socket_ready(config), what="the control socket")
            journal_until(lambda: field.simulator.connections and port_fds(daemon.process.pid, cards.b), what="the lines open")
            connections, fds = field.simulator.connections, port_fds(daemon.process.pid, cards.b)

            house["buses"][0]["timeout_s"] = 0.4  # was 0.3
            write_config(house)
            code, out, err = edge_cli(capsys, "reload", "--config", str(config))

            assert code == 0, err
            assert "field bus: restarted on its new lines (buses box; devices unchanged)" in out and "restart:" not in out
            journal_until(lambda: field.simulator.connections > connections, what="the field bus on its line again")
            requests = len(field.simulator.requests)
            journal_until(lambda: len(field.simulator.requests) > requests + 10, what="polls after the restart")
            assert port_fds(daemon.process.pid, cards.b) == fds, "the reader's port was not reopened"
            assert [e.body["restart"] for e in daemon.events("config.reloaded")] == [False]


def test_a_reader_added_starts_alone_and_an_invalid_file_changes_nothing(write_config, capsys):
    with pty_pair() as first, pty_pair() as second:
        house = building(door("hall", first.b))
        config = write_config(house)
        enrol(building_config.load(config), TENANT)
        good = config.read_text()
        with Daemon(config) as daemon, CardReaderSim(first.a, "em4100") as hall, CardReaderSim(second.a, "em4100") as yard:
            journal_until(lambda: socket_ready(config), what="the control socket")
            journal_until(lambda: port_fds(daemon.process.pid, first.b), what="the first reader's port open")
            fds = port_fds(daemon.process.pid, first.b)

            write_config(house | {"doors": [{**house["doors"][0], "held_open_s": -3}]})
            code, out, err = edge_cli(capsys, "reload", "--config", str(config))
            assert code == 78
            assert f"{config}:" in err and "held_open_s" in err and "unchanged" in err
            (refused,) = journal_until(lambda: daemon.events("config.reload_refused"), what="the refusal journaled")
            assert any("held_open_s" in problem for problem in refused.body["problems"])
            for too_much in ("# " + "x" * 10 * 2**20 + "\n", "extra: " + "[" * 100_000 + "]" * 100_000 + "\n"):  # 10 MB; deep
                config.write_text(good + too_much)  # text: the file's size and depth are the point
                code, out, err = edge_cli(capsys, "reload", "--config", str(config))
                assert code == 78 and f"{config}:" in err and "unchanged" in err, err[-500:]
            assert len(journal_until(lambda: len(daemon.events("config.reload_refused")) == 3 and daemon.events("config.reload_refused"),
                                     what="every refusal journaled")) == 3
            assert not daemon.events("config.reloaded")

            house = merged(door("yard", second.b), house)  # the yard's reader and door first in their lists
            write_config(house)
            daemon.process.send_signal(signal.SIGHUP)
            (reloaded,) = journal_until(lambda: daemon.events("config.reloaded"), what="the reload on SIGHUP")
            assert reloaded.body["via"] == "signal" and reloaded.body["restart"] is False
            assert "reader:yard-reader: started" in reloaded.body["applied"]
            assert not [line for line in reloaded.body["applied"] if "hall-reader" in line], "the other reader was left alone"
            yard.present(TENANT)
            journal_until(lambda: granted_at(daemon, "yard"), what="a card granted at the added reader's door")
            hall.present(TENANT)
            journal_until(lambda: granted_at(daemon, "hall"), what="a card granted at the first reader")
            assert port_fds(daemon.process.pid, first.b) == fds

            house["readers"] = [reader for reader in house["readers"] if reader["name"] != "hall-reader"]
            house["doors"] = [{"name": "hall", "groups": ["entrances"]} if d["name"] == "hall" else d for d in house["doors"]]
            write_config(house)
            code, out, err = edge_cli(capsys, "reload", "--config", str(config))
            assert code == 0 and "reader:hall-reader: stopped" in out and "yard" not in out, err
            journal_until(lambda: not port_fds(daemon.process.pid, first.b), what="the removed reader's port closed")


def fire_doors(port: int) -> dict:
    """The front door, failing safe on the IO module at `port`, released by the fire panel's input 8."""
    return building(modbus_tcp(port, timeout_s=0.5, name="doors-bus"), {
        "devices": [modbus_device("doors-io", 1, "generic-dio8", poll_s=0.05, bus="doors-bus")],
        "doors": [{"name": "front", "groups": ["entrances"], "lock": {"device": "doors-io", "release": "release_1", "secure": "secure_1"},
                   "fail": "safe", "egress": True, "unlock_s": 0.5, "held_open_s": 30}],
        "fire_alarm": "doors-io.input_8"})


def test_a_reload_during_a_fire_keeps_the_doors_released_in_place_and_across_its_restart(write_config, capsys):
    io = SimulatedDevice(load_profile(PROFILES / "generic-dio8.yaml"), 1)
    io.set_value("input_8", True)  # the panel says fire from the start
    field = SimulatorThread([io])
    with field as modbus_port:
        doors = fire_doors(modbus_port)
        config = write_config(doors)
        with Daemon(config) as daemon:
            journal_until(lambda: daemon.events("alarm.fire_release"), what="the fire release")
            journal_until(lambda: io.value_of("relay_1"), what="the egress door released")
            journal_until(lambda: socket_ready(config), what="the control socket")

            doors["doors"][0]["held_open_s"] = 60  # was 30
            write_config(doors)
            code, out, err = edge_cli(capsys, "reload", "--config", str(config))
            assert code == 0 and "door front: in place" in out, err
            assert io.value_of("relay_1")

            doors["devices"][0]["poll_s"] = 0.1  # was 0.05
            write_config(doors)
            code, out, err = edge_cli(capsys, "reload", "--config", str(config))
            assert code == 0, err
            assert "restart: devices added or removed, or a device's profile or polling changed" in out and "restarting" in out
            starts = journal_until(lambda: [e for e in daemon.events("gateway.started") if e.body["config"] == config_digest(config)],
                                   what="the daemon back under the new config")
            assert starts[0].body["pid"] == daemon.process.pid, "the same process executed itself again"
            (stopped,) = daemon.events("gateway.stopped")
            assert stopped.body["reason"] == "config_reload"
            journal_until(lambda: socket_ready(config), what="the control socket after the restart")
            assert io.value_of("relay_1"), "the latch holds the egress door released across the restart"
            assert not daemon.events("alarm.fire_reset")
            assert daemon.process.poll() is None


def cameras(clip: Path) -> dict:
    """Two lifts' cameras on the same clip, collecting frames."""
    return building({"cameras": [{"name": f"lift-{n}-cam", "elevator": f"lift-{n}", "source": str(clip), "analysis_fps": 5,
                                  "collect": {"enabled": True, "every_s": 5, "cap_mb": 1}} for n in (1, 2)]})


def test_a_camera_changed_restarts_its_own_guard_alone(write_config, tmp_path, capsys):
    need_shared()
    clip = write_clip(tmp_path / "car.avi", [EBIKE / EMPTY_CAR] * 300, (320, 180), fps=10.0)
    lifts = cameras(clip)
    config = write_config(lifts)
    with Daemon(config) as daemon:
        def started(camera: str) -> list:
            return [e for e in daemon.events("vision.mode") if e.source == camera]

        journal_until(lambda: started("lift-1-cam") and started("lift-2-cam"), timeout_s=60, what="both guards started")
        journal_until(lambda: socket_ready(config), what="the control socket")

        lifts["cameras"][1]["analysis_fps"] = 4  # lift-2-cam's, was 5
        write_config(lifts)
        code, out, err = edge_cli(capsys, "reload", "--config", str(config))

        assert code == 0, err
        assert "camera:lift-2-cam: restarted" in out and "lift-1-cam" not in out and "restart:" not in out
        journal_until(lambda: len(started("lift-2-cam")) == 2, timeout_s=60, what="the changed camera's guard started again")
        assert len(started("lift-1-cam")) == 1, "the other camera's guard went on"
        assert daemon.process.poll() is None
