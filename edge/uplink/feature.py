"""The uplink: events to the cloud over MQTT, signed commands and credential changes back."""

from enum import StrEnum

from edge.feature import Feature, Stage

FEATURE = Feature(
    "uplink", order=60, settings="edge.uplink.settings", kinds="edge.uplink.kinds", conditions="edge.uplink.conditions",
    wiring="edge.uplink.wiring", wanted=lambda config: config.uplink.enabled, stage=Stage.LATER, tiles="edge.uplink.tiles",
)


class UplinkCommand(StrEnum):
    """The cloud commands the uplink serves itself (worker.py), beside every feature's operations."""

    STATUS_SNAPSHOT = "status.snapshot"
    STATE = "state"
    CONFIG_GET = "config.get"
