"""Plays a scenario: the building's simulators (or a physical rig), mosquitto, the reference
cloud and `edge run` as a subprocess, then the timeline step by step.

Expectations are judged from outside, as a rig engineer would: events from the daemon's
journal file (read-only, as `edge events` reads it), points from the devices themselves,
the cloud from the reference cloud's own store. Only events journaled after the last stimulus
began count for an expectation; its deadline counts from when the stimulus was complete (a
person's Enter, a hook's return, the end of a clip, a restarted daemon's READY), and so does the
time it reports, so the two compare: an event journaled while the stimulus was still being given
shows a negative time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fnmatch
import hmac
import json
import math
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from cryptography.hazmat.primitives import serialization

from edge.drivers.osdp.keys import generate_key_file
from edge import yaml_source
from edge.access.credentials import CredentialStore, Enrolment
from edge.config import BUILT_IN_PROFILES, BuildingConfig, ConfigError, ConfigProblem, device_profiles, load as load_config
from edge.doors.wiring import credentials_path
from edge.events import Priority, StoredEvent
from edge.journal import EventQuery, read_events
from edge.hil import scenario as sc
from edge.hil.broker import Broker
from edge.hil.camera_feed import CAPTURE_ENV, PLAYED_WITHIN_MARGIN_S, CameraFeed, FeedProblem, still, video_frames
from edge.hil.cloud import Cloud, generate_keys
from edge.hil.daemon import Daemon, DaemonFailed
from edge.hil.modem_sim import Mode, ModemSimulator
from edge.hil.pty import pty_pair
from edge.hil.report import ScenarioResult, StepResult
from edge.hil.rig import PhysicalRig, RigFile, RigProblem, SimulatedRig, load_rig
from edge.hil.waiting import by_deadline

SCENARIOS = Path(__file__).resolve().parent / "scenarios"  # package data of building-edge-rig, so also when installed
POLL_S = 0.05
FILL_GAPS_EVERY_S = 1.0
CLOUD_CONNECT_WITHIN_S = 10.0  # also for its goodbye
NEAREST = 8
SETTLE_WITHIN_S = 15.0
SEND_WITHIN_S = 10.0
EDGE_CLI_WITHIN_S = 60.0
QUALIFY_WITHIN_S = 120.0  # `edge vision eval` on a few hundred labelled frames
MAX_CLIP_FRAMES = 3000  # JPEGs of a clip held at once (about 100 MB at 640x360)
DATA_ENV = "HIL_DATA"


def data_root(given: Path | None = None) -> Path | None:
    """Where a scenario's images and model files are: `--data DIR`, else $HIL_DATA."""
    if given is not None:
        return Path(given)
    return Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None


class Skipped(Exception):
    """The scenario needs data that is not here (the e-bike images, a model's weights)."""


def scenario_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its *.yaml files (not its subdirectories)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return found


@dataclass(frozen=True)
class Listed:
    """A scenario file as `--list` shows it: its name, or why it cannot be read (it still runs, to say so)."""

    path: Path
    name: str
    problem: str = ""


def listing(paths: list[Path], patterns: Sequence[str] = ()) -> list[Listed]:
    """The scenario files under `paths` that `-k` selects (all of them without a pattern).

    A pattern selects a file when it matches part of the file's stem or of the scenario's name,
    case-insensitive, with shell wildcards (`-k access`, `-k 'elevator-*-car'`); several select
    what any of them does.
    """
    found = []
    for path in scenario_paths(paths):
        try:
            entry = Listed(path, sc.load(path).scenario.name)
        except sc.ScenarioError as invalid:
            entry = Listed(path, path.stem, str(invalid).splitlines()[0])
        if not patterns or any(_matches(pattern, (path.stem, entry.name)) for pattern in patterns):
            found.append(entry)
    return found


def _matches(pattern: str, texts: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(text.lower(), f"*{pattern.lower()}*") for text in texts)


def keep_state(workdir: Path, into: Path, stem: str) -> Path:
    """Copy a played scenario's directory to INTO/STEM (STEM-2, ... when that is taken) and point
    its building.yaml there, so `edge events --config INTO/STEM/building.yaml` reads the kept journal.

    The run itself plays in a short temporary path, because its Unix sockets must fit in 107
    bytes wherever INTO is; sockets and FIFOs are left out (nothing holds them any more).
    """
    into.mkdir(parents=True, exist_ok=True)
    target, number = into / stem, 1
    while target.exists():
        number += 1
        target = into / f"{stem}-{number}"
    shutil.copytree(workdir, target, symlinks=True, ignore=_not_files)
    config = target / "building.yaml"
    if config.is_file():
        config.write_text(config.read_text().replace(str(workdir), str(target.resolve())))
    return target


