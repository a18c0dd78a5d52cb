"""Benchmark: Modbus polling of a building of 30 RTU devices on 3 buses and 20 TCP devices.

Prints one JSON object. Every ratio has its baseline measured in the same run:
- transactions per poll cycle with coalescing, against one request per point;
- poll cycles of the Poller on the 20 TCP devices against a raw pymodbus loop (one client
  task per device, as the poller has one task per TCP bus) reading the same blocks from the
  same simulators, which run in a child process; windows alternate. `cycles_per_s` and
  `raw_cycles_per_s` are per second of the gateway process's CPU (the simulators, not the
  client, limit the wall-clock rate, shown as `wall_cycles_per_s`, `raw_wall_cycles_per_s`);
- transactions per second on a paced RTU line (edge.hil.line.SerialLine, 8E1: 11 bits a
  character) against the wire-time limit of those same transactions (both frames plus the
  3.5-character gap before the next request, 1.75 ms above 19200 baud as the Modbus spec
  fixes it; the simulator answers without a turnaround gap, so none is counted);
- the slow-down of the 9 healthy devices of a bus when a 10th is dead, against the same 9 alone;
- the time from a value change in the simulator to the durable alarm event, with a rule
  duration of zero and the device polled every 100 ms (so the poll interval is in it).

Run: python -m edge.hil.bench.modbus [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import structlog
from pymodbus.client import AsyncModbusTcpClient

from edge.drivers.modbus.plan import Read, plan_reads
from edge.drivers.modbus.device import DeviceSpec
from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.wire import SerialLink, TcpLink, read_request
from edge.drivers.modbus.profile import Profile, load_profile
from edge.config import building as building_config
from edge.config.building import device_profiles
from edge.power.points import FieldPoints
from edge.fieldbus.devices import FieldBus, device_specs
from edge.journal import Journal
from edge.hil.bench.stats import percentile
from edge.hil.line import SerialLine
from edge.hil.modbus_sim import Fault, FaultPlan, FieldSimulator, SimulatedDevice

REPO = Path(__file__).resolve().parents[2]
PROFILES = {p.stem: load_profile(p) for p in sorted((REPO / "drivers" / "modbus" / "profiles").glob("*.yaml"))}
# A floor box bus: monitors and breakers, plus the water sensors; every shipped profile appears.
RTU_BUS = ["generic-efm8", "generic-breaker"] * 3 + ["generic-ai8", "generic-ai8-int", "generic-pt485", "generic-level"]
TCP_DEVICES = list(itertools.islice(itertools.cycle(sorted(PROFILES)), 20))


def _reads(profile: Profile) -> list[Read]:
    return plan_reads(profile.points, max_registers=profile.max_registers_per_read,
                      max_bits=profile.max_bits_per_read, max_gap=profile.max_gap)


def _eager(profile: Profile) -> Profile:
    """The profile polled as fast as the wire allows: every point due every cycle."""
    points = [p.model_copy(update={"interval_s": None}) for p in profile.points]
    return profile.model_copy(update={"interval_s": 1e-4, "points": points})


def _simulated(names: list[str]) -> list[SimulatedDevice]:
    return [SimulatedDevice(PROFILES[name], unit) for unit, name in enumerate(names, start=1)]


async def _ignore(observation) -> None:
    return None


async def _poll_for(specs: list[DeviceSpec], seconds: float, warm_up_s: float = 0.3) -> dict[str, int]:
    """Answers per device over `seconds`, after a warm-up."""
    poller = Poller(specs, _ignore)
    running = asyncio.create_task(poller.run())
    await asyncio.sleep(warm_up_s)
    before = {name: c.answers for name, c in poller.counters.items()}
    await asyncio.sleep(seconds)
    after = {name: c.answers for name, c in poller.counters.items()}
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    return {name: after[name] - before[name] for name in after}


def _serve_tcp_simulators(conn: Connection) -> None:
    """In a child process: the 20 TCP simulators, their ports sent back, served until told to stop.

    Apart from the gateway's process so that the pymodbus servers do not share its event loop
    and CPU: the measurement is of the poller against the raw client, not of the simulators.
    """

    async def serve() -> None:
        simulators = [FieldSimulator(_simulated([name])) for name in TCP_DEVICES]
        conn.send([await simulator.start_tcp() for simulator in simulators])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        for simulator in simulators:
            await simulator.stop()

    logging.disable(logging.CRITICAL)  # pymodbus's complaints as clients hang up
    asyncio.run(serve())


async def _raw_for(ports: list[int], seconds: float) -> int:
    """Transactions of one raw pymodbus client per device in a tight loop, as concurrent as the poller."""
    counts = [0] * len(ports)
    clients = [AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) for port in ports]
    for client in clients:
        await client.connect()
    stop = time.perf_counter() + seconds

    async def loop(index: int, client: AsyncModbusTcpClient, reads: list[Read]) -> None:
        while time.perf_counter() < stop:
            for read in reads:
                await read_request(client, read, 1)
                counts[index] += 1

    await asyncio.gather(*(loop(i, client, _reads(PROFILES[name]))
                           for i, (client, name) in enumerate(zip(clients, TCP_DEVICES))))
    for client in clients:
        client.close()
    return sum(counts)


async def _tcp_throughput(seconds: float, rounds: int = 3) -> dict[str, float]:
    """Poll cycles over the 20 TCP devices, the Poller against a raw pymodbus loop.

    Windows alternate (poller, raw, poller, raw...) so a change in the machine's load falls on
    both. Per second of wall time the shared simulator process is the limit for both; per
    second of the gateway process's CPU (`cycles_per_s`) is what the scheduler costs.
    """
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_serve_tcp_simulators, args=(theirs,), daemon=True)
    child.start()
    per_cycle = sum(len(_reads(PROFILES[name])) for name in TCP_DEVICES)
    totals = {"poller": [0, 0.0, 0.0], "raw": [0, 0.0, 0.0]}  # transactions, wall s, cpu s
    try:
        ports = await asyncio.get_running_loop().run_in_executor(None, ours.recv)
        specs = [DeviceSpec(f"tcp-{i}", _eager(PROFILES[name]), TcpLink("127.0.0.1", port), unit_id=1)
                 for i, (name, port) in enumerate(zip(TCP_DEVICES, ports))]
        window = seconds / rounds
        await _raw_for(ports, 0.3)  # warm the simulators' connections up
        for _ in range(rounds):
            for name in ("poller", "raw"):
                wall, cpu = time.perf_counter(), time.process_time()
                if name == "poller":
                    done = sum((await _poll_for(specs, window, warm_up_s=0.0)).values())
                else:
                    done = await _raw_for(ports, window)
                total = totals[name]
                total[0] += done
                total[1] += time.perf_counter() - wall
                total[2] += time.process_time() - cpu
    finally:
        ours.send("stop")
        child.join(5)
        if child.is_alive():
            child.kill()
    poller, raw = totals["poller"], totals["raw"]
    return {
        "cycles_per_s": poller[0] / per_cycle / poller[2],
        "raw_cycles_per_s": raw[0] / per_cycle / raw[2],
        "wall_cycles_per_s": poller[0] / per_cycle / poller[1],
        "raw_wall_cycles_per_s": raw[0] / per_cycle / raw[1],
    }


def _frame_bytes(read: Read) -> tuple[int, int]:
    """(request, response) RTU frame sizes of one read."""
    data = (read.count + 7) // 8 if read.function.is_bit else 2 * read.count
    return 8, 5 + data


def _wire_time(reads: list[Read], baud: int, bits: int = 11) -> float:
    """Seconds the line is necessarily busy for these transactions (`bits` a character: 11 for
    8E1/8N2, 10 for 8N1): both frames, and the 3.5-character silence the gateway must keep
    after an answer before its next request. The silence between request and answer is the
    device's turnaround; the pymodbus simulator answers without it, so it is not counted."""
    char = bits / baud
    gap = 3.5 * char if baud <= 19200 else 0.00175
    return sum(sum(_frame_bytes(read)) * char + gap for read in reads)


