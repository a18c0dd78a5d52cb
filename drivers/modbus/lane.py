"""Turns on one wire: a command goes ahead of every poll that is waiting.

A line carries one transaction at a time. With a first-come lock an unlock or a trip that
arrives while other work is queued (another command's read-back, a poll, the retries of
a sick device) waits behind all of it; on a 9600-baud line that is tens of milliseconds
per transaction in front. The lane hands the wire to the most urgent waiter instead, first
come first served within one priority. A transaction already on the wire is never cut:
its answer would arrive in the next one's place.
"""

from __future__ import annotations

import asyncio
import heapq
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first."""

    COMMAND = 0  # a write and its read-back: someone is waiting at a door or a breaker
    POLL = 1


class WireLane:
    """One wire's turns: an asyncio lock whose waiters are served by priority, then in arrival order.

    Waiters are tasks (one poll task per wire plus the commands in flight), so the heap is
    as bounded as they are.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = 0

    @property
    def waiting(self) -> int:
        """Transactions queued for the wire (for diagnostics and tests)."""
        return sum(1 for _, _, turn in self._waiting if not turn.done())

    def take(self) -> bool:
        """Take a free wire at once, without a coroutine (the common case); False when it is busy."""
        if self._busy:
            return False
        self._busy = True
        return True

    async def acquire(self, priority: Priority) -> None:
        if not self._busy:  # the common case; a free wire has no waiters (release drains them)
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        heapq.heappush(self._waiting, (priority, self._arrivals, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # the wire was handed to us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        """Hand the wire to the most urgent live waiter, or free it."""
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # a cancelled waiter's future is done: skip it
                turn.set_result(None)
                return  # still busy: the wire passed straight to that waiter
        self._busy = False
