"""One wire to Modbus devices: its link, its one-at-a-time transactions, the requests it carries.

An RS-485 line is half-duplex: one transaction at a time, so each serial port is one `Bus`;
each TCP endpoint is its own `Bus`. After an error on TCP the client is dropped and rebuilt (as
edgexfoundry's device-modbus-go does): a half-open socket never recovers. The read and write
requests are built here, once, so a raw pymodbus baseline (edge.hil.bench.modbus) can send
exactly what the poller sends.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import WriteSingleCoilRequest

from edge.drivers.modbus.frames import classify_rtu, classify_tcp
from edge.drivers.modbus.lane import WireLane, Priority
from edge.drivers.modbus.observations import FaultKind
from edge.drivers.modbus.plan import Read
from edge.drivers.modbus.tables import Function
from edge.drivers.modbus.writes import Command

# pymodbus 3.10 renamed slave= to device_id=.
UNIT = "device_id" if "device_id" in inspect.signature(AsyncModbusTcpClient.read_coils).parameters else "slave"

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
Request = Callable[[Client, dict[str, int]], Awaitable[ModbusPDU]]


@dataclass(frozen=True, slots=True)
class TcpLink:
    host: str
    port: int = 502


@dataclass(frozen=True, slots=True)
class SerialLink:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1


Link = TcpLink | SerialLink


class TransactionFailed(Exception):
    """A request got no usable answer."""

    def __init__(self, kind: FaultKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


class Bus:
    """One wire (a serial port or a TCP endpoint): one transaction at a time, commands first."""

    def __init__(self, link: Link, timeout_s: float) -> None:
        self.link = link
        self.lane = WireLane()
        self._timeout_s = timeout_s
        self._client: Client | None = None
        self._received = b""
        self._gap_s = _frame_gap_s(link) if isinstance(link, SerialLink) else 0.0
        self._quiet_at = 0.0  # an RTU line must be silent 3.5 characters between frames
        self.answered = 0  # answers received: each one was awaited, so the task that asked has yielded to the loop
        self._loop: asyncio.AbstractEventLoop | None = None  # where the transactions run (see _cancelling)

    def _witness(self, sending: bool, data: bytes) -> bytes:
        """pymodbus trace hook: keep the longest receive buffer of this transaction."""
        if not sending and len(data) > len(self._received):
            self._received = data
        return data

    def _build(self) -> Client:
        common = {"timeout": self._timeout_s, "retries": 0, "reconnect_delay": 0, "trace_packet": self._witness}
        if isinstance(self.link, TcpLink):
            return AsyncModbusTcpClient(self.link.host, port=self.link.port, **common)
        return AsyncModbusSerialClient(
            self.link.port,
            baudrate=self.link.baudrate,
            parity=self.link.parity,
            bytesize=self.link.bytesize,
            stopbits=self.link.stopbits,
            **common,
        )

    async def transact(
        self,
        unit_id: int,
        timeout_s: float,
        request: Request,
        priority: Priority = Priority.POLL,
    ) -> ModbusPDU:
        """Run one request; raises `TransactionFailed`. Exception responses are returned."""
        if not self.lane.take():
            await self.lane.acquire(priority)
        try:
            if self._client is None:
                self._client = self._build()
            if not self._client.connected and not await self._client.connect():
                self.drop()
                raise TransactionFailed(FaultKind.CONNECTION, f"cannot open {self.link}")
            self._received = b""
            if self._gap_s:
                await asyncio.sleep(max(0.0, self._quiet_at - time.monotonic()))
            # pymodbus times the answer itself (reading this each try); a wait_for of our own
            # would cost a task and a timer per request, which is most of the scheduler's overhead.
            self._client.ctx.comm_params.timeout_connect = timeout_s
            try:
                response = await request(self._client, {UNIT: unit_id})
                self.answered += 1
                return response
            except ConnectionException as error:
                self.drop()
                raise TransactionFailed(FaultKind.CONNECTION, str(error)) from error
            except (ModbusException, TimeoutError) as error:
                kind = classify_tcp(self._received) if isinstance(self.link, TcpLink) else classify_rtu(self._received)
                if isinstance(self.link, TcpLink):
                    self.drop()
                raise TransactionFailed(kind, f"{kind.value} after {len(self._received)} bytes") from error
            except OSError as error:
                self.drop()
                raise TransactionFailed(FaultKind.CONNECTION, str(error)) from error
            finally:
                if self._gap_s:
                    self._quiet_at = time.monotonic() + self._gap_s
                if self._cancelling():
                    # pymodbus awaits the answer under asyncio.wait_for, which on 3.11 swallows a
                    # cancellation that lands as the answer arrives: the poller must still stop.
                    raise asyncio.CancelledError
        finally:
            self.lane.release()

    def _cancelling(self) -> bool:
        """Whether the running task is being cancelled. The loop is looked up once, not per transaction
        (asyncio.current_task() asks for the running loop, a getpid each time on 3.11); another loop
        than the one kept has no current task there, so it is looked up again."""
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        if task is None:
            self._loop = asyncio.get_running_loop()
            task = asyncio.current_task(self._loop)
        return bool(task and task.cancelling())

    def drop(self) -> None:
        """Forget the client; the next transaction builds a fresh one."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _frame_gap_s(link: SerialLink) -> float:
    """The Modbus RTU silent interval: 3.5 characters, fixed at 1.75 ms above 19200 baud."""
    if link.baudrate > 19200:
        return 0.00175
    bits = 1 + link.bytesize + (link.parity != "N") + link.stopbits
    return 3.5 * bits / link.baudrate


