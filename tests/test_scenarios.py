"""The rig's scenarios, collected by pytest: each YAML file in hil/scenarios/ is one test.

Beside them: a scenario with a wrong expectation must fail and say what it expected and what
happened instead, and one looked at after its deadline fails however right it is; bad scenario
files are refused with their lines; the CLI's exit code (also when everything was skipped), JUnit,
JSON, --keep DIR, --list and -k; the shipped JSON Schema; and physical-rig mode, pointed at
simulators started separately as a rig's real devices would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edge.hil import report
from edge.hil.__main__ import main as hil_main
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice
from edge.hil.pty import pty_pair
from edge.hil.physical_rig import load_rig
from edge.config.building import BUILT_IN_PROFILES
from edge.hil.runner import play
from edge.hil.scenario_files import SCENARIOS, data_root
from edge.hil.scenario import SCHEMA_FILE, ScenarioError, load
from edge.drivers.modbus.profile import load_profile

BUILDING = SCENARIOS / "buildings" / "rig-house.yaml"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"  # the e-bike images and model weights


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_canonical_scenario(path: Path):
    result = asyncio.run(play(path, data=data_root() or SHARED_DATA))
    if result.outcome == "skipped":
        pytest.skip(result.error)
    assert result.outcome == "passed", report.text([result])


# The rig house's simulated devices at healthy readings, written in a scenario as `devices: HEALTHY`.
HEALTHY = """devices:
  f1-monitor: {values: {current_a: 12, current_b: 11, current_c: 9, leakage_ma: 20}}
  f1-breaker: {values: {closed: true}}
  water-ai: {values: {ch1_ma: 11.5}}"""


def _scenario(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n").replace("BUILDING", str(BUILDING)).replace("devices: HEALTHY", HEALTHY))
    return path


WRONG = """
name: a tenant behind on rent is let in (wrong on purpose)
config: {file: BUILDING}
devices: HEALTHY
tenants:
  bob: {card: 0100A1B2C3, paid_through: -6}
steps:
  - tap: bob
    reader: front-reader
  - expect: access.decision
    fields: {reason: granted}
    within_ms: 1500
  - expect_point: doors-io.relay_1
    equals: true
    within_ms: 300
