"""A Modbus field simulator: the devices of a building, from the same profiles the driver reads.

Serves Modbus TCP on loopback or RTU on a serial port path (a pty of a socat pair, or a real
USB adapter on the rig). Each simulated device holds its points' values, plays value
scripts (constant, ramp, step, noise, a 4-20 mA loop with a broken wire) and takes
faults on demand: no answer, an exception code, a slow answer, a corrupted CRC, a frame
cut short. Commands from the profile move their read-back point, as the real device would.

One simulator, so one module (its length is the device's): the value scripts, the faults and the
pymodbus server that plays them (a handler that stays silent, answers late or cuts a frame where
a real line would) only mean something together.

Run: python -m edge.hil.modbus_sim --profile drivers/modbus/profiles/generic-breaker.yaml --port 5020
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.bit_message import WriteSingleCoilRequest, WriteSingleCoilResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from edge.drivers.modbus.points import Point
from edge.drivers.modbus.profile import Profile, load_profile
from edge.drivers.modbus.tables import DataType, Function
from edge.drivers.modbus.registers import Value, decode_point, encode_point

_FUNCTION_OF_CODE = {1: Function.COIL, 5: Function.COIL, 15: Function.COIL, 2: Function.DISCRETE, 4: Function.INPUT}
_FUNCTION_OF_CODE.update({code: Function.HOLDING for code in (3, 6, 16, 22, 23)})


class Script(Protocol):
    """A value that changes with time since the script started."""

    def value_at(self, elapsed_s: float) -> Value: ...


@dataclass(frozen=True)
class Constant:
    value: Value

    def value_at(self, elapsed_s: float) -> Value:
        return self.value


@dataclass(frozen=True)
class Ramp:
    start: float
    per_s: float
    stop: float | None = None

    def value_at(self, elapsed_s: float) -> Value:
        value = self.start + self.per_s * elapsed_s
        if self.stop is None:
            return value
        return min(value, self.stop) if self.per_s >= 0 else max(value, self.stop)


@dataclass(frozen=True)
class Step:
    before: Value
    after: Value
    at_s: float

    def value_at(self, elapsed_s: float) -> Value:
        return self.before if elapsed_s < self.at_s else self.after


@dataclass
class Noise:
    mean: float
    sd: float
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def value_at(self, elapsed_s: float) -> Value:
        return self._random.gauss(self.mean, self.sd)


def wire_break() -> Constant:
    """A 4-20 mA loop whose wire is cut carries no current: the channel reads 0 mA."""
    return Constant(0.0)


class Fault(StrEnum):
    """What a sick device does to a request."""

    SILENT = "silent"  # no answer at all
    EXCEPTION = "exception"  # answers with an exception code
    SLOW = "slow"  # answers after a delay
    CRC = "crc"  # answers with a corrupted checksum (RTU)
    SHORT = "short"  # answers with the frame cut short


@dataclass(frozen=True)
class FaultPlan:
    kind: Fault
    exception_code: int = ExcCodes.DEVICE_FAILURE
    delay_s: float = 2.0


class SimulatedDevice:
    """One device's tables, scripts and faults. Addresses outside the profile's ranges
    answer ILLEGAL_ADDRESS, as many field devices do."""

    def __init__(self, profile: Profile, unit_id: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.unit_id = unit_id
        self.fault: FaultPlan | None = None
        self.follow_commands = True
        self.functions: frozenset[int] | None = None  # function codes it accepts (None: all); others: ILLEGAL_FUNCTION
        self.reads = 0  # read requests answered: a rig waits on this to know the gateway polls the device
        self._clock = clock
        self._tables: dict[Function, dict[int, int]] = {function: {} for function in Function}
        self._spans: dict[Function, list[tuple[int, int]]] = {function: [] for function in Function}
        self._scripts: dict[str, tuple[Script, float]] = {}
        variants = profile.variants
        points = [*profile.points, *([profile.identify] if profile.identify else []), *(p for v in variants for p in v.points)]
        for point in points:
            self._spans[point.function].append((point.address, point.last_address))
        for command in [*profile.commands, *(c for v in variants for c in v.commands)]:
            self._spans[command.function].append((command.address, command.address + command.width - 1))
        for function, spans in self._spans.items():
            if spans:
                self._spans[function] = [(min(s for s, _ in spans), max(e for _, e in spans))]

    def set_value(self, point_name: str, value: Value) -> None:
        """Hold engineering `value` on the point from now on (stops any script on it)."""
        self._scripts.pop(point_name, None)
        self._store(self.profile.point(point_name), value)

    def play(self, point_name: str, script: Script) -> None:
        """Let `script` drive the point, starting now."""
        self.profile.point(point_name)
        self._scripts[point_name] = (script, self._clock())

    def set_registers(self, function: Function, address: int, words: Sequence[int]) -> None:
        """Put raw words in a table, e.g. a NaN float a sick device sends (stops no script)."""
        for offset, word in enumerate(words):
            self._tables[function][address + offset] = word

    def value_of(self, point_name: str) -> Value:
        """The engineering value the device shows now."""
        point = self.profile.point(point_name)
        self._refresh()
        return decode_point(self.profile, point, self._words(point.function, point.address, point.width))

    def read(self, function: Function, address: int, count: int) -> list[int] | list[bool] | ExcCodes:
        if not self._covers(function, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        self.reads += 1
        self._refresh()
        words = self._words(function, address, count)
        return [bool(w) for w in words] if function.is_bit else words

    def write(self, function: Function, address: int, values: Sequence[int]) -> ExcCodes | None:
        if function not in (Function.COIL, Function.HOLDING) or not self._covers(function, address, len(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        table = self._tables[function]
        for offset, value in enumerate(values):
            table[address + offset] = int(value)
        if self.follow_commands:
            self._obey(function, address, [int(v) for v in values])
        return None

    def _obey(self, function: Function, address: int, values: list[int]) -> None:
        for command in self.profile.commands:
            fixed = [command.raw_word] if command.raw_word is not None else command.values
            if fixed is None or command.readback is None:
                continue
            wire = [_coil_word(v) for v in fixed] if command.function is Function.COIL else fixed
            if (command.function, command.address, wire) == (function, address, values):
                self.set_value(command.readback.point, command.readback.expected(self.profile.point(command.readback.point)))

    def _covers(self, function: Function, address: int, count: int) -> bool:
        end = address + count - 1
        return any(start <= address and end <= stop for start, stop in self._spans[function])

    def _words(self, function: Function, address: int, count: int) -> list[int]:
        table = self._tables[function]
        return [table.get(a, 0) for a in range(address, address + count)]

    def _refresh(self) -> None:
        now = self._clock()
        for name, (script, started) in self._scripts.items():
            self._store(self.profile.point(name), script.value_at(now - started))

    def _store(self, point: Point, value: Value) -> None:
        table = self._tables[point.function]
        if point.type is DataType.BOOL and point.bit is not None:
            mask = 1 << point.bit
            word = table.get(point.address, 0)
            table[point.address] = word | mask if value else word & ~mask
            return
        if point.bits is not None:  # a field or a byte of a register: leave the other bits alone
            (view,) = encode_point(self.profile, point, value)
            table[point.address] = (table.get(point.address, 0) & ~point.bits) | view
            return
        for offset, word in enumerate(encode_point(self.profile, point, value)):
            table[point.address + offset] = word


def _coil_word(word: int) -> int:
    """An FC05 word as a coil table keeps it: the standard ON/OFF as 1/0, a vendor's word as sent."""
    return {0xFF00: 1, 0x0000: 0}.get(word, word)


