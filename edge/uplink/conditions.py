"""The uplink's condition: the cloud cannot be reached (events wait in the journal)."""

from __future__ import annotations

from edge.conditions import Rule, Severity
from edge.uplink.kinds import UplinkKind

CONDITIONS = (
    Rule(UplinkKind.UPLINK_DOWN, lambda e: f"No connection to the cloud: {e.body.get('detail')} (events wait in the journal)",
         ended_by=(UplinkKind.UPLINK_UP,), severity=Severity.FAULT, key=lambda e: "uplink"),
)