def _not_files(folder: str, names: list[str]) -> list[str]:
    kept = (stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK)
    return [name for name in names if not any(kind(os.lstat(os.path.join(folder, name)).st_mode) for kind in kept)]


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


class Player:
    """One scenario's run: its working directory, rig, daemon, broker and cloud."""

    def __init__(self, loaded: sc.LoadedScenario, workdir: Path, rig: SimulatedRig | PhysicalRig, data: Path | None = None) -> None:
        self.loaded, self.scenario, self.workdir, self.rig = loaded, loaded.scenario, workdir, rig
        self.data = data
        self.config_path = workdir / "building.yaml"
        self.config: BuildingConfig | None = None
        self.daemon = Daemon(self.config_path, workdir)
        self.broker: Broker | None = None
        self.cloud: Cloud | None = None
        self.modem: ModemSimulator | None = None
        self.feeds: dict[str, CameraFeed] = {}
        self._held = contextlib.ExitStack()  # the modem's pty pair
        self.given_ns = time.time_ns()
        self.mark_mono = self.given_mono = time.monotonic()
        self.mark_seq = 0

    # --- setting up ---------------------------------------------------------------------

    def _config_data(self) -> dict[str, Any]:
        source = self.scenario.config
        data: Any = {}
        if source.file is not None:
            file = (self.loaded.path.parent / source.file).resolve()
            try:
                data = yaml_source.load_file(file).data or {}
            except yaml_source.SourceError as error:
                raise ScenarioProblems([self.loaded.problem(("config", "file"), f"cannot use {file}: {error}")]) from None
        data = copy.deepcopy(merge(data, source.merge))  # filled in below: the scenario's own data stays as written
        if not isinstance(data, dict) or not isinstance(data.get("building"), dict):
            raise ScenarioProblems([self.loaded.problem(("config",), "the building config needs a building: section")])
        secret = self.workdir / "secrets" / "building.key"
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(secrets.token_hex(32))
        data["building"] = {**data["building"], "secret": {"file": str(secret)}}
        data["state_dir"] = str(self.workdir / "state")
        http = data.get("http") if isinstance(data.get("http"), dict) else {}
        data["http"] = {**http, "port": 0}  # nothing the rig starts binds a fixed port: the page takes a free one
        for reader in data.get("readers") or []:
            if isinstance(reader, dict) and reader.get("protocol") == "osdp":
                key = self.workdir / "secrets" / f"osdp-{reader.get('name')}.key"
                generate_key_file(key)  # the simulated reader and the daemon share it, as an installer would set them up
                reader["osdp_key"] = {"file": str(key)}
        data.setdefault("profiles_dir", str(BUILT_IN_PROFILES))
        community = data.get("community")
        if isinstance(community, dict) and isinstance(community.get("modem"), dict):
            if self.modem is None:
                gateway_end, modem_end = self._held.enter_context(pty_pair())
                self.modem = self._held.enter_context(ModemSimulator(modem_end, Mode(self.scenario.modem)))
                self._modem_port = gateway_end
            data["community"] = {**community, "modem": {**community["modem"], "port": self._modem_port}}
        for camera in data.get("cameras") or []:
            settings = self.scenario.cameras.get(camera.get("name")) if isinstance(camera, dict) else None
            if settings is not None:
                camera["source"] = str(self.workdir / f"camera-{camera['name']}.mjpeg")
                if settings.manifest is not None:
                    camera["model"] = str(self._install_model(settings))
        if self.scenario.cloud:
            generate_keys(self.workdir)
            data["uplink"] = {"batch_ms": 10, "keepalive_s": 5, **data.get("uplink", {}),
                              "enabled": True, "host": "127.0.0.1", "port": self.broker.port,
                              "cloud_public_key": str(self.workdir / "cloud.pub")}
        return data

    def data_file(self, relative: str, loc: tuple) -> Path:
        """A file of the data root; the scenario is skipped when the root or the file is absent."""
        if self.data is None:
            raise Skipped(str(self.loaded.problem(loc, f"{relative} is in the data root: give it (--data DIR or ${DATA_ENV})")))
        path = self.data / relative
        if not path.is_file():
            raise Skipped(str(self.loaded.problem(loc, f"{path} is not here (the data root {self.data} lacks it)")))
        return path

    def _install_model(self, settings: sc.ScenarioCamera) -> Path:
        """`edge models install MANIFEST --from WEIGHTS` into the state dir, as an installer would."""
        from edge.vision.install import InstallError, install
        from edge.vision.manifest import ManifestError

        name = next(n for n, c in self.scenario.cameras.items() if c is settings)
        weights = self.data_file(settings.weights, ("cameras", name, "weights"))
        try:
            installed = install((self.loaded.path.parent / settings.manifest).resolve(), self.workdir / "state", weights)
        except (ManifestError, InstallError, OSError) as error:
            raise ScenarioProblems([self.loaded.problem(("cameras", name, "manifest"), f"cannot install the model: {error}")]) from None
        return installed.manifest

    def _start_feeds(self) -> None:
        for name, settings in self.scenario.cameras.items():
            idle = still(self.data_file(settings.idle, ("cameras", name, "idle")), settings.size)
            self.feeds[name] = CameraFeed(self.workdir / f"camera-{name}.mjpeg", idle, settings.fps).start()
        if self.feeds:
            self.daemon.env.update(CAPTURE_ENV)

    def _clip_frames(self, index: int, step: sc.CameraClip, settings: sc.ScenarioCamera) -> list[bytes]:
        if isinstance(step.camera_clip, str):
            return video_frames(self.data_file(step.camera_clip, ("steps", index, "camera_clip")), settings.size, MAX_CLIP_FRAMES)
        frames: list[bytes] = []
        for c_index, part in enumerate(step.camera_clip):
            image = still(self.data_file(part.image, ("steps", index, "camera_clip", c_index, "image")), settings.size)
            frames += [image] * max(1, round(part.seconds * settings.fps))
        if len(frames) > MAX_CLIP_FRAMES:
            raise FeedProblem(f"the clip is {len(frames)} frames; at most {MAX_CLIP_FRAMES} are held in memory (shorten it or lower fps)")
        return frames

    def _check_data(self) -> None:
        """Every data file the scenario names, before anything starts: a missing one skips the scenario."""
        for name, settings in self.scenario.cameras.items():
            if settings.qualify is not None:
                self.data_file(settings.qualify.labels, ("cameras", name, "qualify", "labels"))
        for index, step in enumerate(self.scenario.steps):
            if isinstance(step, sc.CameraClip):
                if isinstance(step.camera_clip, str):
                    self.data_file(step.camera_clip, ("steps", index, "camera_clip"))
                for c_index, part in enumerate(step.camera_clip if isinstance(step.camera_clip, list) else []):
                    self.data_file(part.image, ("steps", index, "camera_clip", c_index, "image"))

    async def _qualify(self, data: dict[str, Any], config: BuildingConfig) -> None:
        """`edge vision eval --json` of each camera's installed model on the scenario's labelled frames,
        with the camera's hold classes, as an installer qualifies a model on site: the report
        becomes the camera's `qualification.report`, and the daemon judges it against the limits."""
        for name, settings in self.scenario.cameras.items():
            if settings.qualify is None:
                continue
            loc = ("cameras", name, "qualify")
            camera = next(c for c in config.cameras if c.name == name)
            if camera.qualification.report is not None:
                raise ScenarioProblems([self.loaded.problem(loc, f"the building config names camera {name!r}'s report already "
                                                                 f"({camera.qualification.report}): give `qualify` or the report, not both")])
            labels = self.data_file(settings.qualify.labels, loc + ("labels",))
            images = self.data / settings.qualify.images if settings.qualify.images is not None else labels.parent
            if not images.is_dir():
                raise Skipped(str(self.loaded.problem(loc + ("images",), f"{images} is not here (the data root {self.data} lacks it)")))
            argv = ["vision", "eval", "--model", str(camera.model), "--images", str(images), "--labels", str(labels), "--json"]
            for cls in camera.hold_classes:
                argv += ["--hold-class", cls]
            code, output, errors = await run_edge(argv, QUALIFY_WITHIN_S)
            if code != 0:
                said = errors.decode(errors="replace").strip()[-600:]
                raise ScenarioProblems([self.loaded.problem(loc, f"`edge vision eval` exited {code}: {said}")])
            report = self.workdir / f"eval-{name}.json"
            report.write_bytes(output)
            for entry in data.get("cameras") or []:
                if isinstance(entry, dict) and entry.get("name") == name:
                    entry["qualification"] = {**(entry.get("qualification") or {}), "report": str(report)}

    def _write_config(self, data: dict[str, Any]) -> BuildingConfig:
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            return load_config(self.config_path)
        except ConfigError as invalid:
            raise ScenarioProblems(invalid.problems, f"(the building config as merged for scenario {self.loaded.path})") from None

    async def set_up(self) -> None:
        if self.scenario.cloud:
            self.broker = await asyncio.to_thread(Broker().start)
        data = self._config_data()
        config = self._write_config(data)
        profiles = device_profiles(config)
        problems = sc.check_against(self.loaded, config, profiles) + self.rig.refusals(self.loaded, config)
        if problems:
            raise ScenarioProblems(problems)
        self._check_data()
        await self._qualify(data, config)
        await asyncio.to_thread(self._start_feeds)
        await self.rig.start(config, profiles, self.scenario)
        buses, readers = self.rig.endpoints(config)
        data["buses"] = [{**bus, **buses.get(bus["name"], {})} for bus in data.get("buses", [])]
        data["readers"] = [{**reader, "port": readers.get(reader["name"], reader.get("port"))} for reader in data.get("readers", [])]
        self.config = self._write_config(data)
        await asyncio.to_thread(self._enrol)
        if self.scenario.cloud:
            key = (self.workdir / "cloud.key").read_bytes()
            self.cloud = Cloud("127.0.0.1", self.broker.port, self.workdir / "cloud.db",
                               serialization.load_pem_private_key(key, None), client_id=f"hil-cloud-{secrets.token_hex(3)}")
            await asyncio.wait_for(self.cloud.start(), CLOUD_CONNECT_WITHIN_S)
        await self.mark()
        await self.start_daemon()

    async def start_daemon(self) -> None:
        """`edge run`, READY=1, and then every reader port open and every device polled: only then is a tap heard."""
        self.rig.before_start()
        await asyncio.to_thread(self.daemon.start)
        waiting: list[str] = []

        def listening() -> bool:
            nonlocal waiting
            waiting = self.rig.not_listening(self.daemon.pid)
            return not waiting or not self.daemon.alive()

        if not await by_deadline(listening, time.monotonic() + SETTLE_WITHIN_S, every_s=POLL_S) or waiting:
            raise DaemonFailed(f"{SETTLE_WITHIN_S:.0f} s after READY=1: {'; '.join(waiting) or 'the daemon ended'}\n{self.daemon.log_tail()}")

    def _today(self):
        return datetime.now(ZoneInfo(self.config.building.timezone)).date()

    def _enrol(self) -> None:
        path = credentials_path(self.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        today = self._today()
        with CredentialStore.open(path, self.config.building.secret.read()) as store:
            for name, tenant in self.scenario.tenants.items():
                store.issue(Enrolment(
                    serial=bytes.fromhex(tenant.card), tenant=name, status=tenant.status, door_groups=frozenset(tenant.groups),
                    valid_from=today + timedelta(days=tenant.valid_from), valid_until=today + timedelta(days=tenant.valid_until),
                    paid_through=today + timedelta(days=tenant.paid_through), pin=tenant.pin,
                ))
        if self.scenario.credential_store == "damaged":
            for leftover in path.parent.glob(path.name + "-*"):
                leftover.unlink()
            path.write_bytes(b"\x00not a credential store" * 200)

    async def tear_down(self) -> int | None:
        code = await asyncio.to_thread(self.daemon.stop) if self.daemon.starts else None
        await asyncio.to_thread(self.daemon.close)
        if self.cloud is not None:
            await asyncio.wait_for(self.cloud.stop(), CLOUD_CONNECT_WITHIN_S)
        for feed in self.feeds.values():
            await asyncio.to_thread(feed.stop)
        await asyncio.to_thread(self._held.close)
        await self.rig.stop()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.__exit__)
        return code

    # --- the journal, from outside -------------------------------------------------------

    def _events(self, **query: Any) -> list[StoredEvent]:
        path = self.config.journal_path
        return read_events(path, EventQuery(limit=None, **query)) if path.exists() else []

    async def events(self, **query: Any) -> list[StoredEvent]:
        return await asyncio.to_thread(self._events, **query)

    async def head_seq(self) -> int:
        newest = await asyncio.to_thread(lambda: read_events(self.config.journal_path, EventQuery(limit=1, newest_first=True))
                                         if self.config.journal_path.exists() else [])
        return newest[0].seq if newest else 0

    def describe(self, event: StoredEvent) -> str:
        body = json.dumps(event.body, separators=(",", ":"), default=str)
        return f"seq {event.seq:<5} {(event.wall_ns - self.given_ns) / 1e6:+8.0f} ms  {event.kind}  {event.source}  {body[:200]}"

    async def nearest(self, kind: str | None) -> list[str]:
        """What happened instead: events of the kind since the stimulus, else the alarms, faults and
        access events around it."""
        if kind:
            same = await self.events(after_seq=self.mark_seq, kinds=(kind,))
            if same:
                return [self.describe(e) for e in same[:NEAREST]]
        after = await self.events(after_seq=self.mark_seq, min_priority=Priority.FAULT)
        before = await self.events(min_priority=Priority.FAULT)
        before = [e for e in before if e.seq <= self.mark_seq][-3:]
        shown = [self.describe(e) for e in before] + ["--- the stimulus ---"] + [self.describe(e) for e in after[:NEAREST]]
        if not after:
            shown.append("(no alarm, fault or access event since the stimulus)")
        return shown

    # --- the timeline ---------------------------------------------------------------------

    async def mark(self) -> None:
        """A stimulus begins: events after this seq (SMS after this instant) count for the next expectations."""
        self.mark_seq = await self.head_seq()
        self.given_ns = time.time_ns()
        self.mark_mono = self.given_mono = time.monotonic()

    def given(self) -> None:
        """The stimulus is complete (a person pressed Enter, a hook returned): deadlines and measured times count from now."""
        self.given_ns, self.given_mono = time.time_ns(), time.monotonic()

    def step_text(self, index: int) -> str:
        raw = self.loaded.document.data["steps"][index]
        return yaml.safe_dump(raw, default_flow_style=True, width=10_000, sort_keys=False, allow_unicode=True).strip()

    async def play_step(self, index: int, step: Any) -> StepResult:
        line = self.loaded.document.position(("steps", index))[0]
        result = StepResult(index=index, line=line, step=self.step_text(index), expectation=sc.is_expectation(step), passed=True)
        if not result.expectation:
            await self.mark()
            started = time.monotonic()
            result.detail = await self.stimulate(step) or ""
            self.given()
            result.measured_ms = (time.monotonic() - started) * 1000
            return result
        await self.expect(step, result)
        if not result.passed and not self.daemon.alive():
            result.detail += f"; the daemon is not running (log tail: {self.daemon.log_tail(5)})"
        return result

    async def stimulate(self, step: Any) -> str:
        if isinstance(step, sc.Wait):
            await asyncio.sleep(step.wait_s)
            return ""
        if isinstance(step, sc.BrokerStep):
            await asyncio.to_thread(self.broker.stop if step.broker == "down" else self.broker.start)
            return f"mosquitto on port {self.broker.port} {'stopped' if step.broker == 'down' else 'started'}"
        if isinstance(step, sc.DaemonStep):
            await asyncio.to_thread(self.daemon.kill if step.daemon == "sigkill" else self.daemon.stop)
            behind = ""
            if self.cloud is not None:
                head, held = await self.head_seq(), len(self.cloud.seqs(self.config.building.id))
                behind = f", with the journal at seq {head} and the cloud holding {held} events"
            await self.start_daemon()
            return f"{'SIGKILLed' if step.daemon == 'sigkill' else 'stopped'}{behind}; started again"
        if isinstance(step, sc.CloudCommand):
            reply = await asyncio.wait_for(self.cloud.command(self.config.building.id, step.cloud_command, step.args, step.within_ms / 1000),
                                           step.within_ms / 1000 + 1)
            if reply.get("outcome") != step.outcome:
                raise RigProblem(f"command {step.cloud_command} answered {reply.get('outcome')}: {reply.get('detail')}")
            return f"outcome {reply['outcome']}"
        if isinstance(step, sc.Credentials):
            changes = [self._change(change) for change in step.credentials]
            building = self.config.building.id
            await asyncio.wait_for(self.cloud.send(building, "credentials", self.cloud.change_set(building, changes)), SEND_WITHIN_S)
            return f"change set version {self.cloud.book(building).credential_version}"
        if isinstance(step, sc.CameraClip):
            name = step.camera or next(iter(self.scenario.cameras))
            settings = self.scenario.cameras[name]
            index = self.scenario.steps.index(step)
            frames = await asyncio.to_thread(self._clip_frames, index, step, settings)
            seconds = len(frames) / settings.fps
            await asyncio.to_thread(self.feeds[name].play, frames, seconds + PLAYED_WITHIN_MARGIN_S)
            return f"{len(frames)} frames ({seconds:.1f} s) read by camera {name}"
        if isinstance(step, sc.Edge):
            return await self._edge(step)
        return await self.rig.stimulate(step, self.scenario, self.config)

    async def _edge(self, step: sc.Edge) -> str:
        code, output, _ = await run_edge([*step.edge, "--config", str(self.config_path)], EDGE_CLI_WITHIN_S, merged=True)
        text = output.decode(errors="replace").strip()
        if code != step.exit_code:
            raise RigProblem(f"`edge {' '.join(step.edge)}` exited {code}, not {step.exit_code}: {text[-600:]}")
        if step.output_contains is not None and step.output_contains not in text:
            raise RigProblem(f"`edge {' '.join(step.edge)}` did not print {step.output_contains!r}: {text[-600:]}")
        last = text.splitlines()[-1] if text else ""
        return f"exit {code}: {last[:200]}"

    def _change(self, change: sc.CredentialChange) -> dict[str, Any]:
        name = change.upsert or change.remove
        tenant = self.scenario.tenants[name]
        # the store's key: HMAC-SHA256(building secret, serial), as CredentialStore.key_for makes it
        key = hmac.digest(self.config.building.secret.read(), bytes.fromhex(tenant.card), "sha256").hex()
        if change.remove:
            return {"op": "remove", "key": key}
        today = self._today()
        paid = tenant.paid_through if change.paid_through is None else change.paid_through
        return {"op": "upsert", "credential": {
            "key": key, "tenant": name, "status": change.status or tenant.status, "door_groups": tenant.groups,
            "valid_from": str(today + timedelta(days=tenant.valid_from)), "valid_until": str(today + timedelta(days=tenant.valid_until)),
            "paid_through": str(today + timedelta(days=paid)),
        }}

    async def expect(self, step: Any, result: StepResult) -> None:
        if isinstance(step, sc.ExpectEvent):
            await self._expect_event(step, result)
        elif isinstance(step, sc.ExpectPoint):
            await self._expect_point(step, result)
        elif isinstance(step, sc.ExpectNone):
            await self._expect_none(step, result)
        elif isinstance(step, sc.ExpectCloud):
            await self._expect_cloud(step, result)
        elif isinstance(step, sc.ExpectOpen):
            await self._expect_open(step, result)
        elif isinstance(step, sc.ExpectSms):
            await self._expect_sms(step.expect_sms, result)
        elif isinstance(step, sc.ExpectNoSms):
            await self._expect_no_sms(step, result)
        elif isinstance(step, sc.ExpectRss):
            rss = await asyncio.to_thread(self.daemon.rss_mb)
            result.passed, result.detail = rss < step.expect_rss_mb_below, f"RSS {rss:.1f} MB"
            result.expected = f"the daemon's RSS below {step.expect_rss_mb_below} MB"

    def _deadline(self, within_ms: int) -> float:
        return self.given_mono + within_ms / 1000

    @staticmethod
    def _judge(result: StepResult, after_ms: float, within_ms: int, found: str) -> None:
        """What an expectation found, `after_ms` after the stimulus was done, against its deadline.

        Every expectation asks this of what it found, not only of its waiting: the steps before it
        may have used its time up (a window, a slower expectation), and a point or a port first
        looked at after the deadline says nothing about whether it was so in time.
        """
        result.measured_ms, result.detail = after_ms, found
        if after_ms > within_ms:
            result.passed = False
            result.detail = f"{found}, {after_ms:.0f} ms after the stimulus was done: past its {within_ms} ms deadline"

    @staticmethod
    def _matches(event: StoredEvent, source: str | None, fields: dict[str, Any], has: Sequence[str] = ()) -> bool:
        return ((source is None or event.source == source) and all(event.body.get(k) == v for k, v in fields.items())
                and all(k in event.body for k in has))

    @staticmethod
    def _wanted(kind: str, source: str | None, fields: dict[str, Any], has: Sequence[str] = ()) -> str:
        where = f" from {source}" if source else ""
        parts = [f"{k}={json.dumps(v)}" for k, v in fields.items()] + [f"a {k}" for k in has]
        return f"{kind}{where}" + (" with " + ", ".join(parts) if parts else "")

    async def _expect_event(self, step: sc.ExpectEvent, result: StepResult) -> None:
        wanted = self._wanted(step.expect, step.source, step.fields, step.has)
        result.expected = f"{step.count} x {wanted} within {step.within_ms} ms" if step.count > 1 else f"{wanted} within {step.within_ms} ms"
        matching: list[StoredEvent] = []

        async def enough() -> bool:
            nonlocal matching
            matching = [e for e in await self.events(after_seq=self.mark_seq, kinds=(step.expect,))
                        if self._matches(e, step.source, step.fields, step.has)]
            return len(matching) >= step.count

        if await by_deadline(enough, self._deadline(step.within_ms), every_s=POLL_S):
            event = matching[step.count - 1]
            self._judge(result, (event.wall_ns - self.given_ns) / 1e6, step.within_ms, f"seq {event.seq}")
            if not result.passed:
                result.nearest = [self.describe(e) for e in matching[:NEAREST]]
            return
        result.passed = False
        result.detail = f"{len(matching)} matching event(s) in {step.within_ms} ms"
        result.nearest = await self.nearest(step.expect)

    async def _expect_point(self, step: sc.ExpectPoint, result: StepResult) -> None:
        result.expected = f"{step.expect_point} = {json.dumps(step.equals)} within {step.within_ms} ms"
        seen: list[Any] = []

        async def equal() -> float | None:
            value = await self.rig.read_point(step.expect_point)
            read = time.monotonic()  # when the read is complete: a slow read (a rig's hook) is no excuse
            if not seen or seen[-1] != value:
                seen.append(value)
            return read if _same(value, step.equals) else None

        read = await by_deadline(equal, self._deadline(step.within_ms), every_s=POLL_S)
        if read is not None:
            self._judge(result, (read - self.given_mono) * 1000, step.within_ms, f"read {json.dumps(seen[-1])}")
            return
        result.passed = False
        result.detail = f"{step.expect_point} read {' then '.join(json.dumps(v) for v in seen[-5:])}"
        result.nearest = await self.nearest(None)

    async def _expect_open(self, step: sc.ExpectOpen, result: StepResult) -> None:
        result.expected = f"the daemon holds reader {step.expect_open}'s port open within {step.within_ms} ms"
        waiting: list[str] = []

        def opened() -> bool:
            nonlocal waiting
            waiting = [w for w in self.rig.not_listening(self.daemon.pid) if w.startswith(f"reader {step.expect_open} ")]
            return not waiting

        if await by_deadline(opened, self._deadline(step.within_ms), every_s=POLL_S):
            self._judge(result, (time.monotonic() - self.given_mono) * 1000, step.within_ms, "open")
            return
        result.passed, result.detail = False, waiting[0]
        result.nearest = await self.nearest(None)

    async def _expect_none(self, step: sc.ExpectNone, result: StepResult) -> None:
        result.expected = f"no {self._wanted(step.expect_none, step.source, step.fields)} for {step.for_ms} ms"
        await asyncio.sleep(max(0.0, self._deadline(step.for_ms) - time.monotonic()))
        if not self.daemon.alive():
            result.passed, result.detail = False, "the daemon was not running through the window, so its silence proves nothing"
            return
        found = [e for e in await self.events(after_seq=self.mark_seq, kinds=(step.expect_none,))
                 if self._matches(e, step.source, step.fields) and e.wall_ns <= self.given_ns + step.for_ms * 1_000_000]
        result.measured_ms = float(step.for_ms)
        if found:
            result.passed = False
            result.detail = f"{len(found)} such event(s), the first {(found[0].wall_ns - self.given_ns) / 1e6:.0f} ms after the stimulus was done"
            result.nearest = [self.describe(e) for e in found[:NEAREST]]
        else:
            result.detail = "none"

    def _sms_since_mark(self) -> list[Any]:
        return [m for m in list(self.modem.messages) if m.at >= self.mark_mono]

    async def _expect_sms(self, step: sc.Sms, result: StepResult) -> None:
        result.expected = f"an SMS to {step.to}" + (f" containing {step.contains!r}" if step.contains else "") + f" within {step.within_ms} ms"
        messages: list[Any] = []

        def sent() -> Any:
            nonlocal messages
            messages = self._sms_since_mark()
            return next((m for m in messages if m.number == step.to and step.contains in m.text), None)

        found = await by_deadline(sent, self._deadline(step.within_ms), every_s=POLL_S)
        if found is not None:
            self._judge(result, (found.at - self.given_mono) * 1000, step.within_ms, f"{found.text[:80]!r}")
            return
        result.passed = False
        result.detail = f"the modem took {len(messages)} SMS since the stimulus"
        result.nearest = [f"SMS to {m.number}: {m.text[:120]!r}" for m in messages[:NEAREST]] + await self.nearest("notify.sms_sent")

    async def _expect_no_sms(self, step: sc.ExpectNoSms, result: StepResult) -> None:
        result.expected = f"no SMS for {step.for_ms} ms"
        await asyncio.sleep(max(0.0, self._deadline(step.for_ms) - time.monotonic()))
        messages = [m for m in self._sms_since_mark() if m.at <= self.given_mono + step.for_ms / 1000]
        result.measured_ms = float(step.for_ms)
        if messages:
            result.passed = False
            result.detail = f"{len(messages)} SMS, the first to {messages[0].number}"
            result.nearest = [f"SMS to {m.number}: {m.text[:120]!r}" for m in messages[:NEAREST]]
        else:
            result.detail = "none"

    async def _expect_cloud(self, step: sc.ExpectCloud, result: StepResult) -> None:
        building = self.config.building.id
        journal = await self.events()
        head = journal[-1].seq if journal else 0
        result.expected = f"the cloud holds the journal's {len(journal)} events through seq {head} exactly once, no gap, within {step.within_ms} ms"
        filled = time.monotonic()
        held: list[dict[str, Any]] = []

        async def exactly_once() -> bool:
            nonlocal held, filled
            held = [e for e in self.cloud.events(building) if e["seq"] <= head]
            if [e["id"] for e in held] == [e.id for e in journal]:
                return True
            if time.monotonic() - filled > FILL_GAPS_EVERY_S:
                filled = time.monotonic()
                try:
                    await self.cloud.fill_gaps(building, head)
                except (TimeoutError, ConnectionError, AttributeError):
                    pass  # the gateway or the broker is not back yet; try again
            return False

        if await by_deadline(exactly_once, self._deadline(step.within_ms), every_s=POLL_S * 4):
            self._judge(result, (time.monotonic() - self.given_mono) * 1000, step.within_ms,
                        f"{len(held)} events, {self.cloud.duplicates} duplicate deliveries dropped by id")
            return
        seqs = [e["seq"] for e in held]
        ids = {e.seq: e.id for e in journal}
        missing = sorted(set(ids) - set(seqs))
        twice = sorted({s for s in seqs if seqs.count(s) > 1})
        wrong = sorted(e["seq"] for e in held if ids.get(e["seq"], e["id"]) != e["id"])
        result.passed = False
        result.detail = (f"the cloud holds {len(set(seqs))} of {len(ids)}; missing seqs {_ranges(missing)}; "
                         f"seqs held twice {_ranges(twice)}; seqs with another id {_ranges(wrong)}")
        result.nearest = await self.nearest(None)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value == wanted
    return math.isclose(float(value), float(wanted), rel_tol=1e-6, abs_tol=1e-6)


