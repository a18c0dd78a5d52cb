"""Benchmark: tap-to-unlock through the whole access path, pure decisions, and a 10k import.

Prints one JSON object:
* tap_to_unlock_p50_ms / _p99_ms: from the moment the last byte of an EM4100 frame is
  written into a paced `SerialLine` (9600 8N1) until the release coil write reaches the
  simulated IO module (pymodbus server on loopback TCP, in this process's thread),
  through `edge run` (a subprocess, as systemd starts it: reader worker, access path,
  journal, field bus), against 10,000 enrolled
  credentials, with every core kept busy by a separate load process.
* frame_wire_ms: the frame's own wire time at that baud (the baseline: p99 minus it is
  what the gateway adds; target at most 20 ms).
* osdp_tap_to_output_p99_ms (and _p50_ms): an OSDP reader (libosdp PD, `edge.hil.osdp_pd`) on a
  paced 115200 baud line, Secure Channel on, driven by its own `edge run` under the same
  load: from the card event submitted at the reader to the grant indication (the LED
  command, the gateway's answer to the card) arriving back at it, through the whole path
  (OsdpBus, inbox, decide, unlock, indication).
* tap_to_unlock_watched_p50_ms / _p99_ms: the same taps on a fresh `edge run` with two
  status page streams attached (`edge.hil.bench.page_watchers`, its own process, as browsers
  are); page_messages says the streams were live. The page must not move these numbers.
* decisions_per_s: pure `decide` calls (granting path, no PIN) per second.
* import_10k_rows_s: `import_cards` (edge.doors.credentials.card_import) of a 10,000-row CSV.

Run: python -m edge.hil.bench.access [--taps 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import osdp

from edge.drivers.cards.em4100 import encode_frame
from edge.drivers.cards.framing import Framing
from edge.drivers.modbus.profile import load_profile
from edge.drivers.modbus.tables import Function
from edge.drivers.osdp.keys import generate_key_file, load_key
from edge.config import building as building_config
from edge.doors.clock import TrustedTime
from edge.doors.credentials.card_import import import_cards
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.doors.decision import decide
from edge.doors.policy import DoorPolicy, DoorState
from edge.doors.wiring import credentials_path
from edge.hil.bench.stats import percentile
from edge.hil.line import SerialLine
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.osdp_pd import SimulatedOsdpReader

REPO = Path(__file__).resolve().parents[2]
ENROLLED = 10_000
OSDP_BAUD = 115200
OSDP_CARD = 0x123456  # the 24-bit number a Wiegand-26 read carries; its serial is these three bytes
OSDP_TAPS = 300
OSDP_PAUSE_S = (0.01, 0.08)  # random, as in edge.hil.bench.osdp: a fixed pause lands every tap at one point of libosdp's poll wait
LOAD = "import multiprocessing as m\ndef spin():\n    while True: pass\nif __name__ == '__main__':\n    ps=[m.Process(target=spin) for _ in range(m.cpu_count())]\n    [p.start() for p in ps]; [p.join() for p in ps]\n"


def card_serial(n: int) -> bytes:
    """The EM4100 serial of enrolled card `n` (0 to ENROLLED - 1): what a tap sends and the import enrols."""
    return bytes([0x01]) + n.to_bytes(4, "big")


class TimedIO(SimulatedDevice):
    """The IO module, noting when each release coil write arrives (`released`, `released_at`); the
    vision benchmark times its taps with it too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.released = threading.Event()
        self.released_at = 0.0

    def write(self, function, address, values):
        if function is Function.COIL and address == 0 and list(values) == [1]:
            self.released_at = time.monotonic()
            self.released.set()
        return super().write(function, address, values)


def start_simulator(io: SimulatedDevice) -> tuple[int, asyncio.AbstractEventLoop]:
    """`io` served over Modbus TCP from a loop on a thread of its own (stop it with `loop.stop`); its port and loop."""
    loop = asyncio.new_event_loop()
    simulator = FieldSimulator([io])
    threading.Thread(target=loop.run_forever, daemon=True).start()
    port = asyncio.run_coroutine_threadsafe(simulator.start_tcp(), loop).result(10)
    return port, loop


def write_import(path: Path, count: int) -> None:
    """A credential import of `count` tenants' cards (`card_serial(0)` on), valid for the entrances until 2099."""
    lines = ["serial,tenant,valid_from,valid_until,paid_through,door_groups"]
    lines += [f"{card_serial(n).hex()},t-{n},2024-01-01,2099-12-31,2099-12-31,entrances" for n in range(count)]
    path.write_text("\n".join(lines) + "\n")


