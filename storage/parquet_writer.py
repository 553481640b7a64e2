"""Finished intervals: record batches (or a spool) in, one durable Parquet file out.

What a caller may rely on:
- The file appears under its final name only complete: written to ``.NAME.tmp`` in the
  same directory (locked while written, so recovery never removes a live one), fsynced,
  then linked to its name *without replacing* anything, and the directory fsynced.
- Its schema is the union of the batches' columns in ``FLOW_SCHEMA`` order (no column
  that no batch has), typed as ``FLOW_SCHEMA`` says.
- Row groups of ``ROW_GROUP_ROWS`` rows are cut in arrival (receive) order and each is
  sorted by ``time_start``; memory stays bounded by two row groups. A row group's
  maximum ``time_start`` and minimum ``time_end`` follow receive time, so min/max
  statistics skip row groups for nfdump's window rule (``time_start >= a and time_end
  <= b``); its minimum ``time_start`` lags by the exporter's active timeout (long flows).
  ``bench/bench_storage.py`` measures the share of rows a 60 s window reads.

Encoding choices, measured on 1 M vDS-like flows (``bench/bench_storage.py``): zstd
level 3 (level 1: +0.5 %, level 9: -1 % for 1.5x the time); ``DELTA_BINARY_PACKED`` for
the two flow times (sorted or nearly: 1.0 -> 0.09 bytes per flow for ``time_start``);
dictionary encoding everywhere else (without it: +25 %); no ``BYTE_STREAM_SPLIT``
(-1 %, but not every Parquet reader decodes it for integers).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa

from storage.naming import FileKind, parse_name
from storage.schema import FLOW_SCHEMA
from storage.spool import SpoolReader, fsync_directory, lock_existing, locked_temp_file
from storage.summaries import SummaryBuilder, ensure_summary, publish_summary

ROW_GROUP_ROWS: Final = 1_000_000
ZSTD_LEVEL: Final = 3
SORT_COLUMN: Final = "time_start"
DELTA_COLUMNS: Final = ("time_start", "time_end")
_FLOW_ORDER: Final = {name: index for index, name in enumerate(FLOW_SCHEMA.names)}


def union_schema(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """The columns any of ``schemas`` has, in ``FLOW_SCHEMA`` order with its types;
    columns the flow schema does not know follow, in order of appearance."""
    known: dict[str, pa.Field] = {}
    unknown: dict[str, pa.Field] = {}
    for schema in schemas:
        for schema_field in schema:
            if schema_field.name in _FLOW_ORDER:
                known[schema_field.name] = FLOW_SCHEMA.field(schema_field.name)
            else:
                unknown.setdefault(schema_field.name, schema_field)
    ordered = sorted(known.values(), key=lambda f: _FLOW_ORDER[f.name])
    return pa.schema(ordered + list(unknown.values()))


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s columns: reordered, cast, nulls for absent."""
    if batch.schema.equals(schema):
        return batch
    arrays = []
    for target in schema:
        index = batch.schema.get_field_index(target.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, type=target.type))
            continue
        column = batch.column(index)
        arrays.append(column if column.type == target.type else column.cast(target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _row_groups(batches: Iterable[pa.RecordBatch], rows_per_group: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch.num_rows, rows_per_group - held)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == rows_per_group:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


def parquet_options(schema: pa.Schema) -> dict:
    """``ParquetWriter`` settings for a flow file of ``schema`` (see the module doc).

    The page index (per-page min/max) and the declared sort order let readers that use
    them (Spark, Trino, newer Arrow) skip pages inside a row group, for ~0.1 % more bytes.
    """
    import pyarrow.parquet as pq  # here: readers import this module for its names only

    delta = [c for c in DELTA_COLUMNS if c in schema.names]
    sorting = (
        [pq.SortingColumn(schema.get_field_index(SORT_COLUMN))]
        if SORT_COLUMN in schema.names
        else None
    )
    return {
        "compression": "zstd",
        "compression_level": ZSTD_LEVEL,
        "use_dictionary": [c for c in schema.names if c not in delta],
        "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED") or None,
        "write_statistics": True,
        "write_page_index": True,
        "sorting_columns": sorting,
    }


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: Path
    rows: int
    row_groups: int
    size_bytes: int


def write_parquet(
    batches: Iterable[pa.RecordBatch],
    path: Path,
    schema: pa.Schema,
    metadata: dict[str, str] | None = None,
    rows_per_group: int = ROW_GROUP_ROWS,
) -> WrittenFile:
    """Write ``batches`` (conformed to ``schema``) as the Parquet file ``path``.

    Raises ``FileExistsError`` if ``path`` exists (nothing is replaced), ``OSError`` on
    I/O errors; either way no temporary file is left behind.
    """
    file_schema = schema.with_metadata(metadata or {})
    rows = groups = 0
    with locked_temp_file(path) as (temp, fd):
        conformed = (conform(b, schema) for b in batches)
        import pyarrow.parquet as pq

        with pq.ParquetWriter(str(temp), file_schema, **parquet_options(schema)) as writer:
            for group in _row_groups(conformed, rows_per_group):
                if SORT_COLUMN in group.column_names:
                    group = group.sort_by(SORT_COLUMN)
                writer.write_table(group, row_group_size=group.num_rows)
                rows += group.num_rows
                groups += 1
        os.fsync(fd)
        publish(temp, path)
        size = os.fstat(fd).st_size
    return WrittenFile(path, rows, groups, size)


def publish(temp: Path, path: Path) -> None:
    """Give the complete file ``temp`` the name ``path``, never replacing a file, and
    make it durable. (``link`` fails on an existing name where ``rename`` would not.)"""
    try:
        os.link(temp, path)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise  # EEXIST included
        if path.exists():  # a file system without hard links
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from error
        os.rename(temp, path)
    else:
        temp.unlink()
    fsync_directory(path.parent)


@dataclass(frozen=True, slots=True)
class SpoolConversion:
    """What became of one spool. ``parquet`` is None when it held no complete batch."""

    spool: Path
    parquet: Path | None
    rows: int
    trailing_bytes: int = 0
    problem: str | None = None
    already_done: bool = False


def parquet_path_for(spool: Path) -> Path:
    """The finished file of a spool: same directory, same name but the suffix."""
    name = parse_name(spool.name)
    if name is None or name.kind is not FileKind.SPOOL:
        raise ValueError(f"not a spool name: {spool.name}")
    return spool.with_name(name.as_kind(FileKind.PARQUET).name)


def convert_spool(
    spool: Path, rows_per_group: int = ROW_GROUP_ROWS, source: str = "rotation"
) -> SpoolConversion | None:
    """Turn a closed spool into its Parquet file and that file's summary
    (``storage.summaries``, best effort), then remove the spool.

    Returns None when another live process holds the spool (its writer, or another
    recovery). Idempotent and safe to interrupt anywhere: if the Parquet file exists it
    is complete (it only ever appears by ``publish``), so the spool is just removed. A
    spool whose damage is not a torn tail is kept aside as ``NAME.corrupt``.
    """
    final = parquet_path_for(spool)
    fd = lock_existing(spool)
    if fd is None:
        if not spool.exists() and final.exists():
            return SpoolConversion(spool, final, 0, already_done=True)
        return None
    try:
        if final.exists():
            ensure_summary(final)  # a crash may have come between the two
            _remove(spool)
            return SpoolConversion(spool, final, 0, already_done=True)
        schema = union_schema(SpoolReader(spool).schemas())
        reader = SpoolReader(spool)
        written: WrittenFile | None = None
        if len(schema):
            summary = SummaryBuilder()  # per-key totals for flowq (storage/summaries.py)
            batches = summary.observe(reader)
            metadata = _metadata(spool, source)
            written = write_parquet(batches, final, schema, metadata, rows_per_group)
            publish_summary(final, summary)  # before the spool goes; best effort
        else:
            for _ in reader:  # no frame: learn why
                pass
        if reader.problem is not None:
            os.rename(spool, spool.with_name(spool.name + ".corrupt"))
            fsync_directory(spool.parent)
        else:
            _remove(spool)
        return SpoolConversion(
            spool,
            written.path if written else None,
            written.rows if written else 0,
            reader.trailing_bytes,
            reader.problem,
        )
    finally:
        os.close(fd)


def _metadata(spool: Path, source: str) -> dict[str, str]:
    name = parse_name(spool.name)
    if name is None:
        raise ValueError(f"not a spool name: {spool.name}")
    return {
        "flowcap.interval_start_s": str(name.interval_start_s),
        "flowcap.interval_end_s": str(name.interval_end_s),
        "flowcap.worker": str(name.worker),
        "flowcap.sequence": str(name.sequence),
        "flowcap.source": source,
    }


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_directory(path.parent)
