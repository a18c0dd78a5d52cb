"""The cameras' tiles on the page: each guard's mode and why, its stream, a held car, the last
e-bike it saw and the holds waiting for an operator's review (edge/tiles.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.vision.kinds import VisionKind

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.events import StoredEvent
    from edge.status.view import BuildingView

MAX_REVIEWS = 20  # holds listed for review per camera: the oldest go first


class Tiles:
    def __init__(self, config: BuildingConfig) -> None:
        self.cameras: dict[str, dict[str, Any]] = {
            camera.name: {"elevator": camera.elevator, "mode": None, "reason": None, "reasons": [], "stream": None, "detail": None,
                          "since": None, "vision_fault": None, "held": None, "observed": None, "snapshot": None, "reviews": []}
            for camera in config.cameras}

    def keep(self, older: Tiles) -> None:
        """A camera added by a reload gets its tile, one removed loses it; what was seen stays."""
        self.cameras = {name: older.cameras.get(name, state) for name, state in self.cameras.items()}

    def apply(self, event: StoredEvent, at: float) -> None:
        """The guard says its mode and why when it starts (a new run: no stream fault yet, no model
        fault, no hold: a guard that ends lets the car go), then journals each stream fault and
        recovery, each model fault, each hold and release and each e-bike it would have held."""
        camera = self.cameras.get(event.source)
        if camera is None:
            return
        kind, body = event.kind, event.body
        if kind in (VisionKind.ELEVATOR_HOLD, VisionKind.ELEVATOR_OBSERVED) and body.get("snapshot"):
            camera["snapshot"] = {"at": at, "path": str(body["snapshot"]), "class": body.get("class")}  # the page's picture
        if kind == VisionKind.ELEVATOR_HOLD:
            camera["held"] = {"since": at, "class": body.get("class"), "snapshot": body.get("snapshot")}
            if body.get("review") == "pending":  # the page lists it for an operator to confirm or deny
                camera["reviews"] = [*camera["reviews"][-(MAX_REVIEWS - 1):], {"seq": event.seq, "at": at, "class": body.get("class"),
                                                                              "snapshot": body.get("snapshot")}]
        elif kind == VisionKind.ELEVATOR_REVIEWED:
            camera["reviews"] = [r for r in camera["reviews"] if r["seq"] != body.get("hold_seq")]
        elif kind == VisionKind.VISION_DEMOTED:
            reason = f"demoted by the operators' reviews: {body.get('reason')}"
            camera |= {"mode": "observe", "reason": reason, "reasons": [reason]}
        elif kind == VisionKind.ELEVATOR_RELEASED:
            camera["held"] = None
        elif kind == VisionKind.ELEVATOR_OBSERVED:
            camera["observed"] = {"at": at, "class": body.get("class"), "snapshot": body.get("snapshot")}
        elif kind == VisionKind.VISION_MODE:
            reasons = body.get("reasons") or ([body["reason"]] if body.get("mode") == "observe" and body.get("reason") else [])
            camera |= {"mode": body.get("mode"), "reason": body.get("reason"), "reasons": list(reasons), "stream": "ok", "detail": None, "since": at,
                       "vision_fault": None, "held": None}
        elif kind == VisionKind.CAMERA_FAULT:
            camera |= {"stream": "fault", "detail": body.get("reason"), "since": at}
        elif kind == VisionKind.CAMERA_RESTORED:
            camera |= {"stream": "ok", "detail": None, "since": at}
        elif kind == VisionKind.VISION_FAULT:
            camera["vision_fault"] = body.get("reason")

    def snapshot(self, now: float, view: BuildingView) -> dict[str, Any]:
        return {"cameras": [{"name": name, **state, "last_frame_age_s": None} for name, state in self.cameras.items()]}
