"""flowq's ``-o`` formats and summary lines: what a query's records look like on stdout.

Formats (``parse_output_format``): ``line`` (default), ``long``, ``extended`` and
``fmt:<% tokens>`` reproduce nfdump 1.7.1's layouts and number scaling
(``flowq/output_text.py``); ``csv``, ``json`` and ``ndjson`` follow the contract's field
names and value forms (``flowq/output_machine.py``). ``RecordWriter`` streams: each batch
is formatted and written as it comes, nothing is kept between batches, so
``flowq -R big | head`` answers at once and memory stays flat.

Where flowq deliberately differs from nfdump 1.7.1:

- IPv6 addresses are printed in full; nfdump shortens those longer than 16 characters
  (``2001:db..2::1``). Such rows are wider than the column.
- ``-q`` drops the CSV header too (as nfdump does, and as the contract's ``-q``: "no
  header, no summary"); the JSON brackets stay, they are part of the data.
- Machine formats never carry the summary nor "No matching flows" (nfdump prints them
  into its CSV and even inside its JSON array): ``OutputFormat.prints_summary`` is
  False for them, and an empty result is a CSV header alone or ``[]``.
- With no flow to show, text formats print their own header (nfdump 1.7.1 prints a
  stray NSEL header) and ``No matching flows``.
- A flow whose end precedes its start has duration 0 (nfdump would underflow).

``Summary`` counts the summary lines' numbers incrementally from batches, in Arrow;
``write_summary`` prints them as nfdump 1.7.1 does (``Summary: total flows: ...``,
``Time window: ...``, ``Total flows processed: ...`` and, when timings are given,
nfdump's ``Sys: ... Runtime: ...`` line).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.flags import flags_text, flags_texts
from flowq.numbers import bit_rate, format_number, format_numbers, rate
from flowq.output_machine import (
    RECORD_FIELDS,
    csv_block,
    csv_header,
    json_parts,
)
from flowq.output_text import (
    NAMED_LAYOUTS,
    TextLayout,
    address_texts,
    column,
    protocol_name,
    seconds_text,
    text_block,
    time_texts,
    uint_values,
)

__all__ = [
    "RECORD_FIELDS",
    "FormatKind",
    "OutputFormat",
    "ProcessTimes",
    "RecordWriter",
    "Summary",
    "address_texts",
    "flags_text",
    "flags_texts",
    "format_number",
    "format_numbers",
    "parse_output_format",
    "protocol_name",
    "time_texts",
    "write_summary",
]

NO_MATCH_TEXT: Final = "No matching flows"
_JSON_SEPARATOR: Final = pa.scalar(",\n")


class FormatKind(enum.StrEnum):
    LINE = "line"
    LONG = "long"
    EXTENDED = "extended"
    FMT = "fmt"
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"
    NULL = "null"  # nfdump's -o null: no records, the summary only


_MACHINE_KINDS: Final = frozenset({FormatKind.CSV, FormatKind.JSON, FormatKind.NDJSON})
_KNOWN: Final = "line, long, extended, csv, json, ndjson, null, fmt:<%tokens>"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A parsed ``-o`` argument. ``layout`` is set for the text formats (line, long,
    extended, fmt:), None for csv/json/ndjson."""

    kind: FormatKind
    layout: TextLayout | None = None

    @property
    def is_text(self) -> bool:
        return self.kind not in _MACHINE_KINDS

    @property
    def prints_summary(self) -> bool:
        """Whether the summary lines follow the records (text formats, unless -q)."""
        return self.is_text

    @property
    def prints_records(self) -> bool:
        """False for ``-o null``: the records are counted for the summary, not shown."""
        return self.kind is not FormatKind.NULL


def parse_output_format(text: str) -> OutputFormat:
    """``-o`` argument -> format; ValueError with a message fit for the user otherwise.

    Names are case-insensitive (``-o CSV``); a ``fmt:`` template is kept verbatim.
    """
    if text[:4].lower() == "fmt:":
        return OutputFormat(FormatKind.FMT, TextLayout.parse(text[4:]))
    name = text.strip().lower()
    if name in NAMED_LAYOUTS:
        return OutputFormat(FormatKind(name), TextLayout.parse(NAMED_LAYOUTS[name]))
    if name in {k.value for k in _MACHINE_KINDS} or name == FormatKind.NULL:
        return OutputFormat(FormatKind(name))
    raise ValueError(f"unknown output format '{text}'; expected one of: {_KNOWN}")


