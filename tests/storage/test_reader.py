"""The reader: names prune by time, live spools are read, damaged files are skipped
and reported, projections and filters behave with absent columns."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from parsers.decoder import FlowDecoder
from storage.interval_writer import IntervalWriter
from storage.naming import FileKind, FlowFileName
from storage.parquet_writer import convert_spool, union_schema, write_parquet
from storage.reader import (
    ReadProblem,
    TimeWindow,
    flow_files,
    scan,
    scan_sources,
    window_expression,
)
from storage.schema import FLOW_SCHEMA, to_record_batch
from storage.spool import SpoolWriter
from tests.corpus import RECEIVED_AT_NS, group, group_ids
from tests.storage.synthetic import BASE_S, record_batches, row_set, write_spool


def parquet_name(start: int, sequence: int = 0, worker: int = 0) -> str:
    return FlowFileName(start, start + 300, worker, sequence, FileKind.PARQUET).name


def write(path: Path, batches: list[pa.RecordBatch]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(batches, path, union_schema(b.schema for b in batches))
    return path


def test_window_prunes_files_by_name(tmp_path):
    for hour in range(6):
        start = BASE_S + hour * 3600
        write(tmp_path / "2025" / parquet_name(start), record_batches(1, 3, t0_s=start))
    window = TimeWindow(BASE_S + 2 * 3600 + 60, BASE_S + 2 * 3600 + 120)
    chosen = flow_files([tmp_path], window, slack_s=0)
    assert [s.name.interval_start_s for s in chosen] == [BASE_S + 2 * 3600]
    wide = flow_files([tmp_path], window, slack_s=3600)
    assert len(wide) == 3
    assert len(flow_files([tmp_path])) == 6
    with pytest.raises(FileNotFoundError):
        flow_files([tmp_path / "missing"])


def test_window_rule_is_nfdumps():
    window = TimeWindow(BASE_S + 10, BASE_S + 20)
    table = pa.table(
        {
            "time_start": pa.array([10, 5, 12, 12], pa.int64()),
            "time_end": pa.array([20, 15, 25, 13], pa.int64()),
        }
    )
    table = table.set_column(0, "time_start", pc.multiply(pc.add(table[0], BASE_S), 1000))
    table = table.set_column(1, "time_end", pc.multiply(pc.add(table[1], BASE_S), 1000))
    table = table.cast(pa.schema([FLOW_SCHEMA.field("time_start"), FLOW_SCHEMA.field("time_end")]))
    kept = table.filter(window_expression(window))
    assert kept.num_rows == 2  # [10, 20] and [12, 13]: start >= 10 and end <= 20


def test_scan_reads_parquet_and_live_spool_together(tmp_path):
    batches = record_batches(4, 10)
    write(tmp_path / parquet_name(BASE_S), batches[:2])
    live = SpoolWriter(
        tmp_path / FlowFileName(BASE_S + 300, BASE_S + 600, 0, 0, FileKind.SPOOL).name
    )
    live.append(batches[2])
    live.append(batches[3])
    live.sync()  # the daemon is still running: the spool is open and locked
    assert row_set(scan([tmp_path])) == row_set(batches)
    live.close()


def test_spool_with_its_parquet_twin_is_read_once(tmp_path):
    batches = record_batches(2, 10)
    write_spool(tmp_path / FlowFileName(BASE_S, BASE_S + 300, 0, 0, FileKind.SPOOL).name, batches)
    write(tmp_path / parquet_name(BASE_S), batches)  # as if killed before removing it
    assert [s.kind for s in flow_files([tmp_path])] == [FileKind.PARQUET]
    assert row_set(scan([tmp_path])) == row_set(batches)


def test_spool_rotated_after_listing_is_read_from_its_parquet(tmp_path):
    batches = record_batches(2, 10)
    spool = tmp_path / FlowFileName(BASE_S, BASE_S + 300, 0, 0, FileKind.SPOOL).name
    write_spool(spool, batches)
    sources = flow_files([tmp_path])
    assert [s.kind for s in sources] == [FileKind.SPOOL]
    convert_spool(spool)
    assert row_set(scan_sources(sources)) == row_set(batches)


def test_damaged_files_are_skipped_and_reported(tmp_path, caplog):
    good = record_batches(2, 10)
    write(tmp_path / parquet_name(BASE_S), good)
    truncated = write(tmp_path / parquet_name(BASE_S, 1), record_batches(2, 10, seed=5))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    (tmp_path / parquet_name(BASE_S, 2)).write_bytes(b"not parquet at all")
    damaged = write(tmp_path / parquet_name(BASE_S, 3), record_batches(2, 500, seed=7))
    data = bytearray(damaged.read_bytes())
    data[100:400] = bytes(300)  # pages destroyed, footer intact: fails while scanning
    damaged.write_bytes(bytes(data))
    spool = tmp_path / FlowFileName(BASE_S, BASE_S + 300, 1, 0, FileKind.SPOOL).name
    spooled = record_batches(3, 10, seed=9)
    write_spool(spool, spooled)
    data = bytearray(spool.read_bytes())
    data[-50] ^= 0xFF  # the last frame is damaged
    spool.write_bytes(bytes(data))
    problems: list[ReadProblem] = []
    rows = row_set(scan([tmp_path], on_problem=problems.append))
    assert rows == row_set(good + spooled[:2])
    assert sorted(p.path.name for p in problems) == sorted(
        [truncated.name, parquet_name(BASE_S, 2), damaged.name, spool.name]
    )
    with caplog.at_level(logging.WARNING, logger="storage.reader"):
        list(scan([tmp_path]))
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 4


def test_projection_and_filter_on_absent_columns(tmp_path):
    batches = record_batches(3, 10)  # shape 1 has no src_addr, shape 0 no src_addr6
    write(tmp_path / parquet_name(BASE_S), batches)
    columns = ["time_start", "src_addr", "src_addr6", "tenant_dst_addr"]
    out = list(scan([tmp_path], columns=columns))
    assert all(b.schema.names == columns for b in out)
    assert all(b.schema.field("src_addr6").type == FLOW_SCHEMA.field("src_addr6").type for b in out)
    table = pa.Table.from_batches(out)
    assert table["tenant_dst_addr"].null_count == 30
    v6_only = pa.Table.from_batches(scan([tmp_path], ["dst_port"], pc.field("src_addr").is_null()))
    assert v6_only.num_rows == 10
    union = next(iter(scan([tmp_path])))
    assert set(union.schema.names) == {n for b in batches for n in b.schema.names}
    with pytest.raises(KeyError):
        list(scan([tmp_path], columns=["no_such_column"]))


@pytest.mark.corpus
def test_real_flows_through_writer_and_reader(tmp_path):
    if not group_ids():
        pytest.skip("shared corpus not found")
    batches = []
    for group_id in group_ids():
        decoder = FlowDecoder()
        for datagram in group(group_id).datagrams():
            try:
                decoder.feed_datagram(datagram.payload, datagram.source, RECEIVED_AT_NS)
            except Exception:  # malformed corpus files are the parsers' business
                continue
        batches += [to_record_batch(b) for b in decoder.flush()]
    writer = IntervalWriter(tmp_path, 300, 1, 0, lambda: RECEIVED_AT_NS / 1e9)
    for batch in batches:
        writer.append(batch, RECEIVED_AT_NS / 1e9)
    writer.sync()
    assert row_set(scan([tmp_path])) == row_set(batches)  # from the live spool
    [path] = writer.close()
    assert pq.read_metadata(path).num_rows == sum(b.num_rows for b in batches)
    assert row_set(scan([tmp_path])) == row_set(batches)
