"""The command table: cloud commands by name, and the handlers other parts register.

The uplink verifies a command (signature, expiry, nonce) before it gets here; a handler
only does the work and says how it went. Door access registers `door.unlock`, field
points `circuit.reclose` and `fire.reset` (see docs/uplink.md, "Commands"); the uplink itself
registers `status.snapshot`. An unknown command or a failing handler is a result, not
a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Awaitable, Callable

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandOutcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown_command"


class CommandFailed(Exception):
    """Raised by a handler that could not do what was asked (door offline, refused by a safety rule);
    `detail` is reported beside the error (e.g. the journal seq of the refusal)."""

    def __init__(self, error: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.detail = detail or {}


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: str
    outcome: CommandOutcome
    detail: dict[str, Any]


class CommandTable:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        """Add a handler: `await handler(args) -> detail`; raise CommandFailed to say no."""
        if name in self._handlers:
            raise ValueError(f"command {name!r} already has a handler")
        self._handlers[str(name)] = handler  # the wire's name, whichever feature's enum gave it

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def run(self, name: str, args: dict[str, Any]) -> CommandResult:
        handler = self._handlers.get(name)
        if handler is None:
            return CommandResult(name, CommandOutcome.UNKNOWN, {"known": self.names})
        try:
            detail = await handler(args)
        except CommandFailed as failure:
            return CommandResult(name, CommandOutcome.FAILED, {**failure.detail, "error": str(failure)[:500]})
        except Exception as failure:  # noqa: BLE001 - a broken handler is reported upstream, never fatal
            return CommandResult(name, CommandOutcome.FAILED, {"error": f"{type(failure).__name__}: {failure}"[:500]})
        return CommandResult(name, CommandOutcome.DONE, detail)
