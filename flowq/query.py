"""One flowq run's plan: what to read (files, columns, filter, window), and whether
per-file summaries can answer it (``batches_beyond_summaries``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from flowq.aggregate import (
    DEFAULT_KEYS,
    AggregateKey,
    Aggregator,
    BidirAggregator,
    bidir_input_columns,
    key_input_columns,
    parse_keys,
)
from flowq.filter_ast import AnyFlow
from flowq.filter_compile import compile_filter, filter_columns, time_bounds
from flowq.filter_parser import parse_filter
from flowq.output import (
    OutputFormat,
    Summary,
    parse_output_format,
)
from flowq.output_machine import RECORD_FIELDS
from flowq.output_text import ADDRESS_COLUMNS
from flowq.sources import CaptureInput, capture_batches, is_capture
from flowq.stats import (
    ICMP_PORT_COLUMNS,
    RECORD_STAT,
    StatAccumulator,
    parse_stats,
    stat_input_columns,
)
from flowq.table_output import (
    aggregate_layout,
    layout_columns,
    layout_prints_flags,
)
from flowq.timewindow import parse_interval, parse_window
from storage.reader import (
    ReadProblem,
    TimeWindow,
    flow_files,
    plan_summaries,
    scan_sources,
    window_expression,
)
from storage.schema import FLOW_SCHEMA
from storage.summaries import SummaryError

#: columns -o text formats and the summary read, beyond the filter's
_SUMMARY_COLUMNS: Final = ("packets", "bytes", "flows", "time_start", "time_end",
                           "out_packets", "out_bytes")  # fmt: skip


#: what ``-O`` ordering of records reads (the order values and the ties)
_ORDER_COLUMNS: Final = ("flows", "packets", "bytes", "out_packets", "out_bytes",
                         "time_start", "time_end", "src_addr", "src_addr6", "dst_addr",
                         "dst_addr6", "src_port", "dst_port", "proto")  # fmt: skip


class UsageError(Exception):
    """Bad arguments: printed as one line, exit 2."""


def filter_text_of(args: argparse.Namespace) -> str:
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
    """One flowq run: what to read, which rows, what to compute and how to print it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.filter_text = filter_text_of(args)
        self.node = parse_filter(self.filter_text)
        self.expression = compile_filter(self.node)
        self.window = _window(args)
        self.stats = [spec for text in args.stats for spec in parse_stats(text)]
        self.record_stats = [spec for spec in self.stats if spec.type == RECORD_STAT]
        self.element_stats = [spec for spec in self.stats if spec.type != RECORD_STAT]
        self.bidir = bool(args.bidir or args.bidir_guess)
        if self.bidir and args.aggregate:
            raise UsageError("-b/-B aggregate by the 5-tuple: they do not take -A")
        keys = args.aggregate or (",".join(DEFAULT_KEYS) if args.aggregate_5tuple else None)
        self.aggregate_keys = parse_keys(keys) if keys else None
        for name, value in (("-n", args.limit), ("-c", args.count)):
            if value is not None and value < 0:
                raise UsageError(f"{name} must be >= 0")
        self.paths = [*args.read_dirs, *args.read_paths]
        if not self.paths:
            raise UsageError("no flows to read: give -R DIR or -r PATH")
        self.aggregating = self.bidir or self.aggregate_keys is not None
        self.series_interval = parse_interval(args.series) if args.series else None
        if args.plot is not None and args.series is None:
            raise UsageError("--plot draws the --series: give --series INTERVAL too")
        self.format = self._format()
        self.problems: list[ReadProblem] = []

    def _format(self) -> OutputFormat:
        """``-o``, else nfdump's layout for aggregated rows, else ``line``."""
        if self.args.output is not None:
            return parse_output_format(self.args.output)
        if self.aggregating or self.record_stats:
            keys = None if self.args.aggregate is None else self.aggregate_keys
            return aggregate_layout(keys, bidir=self.bidir)
        return parse_output_format("line")

    @property
    def stat_limit(self) -> int:
        """-n for statistics: 10 unless given, 0 = all."""
        return 10 if self.args.limit is None else self.args.limit

    @property
    def row_limit(self) -> int:
        """-n for aggregated and -O ordered rows: all unless given."""
        return self.args.limit or 0

    @property
    def prints_aggregate(self) -> bool:
        """-A/-a/-b rows are printed unless statistics replace them (as in nfdump)."""
        return self.aggregating and not self.stats

    @property
    def orders_records(self) -> bool:
        return self.args.order is not None and not self.aggregating and not self.stats

    def new_aggregator(self) -> Aggregator | BidirAggregator:
        """The flow cache of -A/-a/-b and -s record (the 5-tuple unless told)."""
        flags = self._prints_flags()
        if self.bidir:
            return BidirAggregator(guess_direction=self.args.bidir_guess, with_flags=flags)
        return Aggregator(self._cache_keys(), with_flags=flags, carry=self._carried())

    def _prints_flags(self) -> bool:
        """nfdump ORs the flags of -a / -b rows; -A KEYS rows print no flags."""
        return (
            self.format.is_text and self.args.aggregate is None and layout_prints_flags(self.format)
        )

    def _carried(self) -> list[str]:
        """Other fields an -a row prints (nfdump: the first record's; -A KEYS: none)."""
        if not self.format.is_text or self.args.aggregate is not None or self.bidir:
            return []
        return layout_columns(self.format)

    def _cache_keys(self) -> list[AggregateKey]:
        return self.aggregate_keys or parse_keys(",".join(DEFAULT_KEYS))

    def columns(self) -> list[str]:
        """The columns to read: what the filter, the summary lines and the output use
        (a record dump: the columns its layout or the CSV/JSON fields print)."""
        needed = set(filter_columns(self.node)) | set(_SUMMARY_COLUMNS)
        printed = self.format.prints_records and not self.stats and not self.aggregating
        if printed and self.args.series is None:
            if self.format.layout is not None:
                needed |= set(self.format.layout.reads)
            elif not self.format.is_text:
                needed |= {twin for name in RECORD_FIELDS
                           for twin in (name, ADDRESS_COLUMNS.get(name, name))}  # fmt: skip
            if self.orders_records:
                needed |= set(_ORDER_COLUMNS)
        for spec in self.element_stats:
            needed |= stat_input_columns(spec)
        if self.record_stats or self.prints_aggregate:
            if self.bidir:
                needed |= bidir_input_columns()
            else:
                needed |= key_input_columns(self._cache_keys())
            if self._prints_flags():
                needed |= {"tcp_flags", "proto"}
            for name in self._carried():
                needed |= set(ICMP_PORT_COLUMNS) if name == "dst_port" else {name}
        return [name for name in FLOW_SCHEMA.names if name in needed]

    def check_paths(self) -> None:
        """FileNotFoundError for a missing -R/-r path, before anything is printed."""
        for path in self.paths:
            if not path.exists():
                raise FileNotFoundError(2, "no such file or directory", str(path))

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

    def scan_expression(self) -> pc.Expression:
        """The filter and nfdump's ``-t`` rule, as the scan applies them to each row."""
        condition = None if self.window is None else window_expression(self.window)
        return self.expression if condition is None else self.expression & condition

    def batches(self, summary: Summary) -> Iterator[pa.RecordBatch]:
        """Matching batches from every input, in file order."""
        expression = self.scan_expression()
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