def _enrol_osdp_card(config: building_config.BuildingConfig) -> None:
    credentials_path(config).parent.mkdir(parents=True)
    with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
        store.issue(Enrolment(serial=OSDP_CARD.to_bytes(3, "big"), tenant="t-osdp", door_groups=frozenset({"entrances"}),
                              valid_from=date(2024, 1, 1), valid_until=date(2099, 12, 31),
                              paid_through=date(2099, 12, 31)))


def _decisions_per_s(store: CredentialStore) -> float:
    credentials = store.list()
    policy = DoorPolicy("front", ZoneInfo("Asia/Shanghai"), frozenset({"entrances"}))
    now = TrustedTime(datetime.now(UTC))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        for credential in credentials:
            decide(credential, policy, "front-reader", now, DoorState.secured)
        count += len(credentials)
    return count / (time.perf_counter() - started)


def start_gateway(config_path: Path) -> subprocess.Popen:
    """`edge run` as systemd would start it."""
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _osdp_taps(config_path: Path, line: SerialLine, key: bytes, taps: int) -> list[float]:
    """An OSDP reader on its own `edge run`: tap, and time until the grant LED command arrives."""
    gateway = start_gateway(config_path)
    latencies: list[float] = []
    pauses = random.Random(0)
    try:
        with SimulatedOsdpReader(line.device_port, OSDP_BAUD, 1, key) as pd:
            deadline = time.monotonic() + 30
            while not pd.secure:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise RuntimeError("the gateway did not open a secure channel to the OSDP reader within 30 s")
                time.sleep(0.05)
            time.sleep(1.0)
            for _ in range(taps):
                before = len(pd.commands())
                tapped = time.monotonic()
                pd.tap(OSDP_CARD)
                shown = pd.wait_command(osdp.Command.LED, before, 2.0)
                if shown is not None:
                    latencies.append((shown.received_mono - tapped) * 1000)
                pd.wait_command(osdp.Command.Buzzer, before, 2.0)  # the rest of the answer, before the next tap
                time.sleep(pauses.uniform(*OSDP_PAUSE_S))
    finally:
        gateway.terminate()
        gateway.wait(10)
    return latencies


def page_watchers(state_dir: Path, count: int) -> subprocess.Popen:
    """`count` status page streams on the running gateway, from a process of their own."""
    endpoint = state_dir / "http.json"
    deadline = time.monotonic() + 30
    while True:
        try:
            url = json.loads(endpoint.read_text())["url"]
            break
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not announce its status server within 30 s") from None
            time.sleep(0.05)
    return subprocess.Popen([sys.executable, "-m", "edge.hil.bench.page_watchers", url, str(count)], stdout=subprocess.PIPE, text=True)


