"""The topic layout, version 1. Stable: docs/uplink.md documents it and the cloud depends on it.

Everything of one building lives under PREFIX/BUILDING (PREFIX is `edge/v1` unless the
config says otherwise); a new, incompatible layout gets a new prefix (`edge/v2`), so old
and new gateways can share a broker during a migration.
"""

from __future__ import annotations

from dataclasses import dataclass

WIRE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    building: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.building}"

    @property
    def status(self) -> str:
        """Retained birth message; the last will says `offline`."""
        return f"{self.base}/status"

    @property
    def events(self) -> str:
        """Batches of journaled events (gateway -> cloud)."""
        return f"{self.base}/events"

    def snapshot(self, event_id: str) -> str:
        """The JPEG an event names (a hold, an observation), sent after the event (gateway -> cloud)."""
        return f"{self.base}/snapshots/{event_id}"

    @property
    def pull_request(self) -> str:
        return f"{self.base}/pull/request"

    @property
    def pull_response(self) -> str:
        """Default reply topic when a pull request names none."""
        return f"{self.base}/pull/response"

    @property
    def credentials(self) -> str:
        """Signed change sets and snapshots (cloud -> gateway)."""
        return f"{self.base}/credentials"

    @property
    def credentials_request(self) -> str:
        """The gateway asks for a full snapshot here after a version gap."""
        return f"{self.base}/credentials/request"

    @property
    def config(self) -> str:
        """Signed building configs, each with a version (cloud -> gateway); answered on command_results."""
        return f"{self.base}/config"

    @property
    def commands(self) -> str:
        return f"{self.base}/commands"

    @property
    def command_results(self) -> str:
        return f"{self.base}/commands/result"

    def downlink(self) -> tuple[str, ...]:
        """What the gateway subscribes to."""
        return (self.pull_request, self.credentials, self.commands, self.config)
