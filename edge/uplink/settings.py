"""The `uplink:` section of the building config (the MQTT connection to the cloud, its TLS and
batching) and the check of `cloud_commands:` (the profile commands the cloud may run), which
only the uplink's signed `device.command` uses.

`UplinkSettings`, not `Uplink`: `edge.uplink.worker.Uplink` is the connection itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from edge.config.settings import Problem, ReadableFile, References, Secret, Strict

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig


class Tls(Strict):
    ca: ReadableFile = Field(description="CA bundle that signs the broker's certificate; verification is always on.")
    cert: ReadableFile | None = Field(None, description="Client certificate (PEM), when the broker asks for one.")
    key: ReadableFile | None = Field(None, description="Client certificate's private key (PEM file, readable by the daemon only).")

    @model_validator(mode="after")
    def _pair(self) -> "Tls":
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both 'cert' and 'key' for a client certificate, or neither")
        return self


class UplinkSettings(Strict):
    enabled: bool = Field(False, description="Off by default: the gateway works fully offline.")
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT version; pull replies use MQTT 5 response topics or, on 3.1.1, a reply_to field.")
    client_id: str | None = Field(None, max_length=128, description="MQTT client id; default edge-BUILDING.")
    topic_prefix: str = Field("edge/v1", pattern=r"^[A-Za-z0-9_/-]{1,64}$", description="Topics are PREFIX/BUILDING/...; see docs/uplink.md.")
    keepalive_s: int = Field(30, ge=5, le=3600)
    batch_events: int = Field(500, ge=1, le=10_000, description="Most events in one published batch.")
    batch_ms: int = Field(50, ge=0, le=60_000, description="Longest an event waits for a batch to fill.")
    batch_bytes: int = Field(128 * 1024, ge=1024, le=8 * 1024 * 1024, description="Payload cap of one batch.")
    bandwidth_bytes_per_s: int | None = Field(None, ge=256, description="Pace the backlog to this rate (alarms are not paced); null: no cap.")
    cloud_public_key: ReadableFile | None = Field(
        None, description="The cloud's Ed25519 public key (PEM); without it every downlink message is refused."
    )
    username: str | None = None
    password: Secret | None = None
    tls: Tls | None = None


def check(config: BuildingConfig, refs: References) -> list[Problem]:
    """Each of `cloud_commands` names a device and a command of its profile (or of one of its variants)."""
    problems: list[Problem] = []
    for index, ref in enumerate(config.cloud_commands):
        device_name, command = ref.split(".", 1)
        device = refs.devices.get(device_name)
        profile = refs.profile_of(device_name)
        if device is None:
            problems.append((("cloud_commands", index), f"no device named {device_name!r}"))
        elif profile is not None and command not in {c.name for c in profile.commands} | {
                c.name for v in profile.variants for c in v.commands}:
            problems.append((("cloud_commands", index), f"device {device_name!r} ({device.profile}) has no command {command!r}"))
    return problems


SECTIONS = {"uplink": (UplinkSettings, UplinkSettings())}
"""The building config's sections this feature owns (edge/feature.py)."""
