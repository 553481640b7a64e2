"""Per-file summaries: the per-key totals of one finished flow file, so statistics over
long windows ("top talkers of the last week") read kilobytes instead of the flows.

This module owns the summary files (name, content, writing, reading) and the one
definition of the per-key measures (``flow_measures``, ``group_measures``) that
``flowq``'s ``-s`` and ``-A`` use too: a summary and a scan count the same way.

What a caller may rely on:
- ``flowcap.<interval>.<w>.<n>.summary`` sits next to its ``….parquet`` and describes
  exactly the rows of that file. The name does not end in ``.parquet`` (so a
  ``flowcap.*.parquet`` glob does not take it for flows) and ``storage.naming`` does not
  list it as a flow file.
- It is written after its flow file was published and before the spool is removed,
  atomically (``.NAME.tmp``, fsync, rename, directory fsync): it is complete or absent.
- For each key set of ``SUMMARY_KEYS`` (the flow columns one side of an ``-s``
  statistic groups by) it holds one row per distinct key with ``MEASURES``: flows,
  packets, bytes (sums), first (min ``time_start``), last (max ``time_end``); the whole
  table, never a top-N, so summaries of many files merge into exact results; but a
  set with nearly a key per flow (``MAX_KEYS_SHARE``) is left out and such a statistic
  scans that file, unless its keys are ports or other narrow numbers
  (``BOUNDED_KEY_BITS``). The file's totals (rows, flows, packets, bytes, time bounds) are in
  its footer.
- It is a cache: a missing, unreadable, foreign or stale one (the flow file's size
  differs from the one recorded) makes ``open_summary`` return None or raise
  ``SummaryError``, and the reader scans the flow file instead. Failing to write one
  (disk full) is logged, never an error of the rotation.

Format: an Arrow IPC file (zstd): a record batch per large key set, one shared by the
small ones, so a statistic reads the file's footer and its key set's batch only. Key
columns are stored in slots (``key0`` … ``key4`` as uint64, ``key6`` for a 16-byte IPv6
twin; unused slots null), then the measures; rows sorted by key. The footer's schema
metadata (``flowcap.summary``, JSON) holds the format version, the flow file's size,
where each key set is (batch, offset, rows) and the totals. Sizes: ``docs/storage.md``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from storage.naming import FileKind, parse_name, walk_flow_files
from storage.schema import FLOW_SCHEMA, TIME_TYPE
from storage.spool import fsync_directory, locked_temp_file

SUMMARY_SUFFIX: Final = ".summary"
FORMAT_VERSION: Final = 1
METADATA_KEY: Final = b"flowcap.summary"
#: the key sets summarized: the flow columns one side of an ``-s`` statistic reads (the
#: destination port with what the ICMP type/code rule reads). A statistic may use any set
#: holding all the columns its key reads: grouping again by fewer columns is exact.
SUMMARY_KEYS: Final[tuple[tuple[str, ...], ...]] = (
    ("src_addr", "src_addr6"),
    ("dst_addr", "dst_addr6"),
    ("src_port",),
    ("dst_port", "proto", "icmp_type_code", "icmp_type", "icmp_code"),
    ("proto",),
    ("src_as",),
    ("dst_as",),
    ("in_if",),
    ("out_if",),
    ("exporter", "exporter6"),
    ("tos",),
    ("dst_tos",),
    ("next_hop", "next_hop6"),
    ("src_mask",),
    ("dst_mask",),
    ("src_vlan",),
    ("dst_vlan",),
    ("flow_direction",),
)
MEASURES: Final = ("flows", "packets", "bytes", "first", "last")
#: rows buffered before they are grouped (one ``group_by`` per key set per buffer)
BUFFER_ROWS: Final = 262_144
#: a key set with fewer rows shares a batch with the other small ones
OWN_BATCH_ROWS: Final = 1024
#: a key set with more keys than this share of the file's flows (and more than
#: OWN_BATCH_ROWS) is left out, unless its keys are narrow (``BOUNDED_KEY_BITS``):
#: scanning the file costs little more than reading it. Measured on 100 k vDS-like
#: flows: addresses have 4-5 % keys (kept); ephemeral source ports 24 k, 73 % of the
#: summary's bytes, a scan of them reading ~2x more (kept as narrow keys, see below).
MAX_KEYS_SHARE: Final = 0.125
#: key columns at most this wide (ports, protocol, ToS, masks) have few possible keys:
#: their sets are kept whatever their share. A top-ports query over a busy vDS (return
#: traffic to ephemeral ports) otherwise scans every file: 1.5 s instead of 0.3 s for
#: 10 M flows, for ~0.4 MB more per 286 k-flow file (``bench query``).
BOUNDED_KEY_BITS: Final = 16
#: partial groups of one key set are merged once they hold this many rows
MERGE_ROWS: Final = 1_000_000
_PARQUET_SUFFIX: Final = f".{FileKind.PARQUET}"
#: the key sets of narrow keys only, kept whatever their share
_BOUNDED_KEY_SETS: Final = frozenset(
    keys for keys in SUMMARY_KEYS if all(
        pa.types.is_integer(t := FLOW_SCHEMA.field(k).type) and t.bit_width <= BOUNDED_KEY_BITS
        for k in keys)
)  # fmt: skip
_TIME_COLUMNS: Final = ("time_start", "time_end")
_INPUT_COLUMNS: Final = tuple(
    dict.fromkeys(
        [c for keys in SUMMARY_KEYS for c in keys]
        + ["flows", "packets", "bytes", "out_packets", "out_bytes", *_TIME_COLUMNS]
    )
)
_ADDRESS6: Final = pa.binary(16)
_NUMERIC_SLOTS: Final = ("key0", "key1", "key2", "key3", "key4")
_ADDRESS6_SLOT: Final = "key6"
_STORED_SCHEMA: Final = pa.schema(
    [
        *((slot, pa.uint64()) for slot in _NUMERIC_SLOTS),
        (_ADDRESS6_SLOT, _ADDRESS6),
        ("flows", pa.uint64()),
        ("packets", pa.uint64()),
        ("bytes", pa.uint64()),
        ("first", TIME_TYPE),
        ("last", TIME_TYPE),
    ]
)
_IPC_OPTIONS: Final = pa.ipc.IpcWriteOptions(compression="zstd")
#: (measure, Arrow hash aggregation): counters add up, times widen; each composes, so
#: grouping partial results again merges them exactly
MEASURE_AGGREGATIONS: Final = (
    ("flows", "sum"),
    ("packets", "sum"),
    ("bytes", "sum"),
    ("first", "min"),
    ("last", "max"),
)
_AGGREGATED_NAMES: Final = {f"{c}_{f}": c for c, f in MEASURE_AGGREGATIONS}
_log = logging.getLogger(__name__)


def _uint64_constant(value: int, rows: int) -> pa.Array:
    return pa.array(np.full(rows, value, dtype=np.uint64))


def flow_measures(batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
    """The measures of each flow: ``flows`` (the record's count, 1 when the exporter
    sent none), ``packets`` and ``bytes`` (0 when unknown), ``first`` = ``time_start``,
    ``last`` = ``time_end``."""
    rows = batch.num_rows
    names = batch.schema.names

    def counter(name: str, fill: int) -> pa.Array:
        if name not in names:
            return _uint64_constant(fill, rows)
        return pc.fill_null(batch.column(name), fill).cast(pa.uint64())

    def time(name: str) -> pa.Array:
        return batch.column(name) if name in names else pa.nulls(rows, TIME_TYPE)

    return {
        "flows": counter("flows", 1),
        "packets": counter("packets", 0),
        "bytes": counter("bytes", 0),
        "first": time("time_start"),
        "last": time("time_end"),
    }


def group_measures(table: pa.Table, keys: list[str], use_threads: bool = True) -> pa.Table:
    """``table`` (key columns plus ``MEASURES``) grouped by ``keys``: sums, earliest
    first, latest last. Grouping partial results again merges them exactly."""
    grouped = table.group_by(keys, use_threads=use_threads).aggregate(list(MEASURE_AGGREGATIONS))
    return grouped.rename_columns([_AGGREGATED_NAMES.get(n, n) for n in grouped.column_names])


class SummaryError(Exception):
    """A summary that cannot be used (damaged, foreign, stale, or lacking a key set):
    scan the flow file instead."""


class WindowCover(StrEnum):
    """How a file's rows meet a ``-t`` window (nfdump's rule: ``time_start >= start``
    and ``time_end <= end``; a null time never meets a bound)."""

    WHOLE = "whole"  # every row is in the window
    NONE = "none"  # no row is
    PART = "part"  # some may be: only a scan knows which


@dataclass(frozen=True, slots=True)
class SummaryTotals:
    """Whole-file numbers. ``flows`` sums the ``flows`` measure; ``zero_flow_rows``
    counts records whose flow count is 0 (nfdump's summary line counts each as one
    flow). Times are ms since 1970, None when every value is null."""

    rows: int = 0
    flows: int = 0
    zero_flow_rows: int = 0
    packets: int = 0
    bytes: int = 0
    out_packets: int = 0
    out_bytes: int = 0
    time_start_min_ms: int | None = None
    time_start_max_ms: int | None = None
    time_end_min_ms: int | None = None
    time_end_max_ms: int | None = None
    time_start_nulls: int = 0
    time_end_nulls: int = 0

    def window_cover(self, start_ms: int | None, end_ms: int | None) -> WindowCover:
        """Which rows of the file a window ``[start_ms, end_ms]`` (None: open) takes."""
        if self.rows == 0:
            return WindowCover.WHOLE
        if start_ms is not None and (
            self.time_start_max_ms is None or self.time_start_max_ms < start_ms
        ):
            return WindowCover.NONE
        if end_ms is not None and (self.time_end_min_ms is None or self.time_end_min_ms > end_ms):
            return WindowCover.NONE
        start_ok = start_ms is None or (
            self.time_start_nulls == 0
            and self.time_start_min_ms is not None
            and self.time_start_min_ms >= start_ms
        )
        end_ok = end_ms is None or (
            self.time_end_nulls == 0
            and self.time_end_max_ms is not None
            and self.time_end_max_ms <= end_ms
        )
        return WindowCover.WHOLE if start_ok and end_ok else WindowCover.PART


def _opt(fn: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else fn(a, b)


def _combine(a: SummaryTotals, b: SummaryTotals) -> SummaryTotals:
    return SummaryTotals(
        rows=a.rows + b.rows,
        flows=a.flows + b.flows,
        zero_flow_rows=a.zero_flow_rows + b.zero_flow_rows,
        packets=a.packets + b.packets,
        bytes=a.bytes + b.bytes,
        out_packets=a.out_packets + b.out_packets,
        out_bytes=a.out_bytes + b.out_bytes,
        time_start_min_ms=_opt(min, a.time_start_min_ms, b.time_start_min_ms),
        time_start_max_ms=_opt(max, a.time_start_max_ms, b.time_start_max_ms),
        time_end_min_ms=_opt(min, a.time_end_min_ms, b.time_end_min_ms),
        time_end_max_ms=_opt(max, a.time_end_max_ms, b.time_end_max_ms),
        time_start_nulls=a.time_start_nulls + b.time_start_nulls,
        time_end_nulls=a.time_end_nulls + b.time_end_nulls,
    )


def _sum(array: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(array).as_py() or 0)


def _totals_of(table: pa.Table, measures: dict[str, pa.Array]) -> SummaryTotals:
    bounds = {}
    for name in _TIME_COLUMNS:
        ms = pc.min_max(table[name].cast(pa.int64()))
        bounds[name] = (ms["min"].as_py(), ms["max"].as_py(), table[name].null_count)
    return SummaryTotals(
        rows=table.num_rows,
        flows=_sum(measures["flows"]),
        zero_flow_rows=_sum(pc.equal(table["flows"], 0).cast(pa.uint64())),
        packets=_sum(measures["packets"]),
        bytes=_sum(measures["bytes"]),
        out_packets=_sum(table["out_packets"]),
        out_bytes=_sum(table["out_bytes"]),
        time_start_min_ms=bounds["time_start"][0],
        time_start_max_ms=bounds["time_start"][1],
        time_end_min_ms=bounds["time_end"][0],
        time_end_max_ms=bounds["time_end"][1],
        time_start_nulls=bounds["time_start"][2],
        time_end_nulls=bounds["time_end"][2],
    )


def _project(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """The columns a summary reads, typed as ``FLOW_SCHEMA`` says (absent: nulls)."""
    columns = {}
    for name in _INPUT_COLUMNS:
        target = FLOW_SCHEMA.field(name).type
        if name in batch.schema.names:
            column = batch.column(name)
            columns[name] = column if column.type == target else column.cast(target)
        else:
            columns[name] = pa.nulls(batch.num_rows, target)
    return pa.table(columns)


def _empty_keyed(keys: Sequence[str]) -> pa.Table:
    schema = [FLOW_SCHEMA.field(k) for k in keys] + [_STORED_SCHEMA.field(m) for m in MEASURES]
    return pa.schema(schema).empty_table()


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """One file's summary in memory: per key set, a table of the key columns (named and
    typed as the flow columns) and ``MEASURES``."""

    tables: dict[tuple[str, ...], pa.Table]
    totals: SummaryTotals


def _group_sparse(table: pa.Table, keys: tuple[str, ...], measures: dict) -> pa.Table:
    """``group_measures`` by ``keys``, leaving the all-null key columns out of the hash
    (most files lack most optional columns): measured 2x faster on 1 M flows, and in a
    single thread (the daemon's conversion thread has the CPU to itself)."""
    live = [k for k in keys if table[k].null_count < table.num_rows]
    grouped = group_measures(pa.table({**{k: table[k] for k in live}, **measures}), live, False)
    columns = {
        k: grouped[k] if k in live else pa.nulls(grouped.num_rows, FLOW_SCHEMA.field(k).type)
        for k in keys
    }
    return pa.table({**columns, **{m: grouped[m] for m in MEASURES}})


class SummaryBuilder:
    """Accumulates one flow file's summary from its batches (any order and batching)."""

    def __init__(self) -> None:
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._parts: dict[tuple[str, ...], list[pa.Table]] = {k: [] for k in SUMMARY_KEYS}
        self._part_rows = dict.fromkeys(SUMMARY_KEYS, 0)
        self._totals = SummaryTotals()
        self.failure: Exception | None = None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(_project(batch))
        self._pending_rows += batch.num_rows
        if self._pending_rows >= BUFFER_ROWS:
            self._flush()

    def observe(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass ``batches`` through, adding each: summarize a file while it is written.
        A failure to summarize never stops the batches; ``finish`` raises it."""
        for batch in batches:
            if self.failure is None:
                try:
                    self.add(batch)
                except Exception as error:  # the flows matter, the summary is a cache
                    self.failure = error
            yield batch

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        measures = flow_measures(table)
        self._totals = _combine(self._totals, _totals_of(table, measures))
        for keys in SUMMARY_KEYS:
            part = _group_sparse(table, keys, measures)
            parts = self._parts[keys]
            parts.append(part)
            self._part_rows[keys] += part.num_rows
            if self._part_rows[keys] > MERGE_ROWS and len(parts) > 1:
                merged = group_measures(pa.concat_tables(parts), list(keys), use_threads=False)
                self._parts[keys], self._part_rows[keys] = [merged], merged.num_rows

    def finish(self) -> FlowSummary:
        if self.failure is not None:
            raise SummaryError(f"summarizing failed: {self.failure}") from self.failure
        self._flush()
        tables = {}
        for keys, parts in self._parts.items():
            if not parts:
                tables[keys] = _empty_keyed(keys)
            elif len(parts) == 1:
                tables[keys] = parts[0]
            else:
                tables[keys] = group_measures(pa.concat_tables(parts), list(keys), False)
        return FlowSummary(tables, self._totals)


def summarize_flow_file(path: Path) -> FlowSummary:
    """The summary of a finished Parquet flow file, read back (only the needed columns)."""
    builder = SummaryBuilder()
    import pyarrow.parquet as pq  # the writer's side: flowq reading summaries needs none

    file = pq.ParquetFile(path)
    columns = [name for name in _INPUT_COLUMNS if name in file.schema_arrow.names]
    for batch in file.iter_batches(columns=columns):
        builder.add(batch)
    return builder.finish()


def summary_path_for(flow_file: Path) -> Path | None:
    """Where the summary of a finished flow file is; None for other names."""
    name = parse_name(flow_file.name)
    if name is None or name.kind is not FileKind.PARQUET:
        return None
    return flow_file.with_name(summary_path_text(flow_file.name))


def summary_path_text(flow_file: str) -> str:
    """``summary_path_for`` as text, of a path known to name a finished flow file: for
    retention's listing of every file (~100,000 a year), where parsing each name again
    and ``Path`` objects cost more than the system calls."""
    return flow_file.removesuffix(_PARQUET_SUFFIX) + SUMMARY_SUFFIX


def _key_set_name(keys: Sequence[str]) -> str:
    return ",".join(keys)


def _slots(keys: Sequence[str]) -> dict[str, str]:
    """Key column -> its slot: numeric columns fill ``key0``… in order, a 16-byte
    address the ``key6`` slot."""
    numeric = iter(_NUMERIC_SLOTS)
    return {
        k: _ADDRESS6_SLOT if FLOW_SCHEMA.field(k).type == _ADDRESS6 else next(numeric) for k in keys
    }


def _stored_table(keys: tuple[str, ...], table: pa.Table) -> pa.Table:
    table = table.sort_by([(k, "ascending") for k in keys])
    slots = {slot: k for k, slot in _slots(keys).items()}
    arrays = []
    for target in _STORED_SCHEMA:
        if target.name in slots:
            arrays.append(table[slots[target.name]].cast(target.type))
        elif target.name in MEASURES:
            arrays.append(table[target.name])
        else:
            arrays.append(pa.nulls(table.num_rows, target.type))
    return pa.Table.from_arrays(arrays, schema=_STORED_SCHEMA)


def _stored_batches(summary: FlowSummary) -> tuple[list[pa.RecordBatch], dict[str, list[int]]]:
    """The batches to write and, per key set, ``[batch, offset, rows]``: a large set
    gets a batch of its own, the small ones share one (a batch costs ~1 KB of headers),
    one with nearly a key per flow is left out (``MAX_KEYS_SHARE``) unless its keys
    are narrow (``BOUNDED_KEY_BITS``)."""
    too_many = max(OWN_BATCH_ROWS, MAX_KEYS_SHARE * summary.totals.rows)
    batches: list[pa.RecordBatch] = []
    places: dict[str, list[int]] = {}
    shared: list[pa.Table] = []
    shared_rows = 0
    for keys in SUMMARY_KEYS:
        table = summary.tables[keys]
        if not table.num_rows or (table.num_rows > too_many and keys not in _BOUNDED_KEY_SETS):
            continue
        stored = _stored_table(keys, table)
        if table.num_rows >= OWN_BATCH_ROWS:
            places[_key_set_name(keys)] = [len(batches), 0, table.num_rows]
            batches.append(stored.combine_chunks().to_batches()[0])
        else:
            places[_key_set_name(keys)] = [-1, shared_rows, table.num_rows]
            shared.append(stored)
            shared_rows += table.num_rows
    if shared:
        for place in places.values():
            if place[0] == -1:
                place[0] = len(batches)
        batches.append(pa.concat_tables(shared).combine_chunks().to_batches()[0])
    return batches, places


def write_summary(summary: FlowSummary, flow_file: Path) -> Path:
    """Write ``summary`` as the summary of ``flow_file`` (which must exist: its size is
    recorded). Replaces an older summary; raises ``OSError`` / ``ArrowException``, and
    then no temporary file is left."""
    path = summary_path_for(flow_file)
    if path is None:
        raise ValueError(f"not a finished flow file name: {flow_file.name}")
    batches, places = _stored_batches(summary)
    footer = {
        "version": FORMAT_VERSION,
        "flow_file_bytes": flow_file.stat().st_size,
        "key_sets": places,
        "totals": asdict(summary.totals),
    }
    schema = _STORED_SCHEMA.with_metadata({METADATA_KEY: json.dumps(footer)})
    with locked_temp_file(path) as (temp, fd):
        with (
            pa.OSFile(str(temp), "wb") as sink,
            pa.ipc.new_file(sink, schema, options=_IPC_OPTIONS) as writer,
        ):
            for batch in batches:
                writer.write_batch(batch)
        os.fsync(fd)
        os.rename(temp, path)
        fsync_directory(path.parent)
    return path


def publish_summary(flow_file: Path, builder: SummaryBuilder | None = None) -> Path | None:
    """Best effort: write the summary of ``flow_file`` (from ``builder``, which saw all
    its rows, or else from the file). A failure is logged and returns None: readers
    scan the file instead."""
    try:
        summary = summarize_flow_file(flow_file) if builder is None else builder.finish()
        return write_summary(summary, flow_file)
    except (OSError, pa.ArrowException, ValueError, SummaryError) as error:
        _log.warning("no summary for %s: %s", flow_file, error)
        return None


def ensure_summary(flow_file: Path) -> Path | None:
    """The summary of a finished flow file, written first if it has none."""
    path = summary_path_for(flow_file)
    if path is None:
        return None
    if path.exists():
        return path
    return publish_summary(flow_file)


def write_missing_summaries(root: Path) -> list[Path]:
    """Summaries for the finished files below ``root`` that have none (files written
    before summaries existed, or when writing one failed)."""
    written = []
    for item in sorted(walk_flow_files(root), key=lambda f: f.name):
        path = summary_path_for(item.path)
        if item.name.kind is FileKind.PARQUET and path is not None and not path.exists():
            result = publish_summary(item.path)
            if result is not None:
                written.append(result)
    return written


def key_set_for(columns: Iterable[str]) -> tuple[str, ...] | None:
    """The smallest summarized key set holding all ``columns``; None when none does."""
    wanted = set(columns)
    holding = [keys for keys in SUMMARY_KEYS if wanted <= set(keys)]
    return min(holding, key=len) if holding else None


@dataclass(frozen=True, slots=True)
class SummaryFile:
    """An opened summary (its footer was read); tables are read on demand."""

    path: Path
    totals: SummaryTotals
    size_bytes: int
    places: dict[str, tuple[int, int, int]]  # key set -> (batch, offset, rows)

    def read(self, key_sets: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], pa.Table]:
        """Per key set (of ``SUMMARY_KEYS``), its table: the key columns named and typed
        as the flow columns, then ``MEASURES``. Reads the footer and those batches
        only; raises ``SummaryError``."""
        tables: dict[tuple[str, ...], pa.Table] = {}
        batches: dict[int, pa.RecordBatch] = {}
        try:
            with pa.OSFile(str(self.path)) as source:
                reader = pa.ipc.open_file(source)
                for keys in dict.fromkeys(key_sets):
                    if keys not in SUMMARY_KEYS:
                        raise SummaryError(f"key set {_key_set_name(keys)} is not summarized")
                    place = self.places.get(_key_set_name(keys))
                    if place is None:
                        if self.totals.rows:  # left out: as good as the flows
                            raise SummaryError(f"{self.path}: no table for {_key_set_name(keys)}")
                        tables[keys] = _empty_keyed(keys)
                        continue
                    index, offset, rows = place
                    if index not in batches:
                        batches[index] = reader.get_batch(index)
                    stored = batches[index].slice(offset, rows)
                    named = {k: stored.column(slot).cast(FLOW_SCHEMA.field(k).type)
                             for k, slot in _slots(keys).items()}  # fmt: skip
                    tables[keys] = pa.table({**named, **{m: stored.column(m) for m in MEASURES}})
            for keys, table in tables.items():
                self._check(keys, table)
        except (OSError, pa.ArrowException, KeyError) as error:
            raise SummaryError(f"{self.path}: unreadable: {error}") from error
        return tables

    def _check(self, keys: tuple[str, ...], table: pa.Table) -> None:
        """Every key set counts each flow once: its sums must be the file's totals (IPC
        has no checksums; this catches damaged measures and short batches)."""
        place = self.places.get(_key_set_name(keys))
        if place is not None and table.num_rows != place[2]:
            raise SummaryError(f"{self.path}: {_key_set_name(keys)} has {table.num_rows} "
                               f"rows, not {place[2]}")  # fmt: skip
        sums = (_sum(table["flows"]), _sum(table["packets"]), _sum(table["bytes"]))
        if sums != (self.totals.flows, self.totals.packets, self.totals.bytes):
            raise SummaryError(f"{self.path}: {_key_set_name(keys)} does not add up")


def open_summary(flow_file: Path) -> SummaryFile | None:
    """The summary of ``flow_file`` (its footer only); None when it has none. Raises
    ``SummaryError`` for one that exists but cannot be trusted."""
    path = summary_path_for(flow_file)
    if path is None:
        return None
    try:
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_file(source)
            metadata = reader.schema.metadata or {}
            batch_count = reader.num_record_batches
        size = path.stat().st_size
        flow_bytes = flow_file.stat().st_size
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as error:
        raise SummaryError(f"{path}: unreadable: {error}") from error
    try:
        footer = json.loads(metadata[METADATA_KEY])
        if footer["version"] != FORMAT_VERSION:
            raise SummaryError(f"{path}: format version {footer['version']}")
        totals_fields = {f.name for f in fields(SummaryTotals)}
        totals = replace(
            SummaryTotals(), **{k: v for k, v in footer["totals"].items() if k in totals_fields}
        )
        places = {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in footer["key_sets"].items()}
        recorded = int(footer["flow_file_bytes"])
    except (KeyError, TypeError, ValueError) as error:
        raise SummaryError(f"{path}: not a flowcap summary: {error}") from error
    if recorded != flow_bytes:
        raise SummaryError(f"{path}: stale (flow file is {flow_bytes} bytes, not {recorded})")
    if any(not 0 <= index < batch_count for index, _, _ in places.values()):
        raise SummaryError(f"{path}: batch index out of range")
    return SummaryFile(path, totals, size, places)
