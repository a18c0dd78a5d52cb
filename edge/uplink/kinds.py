"""The uplink's event kinds: what the cloud sent (refused, dropped, applied, answered) and the
connection's state, with their words on the page.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
"""

from __future__ import annotations

from enum import StrEnum

from edge.events import Kinds


class UplinkKind(StrEnum):
    DOWNLINK_REFUSED = "security.downlink_refused"
    CREDENTIALS_APPLIED = "credentials.applied"
    CREDENTIALS_SNAPSHOT_REQUESTED = "credentials.snapshot_requested"
    COMMAND_EXECUTED = "command.executed"
    PULL_ANSWERED = "uplink.pull_answered"
    UPLINK_DOWN = "fault.uplink_down"
    UPLINK_UP = "uplink.up"
    SNAPSHOT_UNSENT = "fault.snapshot_unsent"  # an event's snapshot cannot be sent (missing, too large, refused): once per snapshot
    DOWNLINK_DROPPED = "fault.downlink_dropped"


KINDS = Kinds("uplink", UplinkKind, {
    UplinkKind.DOWNLINK_REFUSED: "Message from the cloud refused",
    UplinkKind.CREDENTIALS_APPLIED: "Cards updated from the cloud",
    UplinkKind.CREDENTIALS_SNAPSHOT_REQUESTED: "Cloud asked for the card list",
    UplinkKind.COMMAND_EXECUTED: "Remote command carried out",
    UplinkKind.PULL_ANSWERED: "Cloud's request for records answered",
    UplinkKind.UPLINK_DOWN: "Cloud connection lost",
    UplinkKind.UPLINK_UP: "Cloud connection up",
    UplinkKind.SNAPSHOT_UNSENT: "Camera picture not sent to the cloud",
    UplinkKind.DOWNLINK_DROPPED: "Message from the cloud dropped",
}, bodies="edge.uplink.bodies")
