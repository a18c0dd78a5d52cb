"""Hotplug: pyudev-shaped events fed to the daemon's hotplug component (udev does not run in CI containers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.config.building import ConfigError
from edge.config.settings import UsbIdentity
from edge.hotplug import Hotplug
from edge.journal import EventQuery, Journal, read_events
from edge.hil.waiting import until, until_sync

FTDI = {"ID_VENDOR_ID": "0403", "ID_MODEL_ID": "6001", "ID_SERIAL_SHORT": "BUS1SERIAL", "ID_PATH": "pci-0000:00:14.0-usb-0:1.2:1.0"}
CH340 = {"ID_VENDOR_ID": "1a86", "ID_MODEL_ID": "7523", "ID_PATH": "pci-0000:00:14.0-usb-0:1.3:1.0"}
BUS = UsbIdentity(name="rs485-1", vendor_id="0403", product_id="6001", serial="BUS1SERIAL")
READER = UsbIdentity(name="reader-main", vendor_id="1a86", product_id="7523", usb_path="pci-0000:00:14.0-usb-0:1.3:1.0")


@dataclass
class Device:
    """The part of a pyudev.Device the hotplug component reads."""

    device_node: str
    properties: dict = field(default_factory=dict)
    action: str | None = None
    subsystem: str = "tty"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def nodes(tmp_path: Path):
    """Device nodes as files, so a link's target can be followed."""
    directory = tmp_path / "dev"
    directory.mkdir()

    def node(name: str) -> str:
        path = directory / name
        path.touch()
        return str(path)

    return node


def _run(tmp_path: Path, scenario) -> list:
    async def main():
        journal = await Journal.open(tmp_path / "journal.db")
        clock = Clock()
        hotplug = Hotplug([BUS, READER], tmp_path / "links", journal, flap_window_s=10.0, clock=clock)
        try:
            await scenario(hotplug, clock)
            await hotplug.apply()
        finally:
            await journal.close()
        return read_events(tmp_path / "journal.db", EventQuery(limit=None))

    return asyncio.run(main())


def _target(tmp_path: Path, name: str) -> str | None:
    link = tmp_path / "links" / name
    return os.readlink(link) if link.is_symlink() else None


def test_an_adapter_unplugged_and_plugged_back_on_a_new_node_is_followed(tmp_path, nodes):
    usb0, usb1, acm0 = nodes("ttyUSB0"), nodes("ttyUSB1"), nodes("ttyACM0")

    async def scenario(hotplug, clock):
        hotplug.resolve([Device(usb0, FTDI), Device(acm0, CH340), Device(nodes("ttyS0"), {})])
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") == usb0 and _target(tmp_path, "reader-main") == acm0
        hotplug.observe(Device(usb0, FTDI, action="remove"))
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") is None, "the bus's driver finds no port while it is unplugged"
        clock.now += 30
        hotplug.observe(Device(usb1, FTDI, action="add"))  # renumbered
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") == usb1
        assert _target(tmp_path, "reader-main") == acm0, "the other adapter is not touched"

    events = _run(tmp_path, scenario)
    assert [(e.kind, e.source, e.body.get("node")) for e in events] == [
        ("fault.device_removed", "rs485-1", usb0),
        ("device.arrived", "rs485-1", usb1),
    ]


def test_a_device_matching_twice_is_a_config_error_at_start_and_a_fault_at_run_time(tmp_path, nodes):
    usb0, usb1, usb2 = nodes("ttyUSB0"), nodes("ttyUSB1"), nodes("ttyUSB2")

    async def scenario(hotplug, clock):
        with pytest.raises(ConfigError) as error:
            hotplug.resolve([Device(usb0, FTDI), Device(usb1, FTDI)])
        assert "udev.rs485-1: matches 2 devices" in str(error.value) and "add serial or usb_path" in str(error.value)
        hotplug.resolve([Device(usb0, FTDI)])
        await hotplug.apply()
        hotplug.observe(Device(usb2, FTDI, action="add"))  # a twin appears while the daemon runs
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") == usb0, "the device resolved alone is kept, the twin ignored: never a guess"
        hotplug.observe(Device(usb0, FTDI, action="remove"))
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") == usb2, "with the first gone, the twin is the only match"

    events = _run(tmp_path, scenario)
    kinds = [(e.kind, e.source) for e in events]
    assert ("fault.device_ambiguous", "rs485-1") in kinds
    ambiguous = next(e for e in events if e.kind == "fault.device_ambiguous")
    assert ambiguous.body["node"] == usb0 and ambiguous.body["also"] == [usb2]
    assert ("fault.device_removed", "reader-main") in kinds, "an identity absent at start is a fault"


