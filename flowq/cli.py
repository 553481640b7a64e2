"""``flowq``: nfdump's command line over flowcap's files.

``flowq [options] [FILTER...]`` reads the flows below ``-R DIR`` / ``-r PATH`` (Parquet
files and the daemon's live spools, or a pcap / pcapng / raw export dump decoded in
memory), keeps those matching the filter and the ``-t`` window (pushed down to the
Parquet scan: only the needed columns are read, files and row groups outside the window
are skipped), and prints records, ``-s`` statistics, ``-A`` aggregates or a
``--series`` time series. Exit 0 on success (also when nothing matched), 1 on runtime
failures (no such directory, unreadable file), 2 on usage and filter errors.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from flowq.aggregate import DEFAULT_KEYS, Aggregator, key_input_columns, parse_keys
from flowq.filter_compile import compile_filter, filter_columns, time_bounds
from flowq.filter_lexer import FilterError
from flowq.filter_parser import parse_filter
from flowq.output import (
    OutputFormat,
    ProcessTimes,
    RecordWriter,
    Summary,
    parse_output_format,
    write_summary,
)
from flowq.sources import CaptureInput, capture_batches, is_capture
from flowq.stats import ORDERS, StatAccumulator, StatError, parse_stat, stat_input_columns, top
from flowq.table_output import write_aggregate, write_statistic
from flowq.timewindow import WindowError, parse_window
from storage.reader import ReadProblem, TimeWindow, flow_files, scan_sources, window_expression
from storage.schema import FLOW_SCHEMA

PROGRAM: Final = "flowq"
RECORD_ORDERS: Final = ("tstart", "tend", *ORDERS)
#: columns -o text formats and the summary read, beyond the filter's
_SUMMARY_COLUMNS: Final = ("packets", "bytes", "flows", "time_start", "time_end",
                           "out_packets", "out_bytes")  # fmt: skip


class UsageError(Exception):
    """Bad arguments: printed as one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Query flowcap's flow files with nfdump's filter language.",
    )
    parser.add_argument("filter", nargs="*", metavar="FILTER", help="nfdump filter expression")
    parser.add_argument(
        "-f",
        dest="filter_file",
        type=Path,
        metavar="FILE",
        help="read the filter from FILE ('#' comments allowed)",
    )
    parser.add_argument(
        "-R",
        dest="read_dirs",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="read every flow file below DIR (live spool included)",
    )
    parser.add_argument(
        "-r",
        dest="read_paths",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="read one file (Parquet, spool, pcap, pcapng, raw export dump) or a directory as -R",
    )
    parser.add_argument(
        "-t",
        dest="window",
        metavar="WINDOW",
        help="time window: YYYY/MM/DD.hh:mm[:ss][-YYYY/MM/DD.hh:mm[:ss]] or ISO-8601 START[/END]",
    )
    parser.add_argument(
        "-o",
        dest="output",
        default="line",
        metavar="FMT",
        help="line (default), long, extended, csv, json, ndjson, fmt:<%%tokens>",
    )
    parser.add_argument(
        "-s",
        dest="stats",
        action="append",
        default=[],
        metavar="TYPE[/ORDER]",
        help="top-N statistic (srcip dstip ip srcport dstport port proto srcas "
        "dstas as inif outif if exporter tos record); ORDER: flows packets "
        "bytes pps bps bpp",
    )
    parser.add_argument(
        "-n",
        dest="limit",
        type=int,
        default=10,
        metavar="N",
        help="rows of a statistic (default 10; 0: all)",
    )
    parser.add_argument(
        "-A",
        dest="aggregate",
        metavar="KEYS",
        help="aggregate by keys: srcip,dstip,srcport,dstport,proto,srcnet/N,dstnet/N,...",
    )
    parser.add_argument(
        "-a",
        dest="aggregate_5tuple",
        action="store_true",
        help="aggregate by the 5-tuple (srcip,dstip,srcport,dstport,proto)",
    )
    parser.add_argument(
        "-O",
        dest="order",
        choices=RECORD_ORDERS,
        metavar="ORDER",
        help="order records / aggregates: " + " ".join(RECORD_ORDERS),
    )
    parser.add_argument("-c", dest="count", type=int, metavar="N", help="print at most N records")
    parser.add_argument("-q", dest="quiet", action="store_true", help="no header, no summary")
    parser.add_argument(
        "-N", dest="plain", action="store_true", help="plain numbers (no 1.2 M scaling)"
    )
    parser.add_argument(
        "--utc", action="store_true", help="show times in UTC (default: local time, like nfdump)"
    )
    parser.add_argument(
        "--series", metavar="INTERVAL", help="flows/packets/bytes/bps per interval, e.g. 5m"
    )
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="draw the --series as a PNG graph"
    )
    return parser  # fmt: skip


