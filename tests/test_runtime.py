"""The runtime layer under a building's load: eight serial readers, a broker that never lets the
connect through and a modem that never answers must not starve a PIN check, a reader or the fire
latch (they once shared one thread pool, which the readers' loops alone filled)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import pytest

from edge.drivers.modbus.profile import load_profile
from edge.runtime import pools
from edge.config.building import load
from edge.journal import EventQuery, read_events
from edge.hil.broker import unreachable_broker
from edge.hil.card_sim import CardReaderSim
from edge.hil.cloud import generate_keys
from edge.hil.modbus_sim import SimulatedDevice
from edge.hil.pty import pty_pair

from conftest import REPO, Daemon, building, doors_io, edge, io_lock
from access_rig import KEYPAD_TENANT, PIN, enrol
from field_rig import SimulatorThread, journal_until

pytestmark = pytest.mark.timeout(240)

READERS = 8


def points_config(write_config, building_dir: Path, modbus: int, broker: int, readers: list[str], modem: str) -> Path:
    generate_keys(building_dir)
    return write_config(building(doors_io(modbus, poll_s=0.1), {
        "readers": [{"name": f"reader-{i}", "protocol": "wiegand", "port": str(port), "keypad": True} for i, port in enumerate(readers, 1)],
        "doors": [{"name": f"door-{i}", "readers": [f"reader-{i}"], "groups": ["entrances"], "egress": True, "require_pin": True, "unlock_s": 0.3,
                   "lock": io_lock(i)} for i in range(1, len(readers) + 1)],
        "fire_alarm": "doors-io.input_8",
        "uplink": {"enabled": True, "host": "127.0.0.1", "port": broker, "cloud_public_key": "cloud.pub"},
        "community": {"contacts": [{"name": "landlord", "role": "landlord", "phone": "+8613800000001"}],
                      "modem": {"port": str(modem), "baud": 115200, "timeout_s": 5.0, "retries": 3, "delivery_within_s": 10}}}))


def test_eight_readers_a_dead_broker_and_a_silent_modem_starve_no_pin_reader_or_fire_latch(write_config, building_dir: Path):
    io = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
    with contextlib.ExitStack() as stack:
        pairs = [stack.enter_context(pty_pair()) for _ in range(READERS)]
        modem = stack.enter_context(pty_pair())  # nothing ever answers on modem.a
        modbus = stack.enter_context(SimulatorThread([io]))
        broker = stack.enter_context(unreachable_broker())
        path = points_config(write_config, building_dir, modbus, broker, [pair.b for pair in pairs], modem.b)
        config = load(path)
        enrol(config, KEYPAD_TENANT, pin=PIN)
        journal = config.journal_path

        def decisions() -> list:
            return read_events(journal, EventQuery(kinds=("access.decision",), limit=None)) if journal.exists() else []

        with Daemon(path, stop_s=15) as daemon:
            journal_until(lambda: io.value_of("relay_1") is False and len(decisions()) == 0 and journal.exists(), 30)
            time.sleep(1.0)  # every reader's port opened, the uplink's first connect hanging
            for i, pair in enumerate(pairs, 1):
                with CardReaderSim(pair.a, "wiegand") as reader:
                    reader.present(KEYPAD_TENANT)
                    reader.pin(PIN)
                    journal_until(lambda: len(decisions()) >= i, 10)
            at_doors = {e.body["door"]: e.body["reason"] for e in decisions()}

            io.set_value("input_8", True)  # the fire panel
            journal_until(lambda: read_events(journal, EventQuery(kinds=("alarm.fire_release",))), 10)
            journal_until(lambda: (config.state_path / "fire-latch.json").exists(), 10)
            released = read_events(journal, EventQuery(kinds=("alarm.fire_release",)))[0]
            reset = edge("fire", "reset", "--operator", "tech-7", "--config", str(path), timeout_s=60)

            daemon.stop(signal.SIGKILL)
            io.set_value("input_8", False)
            for i in range(1, READERS + 1):
                io.set_value(f"relay_{i}", False)  # the module lost power with the gateway
            daemon.start()
            journal_until(lambda: len(read_events(journal, EventQuery(kinds=("alarm.fire_release",), limit=None))) >= 2, 30)
            journal_until(lambda: all(io.value_of(f"relay_{i}") for i in range(1, READERS + 1)), 10)
            again = read_events(journal, EventQuery(kinds=("alarm.fire_release",), limit=None))[-1]
    assert at_doors == {f"door-{i}": "granted" for i in range(1, READERS + 1)}, "every reader opened, every PIN decided"
    assert released.body["latch_saved"] is True
    assert reset.returncode == 1 and "still reads active" in reset.stderr, (reset.returncode, reset.stderr)
    assert again.body["restored"] is True, "the fire state survived a SIGKILL"


def test_a_job_that_waits_past_its_pools_patience_is_named():
    """The access pool's two threads held by slow calls: a third call waits, and `starving` says so."""
    async def scenario():
        loop = asyncio.get_running_loop()
        hold = [pools.call(pools.Pool.ACCESS, time.sleep, 1.2) for _ in range(pools.SIZES[pools.Pool.ACCESS].threads)]
        waiting = asyncio.gather(*hold, pools.call(pools.Pool.ACCESS, lambda: None))
        await asyncio.sleep(0.8)
        while_waiting = pools.starving()
        await waiting
        return while_waiting, pools.starving(), pools.starving(loop.time() + pools.STARVED_KEEP_S + 1)

    while_waiting, after, much_later = asyncio.run(scenario())
    assert len(while_waiting) == 1 and while_waiting[0].startswith("access work has waited")
    assert after and after[0].startswith("access work waited")
    assert much_later == []


def test_a_serial_loop_runs_on_a_thread_of_its_own_not_a_pool():
    async def scenario():
        import threading

        stop = threading.Event()
        names = []

        def loop_forever() -> str:
            names.append(threading.current_thread().name)
            stop.wait(5)
            return "ended"

        running = [pools.in_thread(f"reader-{i}", loop_forever) for i in range(8)]
        answer = await pools.call(pools.Pool.ACCESS, lambda: threading.current_thread().name)
        stop.set()
        return names, answer, await asyncio.gather(*running)

    names, answer, ended = asyncio.run(scenario())
    assert sorted(names) == sorted(f"edge-reader-{i}" for i in range(8))
    assert answer.startswith("edge-access") and ended == ["ended"] * 8
