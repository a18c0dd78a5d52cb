"""A serial line emulator: two tty paths joined by a wire with real timing and noise.

A socat pty pair carries bytes instantly whatever baud rate is set, so timing-sensitive code
(inter-frame gaps, reply timeouts, throughput) is never exercised by it. `SerialLine` puts a
relay between two socat pairs: the device side and the gateway side each get a real tty path,
and each direction delivers a byte only when its last bit would have left a real UART at the
configured baud and framing (start + data + parity + stop bits: 10 for 8N1, 11 for 8E1), plus a
fixed latency. Deadlines are absolute times from one perf_counter, so pacing does not drift
over a frame however the thread is woken. Bytes can be dropped or corrupted (one flipped data
bit) with given probabilities from a seeded generator, per direction, so runs reproduce.

    with SerialLine(baud=9600, framing="8N1", drop=0.01, seed=1) as line:
        ... line.device_port, line.gateway_port, line.stats()

Other processes use it as `python -m edge.hil.line --baud 9600 --framing 8E1`, which prints
{"device_port": ..., "gateway_port": ...} as one JSON line, relays until SIGTERM or SIGINT, and
then prints the stats as a second JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections import deque
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from edge.drivers.cards.framing import Framing
from edge.hil.pty import pty_pair

MAX_PENDING_BYTES = 65536  # bytes in flight per direction before the line overflows
_IDLE_WAIT_S = 0.5


@dataclass(frozen=True, slots=True)
class DirectionStats:
    received: int  # bytes the sender put on the line
    delivered: int  # bytes written out at the far end
    dropped: int  # lost to simulated noise
    corrupted: int  # delivered with one data bit flipped
    overflowed: int  # lost because the far end was not reading or too much was in flight


@dataclass(frozen=True, slots=True)
class LineStats:
    to_gateway: DirectionStats
    to_device: DirectionStats


class _Wire:
    """One direction of the line: reads `fd_in`, writes each byte to `fd_out` on its deadline."""

    def __init__(
        self, fd_in: int, fd_out: int, wake_fd: int, framing: Framing, baud: int,
        latency_s: float, drop: float, corrupt: float, rng: random.Random,
    ) -> None:
        self._fd_in, self._fd_out, self._wake_fd = fd_in, fd_out, wake_fd
        self._char_time = framing.char_time(baud)
        self._data_bits = framing.data_bits
        self._latency_s = latency_s
        self._drop, self._corrupt = drop, corrupt
        self._rng = rng
        self._pending: deque[tuple[float, int]] = deque()
        self._wire_free = 0.0
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(DirectionStats.__slots__, 0)

    def stats(self) -> DirectionStats:
        with self._lock:
            return DirectionStats(**self._counts)

    def run(self) -> None:
        while True:
            timeout = _IDLE_WAIT_S
            if self._pending:
                timeout = max(0.0, self._pending[0][0] - time.perf_counter())
            readable, _, _ = select.select([self._fd_in, self._wake_fd], [], [], timeout)
            if self._wake_fd in readable:
                return
            if self._fd_in in readable and not self._receive():
                return
            self._deliver_due()

    def _receive(self) -> bool:
        """Put newly written bytes on the wire; False once the sending side is gone."""
        try:
            chunk = os.read(self._fd_in, 4096)
        except BlockingIOError:
            return True
        except OSError:
            return False
        arrived = time.perf_counter()
        with self._lock:
            for byte in chunk:
                self._counts["received"] += 1
                start = max(arrived, self._wire_free)
                self._wire_free = start + self._char_time
                if self._rng.random() < self._drop:
                    self._counts["dropped"] += 1
                    continue
                if self._rng.random() < self._corrupt:
                    byte ^= 1 << self._rng.randrange(self._data_bits)
                    self._counts["corrupted"] += 1
                if len(self._pending) >= MAX_PENDING_BYTES:
                    self._counts["overflowed"] += 1
                    continue
                self._pending.append((self._wire_free + self._latency_s, byte))
        return True

    def _deliver_due(self) -> None:
        now = time.perf_counter()
        due = bytearray()
        while self._pending and self._pending[0][0] <= now:
            due.append(self._pending.popleft()[1])
        if not due:
            return
        try:
            written = os.write(self._fd_out, due)
        except BlockingIOError:
            written = 0
        except OSError:
            written = 0
        with self._lock:
            self._counts["delivered"] += written
            self._counts["overflowed"] += len(due) - written


def _open_raw(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    return fd


class SerialLine:
    """Two tty paths, `device_port` and `gateway_port`, joined by a paced, optionally noisy wire."""

    def __init__(
        self,
        baud: int = 9600,
        framing: str = "8N1",
        latency_s: float = 0.0,
        drop: float = 0.0,
        corrupt: float = 0.0,
        seed: int = 1,
    ) -> None:
        for name, probability in (("drop", drop), ("corrupt", corrupt)):
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"{name} probability must be within 0..1, got {probability}")
        if latency_s < 0:
            raise ValueError(f"latency must not be negative, got {latency_s}")
        self.baud = baud
        self.framing = Framing.parse(framing)
        self.framing.char_time(baud)  # validates baud
        self._latency_s, self._drop, self._corrupt, self._seed = latency_s, drop, corrupt, seed
        self._stack = ExitStack()
        self._threads: list[threading.Thread] = []
        self._wires: dict[str, _Wire] = {}
        self._wake_w = -1
        self.device_port = ""
        self.gateway_port = ""

    def __enter__(self) -> SerialLine:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> LineStats:
        return LineStats(self._wires["to_gateway"].stats(), self._wires["to_device"].stats())

    def close(self) -> None:
        """Stop relaying, close the inner ends and stop both socat pairs."""
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._stack.close()
        self._wake_w = -1

    def _start(self) -> None:
        self.device_port, device_inner = self._stack.enter_context(pty_pair())
        self.gateway_port, gateway_inner = self._stack.enter_context(pty_pair())
        device_fd = self._fd(_open_raw(device_inner))
        gateway_fd = self._fd(_open_raw(gateway_inner))
        wake_r, self._wake_w = os.pipe()
        self._fd(wake_r)
        self._fd(self._wake_w)
        for name, fd_in, fd_out in (
            ("to_gateway", device_fd, gateway_fd),
            ("to_device", gateway_fd, device_fd),
        ):
            wire = _Wire(
                fd_in, fd_out, wake_r, self.framing, self.baud, self._latency_s,
                self._drop, self._corrupt, random.Random(f"{self._seed}:{name}"),
            )
            self._wires[name] = wire
            thread = threading.Thread(target=wire.run, name=f"serial-line-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _fd(self, fd: int) -> int:
        self._stack.callback(os.close, fd)
        return fd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.line", description=__doc__.split("\n")[0])
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--framing", default="8N1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every byte")
    parser.add_argument("--drop", type=float, default=0.0, help="probability a byte is lost")
    parser.add_argument("--corrupt", type=float, default=0.0, help="probability a bit flips")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with SerialLine(args.baud, args.framing, args.latency, args.drop, args.corrupt, args.seed) as line:
        print(json.dumps({"device_port": line.device_port, "gateway_port": line.gateway_port}), flush=True)
        while not stop.wait(0.2):
            pass
        print(json.dumps(asdict(line.stats())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
