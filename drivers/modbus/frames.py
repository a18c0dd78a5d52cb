"""Telling apart the ways an answer can fail to arrive: silence, a cut frame, a bad CRC.

pymodbus drops a frame with a bad checksum and waits for more bytes after a cut one; both
end as a timeout. The bytes the bus did receive tell them apart, and the per-device
counters need that: a rising CRC count points at wiring or termination, silence at power.
"""

from __future__ import annotations

from pymodbus.framer import FramerRTU

from edge.drivers.modbus.observations import FaultKind

_MBAP_HEADER = 6  # transaction id, protocol id, length: the length counts what follows


def classify_rtu(received: bytes) -> FaultKind:
    """Why an RTU transaction failed, from the bytes that came back during it."""
    if not received:
        return FaultKind.TIMEOUT
    if len(received) < 5:
        return FaultKind.SHORT_FRAME
    function = received[1]
    if function & 0x80:
        expected = 5
    elif function in (1, 2, 3, 4):
        expected = 3 + received[2] + 2
    else:
        expected = 8  # write echoes: id, function, address, value/count, crc
    if len(received) < expected:
        return FaultKind.SHORT_FRAME
    frame = received[:expected]
    checksum = int.from_bytes(frame[-2:], "big")
    if not FramerRTU.check_CRC(frame[:-2], checksum):
        return FaultKind.CRC
    return FaultKind.TIMEOUT  # a sound frame that was not ours (other id): still no answer


def classify_tcp(received: bytes) -> FaultKind:
    """Why a Modbus TCP transaction failed, from the bytes that came back during it."""
    if not received:
        return FaultKind.TIMEOUT
    if len(received) < _MBAP_HEADER or len(received) < _MBAP_HEADER + int.from_bytes(received[4:6], "big"):
        return FaultKind.SHORT_FRAME
    return FaultKind.TIMEOUT
