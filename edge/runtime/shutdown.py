"""The daemon's last second: a thread stuck in a library must not hold the process past its stop.

`asyncio.run` waits without limit for every call still running in the loop's default executor
(a serial read a USB adapter never answers, a library's stop that hangs), and the interpreter
waits for the same threads again at exit; systemd would then kill the daemon at TimeoutStopSec
and report a failed stop. Here the default executor and the daemon's named pools (`edge.runtime.pools`)
get one deadline once the gateway has stopped (its journal closed and flushed): calls still
running then are named in the log, and the caller ends the process at once with `os._exit`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from edge.runtime import pools

log = structlog.get_logger("edge.gateway")

PREFIX = "edge-call"  # the default executor's threads: edge-call_0, ...; all share pools.PREFIX


def run(main: Coroutine[Any, Any, Any], grace_s: float) -> list[str]:
    """`asyncio.run(main)`, waiting at most `grace_s` for the default executor's calls at the end.

    Returns the names of the threads still running then (empty on a clean exit); what `main`
    raises is raised after the clean-up, as with asyncio.run."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix=PREFIX)
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            pools.shutdown()
            stuck = _join(grace_s)
            asyncio.set_event_loop(None)
            loop.close()
    if stuck:
        log.error("calls still running at exit; not waiting for them", threads=stuck, waited_s=grace_s)
    return stuck


def _join(grace_s: float) -> list[str]:
    deadline = time.monotonic() + grace_s
    for thread in [t for t in threading.enumerate() if t.name.startswith(pools.PREFIX)]:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(pools.PREFIX) and t.is_alive())