def test_a_flapping_adapter_is_one_fault_per_burst_and_the_link_ends_right(tmp_path, nodes):
    usb0, usb1 = nodes("ttyUSB0"), nodes("ttyUSB1")

    async def scenario(hotplug, clock):
        hotplug.resolve([Device(usb0, FTDI), Device(nodes("ttyACM0"), CH340)])
        await hotplug.apply()
        for n in range(20):  # a loose connector: 20 removals and arrivals in two seconds
            clock.now += 0.05
            hotplug.observe(Device(usb0 if n % 2 == 0 else usb1, FTDI, action="remove"))
            clock.now += 0.05
            hotplug.observe(Device(usb1 if n % 2 == 0 else usb0, FTDI, action="add"))
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") == usb0, "the link follows the last arrival"
        clock.now += 10  # the burst's window ends
        await hotplug.apply()

    events = _run(tmp_path, scenario)
    assert [(e.kind, e.source) for e in events] == [
        ("fault.device_removed", "rs485-1"), ("device.arrived", "rs485-1"), ("fault.device_flapping", "rs485-1")]
    assert events[2].body["changes"] == 38 and events[2].body["node"] == usb0


def test_events_for_devices_the_config_does_not_name_are_ignored(tmp_path, nodes):
    usb0 = nodes("ttyUSB0")

    async def scenario(hotplug, clock):
        hotplug.resolve([Device(usb0, FTDI), Device(nodes("ttyACM0"), CH340)])
        await hotplug.apply()
        hotplug.observe(Device(nodes("ttyUSB7"), {"ID_VENDOR_ID": "067b", "ID_MODEL_ID": "2303"}, action="add"))
        hotplug.observe(Device(nodes("video0"), FTDI, action="add", subsystem="video4linux"))  # same ids, other subsystem
        hotplug.observe(Device(nodes("ttyUSB7"), {}, action="remove"))
        hotplug.observe(Device(usb0, FTDI, action="change"))
        await hotplug.apply()
        assert _target(tmp_path, "rs485-1") == usb0

    assert _run(tmp_path, scenario) == []


