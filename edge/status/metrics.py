"""`/metrics`: the gateway in Prometheus text format, through prometheus-client.

A custom collector reads the numbers at scrape time from what already exists (the poller's
counters, the journal's head, the BuildingView the page uses, each camera guard's counters,
the field points' rows that `edge points` shows), so nothing on the access path counts twice
for the operator's monitoring. The registry is the server's own, not the library's global
one, and includes the process collector (RSS, CPU, open files).

Label cardinality is bounded by the config: a series per configured device, reader, camera,
circuit and watched point (and per fixed enum: error kind, point state, camera mode); no label
carries a reading, a card or a time. The rules and dashboard in contrib/ name only these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import os

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from edge.drivers.modbus.device import DeviceCounters
from edge.points.status_file import PointState
from edge.status.health import Disk


@dataclass(frozen=True, slots=True)
class CameraSample:
    """One elevator camera: its stream as `edge status` tells it, and its guard's counters if it runs."""

    elevator: str
    stream_up: bool
    mode: str | None = None  # observe or hold; None when no guard runs for the camera (the rest stay as here)
    held: bool = False
    last_frame_age_s: float | None = None
    frames_read: int = 0
    frames_analysed: int = 0
    dropped: int = 0
    holds: int = 0
    would_hold: int = 0
    inference_buckets: list[tuple[float, int]] = field(default_factory=list)  # (upper bound in seconds, its own count), the last bound inf; [] without a model
    inference_sum_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PointSample:
    """One watched point as `edge points` shows it (FieldPoints.statuses); `value` in its engineering unit."""

    device: str
    point: str
    owner: str  # the circuit, pressure point or device it belongs to
    quantity: str  # phase_current, water_pressure, device_status, ...
    unit: str
    value: float | None
    state: PointState


# A value is only served while it is a reading of now: offline, stale, voided or faulted points
# have none (a broken 4-20 mA loop scales to a tank "-1.25 m"; a silent device repeats its past).
UNTRUSTED_STATES = frozenset({PointState.OFFLINE, PointState.STALE, PointState.INVALID, PointState.SENSOR_FAULT})


@dataclass(frozen=True, slots=True)
class CircuitSample:
    """A circuit with a breaker: is it cut (no power downstream) as the gateway knows it now."""

    breaker: str
    cut: bool


@dataclass(frozen=True, slots=True)
class Sample:
    """What one scrape reports; gathered by the server on the loop (all in memory) plus the disk probe."""

    devices: dict[str, tuple[DeviceCounters, bool, float | None]]  # counters, online, seconds since the last good reading
    readers: dict[str, bool]
    decisions: dict[str, int]
    alarms_active: list[tuple[str, str, str]]  # (kind, source, severity) of each condition active now (edge.conditions)
    journal_head_seq: int
    disk: Disk | None
    uplink_enabled: bool
    uplink_connected: bool | None
    uplink_synced_seq: int | None
    loop_lag_s: float
    page_streams: int
    rss_bytes: int | None
    cameras: dict[str, CameraSample] = field(default_factory=dict)
    points: list[PointSample] = field(default_factory=list)
    circuits: dict[str, CircuitSample] = field(default_factory=dict)
    journal_fault: dict | None = None  # Journal.fault: why the disk refuses and how much is held; None while it writes
    config_digest: str = ""  # of the config file running now (a reload changes it)


ERROR_KINDS = ("timeouts", "crc_errors", "short_frames", "exceptions", "connection_errors", "decode_errors")


