"""The elevator cameras' part of the building, wired from the config.

Imported by the gateway only when a camera is configured, so OpenCV and onnxruntime are
never loaded in a building without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from edge.config.building import BuildingConfig
from edge.runtime.control import Handler
from edge.doors.wiring import Doors
from edge.fieldbus.devices import FieldBus
from edge.feature import Site, Wired
from edge.journal import Journal
from edge.runtime.supervisor import Work
from edge.vision.detection import Detector
from edge.vision.guard import ElevatorGuard
from edge.vision.qualification import verdict
from edge.vision.feature import VisionOp
from edge.vision.settings import Camera

log = structlog.get_logger("edge.vision")


@dataclass
class Vision:
    guards: dict[str, ElevatorGuard]  # the control handlers and the status server read this dict: kept, never replaced
    work: dict[str, Work]
    control: dict[str, Handler]
    wire: Callable[[Camera], ElevatorGuard | None] = lambda camera: None  # a guard for one camera, as at start

    def replace(self, name: str, camera: Camera | None) -> ElevatorGuard | None:
        """A reload changed, added or removed camera `name` (its old guard's worker is stopped by
        then): its guard now, or None when it is gone or opens nothing."""
        old = self.guards.pop(name, None)
        if old is not None and old.fire_listener is not None:
            old.fire_listener()
        guard = self.wire(camera) if camera is not None else None
        if guard is not None:
            self.guards[name] = guard
        return guard


@dataclass(frozen=True)
class ModelLoader:
    """Loads the model in the vision worker process (picklable: it crosses to the worker)."""

    manifest: Path
    threads: int

    def __call__(self) -> Detector:
        from edge.vision.runtime import load_detector  # onnxruntime only in the worker, only when a model is used

        return load_detector(self.manifest, threads=self.threads)


def assemble_vision(config: BuildingConfig, journal: Journal, fieldbus: FieldBus | None, doors: Doors | None) -> Vision:
    guards: dict[str, ElevatorGuard] = {}
    fire = doors.fire if doors is not None else None

    def wire(camera: Camera) -> ElevatorGuard | None:
        if camera.model is None and not camera.collect.enabled:
            log.info("camera has neither a model nor collect mode: not opened", camera=camera.name)
            return None
        factory = ModelLoader(camera.model, camera.threads) if camera.model is not None else None
        guard = ElevatorGuard(
            camera, journal, fieldbus, config.state_path, verdict(camera, config.state_path), factory,
            fire_active=(lambda: fire.active) if fire is not None else (lambda: False),
        )
        if fire is not None:
            fire.on_change(guard.fire_changed)
            guard.fire_listener = lambda: fire.off_change(guard.fire_changed)
        return guard

    for camera in config.cameras:
        if (guard := wire(camera)) is not None:
            guards[camera.name] = guard

    async def release(request: dict[str, Any]) -> dict[str, Any]:
        return await release_request(guards, request)

    async def reviewed(request: dict[str, Any]) -> dict[str, Any]:
        return await review_request(guards, request)

    work: dict[str, Work] = {f"camera:{name}": guard.run for name, guard in guards.items()}
    return Vision(guards, work, {VisionOp.ELEVATOR_RELEASE: release, VisionOp.ELEVATOR_REVIEW: reviewed}, wire)


async def review_request(guards: dict[str, ElevatorGuard], request: dict[str, Any]) -> dict[str, Any]:
    """`edge elevator review`, the page and the cloud's `elevator.review`: an operator confirms or
    denies one hold (`hold`, its journal seq) and says what was in the car (`seen`)."""
    operator, hold, outcome = request.get("operator"), request.get("hold"), request.get("outcome")
    if not isinstance(operator, str) or not operator.strip():
        return {"ok": False, "error": "say who reviews the hold (operator)"}
    if isinstance(hold, bool) or not isinstance(hold, int):
        return {"ok": False, "error": "name the hold by its journal seq (hold: a number)"}
    seen = request.get("seen") or ("ebike" if outcome == "confirm" else None)
    if not isinstance(seen, str):
        return {"ok": False, "error": "a denial says what was in the car (seen: wheelchair, stroller, bicycle, ...)"}
    via = request.get("via") if isinstance(request.get("via"), str) else "cloud"
    wanted = request.get("elevator")
    chosen = [g for g in guards.values() if wanted in (None, g.camera.elevator, g.camera.name)
              and g.reviews is not None and str(hold) in g.reviews.pending]
    if not chosen:
        return {"ok": False, "error": f"hold {hold} awaits no review" + (f" on {wanted}" if wanted else "")
                + " (reviewed already, or not a hold)"}
    answer = await chosen[0].review_request(operator.strip()[:64], hold, str(outcome), seen, via[:16])
    if answer.get("ok") and answer.get("seq") is not None:
        answer["result_seq"] = answer["seq"]
    return answer


async def release_request(guards: dict[str, ElevatorGuard], request: dict[str, Any]) -> dict[str, Any]:
    """`edge elevator release [--elevator NAME]`: let the car(s) go now; audited per camera."""
    operator, reason = request.get("operator"), request.get("reason", "")
    if not isinstance(operator, str) or not operator.strip():
        return {"ok": False, "error": "say who releases the elevator (operator)"}
    if not isinstance(reason, str):
        return {"ok": False, "error": "reason must be text"}
    wanted = request.get("elevator")
    chosen = [g for g in guards.values() if wanted in (None, g.camera.elevator, g.camera.name)]
    if not chosen:
        known = sorted({g.camera.elevator or g.camera.name for g in guards.values()})
        return {"ok": False, "error": f"no elevator camera named {wanted!r}; known: {known}"}
    released = [await guard.release_request(operator.strip()[:64], reason[:200]) for guard in chosen]
    answer: dict[str, Any] = {"ok": True, "released": released}
    seqs = [r["seq"] for r in released if r["seq"] is not None]
    if seqs:
        answer["result_seq"] = max(seqs)
    return answer


def wire(site: Site) -> Wired:
    """The e-bike guard as a feature of the building (edge/feature.py): a guard and a worker
    process per camera, the elevator's operations."""
    from edge.vision import retune

    vision = assemble_vision(site.config, site.journal, site.fieldbus, site.part("doors"))
    return Wired(vision, vision.work, vision.control, retuner=retune.retuner(vision, site.journal))
