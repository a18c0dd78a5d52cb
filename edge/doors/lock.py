"""One door's lock relay, driven through the field bus: unlock pulses and held releases.

Pulses of one door are serial: one task per door (its runner) writes the profile's
`release` command, waits until the latest pulse's end, and writes `secure`. A pulse that
comes while one runs extends it to the later end (and writes `release` again, so a write
the module missed is retried); it never starts a second timer, so two overlapping pulses
cannot secure the door at the earlier one's end. While the building is fire-released the
lock is never secured. A write the module does not confirm (no answer, or the read-back
does not show it) is reported through `on_unconfirmed`, which journals a fault.

A lock with a `pulse` command is released by a pulse the module times itself, so a gateway
that dies mid-unlock cannot leave the door released: the runner writes the pulse for what
is left of the latest grant and needs no secure write. A pulse during a pulse sends it again
(the module starts its timer over). For a fire such a door is held by its `release` command
(config requires one on egress doors); since a module may still switch the relay off when a
pulse sent before the fire ends, `release` is written again once that pulse is over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from edge.doors.settings import Lock

log = structlog.get_logger("edge.doors")

CLOSE_SECURE_S = 1.0  # at stop, how long a door in mid-pulse may take to be secured
PULSE_END_MARGIN_S = 0.5  # after a module-timed pulse's end as the gateway reckons it, it is over at the module too


class CommandBus(Protocol):
    async def command(self, device: str, command: str, value: float | None = None) -> bool: ...


class DoorLock:
    def __init__(
        self,
        door: str,
        lock: Lock,
        bus: CommandBus,
        on_unconfirmed: Callable[[str, str], Awaitable[None]],
        held_released: Callable[[], bool],
        clock: Callable[[], float] | None = None,
        pulse_s: tuple[float, float] | None = None,
    ) -> None:
        """`pulse_s`: the seconds (lowest, highest) the lock's pulse command takes; None when
        the profile fixes its length (or the lock has no pulse)."""
        self.door = door
        self.lock = lock
        self._bus = bus
        self._on_unconfirmed = on_unconfirmed
        self._held_released = held_released
        self._clock = clock
        self._pulse_s = pulse_s
        self._until = float("-inf")  # when the running pulse ends (the latest of its grants)
        self._asked_s = 0.0  # the longest grant not yet written (a module-timed pulse is never shorter)
        # When the last pulse the module times ends, as reckoned here; None until this gateway sent
        # one: a pulse sent before a restart may still run, for as long as the command allows.
        self._module_until: float | None = None
        self._waiting: list[asyncio.Future[bool]] = []  # pulses whose release is not yet written
        self._poke = asyncio.Event()  # a pulse came while the runner waits
        self._runner: asyncio.Task[None] | None = None
        self._hold: asyncio.Task[None] | None = None  # writes release again after a module-timed pulse (fire)

    def open_for(self, seconds: float) -> asyncio.Future[bool]:
        """Release now (or keep released) until `seconds` from now, then secure.

        Returns at once; the future says whether the module confirmed the release. Nobody
        has to await it: the runner settles it and reports an unconfirmed write itself."""
        loop = asyncio.get_running_loop()
        self._until = max(self._until, self._now() + seconds)
        self._asked_s = max(self._asked_s, seconds)
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
        if self.lock.release is None:  # config refuses this on egress doors
            log.error("lock has no release command to hold the door released", door=self.door)
            _settle(waiting, False)
            return False
        confirmed = await self._write(self.lock.release)
        _settle(waiting, confirmed)
        self.keep_released()
        return confirmed

    def keep_released(self) -> None:
        """The door is released for a fire (by `release()`, or by its module's block write): a
        module-timed pulse sent before may switch the relay off when it ends, so `release` is
        written again once that pulse is over."""
        until = self._module_until
        if until is None and self.lock.pulse is not None and self._pulse_s is not None:
            until = self._module_until = self._now() + self._pulse_s[1]  # a pulse from before a restart
        if until is not None and until > self._now() and self._hold is None and self.lock.release is not None:
            self._hold = asyncio.create_task(self._hold_past_pulse(until), name=f"lock-hold:{self.door}")

    async def secure(self) -> bool:
        waiting = await self._stop_runner()
        _settle(waiting, False)
        if self.lock.secure is None:
            return True  # pulse only: the module ends its pulse by itself
        return await self._write(self.lock.secure)

    async def close(self) -> None:
        """At stop: end the runner; a door in mid-pulse is secured (within CLOSE_SECURE_S),
        unless the module times its pulse and ends it by itself."""
        was_pulsing = self._runner is not None
        _settle(await self._stop_runner(), False)
        if was_pulsing and not self._held_released() and self.lock.pulse is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_SECURE_S):
                    await self._bus.command(self.lock.device, self.lock.secure)

    async def _run(self) -> None:
        try:
            while True:
                if self._waiting:
                    waiting, self._waiting = self._waiting, []
                    self._poke.clear()
                    _settle(waiting, await self._unlock())
                    continue
                if self.lock.pulse is not None:
                    return  # the module ends the pulse: nothing to secure
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

    async def _unlock(self) -> bool:
        """Release until the latest grant's end: the release command, or the module-timed
        pulse for what is left of it (the module starts its timer over), and never shorter
        than the grants it answers (the write's own latency is not taken off them)."""
        if self.lock.pulse is None:
            return await self._write(self.lock.release)
        if self._pulse_s is None:  # the profile fixes the length; unlock_s should match it
            self._module_pulse_ends(self._until)
            return await self._write(self.lock.pulse)
        lowest, highest = self._pulse_s
        asked, self._asked_s = self._asked_s, 0.0
        seconds = min(max(self._until - self._now(), asked, lowest), highest)
        self._module_pulse_ends(self._now() + seconds)
        return await self._write(self.lock.pulse, seconds)

    def _module_pulse_ends(self, at: float) -> None:
        self._module_until = at if self._module_until is None else max(self._module_until, at)

    async def _hold_past_pulse(self, until: float) -> None:
        """Fire release of a door in a module-timed pulse: the module may switch the relay off
        when that pulse ends (`until`), so write `release` again once it is over."""
        try:
            await asyncio.sleep(max(0.0, until - self._now()) + PULSE_END_MARGIN_S)
            if self._held_released() and self.lock.release is not None:
                await self._write(self.lock.release)
        except Exception:  # noqa: BLE001 - nobody awaits the hold: say it here
            log.exception("lock hold after a pulse failed", door=self.door)
        finally:
            if self._hold is asyncio.current_task():
                self._hold = None

    async def _stop_runner(self) -> list[asyncio.Future[bool]]:
        """Cancel the runner and forget the pulse; returns the pulses still waiting for a release."""
        runner, self._runner = self._runner, None
        hold, self._hold = self._hold, None
        for task in (runner, hold):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        waiting, self._waiting = self._waiting, []
        self._until, self._asked_s = float("-inf"), 0.0
        self._poke.clear()
        return waiting

    async def _write(self, command: str | None, value: float | None = None) -> bool:
        assert command is not None  # the config gives every command a lock is driven by
        if value is None:
            confirmed = await self._bus.command(self.lock.device, command)
        else:
            confirmed = await self._bus.command(self.lock.device, command, value)
        if not confirmed:
            await self._on_unconfirmed(self.door, command)
        return confirmed

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()


def _settle(waiting: list[asyncio.Future[bool]], confirmed: bool) -> None:
    for future in waiting:
        if not future.done():
            future.set_result(confirmed)