class GatewayCollector(Collector):
    def __init__(self, sample: Callable[[], Sample]) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        s = self.sample()
        polls = CounterMetricFamily("edge_device_polls", "Modbus requests sent to a device", labels=["device"])
        answers = CounterMetricFamily("edge_device_answers", "Modbus requests a device answered", labels=["device"])
        errors = CounterMetricFamily("edge_device_errors", "Failed Modbus requests, by kind", labels=["device", "kind"])
        online = GaugeMetricFamily("edge_device_online", "1 when the device answers", labels=["device"])
        age = GaugeMetricFamily("edge_device_last_success_age_seconds", "Seconds since the device's last good reading", labels=["device"])
        for name, (counters, is_online, seconds) in sorted(s.devices.items()):
            polls.add_metric([name], counters.requests)
            answers.add_metric([name], counters.answers)
            for kind in ERROR_KINDS:
                errors.add_metric([name, kind.removesuffix("s").removesuffix("_error")], getattr(counters, kind))
            online.add_metric([name], 1.0 if is_online else 0.0)
            if seconds is not None:
                age.add_metric([name], seconds)
        yield from (polls, answers, errors, online, age)
        readers = GaugeMetricFamily("edge_reader_online", "1 when the card reader is online", labels=["reader"])
        for name, is_online in sorted(s.readers.items()):
            readers.add_metric([name], 1.0 if is_online else 0.0)
        yield readers
        decisions = CounterMetricFamily("edge_access_decisions", "Access decisions since the daemon started, by reason", labels=["reason"])
        for reason, count in sorted(s.decisions.items()):
            decisions.add_metric([reason], count)
        yield decisions
        active = GaugeMetricFamily("edge_alarms_active", "Conditions active now, one series each (edge.conditions): alarms, "
                                   "warnings and faults; the page and edge status list the same", labels=["kind", "source", "severity"])
        for kind, source, severity in sorted(set(s.alarms_active)):
            active.add_metric([kind, source, severity], 1.0)
        yield active
        yield GaugeMetricFamily("edge_journal_head_seq", "Seq of the newest committed event", value=s.journal_head_seq)
        config = GaugeMetricFamily("edge_config_info", "1, labelled with the digest of the config file running now", labels=["digest"])
        config.add_metric([s.config_digest], 1.0)
        yield config
        fault = s.journal_fault
        yield GaugeMetricFamily("edge_journal_degraded", "1 while the journal's disk refuses writes (events held in memory, doors and fire go on)",
                                value=0.0 if fault is None else 1.0)
        yield GaugeMetricFamily("edge_journal_held_events", "Events held in memory while the journal is degraded",
                                value=0 if fault is None else fault.get("held", 0))
        if s.disk is not None:
            yield GaugeMetricFamily("edge_journal_bytes", "Journal file size with its WAL", value=s.disk.journal_bytes)
            yield GaugeMetricFamily("edge_journal_disk_free_bytes", "Free space where the journal lives", value=s.disk.free_bytes)
        yield GaugeMetricFamily("edge_uplink_enabled", "1 when the uplink is configured", value=1.0 if s.uplink_enabled else 0.0)
        if s.uplink_enabled:
            yield GaugeMetricFamily("edge_uplink_connected", "1 when connected to the broker", value=1.0 if s.uplink_connected else 0.0)
            if s.uplink_synced_seq is not None:
                backlog = max(0, s.journal_head_seq - s.uplink_synced_seq)
                yield GaugeMetricFamily("edge_journal_unsynced_events", "Events not yet acknowledged upstream", value=backlog)
        yield from cameras(s.cameras)
        yield from points(s.points)
        yield from circuits(s.circuits)
        yield GaugeMetricFamily("edge_loop_lag_seconds", "How late the event loop ran a 0.5 s timer, lately", value=s.loop_lag_s)
        yield GaugeMetricFamily("edge_status_page_streams", "Status page browsers attached", value=s.page_streams)
        if s.rss_bytes is not None:  # also here because ProcSubset=pid hides what the process collector needs
            yield GaugeMetricFamily("edge_process_resident_memory_bytes", "Resident memory of the daemon", value=s.rss_bytes)


MODES = ("observe", "hold")


