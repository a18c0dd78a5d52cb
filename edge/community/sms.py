"""The SMS path: the modem driver, off the loop, one message at a time.

`AtModem` blocks (serial reads with deadlines), so every call runs in a thread and calls are
serialised by a lock: a modem does one AT command at a time. A failed call closes the port,
so the next one starts from a fresh open (the modem may have reset or been replugged).
"""

from __future__ import annotations

import asyncio
import os

from edge.drivers.modem.at import AtModem, ModemError, ModemStatus
from edge.drivers.modem.pdu import StatusReport
from edge.runtime import pools
from edge.community.settings import Modem
from edge.runtime.pools import Pool


class SmsSender:
    def __init__(self, settings: Modem) -> None:
        pin = os.environ.get(settings.pin_env) if settings.pin_env else None
        self.settings = settings
        self.modem = AtModem(settings.port, settings.baud, settings.timeout_s, pin)
        self._open = False
        self._lock = asyncio.Lock()

    async def check(self) -> ModemStatus:
        """Open (if need be) and read signal and registration; raises ModemError and subclasses."""
        return await self._call(self._status)

    async def send(self, number: str, text: str) -> list[int]:
        return await self._call(self._send, number, text)

    async def poll(self) -> list[StatusReport]:
        if not self._open:
            return []
        return await self._call(self.modem.poll)

    async def close(self) -> None:
        async with self._lock:
            await pools.call(Pool.NETWORK, self.modem.close)
            self._open = False

    async def _call(self, function, *args):
        async with self._lock:
            try:
                return await pools.call(Pool.NETWORK, function, *args)
            except ModemError:
                self._open = False
                await pools.call(Pool.NETWORK, self.modem.close)
                raise

    def _ensure_open(self) -> ModemStatus | None:
        if self._open:
            return None
        status = self.modem.open()
        self._open = True
        return status

    def _status(self) -> ModemStatus:
        return self._ensure_open() or self.modem.status()

    def _send(self, number: str, text: str) -> list[int]:
        self._ensure_open()
        return self.modem.send(number, text)
