"""OSDP readers end to end: libosdp CP (the gateway) and PD (the simulator) over real ptys."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import osdp
import osdp.control_panel
import pytest

from edge.drivers.cards.observations import CardRead, FaultReason, PinEntry, ReaderFault, ReaderRestored
from edge.drivers.osdp.bus import OsdpBus, OsdpReader
from edge.drivers.osdp.keys import KeyFileError, generate_key_file, load_key
from edge.hil.line import SerialLine
from edge.hil.osdp_pd import SimulatedOsdpReader
from edge.hil.pty import pty_pair
from edge.hil.waiting import until

pytestmark = pytest.mark.timeout(60)
BAUD = 115200


def _key(tmp_path: Path, name: str = "front") -> Path:
    path = tmp_path / f"{name}.key"
    generate_key_file(path)
    return path


async def _next(bus: OsdpBus, kind: type, timeout: float = 8.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        item = await asyncio.wait_for(bus.observations.get(), max(0.01, deadline - time.monotonic()))
        if isinstance(item, kind):
            return item


async def _online(bus: OsdpBus, reader: str = "front", timeout: float = 8.0) -> None:
    await until(lambda: bus.is_online(reader), timeout, "reader online", every_s=0.02)


@contextlib.asynccontextmanager
async def _front_reader(key_file: Path) -> AsyncIterator[tuple[SimulatedOsdpReader, OsdpBus]]:
    """The front reader (a simulated PD at address 1, its key in `key_file`) on a socat pty pair and the
    gateway's OSDP bus to it, once it is online; both closed on the way out."""
    with pty_pair() as (gateway, device), SimulatedOsdpReader(device, BAUD, 1, load_key(key_file)) as pd:
        async with OsdpBus(gateway, BAUD, [OsdpReader("front", 1, key_file)]) as bus:
            await _online(bus)
            yield pd, bus


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_card_read_arrives_with_secure_channel_and_grant_lights_the_reader(tmp_path: Path) -> None:
    key_file = _key(tmp_path)

    async def scenario() -> None:
        async with _front_reader(key_file) as (pd, bus):
            assert pd.secure
            pd.tap(0xD41B81)
            read = await _next(bus, CardRead)
            assert isinstance(read, CardRead) and read.serial == bytes.fromhex("D41B81")
            before = len(pd.commands())
            assert bus.grant("front") and bus.set_output("front", 0, True, 500)
            led = pd.wait_command(osdp.Command.LED, before)
            buzzer = pd.wait_command(osdp.Command.Buzzer, before)
            output = pd.wait_command(osdp.Command.Output, before)
            assert led and led.command["on_color"] == osdp.CommandLEDColor.Green
            assert buzzer and buzzer.command["rep_count"] == 1
            assert output and output.command["output_no"] == 0 and output.command["timer_count"] == 5
            assert bus.deny("front")
            red = pd.wait_command(osdp.Command.LED, before + 3)
            assert red and red.command["on_color"] == osdp.CommandLEDColor.Red

    _run(scenario)


def test_paced_line_carries_card_keypad_and_tamper(tmp_path: Path) -> None:
    key_file = _key(tmp_path)

    async def scenario() -> None:
        with SerialLine(baud=BAUD) as line, SimulatedOsdpReader(line.device_port, BAUD, 3, load_key(key_file)) as pd:
            async with OsdpBus(line.gateway_port, BAUD, [OsdpReader("front", 3, key_file)]) as bus:
                await _online(bus)
                pd.tap(0x000001)
                assert isinstance(await _next(bus, CardRead), CardRead)
                pd.keys("4711#")
                pin = await _next(bus, PinEntry)
                assert isinstance(pin, PinEntry) and pin.pin == "4711"
                pd.tamper(True)
                fault = await _next(bus, ReaderFault)
                assert isinstance(fault, ReaderFault) and fault.reason is FaultReason.TAMPER
                pd.tamper(False)
                restored = await _next(bus, ReaderRestored)
                assert isinstance(restored, ReaderRestored) and restored.reason is FaultReason.TAMPER
                assert bus.drop_counts() == {}

    _run(scenario)


def test_wrong_key_gives_no_session_and_a_secure_channel_fault(tmp_path: Path) -> None:
    key_file = _key(tmp_path)
    wrong = load_key(_key(tmp_path, "other"))

    async def scenario() -> None:
        with pty_pair() as (gateway, device), SimulatedOsdpReader(device, BAUD, 1, wrong) as pd:
            async with OsdpBus(gateway, BAUD, [OsdpReader("front", 1, key_file)]) as bus:
                fault = await _next(bus, ReaderFault)
                assert isinstance(fault, ReaderFault) and fault.reason is FaultReason.SECURE_CHANNEL
                pd.tap(0x000001)
                await asyncio.sleep(0.5)
                assert not bus.is_online("front") and not pd.secure
                assert all(not isinstance(o, CardRead) for o in _drain(bus))

    _run(scenario)


def test_silent_reader_is_an_offline_fault_then_comes_back(tmp_path: Path) -> None:
    key_file = _key(tmp_path)

    async def scenario() -> None:
        async with _front_reader(key_file) as (pd, bus):
            pd.go_silent()
            fault = await _next(bus, ReaderFault)
            assert isinstance(fault, ReaderFault) and fault.reason is FaultReason.OFFLINE
            pd.resume()
            back = await _next(bus, ReaderRestored)
            assert isinstance(back, ReaderRestored) and back.reason is FaultReason.OFFLINE
            pd.tap(0x000002)
            assert isinstance(await _next(bus, CardRead), CardRead)

    _run(scenario)


