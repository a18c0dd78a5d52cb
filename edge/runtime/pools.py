"""Where blocking work runs: executors named and sized per job, and a thread of its own for
each forever-blocking loop.

One shared pool was the daemon's bottleneck: every serial reader held one of its threads for
its whole life, so with six readers a PIN check (scrypt) or the fire latch's fsync waited for
a thread that never came. Here each kind of work has its own pool, so a slow kind can only
delay itself:

- `Pool.ACCESS`: what a door decision or a fire release waits on (PIN checks, the fire latch).
  Nothing slow may ever run here.
- `Pool.READS`: journal and state reads (status page, trail search, uplink push, followers).
- `Pool.FILES`: state-file writes and process start/stop (points.json, zone and care files, the
  address file, the camera worker); a refusing disk slows these and nothing else.
- `Pool.DEVICES`: short calls that wait on a driver's lock (a reader's LED and buzzer, a bus's
  stop, a device node's link).
- `Pool.NETWORK`: calls that may block for their whole timeout (MQTT connect, modem AT calls,
  signature checks of cloud messages).

A loop that blocks for its whole life (a serial port's read loop) never takes a pooled thread:
`in_thread` gives it a thread of its own. A job that waits longer than its pool's patience for
a thread is a named fault (`starving()`), which `/healthz` reports.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("edge.runtime.pools")

T = TypeVar("T")
PREFIX = "edge-"  # every thread the daemon starts for blocking work is named edge-...


class Pool(StrEnum):
    ACCESS = "access"
    READS = "reads"
    FILES = "files"
    DEVICES = "devices"
    NETWORK = "network"


@dataclass(frozen=True, slots=True)
class PoolSize:
    threads: int
    patience_s: float  # a job waiting longer than this for a thread is a fault


SIZES: dict[Pool, PoolSize] = {
    Pool.ACCESS: PoolSize(threads=2, patience_s=0.5),  # two doors' PINs at once; scrypt is ~50 ms
    Pool.READS: PoolSize(threads=2, patience_s=10.0),
    Pool.FILES: PoolSize(threads=2, patience_s=10.0),
    Pool.DEVICES: PoolSize(threads=2, patience_s=5.0),
    Pool.NETWORK: PoolSize(threads=4, patience_s=30.0),  # an MQTT connect may take its 10 s timeout
}
STARVED_KEEP_S = 60.0  # a pool that starved is reported this long after its last late job


class _Executor:
    """One named pool: a ThreadPoolExecutor that remembers when its waiting jobs were queued."""

    def __init__(self, pool: Pool, size: PoolSize) -> None:
        self.pool, self.size = pool, size
        self.threads = ThreadPoolExecutor(max_workers=size.threads, thread_name_prefix=f"{PREFIX}{pool.value}")
        self._queued: dict[object, float] = {}  # jobs not yet started -> when queued, oldest first
        self._lock = threading.Lock()
        self.late_at: float | None = None  # when a job last started later than the patience
        self.late_by_s = 0.0

    def submit(self, function: Callable[[], T]) -> Future[T]:
        job, queued = object(), time.monotonic()
        with self._lock:
            self._queued[job] = queued

        def run() -> T:
            started = time.monotonic()
            with self._lock:
                self._queued.pop(job, None)
                late = started - queued > self.size.patience_s
                if late:
                    self.late_at, self.late_by_s = started, started - queued
            if late:
                log.warning("work waited past its pool's patience for a thread", pool=self.pool.value,
                            waited_s=round(started - queued, 3), patience_s=self.size.patience_s)
            return function()

        future = self.threads.submit(run)
        future.add_done_callback(lambda _: self._forget(job))  # a job cancelled before it ran
        return future

    def _forget(self, job: object) -> None:
        with self._lock:
            self._queued.pop(job, None)

    def waiting_s(self, now: float) -> float:
        """How long the oldest job not yet started has waited (0 when none waits)."""
        with self._lock:
            return now - next(iter(self._queued.values())) if self._queued else 0.0


_executors: dict[Pool, _Executor] = {}
_executors_lock = threading.Lock()


def _executor(pool: Pool) -> _Executor:
    with _executors_lock:
        executor = _executors.get(pool)
        if executor is None:
            executor = _executors[pool] = _Executor(pool, SIZES[pool])
        return executor


async def call(pool: Pool, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `function(*args, **kwargs)` on `pool`'s threads and await its result (context variables kept)."""
    context = contextvars.copy_context()
    job = functools.partial(context.run, function, *args, **kwargs)
    return await asyncio.wrap_future(_executor(pool).submit(job))


def in_thread(name: str, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Start `function(*args)` on a thread of its own (`edge-NAME`), for a loop that blocks for its
    whole life; the returned future settles with its outcome. The caller stops the loop its own way
    (a port's `stop()`) and awaits the future; a thread that never ends does not hold the exit."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if outcome.done():
            return
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            result = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting task
            _post(loop, settle, None, error)
        else:
            _post(loop, settle, result, None)

    threading.Thread(target=body, name=f"{PREFIX}{name}", daemon=True).start()
    return outcome


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop closed first: nobody is left to tell
        pass


def starving(now: float | None = None) -> list[str]:
    """Pools whose jobs wait, or waited lately, longer than their patience: one line each."""
    now = time.monotonic() if now is None else now
    problems = []
    with _executors_lock:
        executors = list(_executors.values())
    for executor in executors:
        waiting = executor.waiting_s(now)
        if waiting > executor.size.patience_s:
            problems.append(f"{executor.pool.value} work has waited {waiting:.1f} s for a thread")
        elif executor.late_at is not None and now - executor.late_at < STARVED_KEEP_S:
            problems.append(f"{executor.pool.value} work waited {executor.late_by_s:.1f} s for a thread")
    return problems


def shutdown() -> None:
    """Stop taking work; jobs not yet started are dropped, running ones are not waited for here
    (the daemon's exit waits for them with a deadline, `edge.runtime.shutdown`)."""
    with _executors_lock:
        executors = list(_executors.values())
        _executors.clear()
    for executor in executors:
        executor.threads.shutdown(wait=False, cancel_futures=True)
