"""Reading stored flows: how flowq (or any program) finds and scans flow files.

- ``flow_files`` lists the finished Parquet files *and the live spools* below ``-R``
  directories or given by ``-r`` paths, pruned by the interval in their names before
  anything is opened. A spool whose Parquet file exists is left out (the Parquet file
  has the same rows), so a query racing a rotation never counts a flow twice.
- ``scan`` yields record batches with ``FLOW_SCHEMA``'s types: the projected columns
  (absent ones read as nulls; only those are materialized), rows matching the filter
  expression. A damaged, truncated or unreadable file is skipped and reported to
  ``on_problem`` (default: a logged warning); the scan goes on. A spool that is
  converted while the scan runs is read from its Parquet file instead.
- Time windows use nfdump's ``-t`` rule: a flow matches when it starts at or after the
  window's start and ends at or before its end. Files are pruned by *receive* interval,
  widened by ``slack_s`` (default 15 min) on both sides for export delay and exporter
  clock error: a flow received more than ``slack_s`` after it ended may be missed by a
  windowed query.
- ``plan_summaries`` splits listed files into those a per-key statistic can take from
  their summary (``storage.summaries``: every row in the window), those with no row in
  it, and those to scan (spools, files without a usable summary, files the window cuts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from storage.naming import FileKind, FlowFileName, parse_name, walk_flow_files
from storage.parquet_writer import parquet_path_for, union_schema
from storage.schema import FLOW_SCHEMA, TIME_TYPE
from storage.spool import SpoolReader
from storage.summaries import SummaryError, SummaryFile, WindowCover, open_summary

DEFAULT_SLACK_S: Final = 900.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``[start_s, end_s]`` in UTC seconds since 1970; None leaves a side open."""

    start_s: float | None = None
    end_s: float | None = None

    @classmethod
    def between(cls, start: datetime | None, end: datetime | None) -> TimeWindow:
        """From aware datetimes (naive ones are taken as local time, like nfdump)."""
        return cls(start.timestamp() if start else None, end.timestamp() if end else None)


@dataclass(frozen=True, slots=True, order=True)
class FlowSource:
    """One file to read; ``name`` is None for a file given by a foreign name."""

    sort_key: tuple
    path: Path
    kind: FileKind
    name: FlowFileName | None


@dataclass(frozen=True, slots=True)
class ReadProblem:
    path: Path
    message: str


ProblemHandler = Callable[[ReadProblem], None]


def _warn(problem: ReadProblem) -> None:
    _log.warning("skipping %s: %s", problem.path, problem.message)


def _source(path: Path, name: FlowFileName | None) -> FlowSource:
    if name is not None:
        return FlowSource((name, str(path)), path, name.kind, name)
    kind = FileKind.SPOOL if path.suffix == ".spool" else FileKind.PARQUET
    return FlowSource((FlowFileName(0, 1, 0, 0, kind), str(path)), path, kind, None)


def flow_files(
    paths: Iterable[Path],
    window: TimeWindow | None = None,
    *,
    slack_s: float = DEFAULT_SLACK_S,
    include_spools: bool = True,
) -> list[FlowSource]:
    """The files to read for ``-R``/``-r`` paths, sorted by interval, worker and n.

    A directory is read recursively (flow file names only, temporary files never) and
    its files are pruned by the receive interval in their names; a file named
    explicitly is read whatever its name and never pruned (its flows may be far from
    its receive time: a replayed capture, an exporter with a wrong clock). Raises
    ``FileNotFoundError`` for a missing path.
    """
    start = end = None
    if window is not None:
        start = None if window.start_s is None else window.start_s - slack_s
        end = None if window.end_s is None else window.end_s + slack_s
    found: dict[Path, FlowSource] = {}
    explicit: set[Path] = set()
    for root in paths:
        if root.is_dir():
            for item in walk_flow_files(root):
                found.setdefault(item.path.resolve(), _source(item.path, item.name))
        elif root.is_file():
            found.setdefault(root.resolve(), _source(root, parse_name(root.name)))
            explicit.add(root.resolve())
        else:
            raise FileNotFoundError(2, "no such file or directory", str(root))
    sources = []
    for resolved, source in found.items():
        pruned = source.name is not None and not source.name.overlaps(start, end)
        if pruned and resolved not in explicit:
            continue
        if source.kind is FileKind.SPOOL:
            if not include_spools:
                continue
            if source.name is not None and parquet_path_for(resolved) in found:
                continue  # converted meanwhile: the Parquet file has the same rows
        sources.append(source)
    return sorted(sources)


