"""The uplink's tile on the page: enabled, connected, why not, since when (edge/tiles.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.uplink.kinds import UplinkKind

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.events import StoredEvent
    from edge.status.view import BuildingView


class Tiles:
    def __init__(self, config: BuildingConfig) -> None:
        self.uplink: dict[str, Any] = {"enabled": config.uplink.enabled, "up": None, "detail": None, "since": None}

    def keep(self, older: Tiles) -> None:
        self.uplink = older.uplink | {"enabled": self.uplink["enabled"]}

    def apply(self, event: StoredEvent, at: float) -> None:
        if event.kind in (UplinkKind.UPLINK_DOWN, UplinkKind.UPLINK_UP):
            self.uplink |= {"up": event.kind == UplinkKind.UPLINK_UP, "detail": event.body.get("detail"), "since": at}

    def snapshot(self, now: float, view: BuildingView) -> dict[str, Any]:
        return {"uplink": dict(self.uplink)}
