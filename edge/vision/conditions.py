"""The conditions the elevator guard holds active: a held car, a camera that cannot see, a guard
its operators' reviews demoted.

A guard that starts (`vision.mode`) holds nothing and has a stream: it ends a hold or a fault
a previous run left open. A demoted guard raises its demotion again right after (it lasts until a
new eval report qualifies the model).
"""

from __future__ import annotations

from edge.conditions import AtRestart, Rule, Severity
from edge.events import StoredEvent
from edge.vision.kinds import VisionKind

ONE_SHOT_S = 3600.0


def _held(e: StoredEvent) -> str:
    return f"Elevator {e.body.get('elevator') or e.source} held: {e.body.get('class') or 'an e-bike'} in the car (camera {e.source})"


CONDITIONS = (
    Rule(VisionKind.ELEVATOR_HOLD, _held, ended_by=(VisionKind.ELEVATOR_RELEASED, VisionKind.VISION_MODE), at_restart=AtRestart.KEEP),
    Rule(VisionKind.ELEVATOR_RELAY_UNCONFIRMED, lambda e: f"Elevator {e.body.get('elevator') or e.source}: the hold relay did not "
         f"confirm '{e.body.get('command')}'", lasts_s=ONE_SHOT_S),
    Rule(VisionKind.CAMERA_FAULT, lambda e: f"Camera {e.source} cannot see: {e.body.get('reason')}",
         ended_by=(VisionKind.CAMERA_RESTORED, VisionKind.VISION_MODE), severity=Severity.FAULT, at_restart=AtRestart.KEEP),
    Rule(VisionKind.VISION_DEMOTED, lambda e: f"Camera {e.source} holds nothing until a new eval report qualifies it: {e.body.get('reason')}",
         ended_by=(VisionKind.VISION_MODE,), at_restart=AtRestart.KEEP),
    Rule(VisionKind.VISION_FAULT, lambda e: f"Camera {e.source}: e-bike detection not working: {e.body.get('reason')}",
         ended_by=(VisionKind.VISION_MODE,), severity=Severity.FAULT, lasts_s=ONE_SHOT_S, at_restart=AtRestart.KEEP),
)
