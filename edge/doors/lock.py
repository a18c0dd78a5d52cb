"""One door's lock relay, driven through the field bus: unlock pulses and held releases.

A pulse writes the profile's `release` command at once and `secure` after the pulse;
a new grant during a pulse restarts its timer. While the building is fire-released the
lock is never secured. A write the module does not confirm (no answer, or the read-back
does not show it) is reported through `on_unconfirmed`, which journals a fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from edge.config import Lock


class CommandBus(Protocol):
    async def command(self, device: str, command: str) -> bool: ...


class DoorLock:
    def __init__(
        self,
        door: str,
        lock: Lock,
        bus: CommandBus,
        on_unconfirmed: Callable[[str, str], Awaitable[None]],
        held_released: Callable[[], bool],
    ) -> None:
        self.door = door
        self.lock = lock
        self._bus = bus
        self._on_unconfirmed = on_unconfirmed
        self._held_released = held_released
        self._secure_timer: asyncio.Task[None] | None = None

    async def pulse(self, seconds: float) -> bool:
        """Release now, secure after `seconds`; True when the module confirmed the release."""
        self._cancel_timer()
        confirmed = await self._write(self.lock.release)
        self._secure_timer = asyncio.create_task(self._secure_after(seconds), name=f"secure:{self.door}")
        return confirmed

    async def release(self) -> bool:
        """Release and stay released (fire egress) until `secure()`."""
        self._cancel_timer()
        return await self._write(self.lock.release)

    async def secure(self) -> bool:
        self._cancel_timer()
        return await self._write(self.lock.secure)

    async def _secure_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._secure_timer = None
        if not self._held_released():
            await self._write(self.lock.secure)

    async def _write(self, command: str) -> bool:
        confirmed = await self._bus.command(self.lock.device, command)
        if not confirmed:
            await self._on_unconfirmed(self.door, command)
        return confirmed

    def _cancel_timer(self) -> None:
        if self._secure_timer is not None and self._secure_timer is not asyncio.current_task():
            self._secure_timer.cancel()
        self._secure_timer = None
