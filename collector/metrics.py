"""Prometheus metrics: every number is read at scrape time from the workers' stats.

Each worker produces a plain-dict ``StatsSnapshot`` of its counters (cheap, on its own
thread). With one worker the scrape reads it directly; with ``--workers N`` every worker
sends its snapshot to the parent about once a second and the parent sums them, so the
endpoint on one port shows whole numbers. Values that live elsewhere (kernel drops in
``/proc/net/udp``) are read by the collector at scrape time, never mirrored.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from parsers.errors import DropReason

StatsSnapshot = dict[str, Any]

#: version labels, pre-created; "other" counts datagrams of no known version (they are
#: received too, and dropped as unknown_version or truncated)
VERSIONS: Final = ("5", "9", "10", "other")
#: drop reasons, pre-created so zeros show (parsers' reasons + the collector's own)
DROP_REASONS: Final = (*(r.value for r in DropReason), "not_allowed", "internal_error")
PROC_NET_UDP: Final = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


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
)  # fmt: skip
GAUGES: Final = (
    ("flowcap_templates", "Templates held", "templates"),
    ("flowcap_held_sets", "Data sets held waiting for their template", "held_sets"),
    ("flowcap_storage_backlog_rows", "Flows waiting to be written (queue and memory backlog)",
     "backlog_rows"),
)  # fmt: skip


def kernel_drops(socket_inodes: Iterable[int]) -> int:
    """Sum of the ``drops`` column of /proc/net/udp(6) for our sockets' inodes."""
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


#: snapshot keys that are levels, not counts: a retired worker's values stop counting
GAUGE_KEYS: Final = frozenset({"templates", "held_sets", "backlog_rows"})


class WorkerReports:
    """The parent's view of its workers' counters, kept whole across worker restarts.

    A restarted worker counts from zero again; its predecessor's last counters are kept
    in ``retired`` so the sums exported never go backwards.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, StatsSnapshot] = {}
        self._retired: list[StatsSnapshot] = []

    def update(self, worker: int, snapshot: StatsSnapshot) -> None:
        with self._lock:
            self._latest[worker] = snapshot

    def retire(self, worker: int) -> None:
        with self._lock:
            last = self._latest.pop(worker, None)
            if last is not None:
                counters = {k: v for k, v in last.items() if k not in GAUGE_KEYS}
                self._retired = [merge_snapshots([*self._retired, counters])]

    def total(self) -> StatsSnapshot:
        with self._lock:
            return merge_snapshots([*self._retired, *self._latest.values()])


def merge_snapshots(snapshots: Iterable[StatsSnapshot]) -> StatsSnapshot:
    """Sum worker snapshots: numbers add, dicts of numbers add per key."""
    merged: StatsSnapshot = {}
    for snapshot in snapshots:
        for key, value in snapshot.items():
            if isinstance(value, dict):
                target = merged.setdefault(key, {})
                for label, count in value.items():
                    target[label] = target.get(label, 0) + count
            elif isinstance(value, int | float):
                merged[key] = merged.get(key, 0) + value
    return merged


class FlowcapMetrics(Collector):
    """Builds every flowcap metric family from the current snapshot."""

    def __init__(
        self,
        snapshot: Callable[[], StatsSnapshot],
        socket_inodes: Callable[[], list[int]],
        workers: int,
        version: str,
    ) -> None:
        self._snapshot = snapshot
        self._socket_inodes = socket_inodes
        self._workers = workers
        self._version = version

    def collect(self) -> Iterator[Metric]:
        stats = self._snapshot()
        received = CounterMetricFamily(
            "flowcap_packets_received", "Export datagrams received", labels=["version"]
        )
        by_version = stats.get("datagrams_by_version", {})
        for version in VERSIONS:
            received.add_metric([version], by_version.get(version, 0))
        yield received
        dropped = CounterMetricFamily(
            "flowcap_packets_dropped", "Export datagrams dropped", labels=["reason"]
        )
        by_reason = stats.get("dropped", {})
        for reason in sorted(set(DROP_REASONS) | set(by_reason)):
            dropped.add_metric([reason], by_reason.get(reason, 0))
        yield dropped
        for name, help_text, key in COUNTERS:
            yield CounterMetricFamily(name, help_text, value=stats.get(key, 0))
        yield CounterMetricFamily(
            "flowcap_kernel_drops",
            "Datagrams the kernel dropped on our sockets (/proc/net/udp)",
            value=kernel_drops(self._socket_inodes()),
        )
        for name, help_text, key in GAUGES:
            yield GaugeMetricFamily(name, help_text, value=stats.get(key, 0))
        yield GaugeMetricFamily(
            "flowcap_workers", "Receiving worker processes", value=self._workers
        )
        info = GaugeMetricFamily("flowcap_build_info", "flowcap version", labels=["version"])
        info.add_metric([self._version], 1)
        yield info


def serve_metrics(
    address: tuple[str, int],
    snapshot: Callable[[], StatsSnapshot],
    socket_inodes: Callable[[], list[int]],
    workers: int,
) -> tuple[object, threading.Thread]:
    """Start the scrape endpoint on its own thread; returns (server, thread)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        flowcap_version = version("flowcap")
    except PackageNotFoundError:
        flowcap_version = "unknown"
    registry = CollectorRegistry()
    registry.register(FlowcapMetrics(snapshot, socket_inodes, workers, flowcap_version))
    return start_http_server(address[1], addr=address[0], registry=registry)
