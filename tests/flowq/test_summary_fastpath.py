"""flowq's ``-s`` statistics from per-file summaries (storage/summaries.py) print exactly
what a full scan prints: every statistic type and order, ``-n`` limits, output formats,
``-t`` windows that take files whole, cut them or miss them; mixed with files that
must be scanned (the live spool, a file without summary, one with a damaged summary).
Queries a summary cannot answer (a filter, ``-c``, ``-A``, ``:p`` on a side without
protocol) scan.

``bench_report`` measures what "top 10 source IPs by bytes" (and top destination and
source ports) reads with and without summaries:
``python -m tests.flowq.test_summary_fastpath [FILES [FLOWS_PER_FILE]]`` (default 50
files of 100 000 flows); a test runs it small. Speed is never asserted.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from flowq import cli, query
from flowq.cli import main as flowq_main
from flowq.stats import (
    STAT_TYPES,
    StatAccumulator,
    StatSpec,
    side_input_columns,
    side_keys,
    stat_input_columns,
)
from storage.naming import FileKind
from storage.parquet_writer import write_parquet
from storage.spool import SpoolWriter
from storage.summaries import summary_path_for
from tests.storage.test_summaries import BASE_S, converted, interval_name, varied_flows

ALL_ORDERS = "/flows/packets/bytes/pps/bps/bpp"
UTC_DAY = "2025/11/22"


def _time(offset_s: int) -> str:
    """nfdump's -t time of BASE_S + offset (BASE_S is 08:30:00 UTC)."""
    total = 8 * 3600 + 30 * 60 + offset_s
    return f"{UTC_DAY}.{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


