"""Per-file summaries (storage/summaries.py): written at conversion and by recovery,
atomically and best effort; their tables equal a plain per-key count of the file's
flows; names never taken for flows; unusable summaries are reported as such; the plan
that splits files into summarized, outside the window and to scan."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import summaries
from storage.naming import FileKind, FlowFileName, list_flow_files, next_sequence, parse_name
from storage.parquet_writer import convert_spool, union_schema, write_parquet
from storage.reader import TimeWindow, flow_files, plan_summaries
from storage.recovery import recover
from storage.schema import FLOW_SCHEMA
from storage.spool import SpoolWriter
from storage.summaries import (
    SUMMARY_KEYS,
    SummaryBuilder,
    SummaryError,
    SummaryTotals,
    WindowCover,
    key_set_for,
    open_summary,
    summary_path_for,
    write_missing_summaries,
)

BASE_S = 1_763_800_200  # 2025-11-22 08:30:00 UTC, a multiple of 300
MS = 1000


def varied_flows(
    rows: int,
    seed: int,
    t0_s: int = BASE_S,
    mixed: bool = True,
    hosts: tuple[int, int] = (40, 90),
    src_ports: int = 300,
) -> pa.RecordBatch:
    """Flows received in the 300 s from ``t0_s`` with keys from pools (Zipf-distributed
    ``hosts``, source and destination; so files share keys). ``mixed``: also IPv6, ICMP
    / ICMPv6 with type and code, a ``flows`` column with 0 and nulls, both-direction
    counters, masks, VLANs, next hops, IPv6 exporters, null ports and null times; else
    an IPv4 core template."""
    rng = np.random.default_rng(seed)
    end = t0_s * MS + rng.integers(0, 300 * MS, rows)
    start = end - rng.integers(0, 90 * MS, rows)
    proto = rng.choice(np.array([6, 17, 1, 58], np.uint8), rows, p=[0.6, 0.3, 0.05, 0.05])
    is_v6 = (rng.random(rows) < 0.3) if mixed else np.zeros(rows, bool)
    is_icmp = np.isin(proto, [1, 58])
    columns: dict[str, pa.Array] = {}

    def put(name: str, values: np.ndarray, null: np.ndarray | None = None) -> None:
        columns[name] = pa.array(values, mask=null).cast(FLOW_SCHEMA.field(name).type)

    def addresses(pool: int, base: int) -> tuple[np.ndarray, list[bytes | None]]:
        host = rng.zipf(1.4, rows) % pool
        v4 = (base + host).astype(np.uint32)
        v6 = [b"\xfd\x00" + bytes(12) + int(h).to_bytes(2, "big") for h in host] if mixed else []
        return v4, v6

    times_null = (rng.random(rows) < 0.02) if mixed else None
    put("time_start", start, times_null)
    put("time_end", end, np.roll(times_null, 1) if mixed else None)
    put("proto", proto)
    for side, pool, base in (("src", hosts[0], 0x0A000000), ("dst", hosts[1], 0xC0A80000)):
        v4, v6 = addresses(pool, base)
        put(f"{side}_addr", v4, is_v6)
        if mixed:
            columns[f"{side}_addr6"] = pa.array(
                [a if m else None for a, m in zip(v6, is_v6, strict=True)], pa.binary(16)
            )
    services = np.array([443, 80, 53, 22, 8443], np.uint16)
    dport = np.where(rng.random(rows) < 0.8, rng.choice(services, rows),
                     rng.integers(1024, 1100, rows))  # fmt: skip
    port_null = (rng.random(rows) < 0.01) if mixed else None
    put("src_port", np.where(is_icmp, 0, rng.integers(40000, 40000 + src_ports, rows)), port_null)
    put("dst_port", np.where(is_icmp, 0, dport), port_null)
    put("tos", rng.choice(np.array([0, 0, 46, 10]), rows))
    put("packets", rng.integers(1, 500, rows))
    put("bytes", rng.integers(40, 400_000, rows))
    put("in_if", rng.integers(1, 6, rows))
    put("out_if", rng.integers(1, 6, rows))
    put("src_as", rng.choice(np.array([0, 64512, 64513, 65000]), rows))
    put("dst_as", rng.choice(np.array([0, 64512, 15169, 13335]), rows))
    put("exporter", np.full(rows, 0x0A0000FE), (rng.random(rows) < 0.2) if mixed else None)
    if mixed:
        exporter6 = b"\xfd\x00" + bytes(13) + b"\x01"
        columns["exporter6"] = pa.array(
            [None if v else exporter6 for v in columns["exporter"].is_valid().to_pylist()],
            pa.binary(16),
        )
        put("icmp_type", rng.choice(np.array([0, 3, 8, 11]), rows), ~is_icmp)
        put("icmp_code", rng.integers(0, 3, rows), ~is_icmp)
        with_type_code = is_icmp & (rng.random(rows) < 0.5)
        put("icmp_type_code", rng.choice(np.array([0x0800, 0x0000, 0x0303]), rows),
            ~with_type_code)  # fmt: skip
        put("flows", rng.choice(np.array([1, 1, 2, 0]), rows), rng.random(rows) < 0.2)
        put("out_packets", rng.integers(0, 50, rows), rng.random(rows) < 0.5)
        put("out_bytes", rng.integers(0, 5000, rows), rng.random(rows) < 0.5)
        put("src_mask", rng.choice(np.array([0, 24, 16]), rows))
        put("dst_mask", rng.choice(np.array([0, 24, 8]), rows))
        put("src_vlan", rng.choice(np.array([0, 100, 200]), rows))
        put("dst_vlan", rng.choice(np.array([0, 100, 300]), rows))
        put("next_hop", rng.choice(np.array([0, 0x0A0000FF]), rows), is_v6)
        put("flow_direction", rng.integers(0, 2, rows))
        put("dst_tos", rng.choice(np.array([0, 46]), rows))
    ordered = [f for f in FLOW_SCHEMA if f.name in columns]
    return pa.RecordBatch.from_arrays([columns[f.name] for f in ordered], schema=pa.schema(ordered))


def interval_name(start_s: int, kind: FileKind, worker: int = 0, n: int = 0) -> str:
    return FlowFileName(start_s, start_s + 300, worker, n, kind).name


def converted(directory: Path, start_s: int, batches: list[pa.RecordBatch], worker: int = 0
              ) -> Path:  # fmt: skip
    """A finished file the daemon's way: spool, then ``convert_spool``."""
    directory.mkdir(parents=True, exist_ok=True)
    spool = directory / interval_name(start_s, FileKind.SPOOL, worker)
    writer = SpoolWriter(spool)
    for batch in batches:
        writer.append(batch)
    writer.close()
    result = convert_spool(spool)
    assert result is not None and result.parquet is not None
    return result.parquet