def _taps(config_path: Path, io: TimedIO, line: SerialLine, taps: int, watchers: int = 0, seen: dict | None = None) -> list[float]:
    """Run `edge run`, then tap cards one after another and time each unlock."""
    gateway = start_gateway(config_path)
    latencies: list[float] = []
    fd = os.open(line.device_port, os.O_WRONLY | os.O_NOCTTY)
    page = None
    try:
        deadline = time.monotonic() + 30
        io.released.clear()
        while not io.released.is_set():  # warm-up: tap until the gateway answers
            if time.monotonic() > deadline or gateway.poll() is not None:
                raise RuntimeError("the gateway did not unlock the door within 30 s of starting")
            os.write(fd, encode_frame(card_serial(ENROLLED - 1)))
            io.released.wait(0.5)
        if watchers:
            page = page_watchers(config_path.parent / "state", watchers)
        time.sleep(1.0)
        for n in range(taps):
            io.released.clear()
            os.write(fd, encode_frame(card_serial(n % (ENROLLED - 1))))
            written = time.monotonic()
            if io.released.wait(2.0):
                latencies.append((io.released_at - written) * 1000)
            time.sleep(0.01)
    finally:
        os.close(fd)
        if page is not None:
            page.terminate()
            out, _ = page.communicate(timeout=10)
            if seen is not None and out.strip():
                seen.update(json.loads(out.strip().splitlines()[-1]))
        gateway.terminate()
        gateway.wait(10)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.access", description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=2000)
    args = parser.parse_args(argv)
    sys.setswitchinterval(0.0005)  # this process is the rig (line, IO module, tapper): keep its threads prompt
    with (
        tempfile.TemporaryDirectory(prefix="bench-access-") as tmp,
        SerialLine(baud=9600, framing="8N1") as line,
        SerialLine(baud=OSDP_BAUD, framing="8N1") as osdp_line,
    ):
        base = Path(tmp)
        (base / "secret.key").write_text("bench-" + "0" * 40)
        (base / "profiles").symlink_to(REPO / "drivers" / "modbus" / "profiles")
        io = TimedIO(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
        port, sim_loop = start_simulator(io)
        (base / "building.yaml").write_text(f"""
building: {{id: bench, timezone: Asia/Shanghai, secret: {{file: secret.key}}}}
state_dir: state
logging: {{level: warning}}
http: {{port: 0}}
buses: [{{name: doors-bus, type: tcp, host: 127.0.0.1, port: {port}}}]
devices: [{{name: doors-io, bus: doors-bus, address: 1, profile: generic-dio8}}]
readers: [{{name: front-reader, protocol: em4100, port: {line.gateway_port}}}]
doors:
  - {{name: front, readers: [front-reader], groups: [entrances], lock: {{device: doors-io, release: release_1, secure: secure_1}}}}
""")
        generate_key_file(base / "osdp.key")
        osdp_config = base / "osdp-building.yaml"
        osdp_config.write_text(f"""
building: {{id: bench, timezone: Asia/Shanghai, secret: {{file: secret.key}}}}
state_dir: state-osdp
logging: {{level: warning}}
http: {{port: 0}}
buses: [{{name: doors-bus, type: tcp, host: 127.0.0.1, port: {port}}}]
devices: [{{name: doors-io, bus: doors-bus, address: 1, profile: generic-dio8}}]
readers: [{{name: side-reader, protocol: osdp, port: {osdp_line.gateway_port}, baud: {OSDP_BAUD}, osdp_address: 1, osdp_key: {{file: osdp.key}}}}]
doors:
  - {{name: side, readers: [side-reader], groups: [entrances], lock: {{device: doors-io, release: release_2, secure: secure_2}}}}
""")
        config = building_config.load(base / "building.yaml")
        _enrol_osdp_card(building_config.load(osdp_config))
        credentials_path(config).parent.mkdir(parents=True)
        write_import(base / "tenants.csv", ENROLLED)
        with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
            started = time.perf_counter()
            report = import_cards(store, base / "tenants.csv")
            import_s = time.perf_counter() - started
            assert report.imported == ENROLLED and not report.errors, report.errors[:3]
            decisions = _decisions_per_s(store)
        # Its own process group: terminating only the parent would leave its spinners running
        # (and every later run would measure against more busy processes than cores).
        load = subprocess.Popen([sys.executable, "-c", LOAD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            time.sleep(0.5)
            latencies = _taps(base / "building.yaml", io, line, args.taps)
            page: dict = {}
            watched = _taps(base / "building.yaml", io, line, args.taps, watchers=2, seen=page)
            osdp_latencies = _osdp_taps(osdp_config, osdp_line, load_key(base / "osdp.key"), OSDP_TAPS)
        finally:
            os.killpg(load.pid, signal.SIGTERM)
            load.wait()
            sim_loop.call_soon_threadsafe(sim_loop.stop)
    result = {
        "tap_to_unlock_p50_ms": round(percentile(latencies, 50), 2),
        "tap_to_unlock_p99_ms": round(percentile(latencies, 99), 2),
        "frame_wire_ms": round(14 * Framing.parse("8N1").char_time(9600) * 1000, 2),
        "tap_to_unlock_watched_p50_ms": round(percentile(watched, 50), 2),
        "tap_to_unlock_watched_p99_ms": round(percentile(watched, 99), 2),
        "page_watchers": page.get("watchers", 0),
        "page_messages": page.get("messages", 0),
        "osdp_tap_to_output_p99_ms": round(percentile(osdp_latencies, 99), 2),
        "osdp_tap_to_output_p50_ms": round(percentile(osdp_latencies, 50), 2),
        "decisions_per_s": round(decisions),
        "import_10k_rows_s": round(import_s, 3),
        "taps": args.taps,
        "taps_unlocked": len(latencies),
        "taps_unlocked_watched": len(watched),
        "enrolled": ENROLLED,
        "osdp_taps": OSDP_TAPS,
        "osdp_taps_shown": len(osdp_latencies),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
