"""The car's speaker: the spoken warning an e-bike hold plays, one at a time.

The sound is played by the configured command in a process of its own, so nothing in the guard
waits for it; a command that does not end within VOICE_TIMEOUT_S is killed, and one that cannot
start or fails is a `vision.fault` through the guard's journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from edge.vision.settings import VoiceWarning

VOICE_TIMEOUT_S = 30.0


class Speaker:
    """Plays `warning` on request unless it is still playing; `stop` ends a warning at the guard's stop."""

    def __init__(self, camera: str, warning: VoiceWarning | None, fault: Callable[[str], Awaitable[object]]) -> None:
        self.camera, self.warning, self._fault = camera, warning, fault
        self._playing: asyncio.Task[None] | None = None

    def warn(self) -> None:
        """Start the voice warning unless one is still playing; it ends by itself (or at stop)."""
        if self.warning is None or (self._playing is not None and not self._playing.done()):
            return
        self._playing = asyncio.create_task(self._play(self.warning), name=f"voice:{self.camera}")

    async def stop(self) -> None:
        if self._playing is not None:
            self._playing.cancel()
            await asyncio.gather(self._playing, return_exceptions=True)

    async def _play(self, warning: VoiceWarning) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *warning.command, str(warning.sound), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as error:
            await self._fault(f"voice warning: {error}")
            return
        try:
            async with asyncio.timeout(VOICE_TIMEOUT_S):
                code = await process.wait()
            if code != 0:
                await self._fault(f"voice warning: {warning.command[0]} exited {code}")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
