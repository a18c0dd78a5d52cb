"""The elevator guard on a bench: a labelled test-double detector, the hold relay, a camera's
settings and a guard running on its own journal (`Rig`), and a site model's manifest; for the
vision tests that drive a guard (test_vision_guard, test_vision_review, test_vision_reasons)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from edge.events import Priority, StoredEvent
from edge.hil import waiting
from edge.journal import EventQuery, Journal, read_events
from edge.vision.detection import Detection, VisionClass
from edge.vision.guard import ElevatorGuard
from edge.vision.qualification import Verdict, file_sha256
from edge.vision.settings import Camera
from conftest import building
from vision_media import read, write_clip

SIZE = (320, 180)
ON_FLOOR = (100.0, 60.0, 220.0, 170.0)  # pixels of a 320x180 frame; stands on the lower half
FLOOR = [(0.1, 0.5), (0.9, 0.5), (0.9, 1.0), (0.1, 1.0)]


def lift_camera(source: Path | str, lift: int = 1, **more) -> dict:
    """Lift `lift`'s camera (lift-N-cam) in a building's `cameras:` on the stream or clip `source`,
    with `more` of its settings (region, model, hold, ...)."""
    return {"name": f"lift-{lift}-cam", "elevator": f"lift-{lift}", "source": str(source), **more}


def lift_io() -> dict:
    """The lift's IO module io-lift (unit 9) whose relays hold and resume a car, on bus rs485-1 (a
    config only loaded: nothing listens at its port)."""
    return {"buses": [{"name": "rs485-1", "type": "tcp", "host": "127.0.0.1", "port": 5020}],
            "devices": [{"name": "io-lift", "bus": "rs485-1", "address": 9, "profile": "generic-dio8"}]}


def page_camera(write_config, folder: Path, secret: str, token: bool) -> Path:
    """A building with lift 1's camera (on /dev/null) and its status page on a free port, guarded by the
    token `secret` (secrets/page.key in `folder`) if `token`."""
    (folder / "secrets" / "page.key").write_text(secret)
    http = {"port": 0, "token": {"file": "secrets/page.key"}} if token else {"port": 0}
    return write_config(building({"http": http, "cameras": [lift_camera("/dev/null")]}))


class LabelledDetector:
    """TEST DOUBLE of a detector: finds an e-bike exactly in the frames made from e-bike images
    (it recognises the image by its thumbnail), nothing elsewhere. Counts its calls."""

    def __init__(self, ebike_images: list[Path]) -> None:
        self.references = [_thumb(read(p, SIZE)) for p in ebike_images]
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        thumb = _thumb(frame_bgr)
        if any(np.abs(thumb - ref).mean() < 12 for ref in self.references):
            return [Detection(VisionClass.EBIKE, 0.9, ON_FLOOR)]
        return []


def _thumb(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, (16, 9), interpolation=cv2.INTER_AREA).astype(np.float32)


class Serve:
    """A picklable factory: the worker process gets its own copy of `detector`."""

    def __init__(self, detector) -> None:
        self.detector = detector

    def __call__(self):
        return self.detector


class Relay:
    """The hold relay's IO module: records writes, confirms all but `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.writes: list[str] = []
        self.refuse = refuse

    async def command(self, device: str, command: str) -> bool:
        assert device == "io-lift"
        self.writes.append(command)
        return command not in self.refuse


def camera(tmp_path: Path, clip: Path, **overrides) -> Camera:
    sound = tmp_path / "warning.wav"
    sound.write_bytes(b"RIFF")
    values = dict(
        name="lift-1-cam", source=str(clip), elevator="lift-1", region=FLOOR, analysis_fps=10, stall_s=2, leave_s=1.0,
        hold={"device": "io-lift", "hold": "release_7", "resume": "secure_7"},
        warning={"command": ["sh", "-c", f'echo "$0" >> {tmp_path / "played"}'], "sound": sound},
    )
    values.update(overrides)
    return Camera.model_validate(values)


