"""The uplink's part of the building, wired from the config by `Gateway.assemble`."""

from __future__ import annotations

from typing import Callable, Mapping

from edge.runtime import pools
from edge.doors.credentials.store import CredentialStore
from edge.config.building import BuildingConfig
from edge.config.apply import ConfigApplier
from edge.runtime.control import Handler, check_request
from edge.runtime.deadline import Deadline
from edge.doors.wiring import Doors, open_store
from edge.feature import Site, Wired
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.uplink.commands import CommandFailed, CommandTable
from edge.uplink.commands import Handler as CommandHandler
from edge.uplink.worker import Uplink


def assemble_uplink(
    config: BuildingConfig, digest: str, journal: Journal, doors: Doors | None, control: Mapping[str, Handler],
    stop_deadline: Callable[[], Deadline] = Deadline.never, config_apply: ConfigApplier | None = None,
) -> Uplink:
    """The uplink with the credential store the doors read (a building without doors gets its own,
    opened by the uplink's first run on the files pool, never on the loop), and every control-socket
    operation (breaker.close, fire.reset, ...) also available as a signed cloud command."""
    own: list[CredentialStore | None] = [None]

    def credentials() -> CredentialStore | None:
        return doors.access.store if doors is not None else own[0]

    async def open_own() -> None:
        own[0], _ = await pools.call(Pool.FILES, open_store, config)

    commands = CommandTable()
    for name, handler in control.items():
        commands.register(name, as_command(name, handler))
    return Uplink(config, digest, journal, credentials, commands, stop_deadline=stop_deadline,
                  before_first_run=None if doors is not None else open_own, config_apply=config_apply)


def as_command(name: str, operation: Handler) -> CommandHandler:
    """A control operation as a cloud command. An operation says no by answering
    `{"ok": false, "error": ...}` (the socket's protocol); to the cloud that is a failed
    command with its error, not one that was done."""

    async def run(args: dict) -> dict:
        try:  # the cloud's arguments meet the same bounds as the socket's (a reason's length, flat fields)
            check_request({"op": name, **args})
        except ValueError as problem:
            raise CommandFailed(str(problem)[:500]) from None
        answer = await operation(args)
        if answer.get("ok") is False:
            raise CommandFailed(str(answer.get("error") or "refused"), answer)
        return answer

    return run


def wire(site: Site) -> Wired:
    """The uplink as a feature of the building (edge/feature.py), wired after the features whose
    operations it serves to the cloud; its state files close after its worker has stopped."""
    gateway = site.gateway
    uplink = assemble_uplink(site.config, site.digest, site.journal, site.part("doors"), site.control | site.cloud,
                             stop_deadline=lambda: gateway.supervisor.deadline if gateway.supervisor else Deadline.never(),
                             config_apply=gateway.config_apply)
    return Wired(uplink, {"uplink": uplink.run}, close=uplink.close)