#: options that print the same whether statistics come from summaries or a scan; any
#: other option (a new one too) left at its default, else flowq scans
_SUMMARY_SAFE_OPTIONS: Final = frozenset({"filter", "filter_file", "read_dirs", "read_paths",
                                          "window", "output", "stats", "limit", "quiet",
                                          "plain", "utc"})  # fmt: skip


def batches_beyond_summaries(
    query: Query,
    summary: Summary,
    accumulators: list[StatAccumulator],
    defaults: dict[str, object],
) -> Iterator[pa.RecordBatch] | None:
    """Beyond nfdump: ``-s`` statistics without a filter (``-t`` aside) merge the per-file
    summaries the daemon writes at rotation (``storage.summaries``) instead of reading
    the flows, for every file the window takes whole; the rest (the live spool, files
    without a summary or cut by the window) is scanned, and its batches are returned.
    The numbers are those of a full scan. None when the query needs the flows.
    ``defaults``: every option's default (an option away from it needs the flows,
    unless ``_SUMMARY_SAFE_OPTIONS`` lists it)."""
    options = vars(query.args)
    key_sets = [accumulator.summary_key_sets() for accumulator in accumulators]
    if (
        (not accumulators and query.format.prints_records)
        or query.record_stats
        or not isinstance(query.node, AnyFlow)
        or any(options[n] != defaults.get(n) for n in options if n not in _SUMMARY_SAFE_OPTIONS)
        or any(sets is None for sets in key_sets)
        or any(path.is_file() and is_capture(path) for path in query.paths)
    ):
        return None
    plan = plan_summaries(flow_files(query.paths, query._pushdown_window()), query.window)
    rescan = list(plan.scan)
    merged = [file_summary for _, file_summary in plan.outside]
    for source, file_summary in plan.whole:
        wanted = [key_set for sets in key_sets for key_set in sets or ()]
        try:
            tables = file_summary.read(wanted) if wanted else {}
        except SummaryError:
            rescan.append(source)
            continue
        merged.append(file_summary)
        for accumulator, sets in zip(accumulators, key_sets, strict=True):
            accumulator.add_grouped([tables[key_set] for key_set in sets or ()])
        t = file_summary.totals  # Summary.add_passed's sums; flows 0 count as 1 there
        summary.merge(Summary(flows=t.flows + t.zero_flow_rows, packets=t.packets + t.out_packets,
                              bytes=t.bytes + t.out_bytes, first_ms=t.time_start_min_ms,
                              last_ms=t.time_end_max_ms, records_passed=t.rows))  # fmt: skip
    for file_summary in merged:  # what _count_processed reads from a Parquet footer
        t = file_summary.totals
        summary.merge(Summary(window_first_ms=t.time_start_min_ms,
                              window_last_ms=t.time_end_max_ms, records_processed=t.rows,
                              bytes_read=file_summary.size_bytes))  # fmt: skip
    rescan.sort()
    for source in rescan:
        _count_processed(source.path, summary)
    return scan_sources(rescan, query.columns(), query.scan_expression(),
                        on_problem=query.problems.append)  # fmt: skip
