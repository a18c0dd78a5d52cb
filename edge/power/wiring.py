"""Circuits as a feature of the building (edge/feature.py). Their monitors, trips and breakers run
in the field points the gateway wires for circuits and water points alike (edge/power/points.py);
what power adds is the technician's and the cloud's re-close, which checks a circuit's alarms."""

from __future__ import annotations

from edge.feature import Site, Wired
from edge.power.feature import PowerOp


def wire(site: Site) -> Wired:
    assert site.field is not None, "circuits are wired with the field points"
    return Wired(site.field, control={PowerOp.BREAKER_CLOSE: site.field.reclose})