def reference_groups(table: pa.Table, keys: tuple[str, ...]) -> dict[tuple, tuple]:
    """Per key, (flows, packets, bytes, first, last), counted row by row in Python."""
    groups: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, None, None])
    names = set(table.column_names)
    for row in table.to_pylist():
        key = tuple(row[k] if k in names else None for k in keys)
        group = groups[key]
        group[0] += 1 if row.get("flows") is None else row["flows"]
        group[1] += row["packets"] or 0
        group[2] += row["bytes"] or 0
        if row["time_start"] is not None:
            group[3] = row["time_start"] if group[3] is None else min(group[3], row["time_start"])
        if row["time_end"] is not None:
            group[4] = row["time_end"] if group[4] is None else max(group[4], row["time_end"])
    return {key: tuple(group) for key, group in groups.items()}


def summary_groups(table: pa.Table, keys: tuple[str, ...]) -> dict[tuple, tuple]:
    out = {}
    for row in table.to_pylist():
        key = tuple(row[k] for k in keys)
        assert key not in out, f"key {key} twice"
        out[key] = (row["flows"], row["packets"], row["bytes"], row["first"], row["last"])
    return out


# -- names -----------------------------------------------------------------------------


def test_summary_names_are_never_taken_for_flow_files(tmp_path):
    flow_file = converted(tmp_path, BASE_S, [varied_flows(50, 1)])
    path = summary_path_for(flow_file)
    assert path is not None and path.exists()
    assert (
        path.name == interval_name(BASE_S, FileKind.PARQUET).removesuffix(".parquet") + ".summary"
    )
    assert parse_name(path.name) is None
    (tmp_path / f".{path.name}.tmp").write_bytes(b"stale")  # a crashed summary write
    assert [f.path for f in list_flow_files(tmp_path)] == [flow_file]
    assert [s.path for s in flow_files([tmp_path])] == [flow_file]
    assert next_sequence(tmp_path, BASE_S, 0) == 1
    assert summary_path_for(tmp_path / "foreign.parquet") is None
    assert summary_path_for(tmp_path / interval_name(BASE_S, FileKind.SPOOL)) is None


