"""Plays a scenario: the building's simulators (or a physical rig), mosquitto, the reference
cloud and `edge run` as a subprocess, then the timeline step by step.

Expectations are judged from outside, as a rig engineer would: events from the daemon's
journal file (read-only, as `edge events` reads it), points from the devices themselves,
the cloud from the reference cloud's own store. Only events journaled after the last stimulus
began count for an expectation; its deadline counts from when the stimulus was complete (a
person's Enter, a hook's return, the end of a clip, a restarted daemon's READY), and so does the
time it reports, so the two compare: an event journaled while the stimulus was still being given
shows a negative time.

The Player is the timeline: its set-up (staging.py), its stimuli, the journal seen from outside, and
the expectations (expectations.py); which files it plays is scenario_files.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from edge.config.building import BuildingConfig, device_profiles
from edge.events import Priority, StoredEvent
from edge.journal import EventQuery, read_events
from edge.hil import scenario as sc
from edge.hil import staging
from edge.hil.broker import Broker
from edge.hil.camera_feed import PLAYED_WITHIN_MARGIN_S, CameraFeed, FeedProblem
from edge.hil.cloud import Cloud
from edge.hil.daemon import Daemon, DaemonFailed
from edge.hil.expectations import NEAREST, POLL_S, expect
from edge.hil.modem_sim import ModemSimulator
from edge.hil.report import ScenarioResult, StepResult
from edge.hil.physical_rig import PhysicalRig, RigFile, load_rig
from edge.hil.rig import RigProblem, SimulatedRig
from edge.hil.scenario_files import Skipped, data_root, keep_state, scenario_paths
from edge.hil.staging import ScenarioProblems, run_edge
from edge.hil.waiting import by_deadline

CLOUD_CONNECT_WITHIN_S = 10.0  # also for its goodbye
SETTLE_WITHIN_S = 15.0
SEND_WITHIN_S = 10.0
EDGE_CLI_WITHIN_S = 60.0


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
        self.held = contextlib.ExitStack()  # the modem's pty pair
        self.modem_port: str | None = None  # the gateway's end of it
        self.given_ns = time.time_ns()
        self.mark_mono = self.given_mono = time.monotonic()
        self.mark_seq = 0

    # --- setting up ---------------------------------------------------------------------

    async def set_up(self) -> None:
        if self.scenario.cloud:
            self.broker = await asyncio.to_thread(Broker().start)
        data = staging.config_data(self)
        config = staging.write_config(self, data)
        profiles = device_profiles(config)
        problems = sc.check_against(self.loaded, config, profiles) + self.rig.refusals(self.loaded, config)
        if problems:
            raise ScenarioProblems(problems)
        staging.check_data(self)
        await staging.qualify(self, data, config)
        await asyncio.to_thread(staging.start_feeds, self)
        await self.rig.start(config, profiles, self.scenario)
        buses, readers = self.rig.endpoints(config)
        data["buses"] = [{**bus, **buses.get(bus["name"], {})} for bus in data.get("buses", [])]
        data["readers"] = [{**reader, "port": readers.get(reader["name"], reader.get("port"))} for reader in data.get("readers", [])]
        self.config = staging.write_config(self, data)
        await asyncio.to_thread(staging.enrol, self)
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

    async def tear_down(self) -> int | None:
        code = await asyncio.to_thread(self.daemon.stop) if self.daemon.starts else None
        await asyncio.to_thread(self.daemon.close)
        if self.cloud is not None:
            await asyncio.wait_for(self.cloud.stop(), CLOUD_CONNECT_WITHIN_S)
        for feed in self.feeds.values():
            await asyncio.to_thread(feed.stop)
        await asyncio.to_thread(self.held.close)
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
            frames = await asyncio.to_thread(staging.clip_frames, self, index, step, settings)
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
        today = staging.building_today(self)
        paid = tenant.paid_through if change.paid_through is None else change.paid_through
        return {"op": "upsert", "credential": {
            "key": key, "tenant": name, "status": change.status or tenant.status, "door_groups": tenant.groups,
            "valid_from": str(today + timedelta(days=tenant.valid_from)), "valid_until": str(today + timedelta(days=tenant.valid_until)),
            "paid_through": str(today + timedelta(days=paid)),
        }}

    async def expect(self, step: Any, result: StepResult) -> None:
        await expect(self, step, result)


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
