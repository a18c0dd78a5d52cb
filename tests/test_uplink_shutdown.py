"""Stopping the uplink: every task ends on cancel, whenever the cancel lands, and a stop has a deadline.

On Python 3.11 `asyncio.wait_for` returns the inner result and swallows a cancellation that
arrives in the same loop turn as the inner wait completes; the push loop waited that way and
then looped forever while `Uplink.run` waited for it without a deadline (2 bench runs in 55).
These tests land the cancel 0..N loop turns after the push loop is woken, so one of them lands
exactly as its wait completes.
"""

from __future__ import annotations

import asyncio

import structlog

from edge.runtime.tasks import cancel_within, first_to_end
from edge.hil.broker import Broker

from uplink_rig import reading, start_gateway, stop_gateway, until, uplink_config

TURNS = range(8)


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)  # one loop turn


async def _stops(task: asyncio.Task, within_s: float = 10.0) -> bool:
    done, _ = await asyncio.wait([task], timeout=within_s)
    return task in done


async def _synced_gateway(config_path):
    """The gateway's uplink started, connected, and with nothing left to send."""
    journal, store, uplink, task = await start_gateway(config_path)
    await until(lambda: uplink.connected.is_set() and uplink.pusher.synced_seq >= journal.head_seq)
    return journal, store, uplink, task


async def _cancel_after_each_turn(write_config, building_dir, wake, what: str) -> None:
    """For each of TURNS loop turns: a gateway synced with a mosquitto, woken by `wake(journal, uplink,
    turns)` (it may give a task to await once the uplink is cancelled), cancelled that many turns
    later; the uplink must end within 10 s each time."""
    with Broker() as broker:
        config_path = uplink_config(write_config, building_dir, broker.port)
        for turns in TURNS:
            journal, store, uplink, task = await _synced_gateway(config_path)
            woken = await wake(journal, uplink, turns)
            await _turns(turns)
            task.cancel()
            stopped = await _stops(task)
            if woken is not None:
                await woken
            await stop_gateway(journal, store, uplink, task)
            assert stopped, f"the uplink still ran 10 s after a cancel {turns} loop turns after {what}"


def test_a_cancel_landing_as_the_push_loop_is_woken_still_ends_the_uplink(write_config, building_dir):
    async def wake(journal, uplink, turns):
        uplink.pusher.wake()

    asyncio.run(_cancel_after_each_turn(write_config, building_dir, wake, "a wake"))


def test_a_cancel_landing_as_a_commit_wakes_the_uplink_still_ends_it(write_config, building_dir):
    async def commit(journal, uplink, turns):
        head = journal.head_seq
        appended = asyncio.create_task(journal.append(reading(turns)))
        assert await journal.wait_beyond(head, 10)  # this task and the uplink wake in the same turn
        return appended

    asyncio.run(_cancel_after_each_turn(write_config, building_dir, commit, "a commit"))


async def _deaf() -> None:
    """A task that will not stop: it swallows every cancellation (what the 3.11 wait_for did once)."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


def test_a_task_that_will_not_stop_is_named_and_the_stop_goes_on_after_its_deadline():
    async def scenario():
        deaf = asyncio.create_task(_deaf(), name="deaf")
        polite = asyncio.create_task(asyncio.sleep(3600), name="polite")
        await asyncio.sleep(0)
        with structlog.testing.capture_logs() as logs:
            assert await cancel_within([deaf, polite], 0.2) is False
        assert polite.cancelled() and not deaf.done()
        assert [entry["tasks"] for entry in logs if entry["log_level"] == "error"] == [["deaf"]]
        deaf.get_coro().close()  # end it for good: it ignores cancel by design

    asyncio.run(scenario())


def test_the_first_loop_to_end_stops_the_others_and_its_failure_is_raised():
    async def scenario():
        async def fails() -> None:
            await asyncio.sleep(0)
            raise ConnectionError("link lost")

        others_ended = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                others_ended.set()

        try:
            await first_to_end({"forever": forever(), "fails": fails()}, 5.0)
        except ConnectionError as error:
            assert str(error) == "link lost"
        else:
            raise AssertionError("the failure was not raised")
        assert others_ended.is_set()

    asyncio.run(scenario())