class Rig:
    def __init__(self, tmp_path: Path, cam: Camera, may_hold: bool, ebikes: list[Path], relay: Relay | None = None,
                 judged: Verdict | None = None) -> None:
        self.tmp = tmp_path
        self.camera = cam
        self.relay = relay or Relay()
        self.detector = LabelledDetector(ebikes)
        self.fire = False
        self.may_hold = may_hold
        self.judged = judged  # the verdict the daemon would hand the guard; default one that says so

    async def __aenter__(self) -> "Rig":
        self.journal = await Journal.open(self.tmp / "journal.db")
        reason = "qualified (test)" if self.may_hold else "not qualified (test)"
        self.guard = ElevatorGuard(self.camera, self.journal, self.relay, self.tmp / "state", self.judged or Verdict(self.may_hold, reason),
                                   Serve(self.detector), fire_active=lambda: self.fire)
        self.task = asyncio.create_task(self.guard.run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.journal.close()

    async def events(self) -> list:
        return await asyncio.to_thread(read_events, self.journal.path, EventQuery(limit=None))

    async def wait_for(self, kind: str, count: int = 1, timeout_s: float = 30.0, **body) -> list:
        """The journaled events of `kind` (with the given body values), once `count` are there."""
        async def journaled() -> list | None:
            ended = self.task.done()  # looked at before the journal: what it journaled before it ended is read below
            found = [e for e in await self.events() if e.kind == kind and all(e.body.get(k) == v for k, v in body.items())]
            if len(found) >= count:
                return found
            if ended:
                self.task.result()  # the guard crashed: say how
                raise AssertionError(f"the guard ended without journaling {count} {kind} {body or ''}")
            await self.journal.wait_beyond(self.journal.head_seq, 0.5)  # the next commit, not a fixed sleep
            return None

        def missed() -> str:
            got = [(e.kind, e.body) for e in read_events(self.journal.path, EventQuery(limit=None))]
            return f"{count} {kind} {body or ''} journaled (got {got})"

        return await waiting.until(journaled, timeout_s, missed, every_s=0)


def visit(tmp_path: Path, media, after: int) -> tuple[Path, list[Path]]:
    """The clip of an e-bike's visit (conftest's `media`): the empty car for 10 frames, the e-bike's
    images 10 times over, the empty car for `after` frames; (the clip, the e-bike images)."""
    empty, ebikes = media
    return write_clip(tmp_path / "car.avi", [empty] * 10 + ebikes * 10 + [empty] * after, SIZE), ebikes


def wait_for_file(path: Path, timeout_s: float = 10.0) -> None:
    """The worker writes the snapshot after the event names it (nothing waits for a JPEG)."""
    waiting.until_sync(path.is_file, timeout_s, f"{path} written")


def site_model(folder: Path) -> Path:
    """A site model's manifest with its file beside it: the base model's graph with an e-bike in its
    class map (the verdict checks the manifest, the file's sha256 and the class map, not the weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "site.onnx"
    weights.write_bytes(b"site model weights")
    text = (Path(__file__).resolve().parent.parent / "models" / "yolox_nano.yaml").read_text()
    text = text.replace("name: yolox_nano", "name: site-model").replace("file: yolox_nano.onnx", "file: site.onnx")
    text = text.replace("695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14", file_sha256(weights))
    text = text.replace("  3: motorcycle\n", "  3: motorcycle\n  2: ebike\n")
    manifest = folder / "manifest.yaml"
    manifest.write_text(text)
    return manifest


def camera_event(seq: int, kind: str, body: dict) -> StoredEvent:
    """An event of the camera lift-1-cam as the journal gives it back, `seq` seconds after 1,000 s."""
    return StoredEvent(seq, f"id-{seq}", (1_000 + seq) * 10**9, 0, kind, Priority.FAULT, "lift-1-cam", body)


def review_guard(journal: Journal, config) -> ElevatorGuard:
    """lift-1-cam's guard, qualified, without model or relay, with an empty review tally."""
    from edge.vision import review

    guard = ElevatorGuard(Camera(name="lift-1-cam", elevator="lift-1", source="/dev/null"), journal, None, config.state_path,
                          Verdict(True, "qualified (test)"), None)
    guard.reviews = review.Tally(None)
    return guard


async def pending_hold(journal: Journal, guard: ElevatorGuard) -> int:
    """An e-bike hold journaled and awaiting its review at `guard`; its seq."""
    from edge.events import Event
    from edge.vision import review
    from edge.vision.kinds import VisionKind

    hold = await journal.append(Event(VisionKind.ELEVATOR_HOLD, Priority.ALARM, "lift-1-cam", {"class": "ebike", "review": "pending"}))
    review.held(guard.reviews, hold, "ebike", 0.0)
    return hold