@pytest.fixture(scope="module")
def flow_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Eight intervals below one directory, as the daemon leaves them plus accidents:
    summarized files (two workers, two templates; null times in the mixed ones, so a
    window never takes those whole; one without source ports in its summary), a file
    without summary, one with a damaged summary, the live spool, and a file three hours
    later."""
    base = tmp_path_factory.mktemp("summaries") / "flows"
    day = base / "2025" / "11" / "22"
    converted(day, BASE_S, [varied_flows(1500, 10), varied_flows(800, 11, mixed=False)])
    converted(day, BASE_S + 300, [varied_flows(1200, 12, BASE_S + 300)])
    converted(day, BASE_S + 300, [varied_flows(900, 13, BASE_S + 300, mixed=False)], worker=1)
    converted(day, BASE_S + 600, [varied_flows(1000, 14, BASE_S + 600)])
    # nearly a source port per flow: the summary leaves them out, -s srcport scans it
    converted(day, BASE_S + 600, [varied_flows(2500, 20, BASE_S + 600, src_ports=9000)], worker=1)
    plain = day / interval_name(BASE_S + 900, FileKind.PARQUET)
    batch = varied_flows(700, 15, BASE_S + 900)
    write_parquet([batch], plain, batch.schema)
    damaged = converted(day, BASE_S + 1200, [varied_flows(600, 16, BASE_S + 1200)])
    summary_path_for(damaged).write_bytes(b"not a summary")
    late = varied_flows(500, 17, BASE_S + 3 * 3600, mixed=False)  # no null times
    converted(day, BASE_S + 3 * 3600, [late])
    live = SpoolWriter(day / interval_name(BASE_S + 1500, FileKind.SPOOL))
    live.append(varied_flows(300, 18, BASE_S + 1500))
    live.append(varied_flows(200, 19, BASE_S + 1500, mixed=False))
    live.sync()
    yield base
    live.close()


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = flowq_main(["--utc", *args])
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def _comparable(text: str) -> str:
    """Output without what differs by design: bytes read and CPU times."""
    text = re.sub(r", Bytes read: \d+", "", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("Sys: "))


def both_ways(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[str, str, int]:
    """(with summaries, full scan, files merged from summaries); stderr must agree."""
    merged: list[int] = []
    real_add = StatAccumulator.add_grouped

    def counting(self: StatAccumulator, tables: list[pa.Table]) -> None:
        merged.append(1)
        real_add(self, tables)

    with monkeypatch.context() as patch:
        patch.setattr(StatAccumulator, "add_grouped", counting)
        fast, fast_err = run(*args)
    with monkeypatch.context() as patch:
        patch.setattr(cli, "batches_beyond_summaries", lambda *_: None)
        slow, slow_err = run(*args)
    assert fast_err == slow_err
    return _comparable(fast), _comparable(slow), len(merged)


def _bytes_read(text: str) -> int:
    match = re.search(r"Bytes read: (\d+)", text)
    assert match is not None, text
    return int(match[1])


# -- the same answers ----------------------------------------------------------------------


@pytest.mark.parametrize("stat_type", sorted(STAT_TYPES))
def test_every_statistic_and_order_equals_a_full_scan(monkeypatch, flow_dir, stat_type):
    fast, slow, merged = both_ways(monkeypatch, "-R", str(flow_dir), "-s", stat_type + ALL_ORDERS,
                                   "-n", "4", "-N")  # fmt: skip
    assert fast == slow
    assert merged >= 5  # files x sides x orders: the summaries were used
    assert "Summary: total flows:" in fast


@pytest.mark.parametrize(
    "args",
    [
        ("-s", "srcip/bytes", "-s", "dstport", "-s", "proto/packets", "-n", "0"),
        ("-s", "ip/bytes", "-s", "port/bps", "-n", "0", "-o", "csv"),
        ("-s", "dstip/bytes", "-n", "7", "-o", "json"),
        ("-s", "srcas/flows", "-s", "if/bpp", "-o", "ndjson"),
        ("-s", "exporter", "-s", "router/bytes", "-q"),
        ("-s", "dstport:p/bytes", "-n", "12"),
        ("-s", "srcip/bytes", "-o", "long", "-n", "3"),
    ],
)
def test_formats_limits_and_several_statistics(monkeypatch, flow_dir, args):
    fast, slow, merged = both_ways(monkeypatch, "-R", str(flow_dir), *args)
    assert fast == slow
    assert merged


@pytest.mark.parametrize(
    ("window", "expect_summaries"),
    [
        ((-200, 900), True),  # the first three intervals whole, the rest cut or missed
        ((0, 620), True),  # starts inside the first interval's flows: it is scanned
        ((-200, None), True),
        ((None, 600), True),
        ((250, 280), False),  # one file's flows, cut: nothing whole
        ((3 * 3600 - 200, 3 * 3600 + 400), True),  # only the late file
        ((5 * 3600, 6 * 3600), False),  # nothing
    ],
)
def test_windows_equal_a_full_scan(monkeypatch, flow_dir, window, expect_summaries):
    start, end = window
    text = (_time(start) if start is not None else "2025/01/01.00:00:00") + (
        f"-{_time(end)}" if end is not None else ""
    )
    fast, slow, merged = both_ways(monkeypatch, "-R", str(flow_dir), "-t", text,
                                   "-s", "srcip/bytes", "-s", "dstport" + ALL_ORDERS)  # fmt: skip
    assert fast == slow
    assert bool(merged) is expect_summaries


def test_mixed_mode_reads_summaries_and_scans_the_rest(monkeypatch, flow_dir):
    scanned: list[str] = []
    real_scan = query.scan_sources

    def spy(sources: list, *args: object, **kwargs: object) -> object:
        scanned.extend(s.path.name for s in sources)
        return real_scan(sources, *args, **kwargs)

    monkeypatch.setattr(query, "scan_sources", spy)
    fast, _ = run("-R", str(flow_dir), "-s", "srcip/bytes")
    assert scanned == [
        interval_name(BASE_S + 900, FileKind.PARQUET),  # no summary
        interval_name(BASE_S + 1200, FileKind.PARQUET),  # a damaged one
        interval_name(BASE_S + 1500, FileKind.SPOOL),  # the live interval
    ]
    monkeypatch.setattr(cli, "batches_beyond_summaries", lambda *_: None)
    slow, _ = run("-R", str(flow_dir), "-s", "srcip/bytes")
    assert _comparable(fast) == _comparable(slow)
    assert _bytes_read(fast) < _bytes_read(slow)


@pytest.mark.parametrize(
    "args",
    [
        ("-s", "srcip/bytes", "proto", "tcp"),  # a filter needs the flows
        ("-s", "srcip/bytes", "-c", "100"),  # so does -c: the first N flows
        ("-s", "srcip/bytes", "-A", "srcip"),
        (
            "-s",
            "srcip:p/bytes",
        ),  # no summary keyed by address and protocol
        ("-s", "record/bytes", "-s", "srcip"),
        ("-s", "srcip", "-b"),
    ],
)
def test_queries_a_summary_cannot_answer_scan(monkeypatch, flow_dir, args):
    fast, slow, merged = both_ways(monkeypatch, "-R", str(flow_dir), *args)
    assert fast == slow
    assert merged == 0


def test_top_n_is_exact_across_files(monkeypatch, tmp_path):
    """A source second in every file but first overall: per-file top-N would miss it."""

    def flows(start_s: int, bytes_by_source: dict[int, int]) -> pa.RecordBatch:
        sources = list(bytes_by_source)
        ms = pa.array([start_s * 1000] * len(sources), pa.int64())
        return pa.RecordBatch.from_pydict(
            {
                "time_start": ms.cast(pa.timestamp("ms", tz="UTC")),
                "time_end": ms.cast(pa.timestamp("ms", tz="UTC")),
                "src_addr": pa.array(sources, pa.uint32()),
                "packets": pa.array([1] * len(sources), pa.uint64()),
                "bytes": pa.array(list(bytes_by_source.values()), pa.uint64()),
            }
        )

    steady, spikes = 0x0A000064, [0x0A000001, 0x0A000002, 0x0A000003]
    for index, spike in enumerate(spikes):
        start = BASE_S + 300 * index
        converted(tmp_path, start, [flows(start, {spike: 1000, steady: 600, 0x0A0000C8: 10})])
    fast, slow, merged = both_ways(monkeypatch, "-R", str(tmp_path), "-s", "srcip/bytes",
                                   "-n", "1", "-o", "csv")  # fmt: skip
    assert fast == slow and merged == 3
    assert "10.0.0.100" in fast and "10.0.0.1," not in fast


def test_no_flows_at_all(monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    fast, slow, merged = both_ways(monkeypatch, "-R", str(tmp_path / "empty"), "-s", "srcip")
    assert fast == slow and merged == 0


# -- the key a summary must hold ------------------------------------------------------------


@pytest.mark.parametrize("by_proto", [False, True])
@pytest.mark.parametrize("stat_type", sorted(STAT_TYPES))
def test_side_columns_are_what_a_statistic_reads(stat_type, by_proto):
    """``side_input_columns`` (which summary key set a side needs) must follow the
    columns the statistic reads and its key rules use, or merged keys would differ."""
    spec = StatSpec(stat_type, "flows", by_proto)
    sides = STAT_TYPES[stat_type].sides
    per_side = [side_input_columns(side, by_proto) for side in sides]
    measures = {"flows", "packets", "bytes", "time_start", "time_end"}
    assert set().union(*per_side) | measures == stat_input_columns(spec)
    batch = varied_flows(2000, 5)
    for side, columns in zip(sides, per_side, strict=True):
        only = batch.select([name for name in batch.schema.names if name in columns])
        assert side_keys(only, side) == side_keys(batch, side)


# -- what it reads -----------------------------------------------------------------------------


def _rchar() -> int:
    """Bytes this process asked read()/pread() for (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def write_bench_files(directory: Path, files: int, flows_per_file: int) -> dict[str, int]:
    """``files`` intervals of ``flows_per_file`` vDS-like flows, written the daemon's way
    (5 000 source and 20 000 destination hosts, Zipf; 25 000 source ports); sizes."""
    flow_files = []
    for index in range(files):
        start = BASE_S + 300 * index
        batch = varied_flows(flows_per_file, 1000 + index, start, mixed=False,
                             hosts=(5000, 20000), src_ports=25000)  # fmt: skip
        flow_files.append(converted(directory, start, [batch]))
    summaries = [summary_path_for(p) for p in flow_files]
    return {
        "flow_file_bytes": sum(p.stat().st_size for p in flow_files),
        "summary_file_bytes": sum(p.stat().st_size for p in summaries if p is not None),
    }


def bench_query(directory: Path, stat: str) -> dict[str, float]:
    """``flowq -s STAT -n 10`` with and without summaries, each run twice (the second
    is reported): bytes the process read, flowq's "Bytes read", wall time."""
    args = ["-R", str(directory), "-s", stat, "-n", "10"]
    results: dict[str, float] = {}
    outputs = {}
    for name in ("summaries", "full_scan", "summaries_again", "full_scan_again"):
        patch = pytest.MonkeyPatch()
        if name.startswith("full_scan"):
            patch.setattr(cli, "batches_beyond_summaries", lambda *_: None)
        try:
            before, started = _rchar(), time.perf_counter()
            out, _ = run(*args)
            wall = time.perf_counter() - started
            results[f"{name}_read_bytes"] = _rchar() - before
        finally:
            patch.undo()
        results[f"{name}_wall_s"] = wall
        results[f"{name}_flowq_bytes_read"] = _bytes_read(out)
        outputs[name] = _comparable(out)
    assert outputs["summaries"] == outputs["full_scan"]
    return results


def bench_report(directory: Path, files: int, flows_per_file: int, stats: list[str]) -> str:
    sizes = write_bench_files(directory, files, flows_per_file)
    lines = [
        f"{files} files x {flows_per_file} flows: flow files {sizes['flow_file_bytes']:,} "
        f"bytes, summaries {sizes['summary_file_bytes']:,} bytes"
    ]
    for stat in stats:
        results = bench_query(directory, stat)
        lines.append(f"flowq -s {stat} -n 10:")
        for name in ("summaries_again", "full_scan_again"):
            lines.append(
                f"  {name.removesuffix('_again'):<10} read {results[name + '_read_bytes']:>13,.0f}"
                f" bytes (flowq 'Bytes read' {results[name + '_flowq_bytes_read']:,.0f}), "
                f"wall {results[name + '_wall_s']:.3f} s"
            )
    return "\n".join(lines)


def test_bench_top_talkers_small(tmp_path, capsys):
    report = bench_report(tmp_path, 4, 5000, ["srcip/bytes"])
    with capsys.disabled():
        print("\n" + report)
    results = bench_query(tmp_path, "srcip/bytes")
    assert results["summaries_flowq_bytes_read"] < results["full_scan_flowq_bytes_read"]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    with tempfile.TemporaryDirectory() as scratch:
        print(bench_report(Path(scratch), count, rows, ["srcip/bytes", "dstport", "srcport"]))
