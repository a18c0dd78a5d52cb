"""A decision shown on its reader (OSDP: LED and buzzer), after the door's unlock has started.

The call waits on the reader driver's lock, so it runs on the devices pool: one call per reader
at a time, and a newer decision replaces one still waiting for it (a queue of old greens and reds
would show a tenant someone else's answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from edge.runtime import pools
from edge.runtime.pools import Pool

log = structlog.get_logger("edge.doors")

Show = Callable[[str, bool], None]  # (reader, granted), blocking
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]  # a helper task of the access path


class Indication:
    def __init__(self, indicators: dict[str, Show], spawn: Spawn) -> None:
        self.indicators = indicators  # by reader; a reload replaces this dict (edge/doors/retune.py)
        self._spawn = spawn
        self._calls: dict[str, asyncio.Task[None]] = {}  # one indicator call per reader at a time
        self._next: dict[str, bool] = {}  # the latest decision waiting for its reader's indicator

    def show(self, reader: str, granted: bool) -> None:
        if reader not in self.indicators:
            return
        self._next[reader] = granted
        if reader not in self._calls:
            task = self._spawn(self._show(reader), f"indicate:{reader}")
            self._calls[reader] = task
            task.add_done_callback(lambda _, reader=reader: self._calls.pop(reader, None))

    async def _show(self, reader: str) -> None:
        indicate = self.indicators[reader]
        while (granted := self._next.pop(reader, None)) is not None:
            try:
                await pools.call(Pool.DEVICES, indicate, reader, granted)
            except Exception:  # noqa: BLE001 - an indicator that fails shows nothing; the decision stands
                log.exception("reader indication failed", reader=reader)