class RecordWriter:
    """Writes flow records to ``out`` batch by batch in one output format.

    Call ``write_header``, ``write_batch`` for each batch (any subset of ``FLOW_SCHEMA``
    columns; absent columns read as null), then ``finish``. ``quiet`` (``-q``) leaves out
    the header lines of every format; the JSON brackets stay.
    """

    def __init__(
        self, fmt: OutputFormat, out: TextIO, *, utc: bool, plain_numbers: bool, quiet: bool
    ) -> None:
        self.fmt = fmt
        self.out = out
        self.utc = utc
        self.plain_numbers = plain_numbers
        self.quiet = quiet
        self.rows_written = 0
        self._opened = False
        self._layout = fmt.layout
        if fmt.is_text and fmt.prints_records and self._layout is None:
            raise ValueError(f"text format {fmt.kind} without a layout")

    def write_header(self) -> None:
        kind = self.fmt.kind
        if not self.fmt.prints_records:
            return
        if kind is FormatKind.JSON:
            self.out.write("[")
            self._opened = True
        elif self.quiet or kind is FormatKind.NDJSON:
            return
        elif kind is FormatKind.CSV:
            self.out.write(csv_header(RECORD_FIELDS) + "\n")
        elif self._layout is not None:
            self.out.write(self._layout.header() + "\n")

    def write_batch(self, batch: pa.RecordBatch) -> None:
        rows = batch.num_rows
        if rows == 0:
            return
        kind = self.fmt.kind
        if not self.fmt.prints_records:
            self.rows_written += rows
            return
        if kind is FormatKind.CSV:
            self._write_bytes(csv_block(batch, RECORD_FIELDS))
            self.rows_written += rows
            return
        if kind is FormatKind.NDJSON:
            block = text_block(json_parts(batch, RECORD_FIELDS), rows)
        elif kind is FormatKind.JSON:
            if not self._opened:
                self.write_header()
            # ",\n" before every object; the first one of the array loses its comma
            block = text_block([_JSON_SEPARATOR, *json_parts(batch, RECORD_FIELDS)], rows, "")
            if self.rows_written == 0:
                block = block[1:]
        elif self._layout is not None:
            block = self._layout.render_block(batch, utc=self.utc, plain=self.plain_numbers)
        else:
            raise ValueError(f"text format {kind} without a layout")
        self.out.write(block)
        self.rows_written += rows

    def _write_bytes(self, data: bytes) -> None:
        """UTF-8 text straight to the byte stream under ``out`` when it has one (no
        decoding to str and encoding back: a third of a CSV dump's time)."""
        stream = getattr(self.out, "buffer", None)
        if stream is None or (self.out.encoding or "").lower().replace("-", "") != "utf8":
            self.out.write(data.decode())
            return
        self.out.flush()
        stream.write(data)

    def finish(self, rows_matched: int | None = None) -> None:
        """Close the JSON array; note "No matching flows" in an empty text dump.
        ``rows_matched``: the records that matched when not all went through
        ``write_batch`` (``-o null`` counts them from per-file summaries)."""
        matched = self.rows_written if rows_matched is None else rows_matched
        if self.fmt.kind is FormatKind.JSON:
            if not self._opened:
                self.out.write("[")
            self.out.write("\n]\n")
        elif self.fmt.is_text and matched == 0:
            self.out.write(NO_MATCH_TEXT + "\n")
        self.out.flush()


@dataclass(frozen=True, slots=True)
class ProcessTimes:
    """CPU and wall seconds for nfdump's last summary line (``Sys: ... Runtime: ...``)."""

    sys_s: float
    user_s: float
    wall_s: float
    runtime_s: float