def _filter_text(args: argparse.Namespace) -> str:
    if args.filter_file is not None:
        if args.filter:
            raise UsageError("give the filter either as arguments or with -f, not both")
        try:
            return args.filter_file.read_text()
        except OSError as error:
            raise UsageError(f"cannot read filter file {args.filter_file}: "
                             f"{error.strerror or error}") from None  # fmt: skip
    return " ".join(args.filter)


def _window(args: argparse.Namespace) -> TimeWindow | None:
    if args.window is None:
        return None
    start, end = parse_window(args.window)
    return TimeWindow.between(start, end)


class Query:
    """One flowq run: what to read, which rows, and where they go."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.filter_text = _filter_text(args)
        self.node = parse_filter(self.filter_text)
        self.expression = compile_filter(self.node)
        self.window = _window(args)
        self.format: OutputFormat = parse_output_format(args.output)
        self.stats = [parse_stat(text) for text in args.stats]
        keys = args.aggregate or (",".join(DEFAULT_KEYS) if args.aggregate_5tuple else None)
        self.aggregate_keys = parse_keys(keys) if keys else None
        if args.limit < 0:
            raise UsageError("-n must be >= 0")
        if args.count is not None and args.count < 0:
            raise UsageError("-c must be >= 0")
        self.paths = [*args.read_dirs, *args.read_paths]
        if not self.paths:
            raise UsageError("no flows to read: give -R DIR or -r PATH")
        self.problems: list[ReadProblem] = []

    def columns(self) -> list[str] | None:
        """The columns to read: all for record output, else what is used."""
        if not self.stats and self.aggregate_keys is None and self.args.series is None:
            return None
        needed = set(filter_columns(self.node)) | set(_SUMMARY_COLUMNS)
        for spec in self.stats:
            needed |= stat_input_columns(spec)
        if self.aggregate_keys is not None:
            needed |= key_input_columns(self.aggregate_keys)
        return [name for name in FLOW_SCHEMA.names if name in needed]

    def _pushdown_window(self) -> TimeWindow | None:
        """-t, narrowed by 'first seen' / 'last seen' terms that bound the whole filter."""
        start, end = time_bounds(self.node)
        window = self.window or TimeWindow()
        start_s = start.timestamp() if start else None
        end_s = end.timestamp() if end else None
        if start_s is not None and (window.start_s is None or start_s > window.start_s):
            window = TimeWindow(start_s, window.end_s)
        if end_s is not None and (window.end_s is None or end_s < window.end_s):
            window = TimeWindow(window.start_s, end_s)
        return None if window == TimeWindow() else window

    def batches(self, summary: Summary) -> Iterator[pa.RecordBatch]:
        """Matching batches from every input, in file order."""
        expression = self.expression
        if self.window is not None:
            condition = window_expression(self.window)
            if condition is not None:
                expression = expression & condition
        columns = self.columns()
        stored: list[Path] = []
        for path in self.paths:
            if path.is_file() and is_capture(path):
                yield from self._capture(path, expression, columns, summary)
            elif path.exists():
                stored.append(path)
            else:
                raise FileNotFoundError(2, "no such file or directory", str(path))
        if not stored:
            return
        sources = flow_files(stored, self._pushdown_window())
        for source in sources:
            _count_processed(source.path, summary)
        yield from scan_sources(sources, columns, expression, on_problem=self.problems.append)

    def _capture(
        self, path: Path, expression: pc.Expression, columns: list[str] | None, summary: Summary
    ) -> Iterator[pa.RecordBatch]:
        capture = CaptureInput(path)
        for batch in capture_batches(capture, columns):
            summary.add_processed(batch)
            matched = pa.Table.from_batches([batch]).filter(expression)
            yield from matched.to_batches()
        self.problems.extend(capture.problems)


def _count_processed(path: Path, summary: Summary) -> None:
    """Records read and the time window, from the Parquet footer (no data read)."""
    if path.suffix != ".parquet":
        return
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException):
        return
    summary.records_processed += metadata.num_rows
    summary.bytes_read += os.path.getsize(path)
    names = metadata.schema.names
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        first = last = None
        for index, name in enumerate(names):
            statistics = row_group.column(index).statistics
            if statistics is None or not statistics.has_min_max:
                continue
            if name == "time_start":
                first = _ms(statistics.min)
            elif name == "time_end":
                last = _ms(statistics.max)
        summary.add_window(first, last)


def _ms(value: object) -> int | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1000)  # type: ignore[union-attr]
    return int(value)  # type: ignore[call-overload]


def _run(query: Query, out: Sequence | object) -> None:
    args = query.args
    started_wall = time.perf_counter()
    summary = Summary()
    stat_accumulators = [StatAccumulator(spec) for spec in query.stats if spec.type != "record"]
    record_stats = [spec for spec in query.stats if spec.type == "record"]
    aggregator = Aggregator(query.aggregate_keys) if query.aggregate_keys else None
    writer = None
    collected: list[pa.RecordBatch] = []
    needs_all = bool(record_stats) or args.order is not None
    streaming = not stat_accumulators and aggregator is None and not needs_all and not args.series
    if streaming:
        writer = RecordWriter(query.format, sys.stdout, utc=args.utc, plain_numbers=args.plain,
                              quiet=args.quiet)  # fmt: skip
        writer.write_header()
    remaining = args.count
    series = None
    if args.series:
        from flowq.series import SeriesAccumulator, parse_series

        series = SeriesAccumulator(parse_series(args.series))
    for batch in query.batches(summary):
        summary.add_passed(batch)
        for accumulator in stat_accumulators:
            accumulator.add(batch)
        if aggregator is not None:
            aggregator.add(batch)
        if series is not None:
            series.add(batch)
        if needs_all and aggregator is None:
            collected.append(batch)
        if writer is not None and (remaining is None or remaining > 0):
            part = batch if remaining is None else batch.slice(0, remaining)
            writer.write_batch(part)
            if remaining is not None:
                remaining -= part.num_rows
    for problem in query.problems:
        print(f"{PROGRAM}: skipped {problem.path}: {problem.message}", file=sys.stderr)
    totals = (summary.flows, summary.packets, summary.bytes)
    if writer is not None:
        writer.finish()
    if aggregator is not None:
        limit = args.count or 0
        write_aggregate(sys.stdout, aggregator.result(args.order, limit), query.format,
                        utc=args.utc, plain=args.plain, quiet=args.quiet)  # fmt: skip
    elif needs_all and not stat_accumulators and not record_stats:
        _write_ordered(query, collected)
    for spec in query.stats:
        if spec.type == "record":
            table = pa.Table.from_batches(collected) if collected else pa.table({})
            ordered = _top_records(table, spec.order, args.limit)
            record_writer = RecordWriter(query.format, sys.stdout, utc=args.utc,
                                         plain_numbers=args.plain, quiet=args.quiet)  # fmt: skip
            if not args.quiet and query.format.is_text:
                shown = args.limit or "all"
                sys.stdout.write(f"Top {shown} flows ordered by {spec.order}:\n")
            record_writer.write_header()
            for part in ordered.to_batches():
                record_writer.write_batch(part)
            record_writer.finish()
        else:
            accumulator = next(a for a in stat_accumulators if a.spec is spec)
            write_statistic(sys.stdout, spec, accumulator.result(args.limit), totals, query.format,
                            limit=args.limit, utc=args.utc, plain=args.plain,
                            quiet=args.quiet)  # fmt: skip
    if series is not None:
        series.write(sys.stdout, query.format, utc=args.utc, plain=args.plain, quiet=args.quiet)
        if args.plot is not None:
            series.plot(args.plot)
    if query.format.prints_summary and not args.quiet:
        if query.window is not None:
            start_ms = None if query.window.start_s is None else int(query.window.start_s * 1000)
            end_ms = None if query.window.end_s is None else int(query.window.end_s * 1000)
            summary.clip_window(start_ms, end_ms)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - started_wall
        summary.times = ProcessTimes(usage.ru_stime, usage.ru_utime, wall, wall)
        write_summary(sys.stdout, summary, plain_numbers=args.plain, utc=args.utc)


def _top_records(table: pa.Table, order: str, limit: int) -> pa.Table:
    if table.num_rows == 0:
        return table
    if order in ("pps", "bps", "bpp"):
        from flowq.stats import with_rates

        rated = with_rates(table.append_column("first", table["time_start"])
                           .append_column("last", table["time_end"]))  # fmt: skip
        table = rated.drop_columns(["first", "last", "duration_ms"])
    tie = [n for n in ("time_start", "time_end") if n in table.column_names]
    if order == "flows" and "flows" not in table.column_names:
        return table.slice(0, limit) if limit else table
    return top(table, order, limit, tie)


def _write_ordered(query: Query, collected: list[pa.RecordBatch]) -> None:
    """``-O ORDER`` on records: one explicit sort, then print (``-c`` limits)."""
    args = query.args
    table = pa.Table.from_batches(collected) if collected else None
    writer = RecordWriter(query.format, sys.stdout, utc=args.utc, plain_numbers=args.plain,
                          quiet=args.quiet)  # fmt: skip
    writer.write_header()
    if table is not None and table.num_rows:
        if args.order in ("tstart", "tend"):
            column = "time_start" if args.order == "tstart" else "time_end"
            table = table.sort_by([(column, "ascending")])
            if args.count:
                table = table.slice(0, args.count)
        else:
            table = _top_records(table, args.order, args.count or 0)
        for batch in table.to_batches():
            writer.write_batch(batch)
    writer.finish()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        query = Query(args)
    except FilterError as error:
        print(error.render(_filter_text(args)), file=sys.stderr)
        return 2
    except (UsageError, StatError, WindowError, ValueError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    try:
        _run(query, sys.stdout)
    except FileNotFoundError as error:
        print(f"{PROGRAM}: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
