"""The daemon's exit: a call stuck in a thread is named and does not hold the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

STUCK = textwrap.dedent("""
    import asyncio, sys, threading
    from edge.runtime import shutdown

    async def main():
        # a library call that never returns (a read a USB adapter never answers)
        asyncio.get_running_loop().run_in_executor(None, threading.Event().wait)
        await asyncio.sleep(0.1)
        return "stopped"

    if sys.argv[1] == "asyncio":
        asyncio.run(main())
    else:
        stuck = shutdown.run(main(), grace_s=0.5)
        print(stuck, flush=True)
        if stuck:
            import os
            os._exit(0)
""")


def _run(how: str, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STUCK, how], capture_output=True, text=True, timeout=timeout_s)


def test_a_call_stuck_in_a_thread_is_named_and_the_process_ends_after_the_grace():
    started = time.monotonic()
    result = _run("shutdown", 30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['edge-call_0']"
    assert "calls still running at exit" in result.stdout + result.stderr
    assert time.monotonic() - started < 30


def test_without_it_asyncio_run_waits_for_the_stuck_call_forever():
    """What the daemon ran before: the same program never ends."""
    with pytest.raises(subprocess.TimeoutExpired):
        _run("asyncio", 5)


def test_a_clean_exit_names_nothing_and_returns_what_main_raised():
    from edge.runtime import shutdown

    async def ok() -> None:
        import asyncio

        await asyncio.to_thread(lambda: None)

    assert shutdown.run(ok(), grace_s=0.5) == []

    async def broken() -> None:
        raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        shutdown.run(broken(), grace_s=0.5)