class RecordingLock:
    """libosdp's CP lock, noting which threads take it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.takers: set[int] = set()

    def acquire(self, *args: object, **kwargs: object) -> bool:
        self.takers.add(threading.get_ident())
        return self._lock.acquire(*args, **kwargs)  # type: ignore[arg-type]

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> RecordingLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _LateControlPanel:
    """libosdp's CP as the link checks see it, with one behaviour of the real one made certain: a
    disable or enable lands only on a later refresh (seen over 50 ms late on a busy CPU), and an
    enable of a reader still enabled is refused."""

    def __init__(self) -> None:
        self.enabled, self.pending, self.answers = True, None, True

    def status(self) -> int:
        return int(self.enabled and self.answers)

    sc_status = status

    def is_pd_enabled(self, index: int) -> bool:
        return self.enabled

    def disable_pd(self, index: int) -> bool:
        self.pending = False
        return True

    def enable_pd(self, index: int) -> bool:
        if self.enabled:
            return False
        self.pending = True
        return True

    def refresh(self) -> None:
        if self.pending is not None:
            self.enabled, self.pending = self.pending, None


def test_a_disable_that_lands_late_never_leaves_a_returning_reader_off(tmp_path: Path) -> None:
    """Found under load: the bus re-enabled a silent reader before libosdp had applied its disable;
    the enable was refused, the disable landed, and the reader that came back stayed off until a
    SECURE_CHANNEL fault ('wrong key?') 6 s later."""
    key_file = _key(tmp_path)
    with pty_pair() as (gateway, _device):
        bus = OsdpBus(gateway, BAUD, [OsdpReader("front", 1, key_file)])
        try:
            reports: list[object] = []
            bus._report = reports.append  # type: ignore[method-assign]
            ctx = _LateControlPanel()
            bus._channel.last_reply[1] = 0.0
            bus._check_links(ctx, 0.0)  # a session: up
            ctx.answers = False
            bus._check_links(ctx, 1.5)  # silent for 1.5 s: an offline fault, and a disable asked for
            assert [type(r) for r in reports] == [ReaderFault] and reports[0].reason is FaultReason.OFFLINE
            bus._check_links(ctx, 1.55)  # before libosdp applied the disable
            ctx.refresh()
            ctx.answers = True
            bus._channel.last_reply[1] = 1.58  # the reader is back
            now = 1.6
            while not any(isinstance(r, ReaderRestored) for r in reports) and now < 10:
                bus._check_links(ctx, now)
                ctx.refresh()
                bus._channel.last_reply[1] = now
                now = round(now + 0.05, 2)
            assert [type(r) for r in reports] == [ReaderFault, ReaderRestored], reports
            assert reports[1].reason is FaultReason.OFFLINE and now < 2.0, (reports, now)
        finally:
            bus._channel.close()


def test_link_checks_never_take_libosdp_s_lock_on_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = _key(tmp_path)
    locks: list[RecordingLock] = []

    def new_lock() -> RecordingLock:
        locks.append(RecordingLock())
        return locks[-1]

    monkeypatch.setattr(osdp.control_panel, "threading", types.SimpleNamespace(
        Lock=new_lock, Event=threading.Event, Thread=threading.Thread))

    async def scenario() -> None:
        async with _front_reader(key_file) as (pd, bus):
            pd.go_silent()
            assert isinstance(await _next(bus, ReaderFault), ReaderFault)
            pd.resume()  # the checks disable and re-enable the reader until it answers
            assert isinstance(await _next(bus, ReaderRestored), ReaderRestored)
            bus.check()

    loop_thread = threading.get_ident()
    _run(scenario)
    [cp_lock] = [lock for lock in locks if lock.takers]
    assert cp_lock.takers and loop_thread not in cp_lock.takers, "the loop never waits on libosdp's lock"


def test_key_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("not hex")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="32 hex digits"):
        load_key(path)
    good = _key(tmp_path)
    good.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        load_key(good)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key(tmp_path / "missing.key")


def _drain(bus: OsdpBus) -> list[object]:
    items = []
    while not bus.observations.empty():
        items.append(bus.observations.get_nowait())
    return items


class _Steps:
    """A stand-in for libosdp's context, the stop flag, the wake-up and the channel of `refresh_often`:
    it records whether each refresh came at once or after a wait (no clock involved)."""

    def __init__(self, frame_on: set[int], woken_on: set[int], refreshes: int) -> None:
        self.log: list[str] = []
        self.frames_received = 0
        self._frame_on, self._woken_on, self._refreshes = frame_on, woken_on, refreshes

    def refresh(self) -> None:  # libosdp's refresh: reads a frame on the given calls
        self.log.append("refresh")
        if self.log.count("refresh") in self._frame_on:
            self.frames_received += 1

    def is_set(self) -> bool:  # the stop flag
        return self.log.count("refresh") >= self._refreshes

    def wait(self, timeout: float) -> bool:  # the wake-up: set (a command queued) on the given waits
        self.log.append("wait")
        return self.log.count("wait") in self._woken_on

    def clear(self) -> None:
        pass


def test_libosdp_takes_its_next_steps_at_once_after_a_frame_and_after_a_queued_command() -> None:
    """libosdp moves one step per refresh (a reply read; the next command taken from the queue; that
    command written): after a frame, and once the loop queued a command, the refresh thread runs
    those steps back to back instead of waiting between each."""
    from edge.drivers.osdp.bus import refresh_often

    steps = _Steps(frame_on={1}, woken_on={2}, refreshes=7)
    refresh_often(steps, threading.Lock(), steps, channel=steps, wake=steps)  # type: ignore[arg-type]
    assert steps.log == [
        "refresh", "refresh", "refresh",  # a frame read: two more at once
        "wait", "refresh",  # nothing to do: wait for the period
        "wait", "refresh", "refresh",  # woken by a queued command: taken, then written
        "wait", "refresh", "wait",
    ], steps.log