def window_ms(window: TimeWindow | None) -> tuple[int | None, int | None]:
    """The window's bounds in ms, as the rows are compared with them."""
    if window is None:
        return None, None
    start = None if window.start_s is None else int(window.start_s * 1000)
    end = None if window.end_s is None else int(window.end_s * 1000)
    return start, end


def window_expression(window: TimeWindow) -> pc.Expression | None:
    """nfdump's ``-t`` rule: ``time_start >= start and time_end <= end``."""
    parts = []
    start_ms, end_ms = window_ms(window)
    if start_ms is not None:
        start = pa.scalar(start_ms, pa.int64()).cast(TIME_TYPE)
        parts.append(pc.field("time_start") >= start)
    if end_ms is not None:
        end = pa.scalar(end_ms, pa.int64()).cast(TIME_TYPE)
        parts.append(pc.field("time_end") <= end)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else parts[0] & parts[1]


def file_schema(source: FlowSource) -> pa.Schema:
    """The columns a file holds (Parquet footer, or the spool's frame heads)."""
    if source.kind is FileKind.SPOOL:
        return union_schema(SpoolReader(source.path).schemas())
    import pyarrow.parquet as pq  # here: a query answered from summaries never needs it

    return pq.read_schema(source.path)


@dataclass(frozen=True, slots=True)
class SummaryPlan:
    """Listed files by how a per-key statistic reads them: ``whole``, every row in the
    window (take the summary); ``outside``, no row in it (nothing to add, but listed);
    ``scan``, the rest (spools, no usable summary, partly in the window)."""

    whole: list[tuple[FlowSource, SummaryFile]]
    outside: list[tuple[FlowSource, SummaryFile]]
    scan: list[FlowSource]


def plan_summaries(sources: list[FlowSource], window: TimeWindow | None = None) -> SummaryPlan:
    """Open the summaries (footers only) of ``sources`` and decide per file; results
    merged from ``whole`` summaries plus a scan of ``scan`` under the window equal a
    scan of everything. An unusable summary just puts its file in ``scan``."""
    plan = SummaryPlan([], [], [])
    start_ms, end_ms = window_ms(window)
    for source in sources:
        current = _current(source)
        summary = None
        if current.kind is FileKind.PARQUET:
            try:
                summary = open_summary(current.path)
            except SummaryError as error:
                _log.info("scanning %s: %s", current.path, error)
        if summary is None:
            plan.scan.append(source)
            continue
        cover = summary.totals.window_cover(start_ms, end_ms)
        if cover is WindowCover.WHOLE:
            plan.whole.append((current, summary))
        elif cover is WindowCover.NONE:
            plan.outside.append((current, summary))
        else:
            plan.scan.append(current)
    return plan


def _current(source: FlowSource) -> FlowSource:
    """A listed spool that was rotated since becomes its Parquet file."""
    if source.kind is FileKind.SPOOL and source.name is not None and not source.path.exists():
        finished = parquet_path_for(source.path)
        if finished.exists():
            return FlowSource(source.sort_key, finished, FileKind.PARQUET, source.name)
    return source


