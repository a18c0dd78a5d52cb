"""Wait for a condition with a deadline: the one poll-until of the rig, its benchmarks and the tests.

A rig and its tests mostly wait for something another process or thread does (a daemon
journals an event, a simulator sees a coil write). Each used to write its own loop, and they
differed in what a miss raised, whether the value found came back, and whether a predicate
could be async. Here it is once, in a synchronous and an asyncio form, with the same rules:
the predicate is asked at once and then every `every_s`; its first truthy answer is returned;
past `timeout_s` a `NotReached` names `what` (a string, or a callable giving one at the end
so it can say what was seen instead).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


class NotReached(AssertionError, TimeoutError):
    """A condition not met by its deadline: a failed expectation to a test (AssertionError), a
    timeout to the rig and to callers that catch TimeoutError."""


def until_sync(predicate: Callable[[], Any], timeout_s: float, what: str | Callable[[], str] = "condition", *,
               every_s: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """The first truthy value of `predicate()`, asked every `every_s` for at most `timeout_s`.

    `ignore`: exceptions that mean "not yet" (a table the daemon has not created), asked again."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = _ask(predicate, ignore)
        if found:
            return found
        if time.monotonic() > deadline:
            raise NotReached(_words(what, timeout_s))
        time.sleep(every_s)


async def until(predicate: Callable[[], Any], timeout_s: float, what: str | Callable[[], str] = "condition", *,
                every_s: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """`until_sync` on the running loop: sleeps without blocking it; `predicate` may be async."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = _ask(predicate, ignore)
        if inspect.isawaitable(found):
            try:
                found = await found
            except ignore:
                found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise NotReached(_words(what, timeout_s))
        await asyncio.sleep(every_s)


async def by_deadline(probe: Callable[[], Any], deadline: float, *, every_s: float) -> Any:
    """The first truthy answer of `probe()` (it may be async), asked at once and every `every_s`
    until the monotonic `deadline` has passed; None when it never came. For a waiter that says for
    itself what a miss means (the runner's expectations report what they saw instead)."""
    while True:
        found = probe()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(every_s)


def _ask(predicate: Callable[[], Any], ignore: tuple[type[BaseException], ...]) -> Any:
    try:
        return predicate()
    except ignore:
        return None


def _words(what: str | Callable[[], str], timeout_s: float) -> str:
    return f"{what() if callable(what) else what} not reached within {timeout_s} s"
