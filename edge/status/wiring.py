"""The status server as a feature of the building (edge/feature.py): health, metrics and the page."""

from __future__ import annotations

from edge.feature import Site, Wired
from edge.status.server import StatusServer


def wire(site: Site) -> Wired:
    """Wired last: it shows the field bus, the uplink and the cameras' guards of the features before it."""
    vision = site.part("vision")
    status = StatusServer(site.config, site.journal, site.fieldbus, site.part("uplink"), vision.guards if vision is not None else {},
                          field=site.field, digest=site.digest)
    return Wired(status, {"status-server": status.run})
