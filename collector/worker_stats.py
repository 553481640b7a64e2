"""Every number of a worker as plain data: built per worker, merged across workers.

A ``StatsSnapshot`` is a JSON-able dict: with ``--workers N`` it crosses the process
boundary (a report to the parent about once a second), so everything in it, latency
histograms included, is plain numbers and lists. Merging is the rule that makes the
parent's endpoint whole: counters and histogram buckets add, last-seen times take the
maximum, per-exporter entries merge by address under the same label cap.

Per-exporter entries are keyed by the exporter's IP address alone (no port): an
exporter's sessions (one per source port, several on line-card routers, a new one after
each restart) are one device to an operator, and the address is what flowq's
``-s exporter`` shows. At most ``MAX_EXPORTER_LABELS`` addresses keep their own entry;
the rest are summed under ``other``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import Histogram
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from collector.pipeline import ReceivePipeline
    from collector.storage_thread import StorageThread
    from parsers.exporter_state import ExporterState

StatsSnapshot = dict[str, Any]

#: Exporters with a label of their own. A series costs Prometheus ~3 kB of memory per
#: sample stream and the dashboard a line per exporter; 64 addresses cover a data
#: centre's hypervisors or a campus's routers, and a spoofing sender cannot multiply
#: series. The first 64 addresses seen keep their label for the life of the process
#: (sticky, never re-ranked): a counter that moved between its own series and "other"
#: would show as a reset in one and a jump in the other.
MAX_EXPORTER_LABELS: Final = 64
OTHER_EXPORTER: Final = "other"

#: latency buckets (seconds) from half a millisecond (a small decode flush, a spool
#: append) to half a minute (a Parquet conversion of tens of millions of flows, ~0.7 s
#: per million)
LATENCY_BUCKETS_S: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: the ``le`` label of each bucket, +Inf last: the order of a snapshot's bucket counts
LATENCY_BUCKET_LES: Final = tuple(floatToGoString(b) for b in (*LATENCY_BUCKETS_S, float("inf")))
#: what one write-latency observation is: appending one batch to the spool, one fsync
#: of the open spools, converting one finished spool into its Parquet file
WRITE_STAGES: Final = ("append", "fsync", "parquet")

#: snapshot keys that are levels, not counts: a retired worker's values stop counting
GAUGE_KEYS: Final = frozenset(
    {"templates", "held_sets", "held_bytes", "backlog_rows", "spool_backlog_rows",
     "spool_backlog_bytes"}
)  # fmt: skip
#: snapshot keys merged by maximum, not sum (per exporter: the newest datagram wins)
MAX_KEYS: Final = frozenset({"last_seen_s"})


# -- latency histograms -----------------------------------------------------------------


def decode_histogram() -> Histogram:
    """The decode latency of one worker: observed per flush, read via snapshots (not
    registered: with ``--workers N`` it lives in a child and reaches the parent as data)."""
    return Histogram(
        "flowcap_decode_duration_seconds", "decode", registry=None, buckets=LATENCY_BUCKETS_S
    )


def write_histogram() -> Histogram:
    """The write latencies of one worker, by ``stage`` (all stages pre-created)."""
    histogram = Histogram(
        "flowcap_write_duration_seconds",
        "write",
        ["stage"],
        registry=None,
        buckets=LATENCY_BUCKETS_S,
    )
    for stage in WRITE_STAGES:
        histogram.labels(stage)
    return histogram


def histogram_snapshot(histogram: Histogram) -> dict[str, dict[str, Any]]:
    """{label value ("" without a label): {"buckets": cumulative counts, "sum": s}}."""
    buckets: dict[str, dict[str, float]] = {}
    sums: dict[str, float] = {}
    for family in histogram.collect():
        for sample in family.samples:
            label = next((v for k, v in sample.labels.items() if k != "le"), "")
            if sample.name.endswith("_bucket"):
                buckets.setdefault(label, {})[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_sum"):
                sums[label] = sample.value
    return {
        label: {
            "buckets": [int(by_le.get(le, 0)) for le in LATENCY_BUCKET_LES],
            "sum": sums.get(label, 0.0),
        }
        for label, by_le in buckets.items()
    }


# -- per-exporter counters --------------------------------------------------------------


def exporter_totals(states: Iterable[ExporterState]) -> dict[str, dict[str, float]]:
    """The decoder's per-session counters summed per exporter address, in first-seen
    order (one pass over the sessions, at scrape or report time, never per flow)."""
    totals: dict[str, dict[str, float]] = {}
    for state in states:
        if state.datagrams == 0:
            continue
        address = state.exporter[0]
        entry = totals.get(address)
        if entry is None:
            entry = totals[address] = {
                "datagrams": 0, "flows": 0, "sequence_lost": 0, "last_seen_s": 0.0
            }  # fmt: skip
        entry["datagrams"] += state.datagrams
        entry["flows"] += state.flow_records
        entry["sequence_lost"] += state.sequence_lost
        entry["last_seen_s"] = max(entry["last_seen_s"], state.last_seen_ns / 1e9)
    return totals


class ExporterLabels:
    """Which exporter addresses keep a label of their own: the first ``cap`` seen, for
    the life of this object; every other one is summed under ``other``. Sums are
    preserved: the capped result adds up to its input. Thread-safe (concurrent scrapes).
    """

    def __init__(self, cap: int = MAX_EXPORTER_LABELS) -> None:
        self._cap = cap
        self._named: set[str] = set()
        self._lock = threading.Lock()

    def apply(self, per_exporter: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        capped: dict[str, dict[str, float]] = {}
        with self._lock:
            for address, counts in per_exporter.items():
                label = OTHER_EXPORTER
                if address != OTHER_EXPORTER and (
                    address in self._named or len(self._named) < self._cap
                ):
                    self._named.add(address)
                    label = address
                _merge_into(capped.setdefault(label, {}), counts)
        if OTHER_EXPORTER in capped:  # last, so named exporters keep first-seen order
            capped[OTHER_EXPORTER] = capped.pop(OTHER_EXPORTER)
        return capped


# -- snapshots --------------------------------------------------------------------------


def _copy(values: Any) -> Any:
    """A copy of a dict the event loop thread may be growing (metrics read it from the
    HTTP thread): retry the rare 'changed size during iteration'."""
    for _ in range(5):
        try:
            return values.copy()
        except RuntimeError:
            continue
    return type(values)()


def worker_snapshot(pipeline: ReceivePipeline, storage: StorageThread) -> StatsSnapshot:
    """Every number of one worker as plain (JSON-able) data; any thread may call it."""
    decoder, stats = pipeline.decoder, pipeline.stats
    template_stats = decoder.templates.stats
    writer_stats = storage.writer.stats
    return {
        "datagrams_by_version": dict(_copy(stats.received_by_version)),
        "dropped": dict(_copy(stats.dropped)),
        "flows_decoded": decoder.stats.flow_records,
        "flows_by_version": {
            str(version): count
            for version, count in _copy(decoder.stats.flow_records_by_version).items()
        },
        "options_records": decoder.stats.options_records,
        "flows_written": storage.stats.rows_written,
        "flows_queue_dropped": stats.flows_queue_dropped,
        "sequence_lost": decoder.stats.sequence_lost,
        "templates": decoder.templates.template_count,
        "held_sets": template_stats.held_sets
        - template_stats.held_sets_released
        - template_stats.held_sets_expired,
        "held_bytes": template_stats.held_bytes,
        "held_sets_released": template_stats.held_sets_released,
        "held_sets_expired": template_stats.held_sets_expired,
        "held_sets_rejected": template_stats.held_sets_rejected,
        "backlog_rows": pipeline.queue.rows + storage.stats.backlog_rows,
        "write_errors": storage.stats.write_errors,
        "retention_files_deleted": storage.stats.retention_files_deleted,
        "retention_bytes_deleted": storage.stats.retention_bytes_deleted,
        "files_written": writer_stats.files_written,
        "file_bytes_written": writer_stats.bytes_in_files,
        "spool_backlog_rows": writer_stats.backlog_rows,
        "spool_backlog_bytes": writer_stats.backlog_bytes,
        "exporters": pipeline.exporter_labels.apply(
            exporter_totals(_copy(decoder.exporters).values())
        ),
        "decode_seconds": histogram_snapshot(pipeline.decode_seconds),
        "write_seconds": histogram_snapshot(storage.write_seconds),
    }


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
            return merge_snapshots([*self._retired, *(v for _, v in sorted(self._latest.items()))])


def merge_snapshots(snapshots: Iterable[StatsSnapshot]) -> StatsSnapshot:
    """Merge worker snapshots: numbers add (``MAX_KEYS`` take the maximum), dicts merge
    per key, lists (cumulative histogram buckets) add element by element."""
    merged: StatsSnapshot = {}
    for snapshot in snapshots:
        _merge_into(merged, snapshot)
    return merged


def _merge_into(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        current = target.get(key)
        if isinstance(value, dict):
            _merge_into(target.setdefault(key, {}), value)
        elif isinstance(value, list):
            if current is None:
                target[key] = list(value)
            elif len(current) == len(value):
                target[key] = [a + b for a, b in zip(current, value, strict=True)]
        elif isinstance(value, int | float):
            if key in MAX_KEYS:
                target[key] = max(current or 0, value)
            else:
                target[key] = (current or 0) + value