class _RawCoilRequest(WriteSingleCoilRequest):
    """FC05 as the wire carries it: pymodbus keeps only on/off of the word, but relay modules
    give other words meanings (a flash of N x 100 ms, a toggle), so the device sees the word."""

    def decode(self, data: bytes) -> None:
        self.address, self.word = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
        self.bits = [bool(self.word)]

    async def datastore_update(self, context, device_id: int):
        if rc := await context.async_setValues(device_id, self.function_code, self.address, [_coil_word(self.word)]):
            return ExceptionResponse(self.function_code, rc)
        return _RawCoilEcho(self.address, self.word, device_id)


class _RawCoilEcho(WriteSingleCoilResponse):
    """A device echoes an FC05 request word for word."""

    def __init__(self, address: int = 0, word: int = 0, device_id: int = 0) -> None:
        super().__init__(address=address, bits=[bool(word)], dev_id=device_id)
        self.word = word

    def encode(self) -> bytes:
        return self.address.to_bytes(2, "big") + self.word.to_bytes(2, "big")


class _FieldStore:
    """The datastore face pymodbus PDUs call (`datastore_update`), over our devices."""

    def __init__(self, devices: dict[int, SimulatedDevice]) -> None:
        self._devices = devices

    def device_ids(self) -> list[int]:
        return list(self._devices)

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):  # noqa: N802
        return self._devices[device_id].read(_FUNCTION_OF_CODE[func_code], address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):  # noqa: N802
        if isinstance(values, bool | int):
            values = [values]
        return self._devices[device_id].write(_FUNCTION_OF_CODE[func_code], address, [int(v) for v in values])


