"""Per-point metrics and the operator's starting kit (contrib/): a real daemon on a pymodbus
building serves each watched point's value and state and each circuit's cut; promtool checks the
alert rules and runs their tests; every metric the rules and the Grafana dashboard name is one
the daemon really serves."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client import generate_latest

from conftest import edge
from edge.points.status_file import PointState
from edge.status.metrics import CircuitSample, PointSample, Sample, registry
from edge.hil.modbus_sim import Fault, FaultPlan, wire_break
from metrics_kit_rig import DASHBOARD, PROMETHEUS_OWN, RULE_TESTS, RULES, metric_names, running_building
from status_rig import fetch, until

pytestmark = pytest.mark.timeout(240)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (./dev test installs Debian's prometheus)")


def _families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, for every sample of a scrape."""
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def _value(text: str, name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels`; None when there is none."""
    found = [v for (n, ls), v in _samples(text).items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else None


# --- the collector -------------------------------------------------------------------------


def _sample(**changes) -> Sample:
    base = dict(devices={}, readers={}, decisions={}, alarms_active=[], journal_head_seq=12, disk=None, uplink_enabled=False,
                uplink_connected=None, uplink_synced_seq=None, loop_lag_s=0.0, page_streams=0, rss_bytes=None)
    return Sample(**(base | changes))


def test_a_degraded_journal_is_served_with_the_events_it_holds():
    text = generate_latest(registry(lambda: _sample(journal_fault={"fault": "disk_full", "held": 7, "since_s": 3.0}))).decode()
    assert _value(text, "edge_journal_degraded") == 1.0 and _value(text, "edge_journal_held_events") == 7.0
    text = generate_latest(registry(lambda: _sample())).decode()
    assert _value(text, "edge_journal_degraded") == 0.0 and _value(text, "edge_journal_held_events") == 0.0


def test_a_point_is_served_once_and_its_value_only_while_it_can_be_trusted():
    """A point that is both a circuit's and a device status row is one series (the first row, the
    circuit's, wins), so device and point find one value; a faulted or offline point keeps its
    state series and loses its value."""
    points = [
        PointSample("f1-c1-monitor", "current_a", "f1-c1", "phase_current", "A", 12.5, PointState.OK),
        PointSample("f1-c1-monitor", "current_a", "f1-c1-monitor", "device_status", "A", 12.5, PointState.ALARM),
        PointSample("water-ai", "ch3_ma", "roof-tank-level", "water_level", "m", -1.25, PointState.SENSOR_FAULT),
        PointSample("water-ai", "ch1_ma", "riser-1-pressure", "water_pressure", "MPa", 0.8, PointState.OFFLINE),
        PointSample("f1-c1-breaker", "closed", "f1-c1", "device_status", "", None, PointState.OK),
    ]
    circuits = {"f1-c1": CircuitSample("f1-c1-breaker", True), "f2-c1": CircuitSample("f2-c1-breaker", False)}
    text = generate_latest(registry(lambda: _sample(points=points, circuits=circuits))).decode()
    assert _value(text, "edge_point_value", point="current_a", owner="f1-c1", quantity="phase_current", unit="A") == 12.5
    assert _value(text, "edge_point_state", point="current_a", state="ok") == 1.0
    assert _value(text, "edge_point_state", point="current_a", state="alarm") == 0.0
    assert _value(text, "edge_point_value", point="ch3_ma") is None
    assert _value(text, "edge_point_state", point="ch3_ma", state="sensor_fault") == 1.0
    assert _value(text, "edge_point_value", point="ch1_ma") is None
    assert _value(text, "edge_point_state", point="ch1_ma", state="offline") == 1.0
    assert _value(text, "edge_point_value", point="closed") is None
    assert sum(v for (n, ls), v in _samples(text).items() if n == "edge_point_state" and ("point", "closed") in ls) == 1.0
    assert _value(text, "edge_circuit_cut", circuit="f1-c1", breaker="f1-c1-breaker") == 1.0
    assert _value(text, "edge_circuit_cut", circuit="f2-c1", breaker="f2-c1-breaker") == 0.0


# --- the rules -----------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_rules_and_their_tests_pass():
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    tested = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS.name], capture_output=True, text=True, timeout=120, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_shown_firing_and_quiet_by_the_rule_tests():
    """A rule without a test that shows it firing (and one that shows it quiet) is a rule nobody has seen work."""
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule}
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"
    expected = {
        "EdgeDeviceOffline", "EdgeReaderOffline", "EdgeCircuitCut", "EdgeAlarmActiveLong", "EdgeJournalDegraded",
        "EdgeUplinkBacklogGrowing", "EdgeCameraStreamDown", "EdgeDiskSpaceLow",
    }
    assert expected <= alerts


def test_metric_names_reads_promql_as_prometheus_does():
    assert metric_names('sum by (device, kind) (rate(edge_device_errors_total{instance="$instance"}[$__rate_interval]))') == {"edge_device_errors_total"}
    assert metric_names("edge_journal_unsynced_events > 100 and deriv(edge_journal_unsynced_events[15m]) > 0") == {"edge_journal_unsynced_events"}
    assert metric_names('edge_point_state{state=~"sensor_fault|stale"} == 1 or on(instance) up{job="edge"} offset 5m') == {"edge_point_state", "up"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(edge_camera_inference_seconds_bucket[5m])))") == {"edge_camera_inference_seconds_bucket"}
    assert metric_names("edge_journal_disk_free_bytes < 16 * 1024 * 1024 and 1e3 > 0") == {"edge_journal_disk_free_bytes"}


# --- the dashboard -------------------------------------------------------------------------


def _dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    document = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r}", target["expr"]))
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            assert query.startswith("label_values(")
            queries.append((f"variable {variable['name']}", query.removeprefix("label_values(").split(",")[0]))
    return queries


def test_the_dashboard_is_one_gateway_on_a_chosen_data_source():
    document = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert 'instance="$instance"' in target["expr"], f"{panel['title']}: {target['expr']} is not about the chosen gateway"
    queries = _dashboard_queries()
    named = set().union(*(metric_names(expr) for _, expr in queries))
    assert {"edge_point_value", "edge_circuit_cut", "edge_point_state"} <= named


# --- a real daemon -------------------------------------------------------------------------


def _served(text: str) -> tuple[set[str], set[str]]:
    """(sample names with at least one sample, sample names of every declared family, with their suffixes)."""
    families = _families(text)
    with_samples = {sample.name for family in families.values() for sample in family.samples}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}
    declared = set()
    for name, family in families.items():
        declared |= {name + suffix for suffix in suffixes.get(family.type, ("",))}
    return with_samples, declared


def test_every_metric_the_rules_and_the_dashboard_name_is_served_by_a_running_daemon(write_config, building_dir):
    """The rules' metrics have samples in a building with each part (else an alert could never fire);
    the dashboard's too, but for two whose samples need an event first (their families are declared)."""

    async def scenario():
        async with running_building(write_config, building_dir) as running:
            url = running.url

            async def everything_reported():
                _, text = await fetch(url, "/metrics")
                return text if (_value(text, "edge_point_value", point="ch3_ma") is not None
                                and _value(text, "edge_journal_unsynced_events") is not None
                                and _value(text, "edge_point_value", point="closed") is not None
                                and _value(text, "edge_device_last_success_age_seconds", device="water-ai") is not None
                                and _value(text, "edge_camera_car_held") is not None) else None

            text = await until(everything_reported, 30, "every part of the building on /metrics")
        with_samples, declared = _served(text)

        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                assert metric_names(rule["expr"]), rule["expr"]
                missing = metric_names(rule["expr"]) - with_samples - PROMETHEUS_OWN
                assert not missing, f"rule {rule.get('alert') or rule.get('record')} names {missing}, which the daemon does not serve"
        for where, expr in _dashboard_queries():
            missing = metric_names(expr) - declared - PROMETHEUS_OWN
            assert not missing, f"dashboard {where} names {missing}, which the daemon does not serve"
        dashboard_names = set().union(*(metric_names(expr) for _, expr in _dashboard_queries()))
        # Samples once a card is decided at a door (test_status_server) and once a model runs (test_status_cameras).
        after_events = {"edge_access_decisions_total", "edge_camera_inference_seconds_bucket"}
        assert dashboard_names - with_samples <= after_events

    asyncio.run(scenario())


def test_point_values_states_and_a_cut_circuit_follow_the_building(write_config, building_dir):
    """Values in engineering units while a point is trusted; its state one-hot; a trip cuts the
    circuit until an operator re-closes it; a broken loop and a silent bus leave states, not values."""

    async def scenario():
        async with running_building(write_config, building_dir) as running:
            config, url, (monitor, breaker, water) = running

            async def scrape_when(check, what: str, timeout_s: float = 30):
                async def ready():
                    _, text = await fetch(url, "/metrics")
                    return text if check(text) else None
                return await until(ready, timeout_s, what, every_s=0.2)

            def state(text: str, point: str) -> str | None:
                on = [str(s) for s in PointState if _value(text, "edge_point_state", point=point, state=str(s)) == 1.0]
                assert len(on) <= 1, f"{point}: {on}"
                return on[0] if on else None

            text = await scrape_when(lambda t: _value(t, "edge_point_value", point="ch3_ma") is not None, "first readings")
            assert _value(text, "edge_point_value", device="f1-c1-monitor", point="current_a", owner="f1-c1",
                          quantity="phase_current", unit="A") == pytest.approx(12.0)
            assert _value(text, "edge_point_value", device="water-ai", point="ch1_ma", owner="riser-1-pressure",
                          quantity="water_pressure", unit="MPa") == pytest.approx(0.8)
            assert _value(text, "edge_point_value", point="ch3_ma", owner="roof-tank-level", unit="m") == pytest.approx(3.125)
            assert _value(text, "edge_point_value", device="f1-c1-breaker", point="closed") == 1.0
            assert state(text, "current_a") == state(text, "ch3_ma") == "ok"
            assert _value(text, "edge_circuit_cut", circuit="f1-c1", breaker="f1-c1-breaker") == 0.0
            series = [s for s in _samples(text) if s[0] == "edge_point_state"]
            assert len(series) == len(PointState) * len({(dict(ls)["device"], dict(ls)["point"]) for _, ls in series}), "each point once, every state"

            monitor.set_value("current_a", 40.0)  # over the 32 A alarm: the gateway trips the breaker
            text = await scrape_when(lambda t: _value(t, "edge_circuit_cut", circuit="f1-c1") == 1.0, "the circuit cut")
            text = await scrape_when(lambda t: _value(t, "edge_point_value", point="closed") == 0.0
                                     and state(t, "current_a") in ("alarm", "cut"), "the breaker read open, phase A in alarm")
            assert _value(text, "edge_point_value", point="current_a") == pytest.approx(40.0)

            monitor.set_value("current_a", 12.0)  # repaired; the breaker stays open until someone closes it
            text = await scrape_when(lambda t: _value(t, "edge_point_value", point="current_a") == pytest.approx(12.0),
                                     "phase A back to normal")
            assert _value(text, "edge_circuit_cut", circuit="f1-c1") == 1.0

            async def reclosed():  # refused while the monitor still holds the over-current alarm
                result = await asyncio.to_thread(edge, "breaker", "close", "f1-c1", "--operator", "tech-7",
                                                 "--reason", "cable replaced and tested", "--config", str(config))
                assert result.returncode in (0, 1), result.stdout + result.stderr
                return result.returncode == 0
            await until(reclosed, 30, "the operator's re-close confirmed", every_s=0.5)
            await scrape_when(lambda t: _value(t, "edge_circuit_cut", circuit="f1-c1") == 0.0
                              and _value(t, "edge_point_value", point="closed") == 1.0, "the circuit re-closed")

            water.play("ch3_ma", wire_break())  # the roof tank's loop wire breaks: a fault, never an empty tank
            text = await scrape_when(lambda t: state(t, "ch3_ma") == "sensor_fault", "the tank's sensor fault")
            assert _value(text, "edge_point_value", point="ch3_ma") is None
            assert _value(text, "edge_point_value", point="ch1_ma") == pytest.approx(0.8)

            water.fault = FaultPlan(Fault.SILENT)  # the water inputs stop answering; the monitor goes on
            text = await scrape_when(lambda t: state(t, "ch1_ma") == "offline", "the water points offline")
            assert _value(text, "edge_point_value", point="ch1_ma") is None
            assert _value(text, "edge_device_online", device="water-ai") == 0.0
            assert state(text, "current_b") == "ok" and _value(text, "edge_point_value", point="current_b") == pytest.approx(11.0)

    asyncio.run(scenario())
