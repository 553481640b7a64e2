"""Parquet files: every row and value kept, sorted for time pruning, published only
complete, never overwriting."""

from __future__ import annotations

import contextlib
import errno
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from parsers.decoder import FlowDecoder
from parsers.errors import ParseError
from storage import parquet_writer
from storage.parquet_writer import (
    conform,
    convert_spool,
    parquet_path_for,
    union_schema,
    write_parquet,
)
from storage.schema import FLOW_SCHEMA, to_record_batch
from storage.spool import SpoolWriter
from tests.corpus import RECEIVED_AT_NS, group, group_ids
from tests.storage.synthetic import BASE_S, record_batches, row_set, write_spool

FINAL = "flowcap.202511220830-202511220835.0.0.parquet"
SPOOL = "flowcap.202511220830-202511220835.0.0.spool"


def test_union_schema_keeps_flow_order_and_only_present_columns():
    batches = record_batches(3, 5)
    schema = union_schema(b.schema for b in batches)
    order = [FLOW_SCHEMA.get_field_index(n) for n in schema.names if n in FLOW_SCHEMA.names]
    assert order == sorted(order)
    assert set(schema.names) == {n for b in batches for n in b.schema.names}
    odd = union_schema([pa.schema([("zz_new", pa.int8()), ("proto", pa.uint8())])])
    assert odd.names == ["proto", "zz_new"]


def test_rows_and_values_preserved_sorted_per_row_group(tmp_path):
    batches = record_batches(9, 300, step_s=20.0)  # 3 minutes, rows 60 s out of order
    schema = union_schema(b.schema for b in batches)
    written = write_parquet(batches, tmp_path / FINAL, schema, rows_per_group=1000)
    assert (written.rows, written.row_groups) == (2700, 3)
    file = pq.ParquetFile(tmp_path / FINAL)
    assert file.schema_arrow.remove_metadata().equals(schema)
    assert row_set([file.read()]) == row_set(batches)
    for index in range(file.num_row_groups):
        times = file.read_row_group(index, columns=["time_start"])["time_start"]
        assert pc.all(pc.greater_equal(times[1:], times[:-1])).as_py()
        statistics = file.metadata.row_group(index).column(0).statistics
        assert statistics.has_min_max
    encodings = file.metadata.row_group(0).column(0).encodings
    assert "DELTA_BINARY_PACKED" in encodings
    assert file.metadata.row_group(0).column(0).compression == "ZSTD"


def test_row_group_statistics_prune_a_time_filter(tmp_path):
    batches = record_batches(30, 100, step_s=120.0)  # an hour of flows
    schema = union_schema(b.schema for b in batches)
    write_parquet(batches, tmp_path / FINAL, schema, rows_per_group=500)
    start = pa.scalar((BASE_S + 1800) * 1000, pa.int64()).cast(FLOW_SCHEMA.field("time_start").type)
    condition = pc.field("time_start") >= start
    fragment = next(ds.dataset(tmp_path / FINAL, format="parquet").get_fragments())
    groups = fragment.split_by_row_group()
    kept = fragment.split_by_row_group(condition)
    assert len(groups) == 6
    assert len(kept) < len(groups)
    table = ds.dataset(tmp_path / FINAL, format="parquet").to_table(filter=condition)
    expected = [r for b in batches for r in b.to_pylist() if r["time_start"] >= start.as_py()]
    assert table.num_rows == len(expected)


def test_file_appears_only_complete(tmp_path, monkeypatch):
    final = tmp_path / FINAL
    seen = []
    real_publish = parquet_writer.publish

    def publish(temp, path):
        seen.append((temp.name, temp.exists(), path.exists()))
        assert pq.ParquetFile(temp).metadata.num_rows == 100  # whole before the rename
        real_publish(temp, path)

    monkeypatch.setattr(parquet_writer, "publish", publish)
    batches = record_batches(1, 100)
    write_parquet(batches, final, batches[0].schema)
    assert seen == [(f".{FINAL}.tmp", True, False)]
    assert sorted(os.listdir(tmp_path)) == [FINAL]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def write_table(self, table, row_group_size=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)
    batches = record_batches(1, 10)
    with pytest.raises(OSError):
        write_parquet(batches, tmp_path / FINAL, batches[0].schema)
    assert os.listdir(tmp_path) == []


def test_never_overwrites(tmp_path):
    final = tmp_path / FINAL
    final.write_bytes(b"earlier data")
    batches = record_batches(1, 10)
    with pytest.raises(FileExistsError):
        write_parquet(batches, final, batches[0].schema)
    assert final.read_bytes() == b"earlier data"
    assert os.listdir(tmp_path) == [FINAL]


def test_conform_fills_absent_columns_with_nulls():
    batch = record_batches(1, 4)[0]
    schema = pa.schema([FLOW_SCHEMA.field("src_addr6"), *batch.schema])
    conformed = conform(batch, schema)
    assert conformed.schema.equals(schema)
    assert conformed.column(0).null_count == 4


def test_convert_spool_is_idempotent(tmp_path):
    spool = tmp_path / SPOOL
    batches = record_batches(4, 25)
    write_spool(spool, batches)
    result = convert_spool(spool)
    assert result is not None and result.rows == 100 and result.parquet == tmp_path / FINAL
    assert not spool.exists()
    assert convert_spool(spool) is not None  # gone, and its file exists: done already
    metadata = pq.read_schema(tmp_path / FINAL).metadata
    assert metadata[b"flowcap.interval_start_s"] == b"1763800200"
    assert row_set([pq.read_table(tmp_path / FINAL)]) == row_set(batches)


def test_empty_spool_gives_no_file(tmp_path):
    spool = tmp_path / SPOOL
    SpoolWriter(spool).close()
    result = convert_spool(spool)
    assert result is not None and result.parquet is None
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):
        parquet_path_for(tmp_path / "x.spool")


@pytest.mark.corpus
def test_real_flows_round_trip(tmp_path):
    """Every corpus group's flows survive a Parquet round trip (groups that decode to
    no flows, e.g. template-only captures, have nothing to write)."""
    if not group_ids():
        pytest.skip("shared corpus not found")
    written = 0
    for index, group_id in enumerate(group_ids()):
        decoder = FlowDecoder()
        for datagram in group(group_id).datagrams():
            with contextlib.suppress(ParseError):  # malformed corpus datagrams are counted
                decoder.feed_datagram(datagram.payload, datagram.source, RECEIVED_AT_NS)
        batches = [to_record_batch(b) for b in decoder.flush()]
        if not batches:
            continue
        path = tmp_path / f"{index}" / FINAL
        path.parent.mkdir()
        write_parquet(batches, path, union_schema(b.schema for b in batches))
        assert row_set([pq.read_table(path)]) == row_set(batches), group_id
        written += 1
    assert written >= 80  # 85 of the 99 groups hold flow records