def test_every_stat_side_has_a_key_set():
    from flowq.stats import STAT_TYPES, side_input_columns

    for name, definition in STAT_TYPES.items():
        for side in definition.sides:
            assert key_set_for(side_input_columns(side)) is not None, name


# -- content ---------------------------------------------------------------------------


def test_conversion_writes_a_summary_equal_to_a_plain_count(tmp_path):
    batches = [varied_flows(700, seed, mixed=seed % 2 == 0) for seed in range(4)]
    flow_file = converted(tmp_path, BASE_S, batches)
    flows = pq.read_table(flow_file)
    summary = open_summary(flow_file)
    assert summary is not None
    tables = summary.read(SUMMARY_KEYS)
    for keys in SUMMARY_KEYS:
        table = tables[keys]
        assert table.column_names == [*keys, *summaries.MEASURES]
        assert table.schema.types[: len(keys)] == [FLOW_SCHEMA.field(k).type for k in keys]
        assert summary_groups(table, keys) == reference_groups(flows, keys), keys
    rows = flows.to_pylist()
    starts = [r["time_start"] for r in rows if r["time_start"] is not None]
    ends = [r["time_end"] for r in rows if r["time_end"] is not None]
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    assert summary.totals == SummaryTotals(
        rows=len(rows),
        flows=sum(1 if r.get("flows") is None else r["flows"] for r in rows),
        zero_flow_rows=sum(1 for r in rows if r.get("flows") == 0),
        packets=sum(r["packets"] for r in rows),
        bytes=sum(r["bytes"] for r in rows),
        out_packets=sum(r.get("out_packets") or 0 for r in rows),
        out_bytes=sum(r.get("out_bytes") or 0 for r in rows),
        time_start_min_ms=ms(min(starts)),
        time_start_max_ms=ms(max(starts)),
        time_end_min_ms=ms(min(ends)),
        time_end_max_ms=ms(max(ends)),
        time_start_nulls=len(rows) - len(starts),
        time_end_nulls=len(rows) - len(ends),
    )
    assert summary.totals.zero_flow_rows > 0 and summary.totals.time_end_nulls > 0


def test_buffering_and_merging_do_not_change_the_result(monkeypatch):
    batches = [varied_flows(300, seed) for seed in range(6)]
    whole = SummaryBuilder()
    whole.add(pa.Table.from_batches([b.cast(batches[0].schema) for b in batches]))
    monkeypatch.setattr(summaries, "BUFFER_ROWS", 250)
    monkeypatch.setattr(summaries, "MERGE_ROWS", 10)
    pieces = SummaryBuilder()
    for batch in batches:
        for offset in range(0, batch.num_rows, 70):
            pieces.add(batch.slice(offset, 70))
    a, b = whole.finish(), pieces.finish()
    assert a.totals == b.totals
    for keys in SUMMARY_KEYS:
        assert summary_groups(a.tables[keys], keys) == summary_groups(b.tables[keys], keys)


def test_small_key_sets_share_a_batch_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(summaries, "OWN_BATCH_ROWS", 30)
    monkeypatch.setattr(summaries, "MAX_KEYS_SHARE", 1.0)
    flow_file = converted(tmp_path, BASE_S, [varied_flows(400, 3)])
    summary = open_summary(flow_file)
    assert summary is not None
    batches = {index for index, _, _ in summary.places.values()}
    assert 1 < len(batches) < len(summary.places)
    flows = pq.read_table(flow_file)
    for keys, table in summary.read(SUMMARY_KEYS).items():
        assert summary_groups(table, keys) == reference_groups(flows, keys)


def test_an_empty_interval_has_an_empty_summary(tmp_path):
    flow_file = tmp_path / interval_name(BASE_S, FileKind.PARQUET)
    batch = varied_flows(10, 1).slice(0, 0)
    write_parquet([batch], flow_file, batch.schema)
    assert summaries.ensure_summary(flow_file) is not None
    summary = open_summary(flow_file)
    assert summary is not None and summary.totals == SummaryTotals()
    assert all(t.num_rows == 0 for t in summary.read(SUMMARY_KEYS).values())


# -- writing: atomic, best effort, by recovery, backfilled ------------------------------


def test_a_failed_summary_never_fails_the_conversion(tmp_path, monkeypatch, caplog):
    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(summaries, "fsync_directory", no_space)
    with caplog.at_level(logging.WARNING, logger="storage.summaries"):
        flow_file = converted(tmp_path, BASE_S, [varied_flows(100, 1)])
    assert "no summary for" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        flow_file.name,
        summary_path_for(flow_file).name,
    ]
    # renamed before the directory sync failed: complete, so usable
    assert open_summary(flow_file) is not None


