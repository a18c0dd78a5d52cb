"""edge.hil.line: the paced serial line between two socat pty pairs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from edge.drivers.cards.framing import Framing
from edge.hil.line import SerialLine
from edge.hil.pty import pty_pair
from edge.hil.waiting import until_sync

REPO = Path(__file__).resolve().parents[1]


def _open(path: str, baud: int = 9600, timeout: float = 3.0) -> serial.Serial:
    return serial.Serial(path, baud, timeout=timeout)


def test_pty_pair_links_both_ways_and_unplug_kills_it():
    with pty_pair() as pair:
        a_path, b_path = pair
        with _open(a_path) as a, _open(b_path) as b:
            a.write(b"ping")
            assert b.read(4) == b"ping"
            b.write(b"pong")
            assert a.read(4) == b"pong"
            pair.unplug()
            assert pair.process.poll() is not None


@pytest.mark.parametrize(
    ("code", "bits"), [("8N1", 10), ("8E1", 11), ("8N2", 11), ("7E1", 10), ("8O2", 12)]
)
def test_framing_counts_start_data_parity_stop_bits(code, bits):
    assert Framing.parse(code).bits_per_char == bits


@pytest.mark.parametrize("code", ["", "9N1", "8X1", "8N3", "N81"])
def test_framing_rejects_malformed_codes(code):
    with pytest.raises(ValueError, match="framing"):
        Framing.parse(code)


def test_bytes_arrive_intact_and_in_order_both_ways():
    payload = bytes(range(256)) * 2
    with SerialLine(baud=115200) as line:
        with _open(line.device_port, 115200) as device, _open(line.gateway_port, 115200) as gateway:
            device.write(payload)
            assert gateway.read(len(payload)) == payload
            gateway.write(payload[::-1])
            assert device.read(len(payload)) == payload[::-1]
        # The relay counts a write after it returns, which can be just after the reader has the bytes.
        until_sync(lambda: line.stats().to_device.delivered >= len(payload), 5, "every byte to the device counted", every_s=0.01)
        stats = line.stats()
    assert stats.to_gateway.received == stats.to_gateway.delivered == len(payload)
    assert stats.to_device.delivered == len(payload)


def test_wire_time_follows_baud_and_framing():
    """960 bytes at 9600 8N1 is one second of wire time: not instant, not wildly slow."""
    payload = bytes(960)
    with SerialLine(baud=9600, framing="8N1") as line:
        with _open(line.device_port) as device, _open(line.gateway_port, timeout=10) as gateway:
            started = time.perf_counter()
            device.write(payload)
            received = gateway.read(len(payload))
            elapsed = time.perf_counter() - started
    assert received == payload
    assert 0.9 <= elapsed < 5.0


def test_latency_delays_the_first_byte():
    with SerialLine(baud=115200, latency_s=0.3) as line:
        with _open(line.device_port, 115200) as device, _open(line.gateway_port, 115200) as gateway:
            started = time.perf_counter()
            device.write(b"x")
            assert gateway.read(1) == b"x"
            assert time.perf_counter() - started >= 0.25


def _send_through(line: SerialLine, payload: bytes) -> bytes:
    with _open(line.device_port, 115200) as device, _open(line.gateway_port, 115200, 0.5) as gateway:
        device.write(payload)
        return gateway.read(len(payload))


def test_drop_loses_bytes_reproducibly_by_seed():
    payload = bytes(range(256)) * 8
    runs = []
    for _ in range(2):
        with SerialLine(baud=115200, drop=0.25, seed=7) as line:
            runs.append(_send_through(line, payload))
            stats = line.stats().to_gateway
        assert stats.received == len(payload)
        assert stats.delivered + stats.dropped == len(payload)
        assert 0.15 * len(payload) < stats.dropped < 0.35 * len(payload)
        assert len(runs[-1]) == stats.delivered
    assert runs[0] == runs[1]
    with SerialLine(baud=115200, drop=0.25, seed=8) as line:
        assert _send_through(line, payload) != runs[0]


def test_corrupt_flips_exactly_one_data_bit_per_hit():
    payload = bytes(range(256)) * 4
    with SerialLine(baud=115200, corrupt=1.0) as line:
        received = _send_through(line, payload)
        assert line.stats().to_gateway.corrupted == len(payload)
    assert len(received) == len(payload)
    assert all((sent ^ got).bit_count() == 1 for sent, got in zip(payload, received))


def test_partial_corruption_leaves_other_bytes_alone():
    payload = bytes(range(256)) * 4
    with SerialLine(baud=115200, corrupt=0.1, seed=3) as line:
        received = _send_through(line, payload)
        corrupted = line.stats().to_gateway.corrupted
    differing = sum(sent != got for sent, got in zip(payload, received))
    assert differing == corrupted > 0


@pytest.mark.parametrize(("name", "value"), [("drop", 1.5), ("corrupt", -0.1)])
def test_probabilities_outside_0_1_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        SerialLine(**{name: value})


def test_runs_as_a_subprocess_printing_ports_and_stats():
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.hil.line", "--baud", "115200", "--framing", "8E1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ports = json.loads(process.stdout.readline())
        with _open(ports["device_port"], 115200) as device, _open(ports["gateway_port"], 115200) as gw:
            device.write(b"hello")
            assert gw.read(5) == b"hello"
        process.send_signal(signal.SIGTERM)
        stats = json.loads(process.stdout.readline())
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stats["to_gateway"]["delivered"] == 5