async def _rtu_rate(line: SerialLine, baud: int, names: list[str], seconds: float, dead: int | None = None,
                    warm_up_s: float = 0.3) -> dict[str, int]:
    devices = _simulated(names)
    if dead is not None:
        devices[dead].fault = FaultPlan(Fault.SILENT)
    simulator = FieldSimulator(devices)
    await simulator.start_rtu(line.device_port, baud)
    try:
        # 8N2: 11 bits a character, as on the paced 8E1 line (with parity set on the pty, no answer came back)
        link = SerialLink(line.gateway_port, baudrate=baud, stopbits=2)
        specs = [DeviceSpec(f"rtu-{d.unit_id}", _eager(d.profile), link, unit_id=d.unit_id, timeout_s=0.2)
                 for d in devices]
        return await _poll_for(specs, seconds, warm_up_s)
    finally:
        await simulator.stop()


async def _utilisation(baud: int, seconds: float) -> float:
    reads = [read for name in RTU_BUS for read in _reads(PROFILES[name])]
    with SerialLine(baud=baud, framing="8E1") as line:
        answers = await _rtu_rate(line, baud, RTU_BUS, seconds)
    achieved = sum(answers.values()) / seconds
    limit = len(reads) / _wire_time(reads, baud)
    return achieved / limit