def cameras(sampled: dict[str, CameraSample]) -> Iterator[Metric]:
    """Each elevator camera, labelled with its camera and elevator; the stream's state for every
    configured camera, the guard's numbers for those whose guard runs."""
    labels = ["camera", "elevator"]
    up = GaugeMetricFamily("edge_camera_stream_up", "0 while the stream is down (fault.camera, not yet restored) or the guard never started", labels=labels)
    age = GaugeMetricFamily("edge_camera_last_frame_age_seconds", "Seconds since the newest frame the guard received was read", labels=labels)
    read = CounterMetricFamily("edge_camera_frames_read", "Frames the guard took from its worker, at the analysis rate (dropped analyses not counted)", labels=labels)
    analysed = CounterMetricFamily("edge_camera_frames_analysed", "Frames the model ran on (the motion gate keeps it idle in a still car)", labels=labels)
    dropped = CounterMetricFamily("edge_camera_analyses_dropped", "Analyses the daemon had no time for (the newest wins)", labels=labels)
    mode = GaugeMetricFamily("edge_camera_mode", "1 for the guard's mode: observe (holds nothing) or hold (qualified on this site)", labels=[*labels, "mode"])
    held = GaugeMetricFamily("edge_camera_car_held", "1 while the guard holds the car", labels=labels)
    holds = CounterMetricFamily("edge_camera_holds", "Holds of the car since the daemon started", labels=labels)
    would_hold = CounterMetricFamily("edge_camera_would_hold", "Confirmed e-bikes the guard did not hold for (observe mode or a fire release)", labels=labels)
    inference = HistogramMetricFamily("edge_camera_inference_seconds", "How long the model ran on a frame, in the vision worker", labels=labels)
    for name, camera in sorted(sampled.items()):
        values = [name, camera.elevator]
        up.add_metric(values, 1.0 if camera.stream_up else 0.0)
        if camera.mode is None:
            continue
        if camera.last_frame_age_s is not None:
            age.add_metric(values, camera.last_frame_age_s)
        read.add_metric(values, camera.frames_read)
        analysed.add_metric(values, camera.frames_analysed)
        dropped.add_metric(values, camera.dropped)
        for each in MODES:
            mode.add_metric([*values, each], 1.0 if camera.mode == each else 0.0)
        held.add_metric(values, 1.0 if camera.held else 0.0)
        holds.add_metric(values, camera.holds)
        would_hold.add_metric(values, camera.would_hold)
        if camera.inference_buckets:
            cumulative, buckets = 0, []
            for bound, count in camera.inference_buckets:
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            inference.add_metric(values, buckets, camera.inference_sum_s)
    yield from (up, age, read, analysed, dropped, mode, held, holds, would_hold, inference)


def points(sampled: list[PointSample]) -> Iterator[Metric]:
    """Each watched point once (the first row of a DEVICE.POINT wins, so device and point select one
    series even when a circuit's point also has status alarms): its value while trusted, and
    its state one-hot over every PointState, so an alert can say `state="offline"` and a state that
    ends sets its series to 0 rather than leaving it to go stale."""
    labels = ["device", "point", "owner", "quantity"]
    value = GaugeMetricFamily("edge_point_value", "The point's reading in its engineering unit; absent while it is offline, stale, invalid or sensor_fault",
                              labels=[*labels, "unit"])
    state = GaugeMetricFamily("edge_point_state", "1 for the point's state as `edge points` shows it, 0 for the others", labels=[*labels, "state"])
    seen: set[tuple[str, str]] = set()
    for row in sampled:
        if (row.device, row.point) in seen:
            continue
        seen.add((row.device, row.point))
        values = [row.device, row.point, row.owner, row.quantity]
        if row.value is not None and row.state not in UNTRUSTED_STATES:
            value.add_metric([*values, row.unit], row.value)
        for each in PointState:
            state.add_metric([*values, str(each)], 1.0 if row.state is each else 0.0)
    yield from (value, state)


def circuits(sampled: dict[str, CircuitSample]) -> Iterator[Metric]:
    """Cut circuits, from the breaker's state the field points hold. A stand-in for the active
    conditions model's cut circuit (issue 19): rewire `Sample.circuits` to it, the metric stays."""
    cut = GaugeMetricFamily("edge_circuit_cut", "1 while the circuit's breaker is open (its read-back says so, or the gateway tripped it and has not read it closed)",
                            labels=["circuit", "breaker"])
    for name, circuit in sorted(sampled.items()):
        cut.add_metric([name, circuit.breaker], 1.0 if circuit.cut else 0.0)
    yield cut


def resident_bytes() -> int | None:
    """Resident memory of this process, from /proc/self/statm (readable under ProcSubset=pid)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def registry(sample: Callable[[], Sample]) -> CollectorRegistry:
    """The server's own registry: the gateway's numbers and the process's (RSS as process_resident_memory_bytes)."""
    own = CollectorRegistry(auto_describe=False)
    own.register(GatewayCollector(sample))
    ProcessCollector(registry=own)
    return own