class Monitor:
    """A pyudev.Monitor's shape: a readable fd and poll(timeout=0)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.queued: list[Device] = []
        self.started = False

    def start(self) -> None:
        self.started = True

    def fileno(self) -> int:
        return self.read_fd

    def send(self, device: Device) -> None:
        self.queued.append(device)
        os.write(self.write_fd, b"x")

    def poll(self, timeout: float = 0):
        if not self.queued:
            return None
        os.read(self.read_fd, 1)
        return self.queued.pop(0)


def test_the_worker_follows_the_monitor_and_ends_on_cancel(tmp_path, nodes):
    usb0, usb1 = nodes("ttyUSB0"), nodes("ttyUSB1")
    monitor = Monitor()

    async def scenario(hotplug, clock):
        hotplug.resolve([Device(usb0, FTDI), Device(nodes("ttyACM0"), CH340)])
        worker = asyncio.create_task(hotplug.run(monitor))
        monitor.send(Device(usb0, FTDI, action="remove"))
        monitor.send(Device(usb1, FTDI, action="add"))
        await until(lambda: _target(tmp_path, "rs485-1") == usb1, 5, "the link following the monitor's events", every_s=0.01)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        assert monitor.started and worker.cancelled()

    events = _run(tmp_path, scenario)
    assert [e.kind for e in events] == ["fault.device_removed", "device.arrived"]


def test_udev_rules_name_each_identity_under_dev_edge_with_the_services_group(write_config):
    import subprocess
    import sys

    from conftest import building

    path = write_config(building({
        "udev": [{"name": "rs485-1", "vendor_id": "0403", "product_id": "6001", "serial": "BUS1SERIAL"},
                 {"name": "elevator-cam", "subsystem": "video4linux", "usb_path": "pci-0000:00:14.0-usb-0:1.4:1.0"}],
        "buses": [{"name": "line-1", "type": "rtu", "port": "udev:rs485-1"}]}))
    result = subprocess.run([sys.executable, "-m", "edge.cli", "udev-rules", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rules = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert rules == [
        'SUBSYSTEM=="tty", ENV{ID_VENDOR_ID}=="0403", ENV{ID_MODEL_ID}=="6001", ENV{ID_SERIAL_SHORT}=="BUS1SERIAL", '
        'SYMLINK+="edge/rs485-1", GROUP="dialout", MODE="0660"',
        'SUBSYSTEM=="video4linux", ENV{ID_PATH}=="pci-0000:00:14.0-usb-0:1.4:1.0", SYMLINK+="edge/elevator-cam", GROUP="video", MODE="0660"',
    ]


def test_the_daemon_opens_a_udev_port_through_its_link_and_journals_an_absent_adapter(write_config):
    """In a container udev knows no such adapter: the daemon runs, says the adapter is absent, and the reader is offline."""
    import sqlite3
    import subprocess

    from conftest import Daemon, building

    path = write_config(building({
        "http": {"enabled": False}, "udev": [{"name": "reader-main", "vendor_id": "1a86", "product_id": "7523", "serial": "NOT-PLUGGED-IN"}],
        "readers": [{"name": "front-reader", "protocol": "em4100", "port": "udev:reader-main"}]}))
    journal = path.parent / "state" / "journal.db"
    daemon = Daemon(path, stderr=subprocess.PIPE, text=True).start()
    try:
        def reader_fault() -> bool:
            assert daemon.poll() is None, daemon.process.stderr.read()
            return bool(read_events(journal, EventQuery(kinds=("fault.reader",), limit=1)))

        # FileNotFoundError, OperationalError: the daemon is still creating the journal
        until_sync(reader_fault, 20, "a reader fault journaled", ignore=(FileNotFoundError, sqlite3.OperationalError))
        assert daemon.stop(timeout_s=10) == 0
    finally:
        daemon.kill()
    absent = read_events(journal, EventQuery(kinds=("fault.device_removed",), limit=None))
    assert [(e.source, e.body["detail"]) for e in absent] == [("reader-main", "not plugged in")]
    fault = read_events(journal, EventQuery(kinds=("fault.reader",), limit=1))[0]
    assert fault.body["reason"] == "port_missing" and str(path.parent / "state" / "dev" / "reader-main") in fault.body["detail"]


def test_doctor_judges_a_udev_port_by_the_devices_that_match_it(write_config, monkeypatch, nodes):
    from conftest import building
    from edge.config import building as building_config
    from edge.status import doctor

    path = write_config(building({
        "udev": [{"name": "rs485-1", "vendor_id": "0403", "product_id": "6001"}, {"name": "reader-main", "vendor_id": "1a86", "product_id": "7523"}],
        "buses": [{"name": "line-1", "type": "rtu", "port": "udev:rs485-1"}],
        "readers": [{"name": "front", "protocol": "em4100", "port": "udev:reader-main"}]}))
    config = building_config.load(path)
    twins = [Device(nodes("ttyUSB0"), FTDI), Device(nodes("ttyUSB1"), FTDI)]
    monkeypatch.setattr(doctor, "present_devices", lambda subsystems: twins)
    results = {r.check: r for r in doctor.check_ports(config)}
    bus, reader = results["serial port of bus line-1"], results["serial port of reader front"]
    assert not bus.passed and "2 devices match" in bus.found and "add serial or usb_path to udev.rs485-1" in bus.fix
    assert not reader.passed and "no device matches" in reader.found and "udevadm info" in reader.fix


def test_a_reader_plugged_back_in_restarts_at_once_not_at_the_supervisors_backoff(tmp_path):
    """A technician re-plugs the reader's adapter: the reader reads again right away, although
    its worker failed on the unplug and the supervisor's backoff would hold it for 30-60 s."""
    from edge.drivers.cards.observations import CardRead
    from edge.doors.settings import Reader
    from edge.events import Kind
    from edge.doors.readers import ReaderInbox, ReaderWorker
    from edge.runtime.supervisor import Backoff, Supervisor
    from edge.hil.card_sim import CardReaderSim

    card = b"\x01\x00\x12\x93\xd8"
    reader_end, gateway_end = tmp_path / "reader-end", tmp_path / "gateway-end"
    monitor = Monitor()

    def plug() -> subprocess.Popen:
        process = subprocess.Popen([shutil.which("socat"), f"pty,raw,echo=0,link={reader_end}", f"pty,raw,echo=0,link={gateway_end}"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until_sync(lambda: reader_end.exists() and gateway_end.exists(), 5, "socat's pty pair", every_s=0.01)
        return process

    def pull(process: subprocess.Popen) -> None:
        process.terminate()  # socat removes its links: the pty is gone, like an unplugged adapter's node
        process.wait()

    async def tap_until_read(inbox: ReaderInbox, timeout_s: float = 15.0) -> CardRead:
        """Present the card (again each second: bytes sent before the port opens are flushed) until it is read."""
        async def tapped() -> CardRead | None:
            with CardReaderSim(str(reader_end), "em4100") as sim:
                sim.present(card)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while not isinstance(item := await inbox.get(), CardRead):
                        pass
                    return item
            return None

        return await until(tapped, timeout_s, "the card read", every_s=0)

    def failures():
        return read_events(tmp_path / "journal.db", EventQuery(kinds=(Kind.TASK_FAILED,), limit=None))

    async def main():
        journal = await Journal.open(tmp_path / "journal.db")
        supervisor = Supervisor(journal, Backoff(initial_s=60.0, max_s=60.0))
        hotplug = Hotplug([READER], tmp_path / "links", journal,
                          on_arrival=lambda name: [supervisor.wake(w) for w in users[name]])
        link = tmp_path / "links" / READER.name
        reader = Reader(name="main", protocol="em4100", port=f"udev:{READER.name}")
        users = {READER.name: {"reader:main"}}
        inbox = ReaderInbox(asyncio.get_running_loop())
        cable = plug()
        try:
            hotplug.resolve([Device(os.path.realpath(gateway_end), CH340)])
            supervisor.start("hotplug", lambda: hotplug.run(monitor))
            supervisor.start("reader:main", ReaderWorker(reader.model_copy(update={"port": str(link)}), inbox).run)
            first = await tap_until_read(inbox)

            node = os.path.realpath(gateway_end)
            pull(cable)
            monitor.send(Device(node, CH340, action="remove"))
            await until(lambda: failures(), 15.0, "the reader's failure", every_s=0.02)
            cable = plug()
            monitor.send(Device(os.path.realpath(gateway_end), CH340, action="add"))
            await until(lambda: os.path.realpath(link) == os.path.realpath(gateway_end), 15.0, "the link to the new node", every_s=0.02)
            again = await tap_until_read(inbox)  # 15 s at most: inside the 30-60 s backoff
            restarts = supervisor.failures["reader:main"]
        finally:
            await supervisor.stop()
            pull(cable)
            await journal.close()
        return first, again, restarts

    first, again, restarts = asyncio.run(main())
    assert first.serial == card and again.serial == card
    assert restarts == 1, "one failure on the unplug, one restart on the arrival"
    waited = failures()[0].body["restart_in_s"]
    assert waited >= 30, "the backoff the arrival cut short"


def test_the_gateway_wakes_the_workers_it_runs_for_each_identity(write_config):
    """The identity-to-workers map names exactly the jobs the gateway starts on those links."""
    from conftest import building
    from edge.config import building as building_config
    from edge.gateway import Gateway
    from edge.hotplug import workers_by_identity

    path = write_config(building({
        "http": {"enabled": False},
        "udev": [{"name": "rs485-1", "vendor_id": "0403", "product_id": "6001", "serial": "NOT-PLUGGED-IN"},
                 {"name": "reader-main", "vendor_id": "1a86", "product_id": "7523", "serial": "NOT-PLUGGED-IN"},
                 {"name": "osdp-line", "vendor_id": "1a86", "product_id": "7523", "serial": "ALSO-NOT-PLUGGED-IN"}],
        "buses": [{"name": "line-1", "type": "rtu", "port": "udev:rs485-1"}],
        "devices": [{"name": "io", "bus": "line-1", "address": 1, "profile": "generic-dio8"}],
        "readers": [{"name": "front-reader", "protocol": "em4100", "port": "udev:reader-main"},
                    {"name": "lobby", "protocol": "osdp", "port": "udev:osdp-line", "osdp_address": 1, "osdp_key": {"file": "secrets/building.key"}}]}))
    config = building_config.load(path)
    users = workers_by_identity(config)

    async def assembled() -> set[str]:
        journal = await Journal.open(config.journal_path)
        try:
            return set(Gateway(config, path).assemble(journal))
        finally:
            await journal.close()

    jobs = asyncio.run(assembled())
    assert users["rs485-1"] == {"fieldbus"} and users["reader-main"] == {"reader:front-reader"}
    assert users["osdp-line"] <= jobs and len(users["osdp-line"]) == 1
    assert set().union(*users.values()) <= jobs
