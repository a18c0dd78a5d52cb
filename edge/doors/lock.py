"""One door's lock relay, driven through the field bus: unlock pulses and held releases.

Pulses of one door are serial: one task per door (its runner) writes the profile's
`release` command, waits until the latest pulse's end, and writes `secure`. A pulse that
comes while one runs extends it to the later end (and writes `release` again, so a write
the module missed is retried); it never starts a second timer, so two overlapping pulses
cannot secure the door at the earlier one's end. While the building is fire-released the
lock is never secured. A write the module does not confirm (no answer, or the read-back
does not show it) is reported through `on_unconfirmed`, which journals a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from edge.config import Lock

log = structlog.get_logger("edge.doors")

CLOSE_SECURE_S = 1.0  # at stop, how long a door in mid-pulse may take to be secured


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
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.door = door
        self.lock = lock
        self._bus = bus
        self._on_unconfirmed = on_unconfirmed
        self._held_released = held_released
        self._clock = clock
        self._until = float("-inf")  # when the running pulse ends (the latest of its grants)
        self._waiting: list[asyncio.Future[bool]] = []  # pulses whose release is not yet written
        self._poke = asyncio.Event()  # a pulse came while the runner waits
        self._runner: asyncio.Task[None] | None = None

    def open_for(self, seconds: float) -> asyncio.Future[bool]:
        """Release now (or keep released) until `seconds` from now, then secure.

        Returns at once; the future says whether the module confirmed the release. Nobody
        has to await it: the runner settles it and reports an unconfirmed write itself."""
        loop = asyncio.get_running_loop()
        self._until = max(self._until, self._now() + seconds)
        confirmed: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(confirmed)
        self._poke.set()
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"lock:{self.door}")
        return confirmed

    async def pulse(self, seconds: float) -> bool:
        """Release now, secure after `seconds`; True when the module confirmed the release."""
        return await asyncio.shield(self.open_for(seconds))

    @property
    def pulsing(self) -> bool:
        return self._runner is not None

    async def release(self) -> bool:
        """Release and stay released (fire egress) until `secure()`."""
        waiting = await self._stop_runner()
        confirmed = await self._write(self.lock.release)
        _settle(waiting, confirmed)
        return confirmed

    async def secure(self) -> bool:
        waiting = await self._stop_runner()
        _settle(waiting, False)
        return await self._write(self.lock.secure)

    async def close(self) -> None:
        """At stop: end the runner; a door in mid-pulse is secured (within CLOSE_SECURE_S)."""
        was_pulsing = self._runner is not None
        _settle(await self._stop_runner(), False)
        if was_pulsing and not self._held_released():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_SECURE_S):
                    await self._bus.command(self.lock.device, self.lock.secure)

    async def _run(self) -> None:
        try:
            while True:
                if self._waiting:
                    waiting, self._waiting = self._waiting, []
                    self._poke.clear()
                    _settle(waiting, await self._write(self.lock.release))
                    continue
                remaining = self._until - self._now()
                if remaining > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await self._poke.wait()
                    continue
                if not self._held_released():
                    await self._write(self.lock.secure)
                if not self._waiting and self._until <= self._now():
                    return  # no pulse came during the secure write: the door is done
        except Exception:  # noqa: BLE001 - nobody awaits the runner: say it here, fail the pulses
            log.exception("lock runner failed", door=self.door)
            _settle(self._waiting, False)
            self._waiting = []
        finally:
            if self._runner is asyncio.current_task():
                self._runner = None

    async def _stop_runner(self) -> list[asyncio.Future[bool]]:
        """Cancel the runner and forget the pulse; returns the pulses still waiting for a release."""
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        waiting, self._waiting = self._waiting, []
        self._until = float("-inf")
        self._poke.clear()
        return waiting

    async def _write(self, command: str) -> bool:
        confirmed = await self._bus.command(self.lock.device, command)
        if not confirmed:
            await self._on_unconfirmed(self.door, command)
        return confirmed

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()


def _settle(waiting: list[asyncio.Future[bool]], confirmed: bool) -> None:
    for future in waiting:
        if not future.done():
            future.set_result(confirmed)