def scan(
    paths: Iterable[Path],
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,  # pyarrow's name for it
    window: TimeWindow | None = None,
    *,
    slack_s: float = DEFAULT_SLACK_S,
    on_problem: ProblemHandler = _warn,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the flows below ``paths`` matching ``filter`` and ``window``."""
    sources = flow_files(paths, window, slack_s=slack_s)
    if window is not None:
        condition = window_expression(window)
        if condition is not None:
            filter = condition if filter is None else filter & condition
    return scan_sources(sources, columns, filter, on_problem=on_problem)


def scan_sources(
    sources: list[FlowSource],
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,  # pyarrow's name for it
    *,
    on_problem: ProblemHandler = _warn,
) -> Iterator[pa.RecordBatch]:
    """Scan listed files in order. ``columns`` None: every column some file holds."""
    sources = [_current(source) for source in sources]
    if columns is not None and all(name in FLOW_SCHEMA.names for name in columns):
        # the projection is known: no footer needs reading before the scan starts (a
        # damaged file is reported when its scan fails)
        for source in sources:
            yield from _scan_one(source, FLOW_SCHEMA, columns, filter, on_problem)
        return
    schemas: dict[Path, pa.Schema] = {}
    for source in sources:
        try:
            schemas[source.path] = file_schema(source)
        except (OSError, pa.ArrowException) as error:
            on_problem(ReadProblem(source.path, f"unreadable: {error}"))
    extra = [f for s in schemas.values() for f in s if f.name not in FLOW_SCHEMA.names]
    full = pa.schema(list(FLOW_SCHEMA) + list({f.name: f for f in extra}.values()))
    if columns is None:
        present = {name for s in schemas.values() for name in s.names}
        columns = [name for name in full.names if name in present]
    missing = [name for name in columns if name not in full.names]
    if missing:
        raise KeyError(f"no such column: {', '.join(missing)}")
    for source in sources:
        if source.path in schemas:
            yield from _scan_one(source, full, columns, filter, on_problem)


def _scan_one(
    source: FlowSource,
    schema: pa.Schema,
    columns: list[str],
    filter: pc.Expression | None,
    on_problem: ProblemHandler,
) -> Iterator[pa.RecordBatch]:
    try:
        if source.kind is FileKind.PARQUET:
            yield from _matching(source.path, schema, columns, filter)
        else:
            yield from _scan_spool(source, schema, columns, filter, on_problem)
    except (OSError, pa.ArrowException) as error:
        on_problem(ReadProblem(source.path, f"read failed: {error}"))


def _scan_spool(
    source: FlowSource,
    schema: pa.Schema,
    columns: list[str],
    filter: pc.Expression | None,
    on_problem: ProblemHandler,
) -> Iterator[pa.RecordBatch]:
    reader = SpoolReader(source.path)
    try:
        for batch in reader:
            yield from _matching(pa.Table.from_batches([batch]), schema, columns, filter)
    except FileNotFoundError:
        if source.name is None or reader.frames:
            raise
        finished = parquet_path_for(source.path)  # rotated since it was listed
        replacement = FlowSource(source.sort_key, finished, FileKind.PARQUET, source.name)
        yield from _scan_one(replacement, schema, columns, filter, on_problem)
        return
    if reader.problem is not None:
        on_problem(ReadProblem(source.path, f"damaged spool, rest skipped: {reader.problem}"))


def _matching(
    data: Path | pa.Table,
    schema: pa.Schema,
    columns: list[str],
    filter: pc.Expression | None,
) -> Iterator[pa.RecordBatch]:
    """The non-empty batches of ``columns`` (typed as ``schema`` says, absent ones null)
    whose rows match ``filter``, of a Parquet file or of one spool batch."""
    import pyarrow.dataset as ds  # here: ~30 ms of imports (fs, s3, ssl) a query
    # answered from summaries never needs

    if isinstance(data, pa.Table):
        dataset = ds.dataset(data).replace_schema(schema)
    else:
        dataset = ds.dataset(data, schema=schema, format="parquet")
    for batch in dataset.to_batches(columns=columns, filter=filter):
        if batch.num_rows:
            yield batch