def _ranges(seqs: list[int]) -> str:
    if not seqs:
        return "none"
    parts, start, prev = [], seqs[0], seqs[0]
    for seq in seqs[1:] + [None]:
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if seq is not None:
            start = prev = seq
    return ", ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")


async def play(path: Path, rig: RigFile | None = None, rig_path: Path | None = None, keep: Path | None = None,
               prompt_in=None, prompt_out=None, data: Path | None = None) -> ScenarioResult:
    """Play one scenario file and say what happened; never raises for a scenario's own problems.

    `keep`: a directory to copy the scenario's state (config, journal, daemon log) into afterwards.
    """
    started = time.monotonic()
    result = ScenarioResult(path=str(path), name=Path(path).stem)
    try:
        loaded = sc.load(path)
    except sc.ScenarioError as invalid:
        result.outcome, result.error = "error", str(invalid)
        return result
    result.name = loaded.scenario.name
    workdir = Path(tempfile.mkdtemp(prefix=f"hil-{Path(path).stem}-"))
    face = PhysicalRig(rig, rig_path, prompt_in, prompt_out) if rig is not None else SimulatedRig(workdir)
    player = Player(loaded, workdir, face, data_root(data))
    try:
        await player.set_up()
        for index, step in enumerate(loaded.scenario.steps):
            try:
                outcome = await player.play_step(index, step)
            except (RigProblem, DaemonFailed, FeedProblem, TimeoutError, OSError, ValueError) as problem:
                outcome = StepResult(index=index, line=loaded.document.position(("steps", index))[0], step=player.step_text(index),
                                     expectation=False, passed=False, detail=f"could not be played: {problem}")
                result.steps.append(outcome)
                result.outcome = "error"
                break
            result.steps.append(outcome)
            if not outcome.passed:
                result.outcome = "failed"
    except ScenarioProblems as problems:
        result.outcome, result.error = "error", str(problems)
    except Skipped as skipped:
        result.outcome, result.error = "skipped", str(skipped)
    except (RigProblem, DaemonFailed, TimeoutError, OSError) as problem:
        result.outcome, result.error = "error", f"the rig could not be set up: {problem}"
    finally:
        try:
            code = await player.tear_down()
        except (DaemonFailed, TimeoutError, OSError) as problem:
            code, result.outcome = None, "error"
            result.error += f"\nthe rig could not be taken down cleanly: {problem!r}"
        if code not in (None, 0) and result.outcome == "passed":
            result.outcome = "failed"
            result.steps.append(StepResult(index=len(result.steps), line=1, step="daemon stops on SIGTERM", expectation=True,
                                           passed=False, expected="exit code 0", detail=f"exit code {code}: {player.daemon.log_tail(8)}"))
        result.duration_s = time.monotonic() - started
        try:
            if keep is not None and result.outcome != "skipped":  # nothing ran: nothing to read afterwards
                result.workdir = str(await asyncio.to_thread(keep_state, workdir, Path(keep), Path(path).stem))
        except OSError as problem:
            result.outcome = "error"
            result.error += f"\nits state could not be kept in {keep}: {problem}"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def run(paths: list[Path], rig_path: Path | None = None, keep: Path | None = None, data: Path | None = None) -> list[ScenarioResult]:
    rig = load_rig(rig_path) if rig_path else None
    return [asyncio.run(play(path, rig, rig_path, keep, data=data)) for path in scenario_paths(paths)]
