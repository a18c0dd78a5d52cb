"""Community safety: smoke, intrusion and panic inputs, charging areas, who is told, the entry trail."""

from enum import StrEnum

from edge.feature import Feature

FEATURE = Feature(
    "community", order=40, settings="edge.community.settings", kinds="edge.community.kinds",
    conditions="edge.community.conditions", wiring="edge.community.wiring", wanted=lambda config: True,
    commands=("edge.community.cli",),
)


class CommunityOp(StrEnum):
    """Community safety's operations on the control socket: served by wiring.py, asked by cli.py
    (zone.arm and care.set come from the cloud); the uplink serves them as signed cloud commands
    by the same names."""

    ALARM_ACK = "alarm.ack"
    ZONE_ARM = "zone.arm"
    TRAIL_SEARCH = "trail.search"
    CARE_SET = "care.set"
