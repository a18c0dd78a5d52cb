"""`/metrics`: the gateway in Prometheus text format, through prometheus-client.

A custom collector reads the numbers at scrape time from what already exists (the poller's
counters, the journal's head, the BuildingView the page uses, each camera guard's counters),
so nothing on the access path counts twice for the operator's monitoring. The registry is the server's own, not the
library's global one, and includes the process collector (RSS, CPU, open files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import os

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from drivers.modbus.poller import DeviceCounters
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
class Sample:
    """What one scrape reports; gathered by the server on the loop (all in memory) plus the disk probe."""

    devices: dict[str, tuple[DeviceCounters, bool, float | None]]  # counters, online, seconds since the last good reading
    readers: dict[str, bool]
    decisions: dict[str, int]
    alarms_active: int
    journal_head_seq: int
    disk: Disk | None
    uplink_enabled: bool
    uplink_connected: bool | None
    uplink_synced_seq: int | None
    loop_lag_s: float
    page_streams: int
    rss_bytes: int | None
    cameras: dict[str, CameraSample] = field(default_factory=dict)


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
        yield GaugeMetricFamily("edge_alarms_active", "Alarms active now", value=s.alarms_active)
        yield GaugeMetricFamily("edge_journal_head_seq", "Seq of the newest committed event", value=s.journal_head_seq)
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
