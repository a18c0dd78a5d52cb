"""`/metrics`: the gateway in Prometheus text format, through prometheus-client.

A custom collector reads the numbers at scrape time from what already exists (the poller's
counters, the journal's head, the BuildingView the page uses), so nothing on the access
path counts twice for the operator's monitoring. The registry is the server's own, not the
library's global one, and includes the process collector (RSS, CPU, open files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import os

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drivers.modbus.poller import DeviceCounters
from edge.status.health import Disk


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
        yield GaugeMetricFamily("edge_loop_lag_seconds", "How late the event loop ran a 0.5 s timer, lately", value=s.loop_lag_s)
        yield GaugeMetricFamily("edge_status_page_streams", "Status page browsers attached", value=s.page_streams)
        if s.rss_bytes is not None:  # also here because ProcSubset=pid hides what the process collector needs
            yield GaugeMetricFamily("edge_process_resident_memory_bytes", "Resident memory of the daemon", value=s.rss_bytes)


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
