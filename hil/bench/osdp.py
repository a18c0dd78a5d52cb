"""Benchmark: OSDP tap to output at 115200 baud with Secure Channel on, through a paced line.

From the moment the simulated reader (libosdp PD) submits a card-read event, through the
paced serial line, libosdp's CP, the OsdpBus and the asyncio loop, to the output command
(`set_output`, the CP's answer to the card) arriving back at the reader. Both ends run in one
process on one monotonic clock. Prints one JSON object:
{"osdp_tap_to_output_p50_ms": ..., "osdp_tap_to_output_p99_ms": ...} and where the time went:
osdp_tap_to_reply_*_ms, from the tap to the bus reading the reply that carried it (waiting for
libosdp's next poll, the poll and the reply on the wire), and osdp_reply_to_output_*_ms, from
there to the output command at the reader (libosdp's queue, the loop, the command on the wire).
osdp_taps_lost counts card reads that never reached the bus within 2 s (seen on a loaded machine:
libosdp's reader takes a repeated poll for a new one, so a reply the panel gave up on is gone).

libosdp polls an idle reader 50 ms after its last reply, the output command's included. A tap
a fixed time after the last answer would therefore always land at the same point of that wait
and measure one figure of it (and any time saved answering would come back as waiting for the
poll); a card arrives at any moment, so the pause between taps is drawn at random (seeded) over
more than one poll period.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

import osdp

from edge.drivers.cards.observations import CardRead
from edge.drivers.osdp.bus import OsdpBus, OsdpReader
from edge.drivers.osdp.keys import generate_key_file, load_key
from edge.hil.bench.stats import percentile
from edge.hil.line import SerialLine
from edge.hil.osdp_pd import SimulatedOsdpReader

READER = "bench"
ADDRESS = 1
TAP_TIMEOUT_S = 2.0
PAUSE_S = (0.01, 0.08)  # between an answer and the next tap: 10 ms and up to 1.4 poll periods more


async def _card_read(bus: OsdpBus, card: int) -> CardRead | None:
    """The bus's read of `card` (an earlier card's late read is passed over), None after TAP_TIMEOUT_S."""
    deadline = time.monotonic() + TAP_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            read = await asyncio.wait_for(bus.observations.get(), left)
        except TimeoutError:
            return None
        if isinstance(read, CardRead) and read.serial == card.to_bytes(3, "big"):
            return read
    return None


async def _measure(taps: int, baud: int, key_file: Path, lost: list[int]) -> list[tuple[float, float]]:
    latencies: list[tuple[float, float]] = []  # (tapped, read) and (read, arrived) in ms
    pauses = random.Random(0)
    with SerialLine(baud=baud) as line, SimulatedOsdpReader(
        line.device_port, baud, ADDRESS, load_key(key_file)
    ) as pd:
        async with OsdpBus(line.gateway_port, baud, [OsdpReader(READER, ADDRESS, key_file)]) as bus:
            deadline = time.monotonic() + 10
            while not bus.is_online(READER):
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulated OSDP reader did not come online")
                await asyncio.sleep(0.02)
            for card in range(taps):
                before = len(pd.commands())
                tapped = time.monotonic()
                pd.tap(card)
                read = await _card_read(bus, card)
                if read is None:
                    lost.append(card)
                    continue
                bus.set_output(READER, 0, True, 500)
                arrived = await asyncio.to_thread(pd.wait_command, osdp.Command.Output, before, TAP_TIMEOUT_S)
                if arrived is None:
                    raise RuntimeError("an output command never reached the reader")
                latencies.append(((read.received_mono - tapped) * 1000, (arrived.received_mono - read.received_mono) * 1000))
                await asyncio.sleep(pauses.uniform(*PAUSE_S))
    return latencies


def measure_osdp_tap_to_output(taps: int = 300, baud: int = 115200) -> dict[str, float]:
    """p50 and p99 ms from a card event at the reader to the output command arriving there."""
    with tempfile.TemporaryDirectory(prefix="osdp-bench-") as tmp:
        key_file = Path(tmp) / "bench.key"
        generate_key_file(key_file)
        lost: list[int] = []
        parts = asyncio.run(_measure(taps, baud, key_file, lost))
    keys = {"tap_to_output": [a + b for a, b in parts], "tap_to_reply": [a for a, _ in parts],
            "reply_to_output": [b for _, b in parts]}
    result: dict[str, float] = {f"osdp_{key}_p{p}_ms": round(percentile(values, p), 2) for key, values in keys.items() for p in (50, 99)}
    result["osdp_taps"], result["osdp_taps_lost"] = taps, len(lost)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.osdp", description=__doc__.split("\n")[0])
    parser.add_argument("--taps", type=int, default=300)
    parser.add_argument("--baud", type=int, default=115200)
    args = parser.parse_args(argv)
    print(json.dumps(measure_osdp_tap_to_output(args.taps, args.baud)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