class _FaultyHandler(ServerRequestHandler):
    """pymodbus's request handler with the device's faults in front of the datastore."""

    async def handle_request(self) -> None:
        pdu, addr = self.last_pdu, self.last_addr
        simulator: FieldSimulator = self.server.simulator
        if pdu is None or (device := simulator.devices.get(pdu.dev_id)) is None:
            return  # on RS-485 a request for an absent unit id meets silence
        simulator.requests.append((pdu.dev_id, pdu.function_code))
        fault = device.fault.kind if device.fault else None
        if fault is Fault.SILENT:
            return
        if fault is Fault.SLOW:
            await asyncio.sleep(device.fault.delay_s)
        if fault is Fault.EXCEPTION:
            response = ExceptionResponse(pdu.function_code, device.fault.exception_code)
        elif _FUNCTION_OF_CODE.get(pdu.function_code) is None or (
            device.functions is not None and pdu.function_code not in device.functions
        ):
            response = ExceptionResponse(pdu.function_code, ExcCodes.ILLEGAL_FUNCTION)
        else:
            response = await pdu.datastore_update(simulator.store, pdu.dev_id)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        self.server_send(response, addr)


def _placeholder() -> SimDevice:
    """pymodbus servers insist on a datastore of their own; ours lives in `_FieldStore`."""
    return SimDevice(0, simdata=SimData(0, datatype=SimDataType.REGISTERS))


