"""Making a scenario's building ready before `edge run`: the config merged and filled in, the data
it names found, a camera's model installed and qualified, its tenants enrolled.

The config is the scenario's file and fragment, with what only the rig can give: a fresh building
secret, OSDP keys, a free port for the page, the modem simulator's pty, camera feeds' paths, the
local broker and the cloud's key. A data file that is not here skips the scenario; a scenario
that cannot be played as written is `ScenarioProblems`, with its lines.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import yaml

from edge.config import yaml_source
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.config.building import BUILT_IN_PROFILES, BuildingConfig, ConfigError, ConfigProblem, load as load_config
from edge.doors.wiring import credentials_path
from edge.drivers.osdp.keys import generate_key_file
from edge.hil import scenario as sc
from edge.hil.camera_feed import CAPTURE_ENV, CameraFeed, FeedProblem, still, video_frames
from edge.hil.cloud import generate_keys
from edge.hil.modem_sim import Mode, ModemSimulator
from edge.hil.pty import pty_pair
from edge.hil.rig import RigProblem
from edge.hil.scenario_files import DATA_ENV, Skipped

if TYPE_CHECKING:
    from edge.hil.runner import Player

QUALIFY_WITHIN_S = 120.0  # `edge vision eval` on a few hundred labelled frames
MAX_CLIP_FRAMES = 3000  # JPEGs of a clip held at once (about 100 MB at 640x360)


def merge(base: Any, fragment: Any) -> Any:
    """Mappings merge key by key; anything else in the fragment replaces the base."""
    if isinstance(base, dict) and isinstance(fragment, dict):
        out = dict(base)
        for key, value in fragment.items():
            out[key] = merge(base.get(key), value) if key in base else value
        return out
    return fragment


async def run_edge(argv: list[str], within_s: float, merged: bool = False) -> tuple[int, bytes, bytes]:
    """`edge ARGV` as a subprocess: exit code, output and errors (`merged`: errors in the output);
    one that outlives `within_s` is killed and is a RigProblem."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli", *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE)
    try:
        output, errors = await asyncio.wait_for(process.communicate(), within_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RigProblem(f"`edge {' '.join(argv)}` did not end within {within_s:.0f} s") from None
    assert process.returncode is not None
    return process.returncode, output, errors or b""


class ScenarioProblems(Exception):
    """The scenario cannot be played as written: its problems, with their lines."""

    def __init__(self, problems: list[ConfigProblem], note: str = "") -> None:
        super().__init__("\n".join(map(str, problems)) + (f"\n{note}" if note else ""))


def config_data(player: Player) -> dict[str, Any]:
    source = player.scenario.config
    data: Any = {}
    if source.file is not None:
        file = (player.loaded.path.parent / source.file).resolve()
        try:
            data = yaml_source.load_file(file).data or {}
        except yaml_source.SourceError as error:
            raise ScenarioProblems([player.loaded.problem(("config", "file"), f"cannot use {file}: {error}")]) from None
    data = copy.deepcopy(merge(data, source.merge))  # filled in below: the scenario's own data stays as written
    if not isinstance(data, dict) or not isinstance(data.get("building"), dict):
        raise ScenarioProblems([player.loaded.problem(("config",), "the building config needs a building: section")])
    secret = player.workdir / "secrets" / "building.key"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(secrets.token_hex(32))
    data["building"] = {**data["building"], "secret": {"file": str(secret)}}
    data["state_dir"] = str(player.workdir / "state")
    http = data.get("http") if isinstance(data.get("http"), dict) else {}
    data["http"] = {**http, "port": 0}  # nothing the rig starts binds a fixed port: the page takes a free one
    for reader in data.get("readers") or []:
        if isinstance(reader, dict) and reader.get("protocol") == "osdp":
            key = player.workdir / "secrets" / f"osdp-{reader.get('name')}.key"
            generate_key_file(key)  # the simulated reader and the daemon share it, as an installer would set them up
            reader["osdp_key"] = {"file": str(key)}
    data.setdefault("profiles_dir", str(BUILT_IN_PROFILES))
    community = data.get("community")
    if isinstance(community, dict) and isinstance(community.get("modem"), dict):
        if player.modem is None:
            gateway_end, modem_end = player.held.enter_context(pty_pair())
            player.modem = player.held.enter_context(ModemSimulator(modem_end, Mode(player.scenario.modem)))
            player.modem_port = gateway_end
        data["community"] = {**community, "modem": {**community["modem"], "port": player.modem_port}}
    for camera in data.get("cameras") or []:
        settings = player.scenario.cameras.get(camera.get("name")) if isinstance(camera, dict) else None
        if settings is not None:
            camera["source"] = str(player.workdir / f"camera-{camera['name']}.mjpeg")
            if settings.manifest is not None:
                camera["model"] = str(install_model(player, settings))
    if player.scenario.cloud:
        generate_keys(player.workdir)
        data["uplink"] = {"batch_ms": 10, "keepalive_s": 5, **data.get("uplink", {}),
                          "enabled": True, "host": "127.0.0.1", "port": player.broker.port,
                          "cloud_public_key": str(player.workdir / "cloud.pub")}
    return data


def data_file(player: Player, relative: str, loc: tuple) -> Path:
    """A file of the data root; the scenario is skipped when the root or the file is absent."""
    if player.data is None:
        raise Skipped(str(player.loaded.problem(loc, f"{relative} is in the data root: give it (--data DIR or ${DATA_ENV})")))
    path = player.data / relative
    if not path.is_file():
        raise Skipped(str(player.loaded.problem(loc, f"{path} is not here (the data root {player.data} lacks it)")))
    return path


def install_model(player: Player, settings: sc.ScenarioCamera) -> Path:
    """`edge models install MANIFEST --from WEIGHTS` into the state dir, as an installer would."""
    from edge.vision.install import InstallError, install
    from edge.vision.manifest import ManifestError

    name = next(n for n, c in player.scenario.cameras.items() if c is settings)
    weights = data_file(player, settings.weights, ("cameras", name, "weights"))
    try:
        installed = install((player.loaded.path.parent / settings.manifest).resolve(), player.workdir / "state", weights)
    except (ManifestError, InstallError, OSError) as error:
        raise ScenarioProblems([player.loaded.problem(("cameras", name, "manifest"), f"cannot install the model: {error}")]) from None
    return installed.manifest


def start_feeds(player: Player) -> None:
    for name, settings in player.scenario.cameras.items():
        idle = still(data_file(player, settings.idle, ("cameras", name, "idle")), settings.size)
        player.feeds[name] = CameraFeed(player.workdir / f"camera-{name}.mjpeg", idle, settings.fps).start()
    if player.feeds:
        player.daemon.env.update(CAPTURE_ENV)


def clip_frames(player: Player, index: int, step: sc.CameraClip, settings: sc.ScenarioCamera) -> list[bytes]:
    if isinstance(step.camera_clip, str):
        return video_frames(data_file(player, step.camera_clip, ("steps", index, "camera_clip")), settings.size, MAX_CLIP_FRAMES)
    frames: list[bytes] = []
    for c_index, part in enumerate(step.camera_clip):
        image = still(data_file(player, part.image, ("steps", index, "camera_clip", c_index, "image")), settings.size)
        frames += [image] * max(1, round(part.seconds * settings.fps))
    if len(frames) > MAX_CLIP_FRAMES:
        raise FeedProblem(f"the clip is {len(frames)} frames; at most {MAX_CLIP_FRAMES} are held in memory (shorten it or lower fps)")
    return frames


def check_data(player: Player) -> None:
    """Every data file the scenario names, before anything starts: a missing one skips the scenario."""
    for name, settings in player.scenario.cameras.items():
        if settings.qualify is not None:
            data_file(player, settings.qualify.labels, ("cameras", name, "qualify", "labels"))
    for index, step in enumerate(player.scenario.steps):
        if isinstance(step, sc.CameraClip):
            if isinstance(step.camera_clip, str):
                data_file(player, step.camera_clip, ("steps", index, "camera_clip"))
            for c_index, part in enumerate(step.camera_clip if isinstance(step.camera_clip, list) else []):
                data_file(player, part.image, ("steps", index, "camera_clip", c_index, "image"))


async def qualify(player: Player, data: dict[str, Any], config: BuildingConfig) -> None:
    """`edge vision eval --json` of each camera's installed model on the scenario's labelled frames,
    with the camera's hold classes, as an installer qualifies a model on site: the report
    becomes the camera's `qualification.report`, and the daemon judges it against the limits."""
    for name, settings in player.scenario.cameras.items():
        if settings.qualify is None:
            continue
        loc = ("cameras", name, "qualify")
        camera = next(c for c in config.cameras if c.name == name)
        if camera.qualification.report is not None:
            raise ScenarioProblems([player.loaded.problem(loc, f"the building config names camera {name!r}'s report already "
                                                             f"({camera.qualification.report}): give `qualify` or the report, not both")])
        labels = data_file(player, settings.qualify.labels, loc + ("labels",))
        images = player.data / settings.qualify.images if settings.qualify.images is not None else labels.parent
        if not images.is_dir():
            raise Skipped(str(player.loaded.problem(loc + ("images",), f"{images} is not here (the data root {player.data} lacks it)")))
        argv = ["vision", "eval", "--model", str(camera.model), "--images", str(images), "--labels", str(labels), "--json"]
        for cls in camera.hold_classes:
            argv += ["--hold-class", cls]
        code, output, errors = await run_edge(argv, QUALIFY_WITHIN_S)
        if code != 0:
            said = errors.decode(errors="replace").strip()[-600:]
            raise ScenarioProblems([player.loaded.problem(loc, f"`edge vision eval` exited {code}: {said}")])
        report = player.workdir / f"eval-{name}.json"
        report.write_bytes(output)
        for entry in data.get("cameras") or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                entry["qualification"] = {**(entry.get("qualification") or {}), "report": str(report)}


def write_config(player: Player, data: dict[str, Any]) -> BuildingConfig:
    player.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        return load_config(player.config_path)
    except ConfigError as invalid:
        raise ScenarioProblems(invalid.problems, f"(the building config as merged for scenario {player.loaded.path})") from None


def building_today(player: Player):
    return datetime.now(ZoneInfo(player.config.building.timezone)).date()


def enrol(player: Player) -> None:
    path = credentials_path(player.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    today = building_today(player)
    with CredentialStore.open(path, player.config.building.secret.read()) as store:
        for name, tenant in player.scenario.tenants.items():
            store.issue(Enrolment(
                serial=bytes.fromhex(tenant.card), tenant=name, status=tenant.status, door_groups=frozenset(tenant.groups),
                valid_from=today + timedelta(days=tenant.valid_from), valid_until=today + timedelta(days=tenant.valid_until),
                paid_through=today + timedelta(days=tenant.paid_through), pin=tenant.pin,
            ))
    if player.scenario.credential_store == "damaged":
        for leftover in path.parent.glob(path.name + "-*"):
            leftover.unlink()
        path.write_bytes(b"\x00not a credential store" * 200)
