"""The supervisor: keeps every driver and worker running, each on its own.

A card reader unplugged at 2 a.m. must not stop the breaker monitors. Each worker runs as
its own asyncio task; when it raises, the failure is journaled as a fault and the worker
is restarted after an exponentially growing, jittered delay (so a dead device does not
spin the CPU, and twenty readers that fail together do not retry in lockstep). A worker
that ran for a while before failing starts again from the shortest delay. A worker can be
woken (`wake`): its device came back, so it restarts at once, from the shortest delay, rather
than when its backoff ends (a technician re-plugging an adapter should not wait a minute).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import traceback
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator

import backoff
import structlog

from edge.runtime.deadline import Deadline
from edge.events import Event, Kind, Priority
from edge.journal import Journal

log = structlog.get_logger("edge.runtime.supervisor")

Work = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: initial * 2^n up to a cap, each jittered to between half and all of it."""

    initial_s: float = 1.0
    max_s: float = 60.0
    stable_after_s: float = 60.0

    def delays(self) -> Iterator[float]:
        wait = backoff.expo(factor=self.initial_s, max_value=self.max_s)
        next(wait)  # the generator's first yield only primes it
        for delay in wait:
            yield delay / 2 + random.uniform(0, delay / 2)


class Supervisor:
    """Starts workers, restarts them when they fail, and stops them all on request."""

    def __init__(self, journal: Journal, policy: Backoff = Backoff()) -> None:
        self.journal = journal
        self.policy = policy
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failures: dict[str, int] = {}
        self._woken: dict[str, asyncio.Event] = {}
        self.deadline = Deadline.never()  # the stop in progress: workers' own steps on the way out share it

    def start(self, name: str, work: Work) -> None:
        if name in self.tasks:
            raise ValueError(f"worker {name!r} is already running")
        self.failures[name] = 0
        self._woken[name] = asyncio.Event()
        self.tasks[name] = asyncio.create_task(self._keep_running(name, work), name=name)

    async def _keep_running(self, name: str, work: Work) -> None:
        delays = self.policy.delays()
        while True:
            started = time.monotonic()
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as failure:  # noqa: BLE001 - any driver failure is journaled, then retried
                if time.monotonic() - started >= self.policy.stable_after_s:
                    delays = self.policy.delays()
                delay = next(delays)
                self.failures[name] += 1
                await self._journal_failure(name, failure, delay)
                if await self._backoff(name, delay):
                    delays = self.policy.delays()
                    log.info("worker woken: restarting now", worker=name)
            else:
                log.info("worker finished", worker=name)
                return

    def wake(self, name: str) -> bool:
        """Restart worker `name` now if it waits out a backoff, or right after its next failure
        if it still runs (its old port fails on the next read); False if there is no such worker.
        Many wakes before the restart are one restart."""
        woken = self._woken.get(name)
        if woken is None or name not in self.tasks:
            return False
        woken.set()
        return True

    async def _backoff(self, name: str, delay: float) -> bool:
        """Wait `delay` before a restart; True when `wake` cut it short (or came while the worker ran)."""
        woken = self._woken[name]
        try:
            async with asyncio.timeout(delay):
                await woken.wait()
        except TimeoutError:
            return False
        woken.clear()
        return True

    async def _journal_failure(self, name: str, failure: Exception, delay: float) -> None:
        """Journal and log why `name` failed: each exception of a task group on its own, with its
        traceback (an "ExceptionGroup (1 sub-exception)" tells a technician nothing)."""
        causes = list(_leaves(failure))
        event = Event(
            kind=Kind.TASK_FAILED,
            priority=Priority.FAULT,
            source=name,
            body={
                "error": type(causes[0]).__name__,
                "detail": "; ".join(f"{type(c).__name__}: {c}" for c in causes)[:500],
                "causes": [_cause(c) for c in causes[:MAX_CAUSES]],
                "failures": self.failures[name],
                "restart_in_s": round(delay, 3),
            },
        )
        for cause in causes:
            log.error("worker failed", worker=name, event_id=event.id, error=f"{type(cause).__name__}: {cause}",
                      restart_in_s=round(delay, 3), exc_info=cause)
        await self.journal.append(event)

    async def retire(self, name: str, within_s: float) -> bool:
        """Stop one worker (a reader a reload removed or changed) and forget it; False when it did not
        end within `within_s` (it is left cancelled, and logged)."""
        task = self.tasks.pop(name, None)
        self._woken.pop(name, None)
        self.failures.pop(name, None)
        if task is None:
            return True
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=within_s)
        if not done:
            log.error("worker did not stop in time", worker=name, within_s=within_s)
        return bool(done)

    async def stop(self, deadline: Deadline | None = None) -> list[str]:
        """Cancel every worker and wait, until `deadline`, for them to finish their cleanup (which
        shares `self.deadline`); returns the workers still running then (logged by name)."""
        self.deadline = deadline or Deadline.never()
        for task in self.tasks.values():
            task.cancel()
        stuck: list[str] = []
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks.values(), timeout=None if math.isinf(self.deadline.at) else self.deadline.left())
            stuck = sorted(task.get_name() for task in pending)
        if stuck:
            log.error("workers did not stop in time", workers=stuck)
        self.tasks.clear()
        return stuck


MAX_CAUSES = 8  # sub-exceptions journaled per failure (all are logged)
TRACEBACK_CHARS = 2000


def _leaves(failure: BaseException) -> Iterator[BaseException]:
    """The exceptions a (nested) exception group stands for; the exception itself otherwise."""
    if isinstance(failure, BaseExceptionGroup):
        for inner in failure.exceptions:
            yield from _leaves(inner)
    else:
        yield failure


def _cause(failure: BaseException) -> dict[str, str]:
    """One cause as the journal keeps it: its type, message and the end of its traceback."""
    trace = "".join(traceback.format_exception(failure))
    return {"error": type(failure).__name__, "detail": str(failure)[:500], "traceback": trace[-TRACEBACK_CHARS:]}