"""


@pytest.mark.timeout(60)
def test_a_wrong_expectation_fails_saying_what_was_expected_and_what_happened(tmp_path):
    path = _scenario(tmp_path, WRONG)
    assert hil_main(["run", str(path), "--junit", str(tmp_path / "j.xml"), "--json", str(tmp_path / "j.json")]) == 1
    result = asyncio.run(play(path))
    assert result.outcome == "failed"
    decision, relay = result.failures
    assert decision.line == 12 and decision.expected == 'access.decision with reason="granted" within 1500 ms'
    assert decision.detail == "0 matching event(s) in 1500 ms"
    assert any("access.decision" in e and '"reason":"rent_unpaid"' in e for e in decision.nearest), decision.nearest
    assert relay.expected == "doors-io.relay_1 = true within 300 ms" and relay.detail == "doors-io.relay_1 read false"
    text = report.text([result])
    assert "FAIL" in text and 'expected: access.decision with reason="granted"' in text and "rent_unpaid" in text

    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure.get("message").startswith("line 12: {expect: access.decision") and "rent_unpaid" in failure.text
    written = json.loads((tmp_path / "j.json").read_text())
    assert written["passed"] is False and written["scenarios"][0]["outcome"] == "failed"
    assert written["scenarios"][0]["steps"][1]["expected"] == decision.expected


def test_bad_scenarios_are_refused_with_their_lines_all_at_once(tmp_path):
    path = _scenario(tmp_path, """
        name: bad
        config: {file: BUILDING}
        steps:
          - tap: alice
          - clock_jump: {by_s: 3600}
          - camera_clip: bike.mp4
          - press: the big red button
          - expect: access.decision
            within_ms: 0
        """)
    with pytest.raises(ScenarioError) as refused:
        load(path)
    lines = [str(p).removeprefix(str(path) + ":") for p in refused.value.problems]
    assert lines[0] == "4:5: steps.0.reader: Field required"
    assert lines[1].startswith("5:5: steps.1.clock_jump: clock jumps cannot be played: `edge run` reads the host's wall clock")
    assert lines[2].startswith("7:5: steps.3: a step needs one of: tap, pin, set")
    assert lines[3] == "9:5: steps.4.within_ms: Input should be greater than 0"
    assert len(lines) == 4, "a camera clip is a step now (its camera is checked against the building)"


@pytest.mark.timeout(60)
def test_a_scenario_naming_what_the_building_lacks_is_an_error_before_anything_runs(tmp_path):
    path = _scenario(tmp_path, """
        name: names what is not there
        config: {file: BUILDING, merge: {fire_alarm: null}}
        steps:
          - tap: nobody-we-know
            reader: back-reader
          - set: doors-io.input_9
            value: true
          - fire: raised
          - broker: down
          - camera_clip: ebike/clip.mp4
          - expect_sms: {to: "+8613800000001"}
        """)
    result = asyncio.run(play(path))
    assert result.outcome == "error" and not result.steps
    assert f"{path}:10:5: steps.4: name the camera this clip plays into (the scenario's `cameras`: [])" in result.error
    assert f"{path}:11:5: steps.5: the building has no modem (community.modem): there is no SMS to expect" in result.error
    assert f"{path}:4:5: steps.0.tap: 'nobody-we-know' is neither a tenant of this scenario nor a hex card serial" in result.error
    assert f"{path}:5:5: steps.0.reader: the building has no reader 'back-reader'" in result.error
    assert f"{path}:6:5: steps.1.set: device 'doors-io' (generic-dio8) has no point 'input_9'" in result.error
    assert f"{path}:8:5: steps.2: the building config has no fire_alarm input" in result.error
    assert f"{path}:9:5: steps.3: this step needs the broker and the reference cloud: set `cloud: true`" in result.error


# --- physical-rig mode, against simulators started on their own -----------------------------


class SeparateDevices:
    """The rig's field devices: one Modbus TCP simulator on its own loop, started apart from the runner."""

    def __init__(self) -> None:
        profiles = BUILT_IN_PROFILES
        self.doors = SimulatedDevice(load_profile(profiles / "generic-dio8.yaml"), 1)
        monitor = SimulatedDevice(load_profile(profiles / "generic-efm8.yaml"), 2)
        for point, value in {"current_a": 12, "current_b": 11, "current_c": 9, "leakage_ma": 20}.items():
            monitor.set_value(point, value)
        breaker = SimulatedDevice(load_profile(profiles / "generic-breaker.yaml"), 3)
        breaker.set_value("closed", True)
        water = SimulatedDevice(load_profile(profiles / "generic-ai8.yaml"), 4)
        water.set_value("ch1_ma", 11.5)
        self.simulator = FieldSimulator([self.doors, monitor, breaker, water])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "SeparateDevices":
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.simulator.start_tcp(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Person:
    """Stands at the rig: reads each prompt, does what it says on the simulated devices, presses Enter."""

    def __init__(self, doors: SimulatedDevice) -> None:
        self.doors = doors
        self.answers, self._answer = os.pipe()
        self.prompts: list[str] = []
        self.stdin = os.fdopen(self.answers)

    def write(self, text: str) -> None:
        if "RIG:" in text:
            self.prompts.append(text.strip())
            self.doors.set_value("input_8", "raise" in text)
            os.write(self._answer, b"\n")

    def flush(self) -> None:
        pass


@pytest.mark.timeout(90)
def test_rig_mode_plays_a_scenario_on_separately_started_devices_through_hooks_and_prompts(tmp_path):
    scenario = _scenario(tmp_path, """
        name: on the rig
        config: {file: BUILDING}
        tenants:
          alice: {card: 01001293D8}
        steps:
          - tap: alice
            reader: front-reader
          - expect: access.decision
            fields: {reason: granted}
            within_ms: 3000
          - expect_point: doors-io.relay_1
            equals: true
            within_ms: 3000
          - fire: raised
          - expect: alarm.fire_release
            within_ms: 3000
          - expect_point: doors-io.relay_2
            equals: true
            within_ms: 3000
        """)
    with SeparateDevices() as devices, pty_pair() as front, pty_pair() as side:
        rig_path = tmp_path / "rig.yaml"
        rig_path.write_text(textwrap.dedent(f"""
            buses:
              field: {{type: tcp, host: 127.0.0.1, port: {devices.port}}}
            readers:
              front-reader: {{port: {front.b}}}
              side-keypad: {{port: {side.b}}}
            stimuli:
              tap: {{hook: "{sys.executable} -m edge.hil.card_sim --port {front.a} --protocol em4100 --card {{card}} --repeats 3"}}
              fire: {{prompt: "Fire panel: {{fire}} the alarm input"}}
            """))
        person = Person(devices.doors)
        result = asyncio.run(play(scenario, load_rig(rig_path), rig_path, prompt_in=person.stdin, prompt_out=person))
        assert result.outcome == "passed", report.text([result])
        assert person.prompts == ["RIG: Fire panel: raised the alarm input  [Enter when done]"]
        assert devices.doors.value_of("relay_2") is True, "the rig's own device was driven"

        broken = tmp_path / "broken-rig.yaml"
        broken.write_text(rig_path.read_text().replace("--card {card}", "--card {badge}"))
        result = asyncio.run(play(scenario, load_rig(broken), broken))
        assert result.outcome == "error" and result.steps[-1].line == 6
        assert result.steps[-1].detail.startswith("could not be played: stimulus 'tap': the rig file's template names 'badge', "
                                                  "which this step does not have (it has card, reader, reader_port, repeats, tap)")


@pytest.mark.timeout(60)
def test_rig_mode_refuses_a_stimulus_nobody_gives_an_unmapped_reader_and_a_bad_rig_file(tmp_path, capsys):
    scenario = _scenario(tmp_path, WRONG)
    rig_path = tmp_path / "rig.yaml"
    rig_path.write_text("buses:\n  field: {type: tcp, host: 127.0.0.1, port: 1502}\nreaders:\n  front-reader: {port: /dev/null}\n")
    result = asyncio.run(play(scenario, load_rig(rig_path), rig_path))
    assert result.outcome == "error" and not result.steps
    assert "reader 'side-keypad' of the building is not mapped to a port" in result.error
    assert f"{scenario}:10:5: steps.0: the rig file {rig_path} says nobody gives 'tap'" in result.error

    rig_path.write_text("buses:\n  field: {type: tcp, host: 127.0.0.1, port: 1502}\nstimuli:\n  tap: {prompt: a, hook: b}\n")
    assert hil_main(["run", str(scenario), "--rig", str(rig_path)]) == 2
    assert f"{rig_path}:4:3: stimuli.tap: give exactly one of 'prompt' or 'hook'" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_a_card_the_reader_cannot_send_is_refused_before_anything_runs(tmp_path):
    path = _scenario(tmp_path, """
        name: a Wiegand card at an EM4100 reader
        config: {file: BUILDING}
        steps:
          - tap: D41B81
            reader: front-reader
        """)
    result = asyncio.run(play(path))
    assert result.outcome == "error"
    assert f"{path}:4:5: steps.0.tap: reader 'front-reader' reads EM4100 cards of 5 bytes: card D41B81 is 3 bytes" in result.error


@pytest.mark.timeout(90)
def test_absence_cloud_and_memory_expectations_fail_when_they_are_wrong(tmp_path):
    path = _scenario(tmp_path, """
        name: three wrong expectations
        config: {file: BUILDING}
        cloud: true
        devices: HEALTHY
        steps:
          - expect_cloud: exactly_once
            within_ms: 15000
          - broker: down
          - door: front
            contact: open
          - expect_none: alarm.door_forced
            for_ms: 1500
          - expect_cloud: exactly_once
            within_ms: 1500
          - expect_rss_mb_below: 1
        """)
    result = asyncio.run(play(path))
    assert result.outcome == "failed"
    forced, cloud, memory = result.failures
    assert forced.expected == "no alarm.door_forced for 1500 ms" and forced.detail.startswith("1 such event(s), the first ")
    assert "alarm.door_forced  front" in forced.nearest[0]
    assert cloud.expected.startswith("the cloud holds the journal's ") and "missing seqs " in cloud.detail
    assert "missing seqs none" not in cloud.detail
    assert memory.expected == "the daemon's RSS below 1.0 MB" and memory.detail.startswith("RSS ")


COMMUNITY = SCENARIOS / "buildings" / "community-house.yaml"


@pytest.mark.timeout(90)
def test_sms_expectations_fail_saying_which_messages_the_modem_took(tmp_path):
    path = _scenario(tmp_path, """
        name: wrong SMS expectations
        config: {file: COMMUNITY}
        devices:
          posts-breaker: {values: {closed: true}}
        steps:
          - set: smoke-301.alarm
            value: true
          - expect_sms: {to: "+8613800000001", contains: "烟雾"}
          - expect_sms: {to: "+8613899999999", within_ms: 1500}
          - expect_no_sms: true
            for_ms: 1000
        """.replace("COMMUNITY", str(COMMUNITY)))
    result = asyncio.run(play(path))
    assert result.outcome == "failed", report.text([result])
    assert result.steps[1].passed and "烟雾报警" in result.steps[1].detail
    wrong, none = result.failures
    assert wrong.expected == "an SMS to +8613899999999 within 1500 ms" and wrong.detail.startswith("the modem took ")
    assert any(line.startswith("SMS to +8613800000001: ") for line in wrong.nearest), wrong.nearest
    assert none.expected == "no SMS for 1000 ms" and none.detail.startswith("1 SMS, the first to +8613800000001")


CAMERA = """
name: a clip from data that is not here
config:
  file: BUILDING
  merge:
    cameras: [{name: lift-1-cam, source: filled-in, hold: {device: doors-io, hold: release_7, resume: secure_7}}]
cameras:
  lift-1-cam: {idle: ebike/images/cemreefe_elevator1.jpg}
steps:
  - camera_clip:
      - {image: ebike/images/not-in-the-data.jpg, seconds: 1}
  - expect_none: alarm.elevator_hold
    for_ms: 100
"""


@pytest.mark.timeout(60)
def test_a_clip_whose_images_are_absent_skips_the_scenario_naming_the_file(tmp_path, monkeypatch):
    path = _scenario(tmp_path, CAMERA)
    result = asyncio.run(play(path, data=tmp_path / "no-data"))
    assert result.outcome == "skipped" and not result.steps
    missing = tmp_path / "no-data" / "ebike/images/not-in-the-data.jpg"
    assert result.error == f"{path}:10:10: steps.0.camera_clip.0.image: {missing} is not here (the data root {tmp_path / 'no-data'} lacks it)"
    monkeypatch.delenv("HIL_DATA", raising=False)
    result = asyncio.run(play(path))
    assert result.outcome == "skipped"
    assert result.error.endswith("steps.0.camera_clip.0.image: ebike/images/not-in-the-data.jpg is in the data root: give it (--data DIR or $HIL_DATA)")


@pytest.mark.timeout(90)
def test_a_clip_plays_into_the_camera_as_a_live_stream_that_never_ends(tmp_path):
    """A camera without a model (collect only): stills, then a video file, read frame by frame, no fault."""
    shared = data_root() or SHARED_DATA
    if not (shared / "ebike" / "images" / "cemreefe_elevator1.jpg").is_file():
        pytest.skip(f"the e-bike images are not here ({shared}/ebike)")
    import cv2

    data = tmp_path / "data"
    data.mkdir()
    (data / "ebike").symlink_to(shared / "ebike")
    writer = cv2.VideoWriter(str(data / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 180))
    for name in ("cemreefe_elevator1.jpg", "etoiles_2024-01-01_12-07-27.jpg", "etoiles_2024-01-01_12-07-52.jpg"):
        writer.write(cv2.resize(cv2.imread(str(shared / "ebike" / "images" / name)), (320, 180)))
    writer.release()
    path = _scenario(tmp_path, CAMERA.replace("not-in-the-data.jpg", "etoiles_2024-01-01_12-07-27.jpg")
                     .replace("source: filled-in,", "source: filled-in, collect: {enabled: true, every_s: 0.5},")
                     .replace("    for_ms: 100", "    for_ms: 100\n  - camera_clip: clip.avi\n  - expect_none: fault.camera\n    for_ms: 1000"))
    result = asyncio.run(play(path, data=data, keep=tmp_path / "kept"))
    assert result.outcome == "passed", report.text([result])
    assert result.steps[0].detail == "5 frames (1.0 s) read by camera lift-1-cam"
    assert result.steps[2].detail == "3 frames (0.6 s) read by camera lift-1-cam"
    collected = list((Path(result.workdir) / "state" / "vision" / "collect").rglob("*.jpg"))
    assert collected, "the camera's motion gate saw the clip's frames"


def test_a_bad_qualify_entry_is_refused_with_its_line(tmp_path):
    path = _scenario(tmp_path, """
        name: qualify without a model
        config: {file: BUILDING}
        cameras:
          lift-1-cam:
            idle: ebike/images/cemreefe_elevator1.jpg
            qualify: {labels: ebike/labels.csv, frames: 300}
          lift-2-cam:
            idle: ebike/images/cemreefe_elevator1.jpg
            qualify: {labels: ebike/labels.csv}
        steps:
          - wait_s: 1
        """)
    with pytest.raises(ScenarioError) as refused:
        load(path)
    lines = sorted(str(p).removeprefix(str(path) + ":") for p in refused.value.problems)
    assert lines == ["6:41: cameras.lift-1-cam.qualify.frames: Extra inputs are not permitted",
                     "7:3: cameras.lift-2-cam: `qualify` evaluates the camera's model: give `manifest` and `weights`"]


QUALIFIED = """
name: a camera qualified by the runner from labelled frames
config:
  file: BUILDING
  merge:
    cameras: [{name: lift-1-cam, source: filled-in, hold: {device: doors-io, hold: release_7, resume: secure_7}, hold_classes: [motorcycle]}]
cameras:
  lift-1-cam:
    idle: ebike/images/cemreefe_elevator1.jpg
    manifest: MANIFEST
    weights: models/yolox_nano.onnx
    qualify: {labels: ebike/labels.csv}
steps:
  - expect: vision.mode
    fields: {mode: hold}
    within_ms: 10000
"""


def _data_with(tmp_path: Path, *names: str) -> Path:
    """A data root holding the shared data's NAMEs (models, ebike), or the test is skipped."""
    shared = data_root() or SHARED_DATA
    if not (shared / "models" / "yolox_nano.onnx").is_file() or not (shared / "ebike" / "labels.csv").is_file():
        pytest.skip(f"the base model's weights and the labelled frames are not here ({shared})")
    data = tmp_path / "data"
    data.mkdir()
    for name in names:
        (data / name).symlink_to(shared / name)
    return data


@pytest.mark.timeout(120)
def test_qualify_labels_absent_skip_and_a_failing_eval_or_a_second_report_are_errors(tmp_path):
    """Before the daemon starts: labels not in the data root skip the scenario naming them; an
    eval that fails (a bad labels row) and a report already named by the config are errors on
    the `qualify` line, with eval's own words."""
    data = _data_with(tmp_path, "models")
    manifest = str(SCENARIOS.parent.parent / "models" / "yolox_nano.yaml")
    path = _scenario(tmp_path, QUALIFIED.replace("MANIFEST", manifest))
    result = asyncio.run(play(path, data=data))
    assert result.outcome == "skipped" and not result.steps
    assert result.error == (f"{path}:11:15: cameras.lift-1-cam.qualify.labels: {data / 'ebike/labels.csv'} is not here "
                            f"(the data root {data} lacks it)")

    (data / "ebike").mkdir()
    (data / "ebike" / "labels.csv").write_text("file,ebike,motorcycle\nimages/a.jpg,1,maybe\n")
    result = asyncio.run(play(path, data=data))
    assert result.outcome == "error" and not result.steps
    assert result.error.startswith(f"{path}:11:5: cameras.lift-1-cam.qualify: `edge vision eval` exited 65: ")
    assert f"{data / 'ebike' / 'labels.csv'}:2: column 'motorcycle' is 'maybe', expected 0 or 1" in result.error

    report = tmp_path / "site-eval.json"
    report.write_text("{}")
    path = _scenario(tmp_path, QUALIFIED.replace("MANIFEST", manifest)
                     .replace("hold_classes: [motorcycle]}", f"hold_classes: [motorcycle], qualification: {{report: {report}}}}}"),
                     name="twice.yaml")
    result = asyncio.run(play(path, data=data))
    assert result.outcome == "error" and not result.steps
    assert result.error == (f"{path}:11:5: cameras.lift-1-cam.qualify: the building config names camera 'lift-1-cam''s report "
                            f"already ({report}): give `qualify` or the report, not both")


@pytest.mark.timeout(60)
def test_an_event_without_a_field_it_must_have_fails_naming_the_field(tmp_path):
    path = _scenario(tmp_path, """
        name: has
        config: {file: BUILDING}
        devices: HEALTHY
        steps:
          - expect: gateway.started
            has: [version, pid]
            within_ms: 5000
          - expect: gateway.started
            has: [version, no_such_field]
            within_ms: 300
        """)
    result = asyncio.run(play(path))
    assert result.outcome == "failed", report.text([result])
    present, absent = result.steps
    assert present.passed and not absent.passed
    assert absent.expected == "gateway.started with a version, a no_such_field within 300 ms"
    assert absent.detail == "0 matching event(s) in 300 ms"
    assert any("gateway.started" in line for line in absent.nearest), absent.nearest


@pytest.mark.timeout(60)
def test_an_expectation_first_looked_at_after_its_deadline_fails_however_true_it_is(tmp_path):
    """A step's within_ms counts from the last stimulus, not from when the runner got round to
    it: after a one-second window, a point or a port looked at first is already late."""
    path = _scenario(tmp_path, """
        name: deadlines that the steps before them used up
        config: {file: BUILDING}
        devices: HEALTHY
        steps:
          - wait_s: 0.1
          - expect_none: alarm.door_forced
            for_ms: 1000
          - expect_point: doors-io.relay_1
            equals: false
            within_ms: 100
          - expect_open: front-reader
            within_ms: 100
          - expect_point: doors-io.relay_1
            equals: false
            within_ms: 30000
        """)
    result = asyncio.run(play(path))
    assert result.outcome == "failed", report.text([result])
    window, point, port, in_time = result.steps[1:]
    assert window.passed and in_time.passed
    assert not point.passed and not port.passed
    assert point.expected == "doors-io.relay_1 = false within 100 ms"
    assert point.detail.startswith("read false, ") and point.detail.endswith(" ms after the stimulus was done: past its 100 ms deadline")
    assert port.detail.startswith("open, ") and port.detail.endswith(" ms after the stimulus was done: past its 100 ms deadline")
    assert point.measured_ms >= 1000 and port.measured_ms >= 1000, "times count from the stimulus, like the deadline"


@pytest.mark.timeout(90)
def test_keep_dir_holds_each_scenarios_state_and_edge_reads_the_kept_journal(tmp_path, capsys):
    path = _scenario(tmp_path, WRONG, name="rent.yaml")
    kept = tmp_path / "kept"
    assert hil_main(["run", str(path), "--keep", str(kept), "--json", str(tmp_path / "j.json")]) == 1
    assert hil_main(["run", str(path), "--keep", str(kept)]) == 1, "a second run keeps beside the first"
    assert sorted(p.name for p in kept.iterdir()) == ["rent", "rent-2"]
    first = kept / "rent"
    assert json.loads((tmp_path / "j.json").read_text())["scenarios"][0]["workdir"] == str(first)
    assert f"state kept in {first}" in capsys.readouterr().out
    assert (first / "daemon.log").stat().st_size and (first / "state" / "journal.db").is_file()
    assert not list(first.rglob("*.sock")), "sockets are nothing without their processes"
    read = subprocess.run([sys.executable, "-m", "edge.cli", "events", "--config", str(first / "building.yaml"), "--json",
                           "--kind", "access.decision"], capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    decision = json.loads(read.stdout.splitlines()[-1])
    assert decision["body"]["reason"] == "rent_unpaid"


SKIPPING = CAMERA.replace("a clip from data that is not here", "NAME")


def test_a_run_where_every_scenario_was_skipped_fails_unless_skips_are_allowed(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HIL_DATA", raising=False)
    first = _scenario(tmp_path, SKIPPING.replace("NAME", "one"), name="one.yaml")
    second = _scenario(tmp_path, SKIPPING.replace("NAME", "two"), name="two.yaml")
    assert hil_main(["run", str(first), str(second)]) == 1
    said = capsys.readouterr()
    assert "0 of 2 scenario(s) passed, 2 skipped" in said.out
    assert "every scenario (2) was skipped, so nothing was tested" in said.err and "--allow-skip" in said.err
    assert hil_main(["run", str(first), str(second), "--allow-skip", "--keep", str(tmp_path / "kept")]) == 0
    assert not (tmp_path / "kept").exists(), "a skipped scenario ran nothing, so nothing is kept"


def test_list_and_k_select_scenarios_by_file_or_name(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HIL_DATA", raising=False)
    folder = tmp_path / "scenarios"
    folder.mkdir()
    _scenario(folder, SKIPPING.replace("NAME", "a scooter rides into lift one"), name="lift-scooter.yaml")
    _scenario(folder, SKIPPING.replace("NAME", "a pram rides into lift two"), name="lift-pram.yaml")
    broken = _scenario(folder, "name: no steps\nconfig: {file: BUILDING}\nsteps: []\n", name="broken.yaml")

    assert hil_main(["run", str(folder), "--list"]) == 1, "a scenario that cannot be played is listed with why"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{broken}  broken" and out[1].startswith(f"    cannot be played: {broken}:3:1: steps: List should have at least 1 item")
    assert out[2:] == [f"{folder / 'lift-pram.yaml'}  a pram rides into lift two", f"{folder / 'lift-scooter.yaml'}  a scooter rides into lift one"]

    assert hil_main(["run", str(folder), "--list", "-k", "SCOOTER"]) == 0, "by file, case-insensitive"
    assert capsys.readouterr().out == f"{folder / 'lift-scooter.yaml'}  a scooter rides into lift one\n"
    assert hil_main(["run", str(folder), "--list", "-k", "pram*two", "-k", "broken"]) == 1, "by name, a glob; either pattern"
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")] == [
        str(broken), str(folder / "lift-pram.yaml")]
    assert hil_main(["run", str(folder), "-k", "escalator"]) == 2
    assert "no scenarios matching -k escalator in " in capsys.readouterr().err

    assert hil_main(["run", str(folder), "-k", "lift one", "--json", str(tmp_path / "j.json"), "--allow-skip"]) == 0
    played = json.loads((tmp_path / "j.json").read_text())["scenarios"]
    assert [(s["name"], s["outcome"]) for s in played] == [("a scooter rides into lift one", "skipped")]


def test_the_shipped_schema_is_what_hil_schema_prints_and_every_shipped_scenario_names_it(capsys):
    assert hil_main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert SCHEMA_FILE.read_text() == printed, "run: python -m edge.hil schema > hil/scenarios/schema.json"
    for path in sorted(SCENARIOS.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), f"{path} does not name the schema on its first line"
        assert (path.parent / first.split("=", 1)[1]).resolve() == SCHEMA_FILE, first


def test_the_schema_takes_the_shipped_scenarios_and_refuses_what_the_runner_refuses(tmp_path):
    """The schema is what an editor checks while a scenario is written: it must agree with the runner."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for path in sorted(SCENARIOS.glob("*.yaml")):
        assert not [e.message for e in validator.iter_errors(load(path).document.data)], path
    wrong = {"name": "x", "config": {"file": "b.yaml"}, "tenants": {"bob": {"card": "zz", "paid_through": -6}},
             "steps": [{"tap": "bob", "reader": "front-reader", "repeats": 0}, {"press": "the big red button"},
                       {"expect": "access.decision", "within_ms": 0}]}
    refused = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(wrong))
    assert refused == ["steps.0", "steps.1", "steps.2", "tenants.bob.card"]