_READERS: dict[Function, Callable[[Client, Read, dict[str, int]], Awaitable[ModbusPDU]]] = {
    Function.HOLDING: lambda c, r, unit: c.read_holding_registers(r.address, count=r.count, **unit),
    Function.INPUT: lambda c, r, unit: c.read_input_registers(r.address, count=r.count, **unit),
    Function.COIL: lambda c, r, unit: c.read_coils(r.address, count=r.count, **unit),
    Function.DISCRETE: lambda c, r, unit: c.read_discrete_inputs(r.address, count=r.count, **unit),
}


def read_for(read: Read) -> Request:
    """The request that reads the block `read`, for `Bus.transact`."""
    reader = _READERS[read.function]
    return lambda client, unit: reader(client, read, unit)


def read_request(client: Client, read: Read, unit_id: int) -> Awaitable[ModbusPDU]:
    """The request the poller sends for `read` to device `unit_id`: public so that a raw pymodbus
    baseline (edge.hil.bench.modbus) sends exactly what the poller sends, with none of its scheduling."""
    return _READERS[read.function](client, read, {UNIT: unit_id})


def answer_words(read: Read, response: ModbusPDU) -> list[int] | list[bool]:
    """The values of an answer to `read` that is not an exception (bits cut to the count asked)."""
    return list(response.bits[: read.count]) if read.function.is_bit else list(response.registers)


def write_for(command: Command, words: list[int]) -> Request:
    """The request that writes `words` for `command`, one for the whole block, with its function code."""
    return lambda client, unit: _write(client, command, words, unit)


def _write(client: Client, command: Command, words: list[int], unit: dict[str, int]) -> Awaitable[ModbusPDU]:
    code = command.code
    if code == 5:
        if command.raw_word is None and command.argument is None:  # on/off, sent as the standard 0xFF00/0x0000
            return client.write_coil(command.address, bool(words[0]), **unit)
        return client.execute(False, RawCoilWrite(command.address, words[0], unit[UNIT]))
    if code == 15:
        return client.write_coils(command.address, [bool(v) for v in words], **unit)
    if code == 6:
        return client.write_register(command.address, words[0], **unit)
    return client.write_registers(command.address, words, **unit)


class RawCoilWrite(WriteSingleCoilRequest):
    """FC05 with the 16-bit word the device's manual gives (a relay's flash or toggle command,
    e.g. 0x5500), not only the standard 0xFF00/0x0000 pymodbus makes of a bool."""

    def __init__(self, address: int, word: int, device_id: int) -> None:
        super().__init__(address=address, bits=[bool(word)], dev_id=device_id)
        self.word = word

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.word)
