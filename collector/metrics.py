"""Prometheus metrics: every family built at scrape time from a worker snapshot.

``collector/worker_stats.py`` turns a worker's counters into a plain ``StatsSnapshot``
(with ``--workers N`` the parent merges its workers' reports into one); this module
turns that snapshot into metric families, adds what is read at scrape time (kernel
drops in ``/proc/net/udp``, free space of the flow directory, build info) and serves
them on one port. Nothing is mirrored into prometheus_client gauges.

Per-exporter series are labelled ``exporter="<IP address>"`` (no port, see
``worker_stats``); the first ``MAX_EXPORTER_LABELS`` addresses seen keep their own
label, the rest are summed under ``exporter="other"``.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from collector.worker_stats import (
    LATENCY_BUCKET_LES,
    WRITE_STAGES,
    ExporterLabels,
    StatsSnapshot,
)
from parsers.errors import DropReason

#: version labels, pre-created; "other" counts datagrams of no known version (they are
#: received too, and dropped as unknown_version or truncated)
VERSIONS: Final = ("5", "9", "10", "other")
#: versions flow records come from
FLOW_VERSIONS: Final = ("5", "9", "10")
#: drop reasons, pre-created so zeros show (parsers' reasons + the collector's own)
DROP_REASONS: Final = (*(r.value for r in DropReason), "not_allowed", "internal_error")
#: our own network namespace's UDP sockets; /proc/self/net stays visible under the
#: unit's ProcSubset=pid, which hides /proc/net
PROC_NET_UDP: Final = (Path("/proc/self/net/udp"), Path("/proc/self/net/udp6"))

#: (metric, help, snapshot key) of the plain counters and gauges
COUNTERS: Final = (
    ("flowcap_flows_decoded", "Flow records decoded", "flows_decoded"),
    ("flowcap_flows_written", "Flow records durably written (spool fsynced)", "flows_written"),
    ("flowcap_flows_queue_dropped", "Flow records dropped because the storage queue was full",
     "flows_queue_dropped"),
    ("flowcap_options_records", "Options data records decoded", "options_records"),
    ("flowcap_sequence_lost", "Records the exporters' sequence numbers say were lost",
     "sequence_lost"),
    ("flowcap_storage_write_errors",
     "Failed attempts to write flows (disk full, unwritable directory)", "write_errors"),
    ("flowcap_held_sets_released", "Held data sets decoded once their template arrived",
     "held_sets_released"),
    ("flowcap_held_sets_expired",
     "Held data sets dropped because their template did not arrive in time",
     "held_sets_expired"),
    ("flowcap_held_sets_rejected", "Data sets for unknown templates not held (over the limits)",
     "held_sets_rejected"),
    ("flowcap_parquet_files_written", "Parquet flow files finalized", "files_written"),
    ("flowcap_parquet_written_bytes", "Bytes of the Parquet flow files finalized",
     "file_bytes_written"),
    ("flowcap_retention_deleted_files", "Flow files deleted by retention (--max-age/--max-size)",
     "retention_files_deleted"),
    ("flowcap_retention_deleted_bytes", "Bytes of the flow files deleted by retention",
     "retention_bytes_deleted"),
)  # fmt: skip
GAUGES: Final = (
    ("flowcap_templates", "Templates held", "templates"),
    ("flowcap_held_sets", "Data sets held waiting for their template", "held_sets"),
    ("flowcap_held_bytes", "Bytes of the data sets held waiting for their template",
     "held_bytes"),
    ("flowcap_storage_backlog_rows", "Flows waiting to be written (queue and memory backlog)",
     "backlog_rows"),
    ("flowcap_spool_backlog_rows", "Flows in spools not yet converted to Parquet",
     "spool_backlog_rows"),
    ("flowcap_spool_backlog_bytes", "Bytes of the spools not yet converted to Parquet",
     "spool_backlog_bytes"),
)  # fmt: skip
#: (metric, help, per-exporter key) of the per-exporter counters
EXPORTER_COUNTERS: Final = (
    ("flowcap_exporter_packets_decoded", "Datagrams decoded, by exporter address", "datagrams"),
    ("flowcap_exporter_flows_decoded", "Flow records decoded, by exporter address", "flows"),
    ("flowcap_exporter_sequence_lost",
     "Records the exporter's sequence numbers say were lost, by exporter address",
     "sequence_lost"),
)  # fmt: skip
HISTOGRAMS: Final = (
    ("flowcap_decode_duration_seconds",
     "Time to decode one flush of staged datagrams into Arrow batches", "decode_seconds", ""),
    ("flowcap_write_duration_seconds",
     "Time of one storage write: a batch appended to the spool, an fsync, a Parquet file",
     "write_seconds", "stage"),
)  # fmt: skip


# -- values read at scrape time ---------------------------------------------------------


def kernel_drops(socket_inodes: Iterable[int]) -> int:
    """Sum of the ``drops`` column of /proc/net/udp(6) for our sockets' inodes.

    proc(5): ``sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer
    drops``; the inode is column 9 and drops the last.
    """
    wanted = {str(inode) for inode in socket_inodes}
    total = 0
    for path in PROC_NET_UDP:
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            columns = line.split()
            if len(columns) >= 13 and columns[9] in wanted:
                total += int(columns[-1])
    return total


def socket_inode(fd: int) -> int:
    return os.fstat(fd).st_ino


def disk_space_bytes(directory: Path) -> tuple[int, int] | None:
    """(free to an unprivileged writer, total) of the file system holding ``directory``;
    None when it cannot be read (the directory does not exist yet)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


