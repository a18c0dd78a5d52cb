"""ReaderPort over real socat pty pairs: reads, stamps, and faults instead of hanging."""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import serial

from edge.drivers.cards.em4100 import Em4100Parser, encode_frame
from edge.drivers.cards.observations import (
    CardRead,
    DropCause,
    FaultReason,
    FrameDropped,
    PinEntry,
    Protocol,
    ReaderFault,
)
from edge.drivers.cards.port import ReaderPort
from edge.drivers.cards.wiegand import WiegandParser, encode_key
from edge.hil.line import SerialLine
from edge.hil.pty import pty_pair

SERIAL = bytes.fromhex("01001293D8")
WAIT_S = 5.0


class Collector:
    def __init__(self) -> None:
        self.observations: queue.Queue = queue.Queue()
        self.faults: queue.Queue = queue.Queue()

    def port(self, path: str, parser=None, baud: int = 9600) -> ReaderPort:
        return ReaderPort(
            "lobby", path, baud, parser or Em4100Parser(), self.observations.put, self.faults.put
        )


def test_a_frame_written_at_the_reader_end_arrives_as_a_stamped_card_read():
    collector = Collector()
    with pty_pair() as (reader_end, gateway_end), ThreadPoolExecutor(1) as pool:
        port = collector.port(gateway_end)
        running = pool.submit(port.run)
        try:
            assert port.opened.wait(WAIT_S)
            with serial.Serial(reader_end, 9600) as reader:
                reader.write(b"\xffnoise" + encode_frame(SERIAL)[:7])
                time.sleep(0.05)
                before = time.monotonic()
                reader.write(encode_frame(SERIAL)[7:])
                dropped = collector.observations.get(timeout=WAIT_S)
                read = collector.observations.get(timeout=WAIT_S)
        finally:
            port.stop()
        running.result(timeout=WAIT_S)
    assert dropped == FrameDropped(DropCause.GARBAGE)
    assert isinstance(read, CardRead)
    assert (read.reader, read.serial, read.protocol, read.bits) == ("lobby", SERIAL, Protocol.EM4100, 40)
    assert before <= read.received_mono <= time.monotonic()
    assert collector.faults.empty()


def test_keypad_pin_arrives_as_pin_entry_through_a_paced_line():
    collector = Collector()
    with SerialLine(baud=9600) as line, ThreadPoolExecutor(1) as pool:
        port = collector.port(line.gateway_port, WiegandParser())
        running = pool.submit(port.run)
        try:
            assert port.opened.wait(WAIT_S)
            with serial.Serial(line.device_port, 9600) as reader:
                reader.write(b"".join(encode_key(k) for k in "2580#"))
                entry = collector.observations.get(timeout=WAIT_S)
        finally:
            port.stop()
        running.result(timeout=WAIT_S)
    assert isinstance(entry, PinEntry)
    assert (entry.reader, entry.pin) == ("lobby", "2580")


def test_unplugging_gives_a_fault_and_raises_instead_of_hanging():
    collector = Collector()
    with pty_pair() as pair, ThreadPoolExecutor(1) as pool:
        port = collector.port(pair.b)
        running = pool.submit(port.run)
        try:
            assert port.opened.wait(WAIT_S)
            with serial.Serial(pair.a, 9600) as reader:
                reader.write(encode_frame(SERIAL))
                assert isinstance(collector.observations.get(timeout=WAIT_S), CardRead)
        finally:
            pair.unplug()
        with pytest.raises(serial.SerialException):
            running.result(timeout=WAIT_S)
    fault = collector.faults.get_nowait()
    assert isinstance(fault, ReaderFault)
    assert (fault.reader, fault.reason) == ("lobby", FaultReason.DISCONNECTED)


def test_a_missing_port_gives_a_fault_and_raises():
    collector = Collector()
    port = collector.port("/dev/does-not-exist-reader")
    with pytest.raises(serial.SerialException):
        port.run()
    assert collector.faults.get_nowait().reason is FaultReason.PORT_MISSING


def test_bad_framing_is_refused_before_opening():
    with pytest.raises(ValueError, match="framing"):
        ReaderPort("lobby", "/dev/null", 9600, Em4100Parser(), print, print, framing="8Q1")