def test_a_failing_builder_leaves_the_flows_and_no_summary(tmp_path, monkeypatch):
    def broken(self: SummaryBuilder, batch: pa.RecordBatch) -> None:
        raise pa.ArrowInvalid("boom")

    monkeypatch.setattr(SummaryBuilder, "add", broken)
    flow_file = converted(tmp_path, BASE_S, [varied_flows(100, 1), varied_flows(100, 2)])
    assert pq.read_metadata(flow_file).num_rows == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == [flow_file.name]
    assert open_summary(flow_file) is None


def test_a_write_error_leaves_no_temporary_file(tmp_path, monkeypatch):
    flow_file = tmp_path / interval_name(BASE_S, FileKind.PARQUET)
    batch = varied_flows(100, 1)
    write_parquet([batch], flow_file, batch.schema)

    def fail(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(summaries.os, "fsync", fail)
    assert summaries.publish_summary(flow_file) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [flow_file.name]


def test_recovery_writes_the_summary_a_crash_left_out(tmp_path):
    """Killed after the Parquet file was published, during the summary: the spool is
    still there (it goes last), so recovery finishes the summary."""
    batch = varied_flows(200, 4)
    spool = tmp_path / interval_name(BASE_S, FileKind.SPOOL)
    writer = SpoolWriter(spool)
    writer.append(batch)
    writer.close()
    flow_file = tmp_path / interval_name(BASE_S, FileKind.PARQUET)
    write_parquet([batch], flow_file, union_schema([batch.schema]))
    stale = tmp_path / f".{summary_path_for(flow_file).name}.tmp"
    stale.write_bytes(b"half a summary")
    assert recover(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        flow_file.name,
        summary_path_for(flow_file).name,
    ]
    summary = open_summary(flow_file)
    assert summary is not None and summary.totals.rows == 200


def test_write_missing_summaries_backfills_old_files(tmp_path):
    old = []
    for index in range(3):
        path = tmp_path / "2025" / interval_name(BASE_S + 300 * index, FileKind.PARQUET)
        path.parent.mkdir(exist_ok=True)
        batch = varied_flows(50, index)
        write_parquet([batch], path, batch.schema)
        old.append(path)
    summaries.ensure_summary(old[1])
    written = write_missing_summaries(tmp_path)
    assert written == [summary_path_for(old[0]), summary_path_for(old[2])]
    assert all(open_summary(path) is not None for path in old)
    assert write_missing_summaries(tmp_path) == []


# -- reading: unusable summaries ---------------------------------------------------------


def test_unusable_summaries_are_errors_and_missing_ones_none(tmp_path):
    flow_file = converted(tmp_path, BASE_S, [varied_flows(100, 1)])
    path = summary_path_for(flow_file)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(SummaryError, match="unreadable"):
        open_summary(flow_file)
    path.write_bytes(b"not arrow at all")
    with pytest.raises(SummaryError):
        open_summary(flow_file)
    path.write_bytes(good)
    with flow_file.open("ab") as extended:  # replaced under the same name
        extended.write(b"x")
    with pytest.raises(SummaryError, match="stale"):
        open_summary(flow_file)
    path.unlink()
    assert open_summary(flow_file) is None


def test_a_damaged_batch_is_an_error_when_read(tmp_path):
    flow_file = converted(tmp_path, BASE_S, [varied_flows(3000, 1)])
    path = summary_path_for(flow_file)
    data = bytearray(path.read_bytes())
    for offset in range(200, len(data) - 2000, 97):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        summary = open_summary(flow_file)
    except SummaryError:
        return  # caught at the footer already
    assert summary is not None
    with pytest.raises(SummaryError):
        summary.read(SUMMARY_KEYS)


def test_a_key_set_that_is_not_summarized_is_an_error(tmp_path):
    flow_file = converted(tmp_path, BASE_S, [varied_flows(100, 1)])
    summary = open_summary(flow_file)
    assert summary is not None
    with pytest.raises(SummaryError, match="not summarized"):
        summary.read([("src_addr", "proto")])


# -- windows and the plan ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "cover"),
    [
        ((None, None), WindowCover.WHOLE),
        ((100, 900), WindowCover.WHOLE),
        ((100, None), WindowCover.WHOLE),
        ((101, 900), WindowCover.PART),
        ((100, 899), WindowCover.PART),
        ((401, None), WindowCover.NONE),
        ((None, 299), WindowCover.NONE),
        ((400, 900), WindowCover.PART),
        ((None, 300), WindowCover.PART),
    ],
)
def test_window_cover(window, cover):
    totals = SummaryTotals(rows=5, time_start_min_ms=100, time_start_max_ms=400,
                           time_end_min_ms=300, time_end_max_ms=900)  # fmt: skip
    assert totals.window_cover(*window) is cover


