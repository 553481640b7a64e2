"""``flowq``: nfdump's command line over flowcap's files.

``flowq [options] [FILTER...]`` reads the flows below ``-R DIR`` / ``-r PATH`` (Parquet
files and the daemon's live spools, or a pcap / pcapng / raw export dump decoded in
memory), keeps those matching the filter and the ``-t`` window (pushed down to the
Parquet scan: only the needed columns are read, files and row groups outside the window
are skipped), and prints records, ``-s`` statistics, ``-A`` / ``-a`` / ``-b`` / ``-B``
aggregates or a ``--series`` time series. Exit 0 on success (also when nothing matched),
1 on runtime failures (no such directory, unreadable file), 2 on usage and filter errors.

As nfdump 1.7.1 does: ``-c N`` processes only the first N matching flows (records,
statistics, aggregates and the summary see those); ``-n`` is 10 rows of a statistic
unless given, and limits ``-A`` / ``-O`` output only when given; ``-s`` replaces the
printing of ``-A`` rows (``-s record`` uses them); several ``-s`` print in the order
given, ``-s record`` first. Where flowq differs: aggregated rows print earliest first
without ``-O`` (nfdump: hash order), ``-a`` without ``-o`` prints the ``line`` layout
(nfdump 1.7.1: a broken NSEL layout), ``Total flows processed`` counts every record of
the files read even with ``-c`` (nfdump: those read before it stopped).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

import pyarrow as pa

from flowq.filter_lexer import FilterError
from flowq.output import (
    NO_MATCH_TEXT,
    ProcessTimes,
    RecordWriter,
    Summary,
    write_summary,
)
from flowq.query import Query, UsageError, batches_beyond_summaries, filter_text_of
from flowq.series import SeriesAccumulator
from flowq.stats import (
    ORDERS,
    StatAccumulator,
    StatError,
    record_order_values,
    top,
)
from flowq.table_output import (
    write_aggregate,
    write_record_stat,
    write_statistic,
)
from flowq.timewindow import WindowError
from storage.reader import window_ms

PROGRAM: Final = "flowq"
RECORD_ORDERS: Final = ("tstart", "tend", *ORDERS)


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
        metavar="FMT",
        help="line (default), long, extended, csv, json, ndjson, fmt:<%%tokens>, or null "
        "(no records: the summary only)",
    )
    parser.add_argument(
        "-s",
        dest="stats",
        action="append",
        default=[],
        metavar="TYPE[:p][/ORDER]",
        help="top-N statistic (srcip dstip ip srcport dstport port proto srcas dstas as "
        "inif outif if exporter router nhip tos dsttos srcvlan dstvlan vlan srcmask "
        "dstmask mask dir record); ORDER: flows packets bytes pps bps bpp, several "
        "as /bytes/packets; :p splits by protocol",
    )
    parser.add_argument(
        "-n",
        dest="limit",
        type=int,
        metavar="N",
        help="rows of a statistic (default 10; 0: all); also limits -A/-a/-b and -O output",
    )
    parser.add_argument(
        "-A",
        dest="aggregate",
        metavar="KEYS",
        help="aggregate by keys: srcip,dstip,srcport,dstport,proto,srcas,dstas,inif,outif,"
        "tos,next,router,vni,srcnet/N,dstnet/N,srcip4/N,...",
    )
    parser.add_argument(
        "-a",
        dest="aggregate_5tuple",
        action="store_true",
        help="aggregate by the 5-tuple (srcip,dstip,srcport,dstport,proto)",
    )
    parser.add_argument(
        "-b",
        dest="bidir",
        action="store_true",
        help="aggregate bidirectional flows: A->B and B->A (TCP/UDP) into one row",
    )
    parser.add_argument(
        "-B",
        dest="bidir_guess",
        action="store_true",
        help="as -b, and show the client as the source (the lower port is the server's)",
    )
    parser.add_argument(
        "-O",
        dest="order",
        choices=RECORD_ORDERS,
        metavar="ORDER",
        help="order records / aggregates: " + " ".join(RECORD_ORDERS),
    )
    parser.add_argument(
        "-c",
        dest="count",
        type=int,
        metavar="N",
        help="process at most N matching flows (as nfdump: statistics, aggregates and the "
        "summary see only those)",
    )
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
    return parser


def _run(query: Query, out: TextIO) -> None:
    args = query.args
    started_wall = time.perf_counter()
    query.check_paths()
    summary = Summary()
    stat_accumulators = [StatAccumulator(spec) for spec in query.element_stats]
    needs_cache = bool(query.record_stats) or query.prints_aggregate
    aggregator = query.new_aggregator() if needs_cache else None
    if query.aggregating and query.element_stats and not query.record_stats:
        print(f"{PROGRAM}: aggregation ignored for element statistics", file=sys.stderr)
    collected: list[pa.RecordBatch] = []
    writer = None
    if not query.stats and not query.aggregating and not query.orders_records and not args.series:
        writer = RecordWriter(query.format, out, utc=args.utc, plain_numbers=args.plain,
                              quiet=args.quiet)  # fmt: skip
        writer.write_header()
    series = SeriesAccumulator(query.series_interval) if query.series_interval else None
    remaining = args.count or None  # nfdump: -c 0 is no limit
    defaults = vars(build_parser().parse_args([]))
    scanned = batches_beyond_summaries(query, summary, stat_accumulators, defaults)
    batches = query.batches(summary) if scanned is None else scanned
    if writer is not None:
        batches = _coalesced(batches, COALESCE_ROWS)
    for batch in batches:
        if remaining is not None:
            batch = batch.slice(0, remaining)
            remaining -= batch.num_rows
        summary.add_passed(batch)
        for accumulator in stat_accumulators:
            accumulator.add(batch)
        if aggregator is not None:
            aggregator.add(batch)
        if series is not None:
            series.add(batch)
        if query.orders_records:
            collected.append(batch)
        if writer is not None:
            writer.write_batch(batch)
        if remaining == 0:
            break  # nfdump's -c: stop reading once N flows matched
    for problem in query.problems:
        print(f"{PROGRAM}: skipped {problem.path}: {problem.message}", file=sys.stderr)
    if writer is not None:
        writer.finish(summary.records_passed)
    options = {"utc": args.utc, "plain": args.plain, "quiet": args.quiet}
    if query.stats:
        if query.format.is_text and summary.records_passed == 0:
            out.write(NO_MATCH_TEXT + "\n")  # nfdump prints it before the statistics
        for spec in query.record_stats:
            if summary.records_passed or not query.format.is_text:
                assert aggregator is not None
                rows = aggregator.result(spec.order, query.stat_limit)
                write_record_stat(out, spec, rows, query.format, aggregator.key_names,
                                  limit=query.stat_limit, **options)  # fmt: skip
        totals = (summary.flows, summary.packets, summary.bytes)
        for accumulator in stat_accumulators:
            write_statistic(out, accumulator.spec, accumulator.result(query.stat_limit), totals,
                            query.format, limit=query.stat_limit, **options)  # fmt: skip
    elif aggregator is not None and query.format.prints_records:
        rows = aggregator.result(args.order, query.row_limit)
        write_aggregate(out, rows, query.format, aggregator.key_names, bidir=query.bidir,
                        **options)  # fmt: skip
    elif query.orders_records:
        _write_ordered(query, collected, out)
    if series is not None:
        series.write(out, query.format, **options)
        if args.plot is not None:
            series.plot(args.plot)
    if query.format.prints_summary and not args.quiet:
        summary.clip_window(*window_ms(query.window))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - started_wall
        summary.times = ProcessTimes(usage.ru_stime, usage.ru_utime, wall, wall)
        write_summary(out, summary, plain_numbers=args.plain, utc=args.utc)
    out.flush()


#: rows gathered before a record dump renders them: a selective filter yields batches
#: of a few thousand rows, and rendering one costs dozens of Arrow calls whatever its
#: size
COALESCE_ROWS: Final = 65_536


def _coalesced(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The batches joined into ones of at least ``rows`` rows (not across a change of
    columns); a large batch passes at once, so ``flowq | head`` still answers at once."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if pending and batch.schema != pending[0].schema:
            yield _joined(pending)
            pending, count = [], 0
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield _joined(pending)
            pending, count = [], 0
    if pending:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


def _ordered_records(table: pa.Table, order: str, limit: int) -> pa.Table:
    """Records by ``-O``: tstart / tend ascending, the rest descending (packets and
    bytes over both directions of a biflow, rates as nfdump's integer arithmetic);
    ties by time, then by the 5-tuple."""
    ties = [
        n
        for n in (
            "time_start",
            "time_end",
            "src_addr",
            "src_addr6",
            "dst_addr",
            "dst_addr6",
            "src_port",
            "dst_port",
            "proto",
        )
        if n in table.column_names
    ]
    if order in ("tstart", "tend"):
        first = "time_start" if order == "tstart" else "time_end"
        keys = [(first, "ascending"), *((n, "ascending") for n in ties if n != first)]
        table = table.sort_by(keys)
        return table.slice(0, limit) if limit else table
    ranked = table.append_column("_order", record_order_values(table, order))
    return top(ranked, "_order", limit, ties).drop_columns(["_order"])


def _write_ordered(query: Query, collected: list[pa.RecordBatch], out: TextIO) -> None:
    """``-O ORDER`` on records: one explicit sort, then print (``-n`` limits)."""
    args = query.args
    writer = RecordWriter(query.format, out, utc=args.utc, plain_numbers=args.plain,
                          quiet=args.quiet)  # fmt: skip
    writer.write_header()
    rows = [pa.Table.from_batches([batch]) for batch in collected if batch.num_rows]
    if rows:  # batches of different exporters carry different columns
        table = pa.concat_tables(rows, promote_options="permissive")
        for batch in _ordered_records(table, args.order, query.row_limit).to_batches():
            writer.write_batch(batch)
    writer.finish()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        query = Query(args)
    except FilterError as error:
        print(error.render(filter_text_of(args)), file=sys.stderr)
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
