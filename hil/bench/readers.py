"""Benchmark: card + PIN at a door while many serial readers run, the uplink's broker drops packets.

A PIN check (scrypt) and every reader's read loop once shared one thread pool: with six readers
a card + PIN got no decision at all. Here `edge run` (a subprocess, as systemd starts it) serves
one Wiegand keypad reader per door on socat pty pairs, with the uplink pointed at a port whose
accept queue is full (a connect hangs for its whole timeout), and taps card + PIN at each door in
turn. Prints one JSON object:

* pin_to_unlock_p50_ms / _p99_ms (1 reader): from the PIN frame written until the door's release
  coil write reaches the simulated IO module: the baseline, measured in the same run;
* pin_to_unlock_p50_ms_8_readers / _p99_ms_8_readers: the same with eight readers and doors;
* undecided_8_readers: taps with no unlock within 5 s (0 is the goal; before the runtime's own
  pools it was every one);
* p99_ratio_8_to_1: what seven more readers cost the slowest PIN (1.0 is nothing).

Run: python -m edge.hil.bench.readers [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from edge.drivers.modbus.profile import load_profile
from edge.drivers.modbus.tables import Function
from edge.config import building as building_config
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.doors.wiring import credentials_path
from edge.hil.bench.stats import percentile
from edge.hil.broker import unreachable_broker
from edge.hil.card_sim import CardReaderSim
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.pty import pty_pair

REPO = Path(__file__).resolve().parents[2]
CARD = bytes.fromhex("d41b81")  # a Wiegand-26 card
PIN = "4321"
UNDECIDED_S = 5.0


class _TimedRelays(SimulatedDevice):
    """The IO module, noting when each relay's release coil write arrives."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.released: dict[int, threading.Event] = {n: threading.Event() for n in range(8)}
        self.released_at: dict[int, float] = {}

    def write(self, function, address, values):
        if function is Function.COIL and 0 <= address < 8 and list(values) == [1]:
            self.released_at[address] = time.monotonic()
            self.released[address].set()
        return super().write(function, address, values)


def _building(folder: Path, modbus: int, broker: int, ports: list[str]) -> Path:
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "building.key").write_text(secrets.token_hex(32))
    readers = "\n".join(f"  - {{name: reader-{i}, protocol: wiegand, port: {port}, keypad: true}}" for i, port in enumerate(ports, 1))
    doors = "\n".join(f"  - {{name: door-{i}, readers: [reader-{i}], groups: [entrances], require_pin: true, unlock_s: 0.2,"
                      f" lock: {{device: io, release: release_{i}, secure: secure_{i}}}}}" for i in range(1, len(ports) + 1))
    path = folder / "building.yaml"
    path.write_text(f"""building: {{id: bench-house, timezone: Asia/Shanghai, secret: {{file: secrets/building.key}}}}
state_dir: state
http: {{enabled: false}}
buses: [{{name: box, type: tcp, host: 127.0.0.1, port: {modbus}, timeout_s: 0.5}}]
devices: [{{name: io, bus: box, address: 1, profile: generic-dio8, poll_s: 0.2}}]
readers:
{readers}
doors:
{doors}
uplink: {{enabled: true, host: 127.0.0.1, port: {broker}}}
""")
    config = building_config.load(path)
    credentials_path(config).parent.mkdir(parents=True, exist_ok=True)
    with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
        store.issue(Enrolment(serial=CARD, tenant="t-1", door_groups=frozenset({"entrances"}), valid_from=date(2024, 1, 1),
                              valid_until=date(2099, 12, 31), paid_through=date(2099, 12, 31), pin=PIN))
    return path


def _run(readers: int, rounds: int, modbus_port: int, relays: _TimedRelays, broker: int) -> tuple[list[float], int]:
    """`readers` doors, each tapped card + PIN `rounds` times; the PIN-to-unlock times and the misses."""
    latencies, missed = [], 0
    with tempfile.TemporaryDirectory(prefix="bench-readers-") as tmp, contextlib.ExitStack() as stack:
        pairs = [stack.enter_context(pty_pair()) for _ in range(readers)]
        path = _building(Path(tmp), modbus_port, broker, [pair.b for pair in pairs])
        gateway = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sims = [stack.enter_context(CardReaderSim(pair.a, "wiegand")) for pair in pairs]
            time.sleep(3.0)  # the ports open, the uplink's first connect hangs
            for _ in range(rounds):
                for door, sim in enumerate(sims):
                    relays.released[door].clear()
                    sim.present(CARD)
                    time.sleep(0.05)
                    sim.pin(PIN)
                    written = time.monotonic()
                    if relays.released[door].wait(UNDECIDED_S):
                        latencies.append((relays.released_at[door] - written) * 1000)
                    else:
                        missed += 1
                    time.sleep(0.25)  # the door's 0.2 s unlock ends before its next tap
        finally:
            gateway.terminate()
            try:
                gateway.wait(10)
            except subprocess.TimeoutExpired:
                gateway.kill()
    return latencies, missed


def _p(values: list[float], q: float) -> float | None:
    """The figure as the JSON carries it: rounded, None when no tap was decided."""
    return round(percentile(values, q), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.readers", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="card + PIN taps per door")
    args = parser.parse_args()
    relays = _TimedRelays(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    port = asyncio.run_coroutine_threadsafe(FieldSimulator([relays]).start_tcp(), loop).result(10)
    with unreachable_broker() as broker:
        one, one_missed = _run(1, args.rounds * 8, port, relays, broker)
        eight, eight_missed = _run(8, args.rounds, port, relays, broker)
    p99_one, p99_eight = _p(one, 99), _p(eight, 99)
    print(json.dumps({
        "taps_1_reader": len(one) + one_missed, "taps_8_readers": len(eight) + eight_missed,
        "pin_to_unlock_p50_ms": _p(one, 50), "pin_to_unlock_p99_ms": p99_one,
        "undecided_1_reader": one_missed,
        "pin_to_unlock_p50_ms_8_readers": _p(eight, 50), "pin_to_unlock_p99_ms_8_readers": p99_eight,
        "undecided_8_readers": eight_missed,
        "p99_ratio_8_to_1": round(p99_eight / p99_one, 2) if p99_one and p99_eight else None,
    }))


if __name__ == "__main__":
    main()
