"""The one way the daemon runs loops side by side: they end together, and stopping them has a deadline.

A part made of several loops runs them in an `asyncio.TaskGroup` (short helpers it starts later,
a PIN check or a reader's LED, go into the same group), or, where a stop must not wait without
limit for a loop stuck in a library, with `first_to_end`: a TaskGroup with a bounded teardown: when one loop ends (a lost session,
a failure) or the caller is cancelled, the others are cancelled and waited for at most
`stop_within_s`. A task that is still running by then is named in the log instead of
hanging the gateway's shutdown (on Python 3.11 `wait_for` can swallow a cancellation that
arrives as its inner wait completes, which once left a shutdown waiting forever).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import structlog

log = structlog.get_logger("edge.runtime.tasks")


async def first_to_end(loops: dict[str, Coroutine[Any, Any, Any]], stop_within_s: float | Callable[[], float]) -> Any:
    """Run each coroutine as a task named by its key until one ends; cancel the rest; return
    what the first returned or raise what it raised (the first in `loops` order, if several).
    `stop_within_s` may be a function, asked when the teardown starts (a share of a stop's time)."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in loops.items()]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        first = next(task for task in tasks if task.done())
        return first.result()
    finally:
        await cancel_within(tasks, stop_within_s() if callable(stop_within_s) else stop_within_s)


async def cancel_within(tasks: Iterable[asyncio.Task[Any]], within_s: float) -> bool:
    """Cancel `tasks` and wait at most `within_s` for them to end; False (and logged) if some did not."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    pending = [task for task in tasks if not task.done()]
    stuck: set[asyncio.Task[Any]] = set()
    if pending:
        _, stuck = await asyncio.wait(pending, timeout=within_s)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the caller raised the one that mattered
    if stuck:
        log.error("tasks did not stop when cancelled", tasks=sorted(t.get_name() for t in stuck), within_s=within_s)
    return not stuck
