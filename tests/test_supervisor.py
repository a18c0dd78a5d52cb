"""The supervisor: failures are journaled, restarted with growing delays, and isolated."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from edge.events import Kind
from edge.hil.waiting import until
from edge.journal import EventQuery, Journal, read_events
from edge.runtime.supervisor import Backoff, Supervisor


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    policy = Backoff(initial_s=1, max_s=8)
    delays = list(itertools.islice(policy.delays(), 8))
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings):
        assert ceiling / 2 <= delay <= ceiling
    many = list(itertools.islice(Backoff(initial_s=1, max_s=1).delays(), 200))
    assert len(set(many)) > 150, "jitter spreads restarts out"


def test_a_failing_worker_is_restarted_and_journaled_while_others_keep_running(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "j.db")
        supervisor = Supervisor(journal, Backoff(initial_s=0.01, max_s=0.04, stable_after_s=60))
        attempts = 0
        healthy_ticks = 0

        async def flaky() -> None:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0)
            raise OSError(f"reader unplugged (attempt {attempts})")

        async def healthy() -> None:
            nonlocal healthy_ticks
            while True:
                healthy_ticks += 1
                await asyncio.sleep(0.005)

        supervisor.start("reader-gate", flaky)
        supervisor.start("meter-1", healthy)
        await until(lambda: attempts >= 6, 20, "six attempts", every_s=0.01)
        ticks_during_failures = healthy_ticks
        await supervisor.stop()
        await journal.close()
        return attempts, ticks_during_failures, supervisor.failures

    attempts, ticks, failures = asyncio.run(scenario())
    assert attempts >= 6
    assert ticks > 10, "the healthy worker kept running while the other failed"
    faults = read_events(tmp_path / "j.db", EventQuery(kinds=(Kind.TASK_FAILED,), limit=None))
    assert len(faults) >= 5
    assert {f.source for f in faults} == {"reader-gate"}
    first = faults[0].body
    assert first["error"] == "OSError" and "reader unplugged (attempt 1)" in first["detail"]
    assert [f.body["failures"] for f in faults] == list(range(1, len(faults) + 1))
    assert faults[3].body["restart_in_s"] >= 0.02 and faults[0].body["restart_in_s"] <= 0.01


def test_a_worker_that_ran_long_enough_restarts_from_the_shortest_delay(tmp_path: Path):
    async def scenario():
        journal = await Journal.open(tmp_path / "j.db")
        supervisor = Supervisor(journal, Backoff(initial_s=0.01, max_s=10, stable_after_s=0.05))
        runs = 0

        async def sometimes_stable() -> None:
            nonlocal runs
            runs += 1
            if runs == 4:
                await asyncio.sleep(0.1)  # ran "long" this time
            raise RuntimeError("device answered garbage")

        supervisor.start("meter-2", sometimes_stable)
        await until(lambda: runs >= 6, 20, "six runs", every_s=0.01)
        await supervisor.stop()
        await journal.close()

    asyncio.run(scenario())
    delays = [f.body["restart_in_s"] for f in read_events(tmp_path / "j.db", EventQuery(kinds=(Kind.TASK_FAILED,), limit=None))]
    assert delays[2] >= 0.02, "third failure in a row waits longer"
    assert delays[3] <= 0.01, "after a stable run the delay starts over"


def test_a_wake_while_the_worker_runs_restarts_it_right_after_its_next_failure_once(tmp_path: Path):
    """The device came back before the driver noticed it had gone: its next failure restarts
    it at once; the one after waits out the backoff again (a wake is one restart)."""
    async def scenario():
        journal = await Journal.open(tmp_path / "j.db")
        supervisor = Supervisor(journal, Backoff(initial_s=60.0, max_s=60.0))
        attempts = 0
        fail = asyncio.Event()

        async def reader() -> None:
            nonlocal attempts
            attempts += 1
            await fail.wait()
            fail.clear()
            raise OSError("port gone")

        supervisor.start("reader:front", reader)
        await asyncio.sleep(0)
        woken = supervisor.wake("reader:front"), supervisor.wake("reader:front"), supervisor.wake("reader:nobody")
        fail.set()
        await until(lambda: attempts >= 2, 10, "the woken restart", every_s=0.01)  # far inside the 30-60 s backoff
        fail.set()  # the second failure: no wake left, so the backoff holds it
        await until(lambda: supervisor.failures["reader:front"] >= 2, 10, "the second failure counted", every_s=0.01)
        after = attempts  # counted as it entered the backoff: only a wake could restart it now
        await supervisor.stop()
        await journal.close()
        return woken, after

    woken, attempts = asyncio.run(scenario())
    assert woken == (True, True, False)
    assert attempts == 2, "restarted once at the wake, then held by the backoff"


def test_a_task_group_failure_journals_each_cause_with_its_traceback(tmp_path: Path):
    """A worker made of a task group fails as an ExceptionGroup: the journal names each cause
    (the full disk under points.json, say), not "1 sub-exception"."""
    import errno

    async def scenario():
        journal = await Journal.open(tmp_path / "j.db")
        supervisor = Supervisor(journal, Backoff(initial_s=5, max_s=5))
        failed = asyncio.Event()

        def write_points_file() -> None:
            raise OSError(errno.ENOSPC, "No space left on device", "points.json")

        async def snapshots() -> None:
            await asyncio.sleep(0)
            write_points_file()

        async def field_points() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(snapshots())
                    group.create_task(asyncio.sleep(3600))
            finally:
                failed.set()

        supervisor.start("field-points", field_points)
        await asyncio.wait_for(failed.wait(), 10)
        await until(lambda: read_events(tmp_path / "j.db", EventQuery(kinds=(Kind.TASK_FAILED,), limit=None)), 20, "task.failed journaled",
                    every_s=0.01)
        await supervisor.stop()
        await journal.close()

    asyncio.run(scenario())
    (fault,) = read_events(tmp_path / "j.db", EventQuery(kinds=(Kind.TASK_FAILED,), limit=None))
    assert fault.body["error"] == "OSError"
    assert "No space left on device" in fault.body["detail"] and "sub-exception" not in fault.body["detail"]
    (cause,) = fault.body["causes"]
    assert cause["error"] == "OSError" and "write_points_file" in cause["traceback"]