async def _dead_device_slowdown(seconds: float) -> float:
    """1 - (healthy devices' rate beside a long-dead device) / (their rate alone)."""
    baud = 115200
    with SerialLine(baud=baud, framing="8E1") as line:
        alone = await _rtu_rate(line, baud, RTU_BUS[:-1], seconds)
    with SerialLine(baud=baud, framing="8E1") as line:
        # Warm up past the offline verdict and the first probes, as a device dead for a while.
        beside = await _rtu_rate(line, baud, RTU_BUS, seconds, dead=len(RTU_BUS) - 1, warm_up_s=8.0)
    healthy = [f"rtu-{unit}" for unit in range(1, len(RTU_BUS))]
    return 1 - sum(beside[name] for name in healthy) / sum(alone[name] for name in healthy)


class _StampedJournal:
    """A journal that notes when each alarm became durable."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.alarms: asyncio.Queue[float] = asyncio.Queue()

    async def append(self, event) -> int:
        seq = await self.journal.append(event)
        if event.kind == "alarm.raised":
            self.alarms.put_nowait(time.monotonic())
        return seq


async def _alarm_latency_ms(rounds: int = 7) -> float:
    monitor = SimulatedDevice(PROFILES["generic-efm8"], 1)
    monitor.set_value("current_a", 10.0)
    simulator = FieldSimulator([monitor])
    port = await simulator.start_tcp()
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        (base / "building.key").write_text("0" * 64)
        (base / "building.yaml").write_text(f"""
building: {{id: bench, secret: {{file: building.key}}}}
state_dir: state
profiles_dir: {REPO / "drivers" / "modbus" / "profiles"}
buses: [{{name: box, type: tcp, host: 127.0.0.1, port: {port}}}]
devices: [{{name: mon, bus: box, address: 1, profile: generic-efm8, poll_s: 0.1}}]
circuits:
  - name: c1
    floor: 1
    box: F1
    currents: [mon.current_a]
    safety: {{over_current_a: {{alarm: 32}}, power_cut: warn}}
""")
        config = building_config.load(base / "building.yaml")
        journal = await Journal.open(config.journal_path)
        stamped = _StampedJournal(journal)
        profiles = device_profiles(config)
        fieldbus = FieldBus(device_specs(config, profiles), journal)
        field = FieldPoints(config, fieldbus, stamped, profiles)  # type: ignore[arg-type]
        tasks = [asyncio.create_task(fieldbus.run()), asyncio.create_task(field.run())]
        latencies = []
        try:
            await asyncio.sleep(0.5)
            for _ in range(rounds):
                changed = time.monotonic()
                monitor.set_value("current_a", 40.0)
                latencies.append(await asyncio.wait_for(stamped.alarms.get(), 10) - changed)
                monitor.set_value("current_a", 10.0)
                while field.points[0].active:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.137)  # de-phase the next change from the poll cycle
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await journal.close()
            await simulator.stop()
    return percentile(latencies, 50) * 1000


async def _bench(seconds: float) -> dict[str, float]:
    building = RTU_BUS * 3 + TCP_DEVICES
    per_cycle = sum(len(_reads(PROFILES[name])) for name in building)
    naive = sum(len(PROFILES[name].points) for name in building)
    tcp = await _tcp_throughput(seconds)
    return {
        "transactions_per_cycle": per_cycle,
        "naive_transactions_per_cycle": naive,
        "cycles_per_s": round(tcp["cycles_per_s"], 2),
        "raw_cycles_per_s": round(tcp["raw_cycles_per_s"], 2),
        "overhead_ratio": round(tcp["cycles_per_s"] / tcp["raw_cycles_per_s"], 3),
        "wall_cycles_per_s": round(tcp["wall_cycles_per_s"], 2),
        "raw_wall_cycles_per_s": round(tcp["raw_wall_cycles_per_s"], 2),
        "bus_utilisation_9600": round(await _utilisation(9600, seconds), 3),
        "bus_utilisation_115200": round(await _utilisation(115200, seconds), 3),
        "dead_device_slowdown": round(await _dead_device_slowdown(seconds), 3),
        "alarm_latency_ms": round(await _alarm_latency_ms(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.modbus", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measured window")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is the JSON
    print(json.dumps(asyncio.run(_bench(args.seconds))))


if __name__ == "__main__":
    main()