# -- the scrape -------------------------------------------------------------------------


class FlowcapMetrics(Collector):
    """Builds every flowcap metric family from the current snapshot."""

    def __init__(
        self,
        snapshot: Callable[[], StatsSnapshot],
        socket_inodes: Callable[[], list[int]],
        workers: int,
        version: str,
        flow_dir: Path | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._socket_inodes = socket_inodes
        self._workers = workers
        self._version = version
        self._flow_dir = flow_dir
        self._exporter_labels = ExporterLabels()

    def collect(self) -> Iterator[Metric]:
        stats = self._snapshot()
        yield _labelled_counter(
            "flowcap_packets_received",
            "Export datagrams received",
            "version",
            VERSIONS,
            stats.get("datagrams_by_version", {}),
        )
        yield _labelled_counter(
            "flowcap_flows_decoded_by_version",
            "Flow records decoded, by export version (they add up to flowcap_flows_decoded)",
            "version",
            FLOW_VERSIONS,
            stats.get("flows_by_version", {}),
        )
        by_reason = stats.get("dropped", {})
        yield _labelled_counter(
            "flowcap_packets_dropped",
            "Export datagrams dropped",
            "reason",
            sorted(set(DROP_REASONS) | set(by_reason)),
            by_reason,
        )
        for name, help_text, key in COUNTERS:
            yield CounterMetricFamily(name, help_text, value=stats.get(key, 0))
        yield CounterMetricFamily(
            "flowcap_kernel_drops",
            "Datagrams the kernel dropped on our sockets (/proc/net/udp)",
            value=kernel_drops(self._socket_inodes()),
        )
        for name, help_text, key in GAUGES:
            yield GaugeMetricFamily(name, help_text, value=stats.get(key, 0))
        yield from self._exporter_families(stats.get("exporters", {}))
        yield from _histogram_families(stats)
        yield from self._disk_families()
        yield GaugeMetricFamily(
            "flowcap_workers", "Receiving worker processes", value=self._workers
        )
        info = GaugeMetricFamily(
            "flowcap_build_info", "flowcap and Python versions", labels=["version", "python"]
        )
        info.add_metric([self._version, platform.python_version()], 1)
        yield info

    def _exporter_families(self, per_exporter: dict[str, dict[str, float]]) -> Iterator[Metric]:
        capped = self._exporter_labels.apply(per_exporter)
        for name, help_text, key in EXPORTER_COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=["exporter"])
            for exporter, counts in capped.items():
                family.add_metric([exporter], counts.get(key, 0))
            yield family
        last_seen = GaugeMetricFamily(
            "flowcap_exporter_last_seen_timestamp_seconds",
            "When the exporter's newest decoded datagram arrived (Unix time)",
            labels=["exporter"],
        )
        for exporter, counts in capped.items():
            last_seen.add_metric([exporter], counts.get("last_seen_s", 0.0))
        yield last_seen

    def _disk_families(self) -> Iterator[Metric]:
        free = GaugeMetricFamily(
            "flowcap_flow_dir_free_bytes",
            "Bytes free for flowcapd on the file system of the flow directory",
        )
        size = GaugeMetricFamily(
            "flowcap_flow_dir_size_bytes", "Size of the file system of the flow directory"
        )
        space = disk_space_bytes(self._flow_dir) if self._flow_dir is not None else None
        if space is not None:
            free.add_metric([], space[0])
            size.add_metric([], space[1])
        yield free
        yield size


def _labelled_counter(
    name: str, help_text: str, label: str, values: Iterable[str], counts: dict[str, float]
) -> CounterMetricFamily:
    """One counter family with a series per ``values`` entry (zero where ``counts`` has
    none, so pre-created values show)."""
    family = CounterMetricFamily(name, help_text, labels=[label])
    for value in values:
        family.add_metric([value], counts.get(value, 0))
    return family


def _histogram_families(stats: StatsSnapshot) -> Iterator[Metric]:
    for name, help_text, key, label in HISTOGRAMS:
        family = HistogramMetricFamily(name, help_text, labels=[label] if label else None)
        by_label = stats.get(key, {})
        precreated = WRITE_STAGES if label else ("",)
        for value in sorted(set(by_label) | set(precreated)):
            entry = by_label.get(value, {})
            counts = entry.get("buckets") or [0] * len(LATENCY_BUCKET_LES)
            family.add_metric(
                [value] if label else [],
                buckets=list(zip(LATENCY_BUCKET_LES, counts, strict=True)),
                sum_value=entry.get("sum", 0.0),
            )
        yield family


def serve_metrics(
    address: tuple[str, int],
    snapshot: Callable[[], StatsSnapshot],
    socket_inodes: Callable[[], list[int]],
    workers: int,
    flow_dir: Path | None = None,
) -> tuple[object, threading.Thread]:
    """Start the scrape endpoint on its own thread; returns (server, thread)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        flowcap_version = version("flowcap")
    except PackageNotFoundError:
        flowcap_version = "unknown"
    registry = CollectorRegistry()
    registry.register(FlowcapMetrics(snapshot, socket_inodes, workers, flowcap_version, flow_dir))
    return start_http_server(address[1], addr=address[0], registry=registry)