@dataclass(slots=True)
class Summary:
    """The numbers of nfdump's summary lines, accumulated batch by batch.

    - ``add_passed(batch)``: flows that matched; they make the ``Summary:`` line.
      ``flows`` adds each record's ``flows`` count (1 when the exporter sent none);
      ``packets`` and ``bytes`` add ``out_packets`` and ``out_bytes`` too, as nfdump's
      totals do.
    - ``add_processed(batch)``: every record read before filtering; it counts
      ``records_processed`` and widens the time window. nfdump takes its ``Time
      window`` from the files it reads, not from the matching flows, so a filter or
      ``-c`` does not change it; ``add_window`` sets it from file metadata instead, and
      ``clip_window`` narrows it to ``-t``, as nfdump does.
    """

    flows: int = 0
    packets: int = 0
    bytes: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    window_first_ms: int | None = None
    window_last_ms: int | None = None
    records_processed: int = 0
    records_passed: int = 0
    blocks_skipped: int = 0
    bytes_read: int = 0
    times: ProcessTimes | None = field(default=None)

    def add_passed(self, batch: pa.RecordBatch) -> None:
        rows = batch.num_rows
        if rows == 0:
            return
        self.records_passed += rows
        # nfdump counts both directions of a bidirectional record (NSEL, RFC 5103)
        self.packets += _column_sum(batch, "packets") + _column_sum(batch, "out_packets")
        self.bytes += _column_sum(batch, "bytes") + _column_sum(batch, "out_bytes")
        flows = uint_values(batch, "flows")
        self.flows += int(np.where(flows == 0, np.uint64(1), flows).sum(dtype=np.uint64))
        first, _ = _time_range(batch, "time_start")
        _, last = _time_range(batch, "time_end")
        self.first_ms = _min(self.first_ms, first)
        self.last_ms = _max(self.last_ms, last)

    def add_processed(self, batch: pa.RecordBatch) -> None:
        self.records_processed += batch.num_rows
        first, _ = _time_range(batch, "time_start")
        _, last = _time_range(batch, "time_end")
        self.add_window(first, last)

    def add_window(self, first_ms: int | None, last_ms: int | None) -> None:
        self.window_first_ms = _min(self.window_first_ms, first_ms)
        self.window_last_ms = _max(self.window_last_ms, last_ms)

    def clip_window(self, start_ms: int | None, end_ms: int | None) -> None:
        """Narrow the time window to a ``-t`` window (either side may be open)."""
        if self.window_first_ms is not None and start_ms is not None:
            self.window_first_ms = max(self.window_first_ms, start_ms)
        if self.window_last_ms is not None and end_ms is not None:
            self.window_last_ms = min(self.window_last_ms, end_ms)

    def merge(self, other: Summary) -> None:
        """Add another summary's counts (e.g. from a parallel scan)."""
        self.flows += other.flows
        self.packets += other.packets
        self.bytes += other.bytes
        self.first_ms = _min(self.first_ms, other.first_ms)
        self.last_ms = _max(self.last_ms, other.last_ms)
        self.add_window(other.window_first_ms, other.window_last_ms)
        self.records_processed += other.records_processed
        self.records_passed += other.records_passed
        self.blocks_skipped += other.blocks_skipped
        self.bytes_read += other.bytes_read


def write_summary(out: TextIO, summary: Summary, *, plain_numbers: bool, utc: bool) -> None:
    """nfdump 1.7.1's summary lines. The averages are over the matching flows' span
    (earliest start to latest end), in C's integer truncation; without a span they
    are all 0, bytes per packet included, as in nfdump."""
    duration_ms = 0
    if summary.last_ms and summary.first_ms is not None:
        duration_ms = max(summary.last_ms - summary.first_ms, 0)
    bps = pps = bpp = 0
    if duration_ms > 0:
        bps = bit_rate(summary.bytes, duration_ms)
        pps = rate(summary.packets, duration_ms)
        bpp = summary.bytes // summary.packets if summary.packets else 0

    def number(value: int) -> str:
        return format_number(value, plain=plain_numbers)

    out.write(
        f"Summary: total flows: {summary.flows}, total bytes: {number(summary.bytes)}, "
        f"total packets: {number(summary.packets)}, avg bps: {number(bps)}, "
        f"avg pps: {number(pps)}, avg bpp: {number(bpp)}\n"
    )
    if summary.window_last_ms and summary.window_first_ms is not None:
        first = seconds_text(summary.window_first_ms, utc=utc)
        last = seconds_text(summary.window_last_ms, utc=utc)
        out.write(f"Time window: {first} - {last}\n")
    else:
        out.write("Time window: <unknown>\n")
    out.write(
        f"Total flows processed: {summary.records_processed}, "
        f"passed: {summary.records_passed}, Blocks skipped: {summary.blocks_skipped}, "
        f"Bytes read: {summary.bytes_read}\n"
    )
    times = summary.times
    if times is not None:
        per_second = summary.records_processed / times.wall_s if times.wall_s > 0 else 0.0
        out.write(
            f"Sys: {times.sys_s:.4f}s User: {times.user_s:.4f}s Wall: {times.wall_s:.4f}s "
            f"flows/second: {per_second:.1f} Runtime: {times.runtime_s:.4f}s\n"
        )


def _column_sum(batch: pa.RecordBatch, name: str) -> int:
    array = column(batch, name)
    if array is None:
        return 0
    total = pc.sum(array.cast(pa.uint64())).as_py()
    return int(total or 0)


def _time_range(batch: pa.RecordBatch, name: str) -> tuple[int | None, int | None]:
    array = column(batch, name)
    if array is None or array.null_count == len(array):
        return None, None
    ms = pc.cast(pc.cast(array, pa.timestamp("ms", tz="UTC"), safe=False), pa.int64())
    bounds = pc.min_max(ms)
    return bounds["min"].as_py(), bounds["max"].as_py()


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