def test_null_times_never_meet_a_bound():
    totals = SummaryTotals(rows=5, time_start_min_ms=100, time_start_max_ms=400,
                           time_end_min_ms=300, time_end_max_ms=900, time_end_nulls=1)  # fmt: skip
    assert totals.window_cover(0, None) is WindowCover.WHOLE
    assert totals.window_cover(0, 1000) is WindowCover.PART
    assert SummaryTotals(rows=2, time_start_nulls=2).window_cover(0, None) is WindowCover.NONE


def test_plan_summaries(tmp_path):
    whole = converted(tmp_path, BASE_S, [varied_flows(100, 1, mixed=False)])
    cut = converted(tmp_path, BASE_S + 300, [varied_flows(100, 2, BASE_S + 300, mixed=False)])
    without = tmp_path / interval_name(BASE_S + 600, FileKind.PARQUET)
    batch = varied_flows(100, 3, mixed=False, t0_s=BASE_S + 600)
    write_parquet([batch], without, batch.schema)
    broken = converted(tmp_path, BASE_S + 900, [varied_flows(100, 4, BASE_S + 900, mixed=False)])
    summary_path_for(broken).write_bytes(b"garbage")
    live = SpoolWriter(tmp_path / interval_name(BASE_S + 1200, FileKind.SPOOL))
    live.append(varied_flows(10, 5, BASE_S + 1200, mixed=False))
    try:
        sources = flow_files([tmp_path])
        plan = plan_summaries(sources)
        assert [s.path for s, _ in plan.whole] == [whole, cut]
        assert plan.outside == []
        assert [s.path for s in plan.scan] == [without, broken, live.path]
        # flows start up to 90 s before their file's interval: the window cuts the second
        window = TimeWindow(BASE_S - 100, BASE_S + 300 + 30)
        plan = plan_summaries(sources, window)
        assert [s.path for s, _ in plan.whole] == [whole]
        assert cut in [s.path for s in plan.scan]
        plan = plan_summaries(sources, TimeWindow(BASE_S + 1000, None))
        assert [s.path for s, _ in plan.outside] == [whole, cut]
    finally:
        live.close()


def test_measures_that_do_not_add_up_are_an_error(tmp_path, monkeypatch):
    flow_file = converted(tmp_path, BASE_S, [varied_flows(300, 1)])
    summary = open_summary(flow_file)
    assert summary is not None
    summary.read(SUMMARY_KEYS)
    changed = summaries.replace(summary, totals=summaries.replace(summary.totals, bytes=1))
    with pytest.raises(SummaryError, match="does not add up"):
        changed.read([("proto",)])


def test_a_key_set_with_nearly_a_key_per_flow_is_left_out_but_ports_are_kept(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(summaries, "OWN_BATCH_ROWS", 100)  # the share decides, not the size
    batch = varied_flows(3000, 7, mixed=False, hosts=(2500, 90), src_ports=20000)
    flow_file = converted(tmp_path, BASE_S, [batch])
    summary = open_summary(flow_file)
    assert summary is not None
    assert "src_addr,src_addr6" not in summary.places and "dst_addr,dst_addr6" in summary.places
    with pytest.raises(SummaryError, match="no table for src_addr,src_addr6"):
        summary.read([("dst_addr", "dst_addr6"), ("src_addr", "src_addr6")])
    flows = pq.read_table(flow_file)
    ports = summary.read([("src_port",)])[("src_port",)]
    assert ports.num_rows > summaries.MAX_KEYS_SHARE * flows.num_rows  # kept: bounded keys
    assert summary_groups(ports, ("src_port",)) == reference_groups(flows, ("src_port",))
    tables = summary.read([("dst_addr", "dst_addr6")])
    assert summary_groups(tables[("dst_addr", "dst_addr6")], ("dst_addr", "dst_addr6")) == (
        reference_groups(flows, ("dst_addr", "dst_addr6"))
    )