class _TcpServer(ModbusTcpServer):
    def __init__(self, simulator: FieldSimulator, host: str, port: int) -> None:
        super().__init__(
            _placeholder(), address=(host, port), trace_packet=simulator.mangle_tcp, custom_pdu=[_RawCoilRequest],
            trace_connect=simulator.connected,
        )
        self.simulator = simulator

    def callback_new_connection(self) -> ServerRequestHandler:
        return _FaultyHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class _SerialServer(ModbusSerialServer):
    def __init__(self, simulator: FieldSimulator, path: str, baudrate: int) -> None:
        super().__init__(
            _placeholder(), framer=FramerType.RTU, port=path, baudrate=baudrate, trace_packet=simulator.mangle_rtu,
            custom_pdu=[_RawCoilRequest],
        )
        self.simulator = simulator

    def callback_new_connection(self) -> ServerRequestHandler:
        return _FaultyHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class FieldSimulator:
    """Devices on one wire (a TCP port or a serial line), by unit id."""

    def __init__(self, devices: Sequence[SimulatedDevice]) -> None:
        self.devices = {device.unit_id: device for device in devices}
        if len(self.devices) != len(devices):
            raise ValueError("two simulated devices share a unit id")
        self.store = _FieldStore(self.devices)
        self.requests: deque[tuple[int, int]] = deque(maxlen=10_000)  # (unit id, function code), in arrival order
        self._server: _TcpServer | _SerialServer | None = None
        self.connections = 0  # TCP clients accepted: a gateway that reopened its line shows here

    def connected(self, opened: bool) -> None:
        """pymodbus's trace_connect: a TCP client came (True) or went (False)."""
        self.connections += opened

    def device(self, unit_id: int) -> SimulatedDevice:
        return self.devices[unit_id]

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on `host:port` (0: any free port); returns the port."""
        server = _TcpServer(self, host, port)
        await server.serve_forever(background=True)
        self._server = server
        return server.transport.sockets[0].getsockname()[1]

    async def start_rtu(self, path: str, baudrate: int = 9600) -> None:
        """Serve RTU on the serial port at `path`."""
        server = _SerialServer(self, path, baudrate)
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def mangle_rtu(self, sending: bool, frame: bytes) -> bytes:
        """Trace hook on raw RTU bytes: corrupt or cut the answers of faulty devices."""
        if not sending or not frame:
            return frame
        return self._mangle(frame[0], frame, crc_at=len(frame) - 1)

    def mangle_tcp(self, sending: bool, frame: bytes) -> bytes:
        """Trace hook on raw TCP bytes: cut the answers of faulty devices (no CRC on TCP)."""
        if not sending or len(frame) < 7:
            return frame
        return self._mangle(frame[6], frame, crc_at=None)

    def _mangle(self, unit_id: int, frame: bytes, crc_at: int | None) -> bytes:
        device = self.devices.get(unit_id)
        fault = device.fault.kind if device and device.fault else None
        if fault is Fault.SHORT:
            return frame[: max(1, len(frame) - 3)]
        if fault is Fault.CRC and crc_at is not None:
            corrupted = bytearray(frame)
            corrupted[crc_at] ^= 0xFF
            return bytes(corrupted)
        return frame


def _parse_device(text: str, default_unit: int) -> SimulatedDevice:
    path, _, unit = text.partition("@")
    return SimulatedDevice(load_profile(Path(path)), int(unit) if unit else default_unit)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.modbus_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", required=True, metavar="PATH[@UNIT]",
                        help="device profile, optionally with its unit id (default 1, 2, ... in order)")
    wire = parser.add_mutually_exclusive_group(required=True)
    wire.add_argument("--port", type=int, help="serve Modbus TCP on this port")
    wire.add_argument("--serial", help="serve Modbus RTU on this serial port path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--baudrate", type=int, default=9600)
    parser.add_argument("--set", action="append", default=[], metavar="UNIT.POINT=VALUE",
                        help="hold a value on a point, e.g. 1.leakage_ma=12.5")
    args = parser.parse_args(argv)
    simulator = FieldSimulator([_parse_device(text, i + 1) for i, text in enumerate(args.profile)])
    for assignment in args.set:
        target, _, value = assignment.partition("=")
        unit, _, point = target.partition(".")
        simulator.device(int(unit)).set_value(point, _parse_value(value))
    asyncio.run(_serve(simulator, args))


def _parse_value(text: str) -> Value:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return float(text)


async def _serve(simulator: FieldSimulator, args: argparse.Namespace) -> None:
    if args.serial:
        await simulator.start_rtu(args.serial, args.baudrate)
        print(f"modbus_sim: RTU on {args.serial}", flush=True)
    else:
        port = await simulator.start_tcp(args.host, args.port)
        print(f"modbus_sim: TCP on {args.host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


if __name__ == "__main__":
    main()
