"""Printing ``-s`` statistics and aggregated rows (``-A``, ``-a``, ``-b``, ``-B``,
``-s record``): nfdump 1.7.1's text, byte for byte, or the contract's CSV / JSON rows.

Text, as nfdump 1.7.1 prints it (checked against it by
``tests/flowq/test_nfdump_equivalence.py``):

- A statistic: ``Top 10 Src IP Addr ordered by bytes:`` (``Top Src IP Addr ...`` with
  ``-n 0``), the column header, one line per row
  (``%s %16s %-5s %17s %8s(%4.1f) %8s(%4.1f) %8s(%4.1f) %8s %8s %5u``: first seen,
  duration, protocol (``any`` but for ``-s proto`` and ``:p``), key, flows, packets and
  bytes with their share of all matching flows, pps, bps, bytes per packet), then a
  blank line. ``-q`` leaves out the two heading lines, not the blank line.
- Aggregated rows go through the record layouts of ``flowq/output_text.py``. Without
  ``-o``: ``-A`` prints ``%ts %td  <key tokens>  %pkt %byt %bps %bpp %fl`` (nfdump
  builds the same layout from the keys, in the order given), ``-a`` the ``line`` layout
  (nfdump 1.7.1 prints a broken NSEL layout there), ``-b`` / ``-B`` nfdump's bidirectional
  layout ``%ts %td %pr %sap <-> %dap %opkt %ipkt %obyt %ibyt %fl``.
- ``-s record``: ``Top 10 flows ordered by bytes:``, then the rows as records (no blank
  line after them).

Machine formats (contract): a statistic row is the key column(s) (``src_addr`` for
``-s srcip``, ``addr`` for ``-s ip``, then ``proto`` with ``:p``) followed by
``flows,packets,bytes,pps,bps,bpp``; an aggregate row is the key columns followed by
``flows,packets,bytes``, ``out_packets,out_bytes`` for ``-b`` / ``-B``, ``time_start``
(earliest), ``time_end`` (latest), ``duration_ms``, ``pps,bps,bpp``. ``-s record`` rows
are statistic rows keyed by the aggregation keys. Several statistics in one run print
one CSV table (header and rows) or one JSON array each, one after the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.aggregate import AggregateKey
from flowq.numbers import duration_texts, format_numbers
from flowq.output import FormatKind, OutputFormat, RecordWriter, protocol_name, time_texts
from flowq.output_machine import csv_cells, iso_times, json_values
from flowq.output_text import (
    TOKEN_READS,
    TOKENS,
    Piece,
    TextLayout,
    Token,
    address_texts,
    parse_fmt,
    text_block,
)
from flowq.stats import RECORD_STAT, StatSpec

RATE_COLUMNS: Final = ("flows", "packets", "bytes", "pps", "bps", "bpp")
AGGREGATE_COLUMNS: Final = ("flows", "packets", "bytes", "time_start", "time_end",
                            "duration_ms", "pps", "bps", "bpp")  # fmt: skip
BIDIR_COLUMNS: Final = ("flows", "packets", "bytes", "out_packets", "out_bytes", "time_start",
                        "time_end", "duration_ms", "pps", "bps", "bpp")  # fmt: skip
#: nfdump's -b / -B layout ("biline")
BIDIR_FMT: Final = "%ts %td %pr %sap <-> %dap %opkt %ipkt %obyt %ibyt %fl"
STAT_HEADER: Final = (
    "Date first seen                 Duration Proto {title:>17}    Flows(%)     Packets(%)"
    "       Bytes(%)         pps      bps   bpp"
)


def _vni_render(rows: Any) -> pa.Array:
    text = pc.cast(pa.array(rows.uint("vni")), pa.string())
    return pc.utf8_lpad(text, width=8, padding=" ")


#: -A vni has no nfdump token: a column of its own, 8 wide like a scaled counter
VNI_TOKEN: Final = Token("vni", "     VNI", _vni_render)


def top_heading(limit: int, title: str, order: str) -> str:
    """``Top 10 Src IP Addr ordered by bytes:``; nfdump leaves out the number for
    ``-n 0``."""
    shown = f"{limit} " if limit else ""
    return f"Top {shown}{title} ordered by {order}:\n"


def _key_texts(table: pa.Table | pa.RecordBatch, key: str) -> pa.Array:
    """Key values as text; an address key merges its IPv4 column with the IPv6 twin."""
    if key + "6" in table.column_names:
        return address_texts(_batch(table, [key, key + "6"]), key)
    values = table.column(key)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pc.cast(values, pa.string())


def _batch(table: pa.Table | pa.RecordBatch, names: Sequence[str]) -> pa.RecordBatch:
    if isinstance(table, pa.RecordBatch):
        return table.select(list(names))
    selected = table.select(list(names)).combine_chunks()
    return pa.RecordBatch.from_arrays(
        [column.combine_chunks() for column in selected.columns], names=list(names)
    )


def output_keys(key_names: Sequence[str]) -> list[str]:
    """Key columns as output fields: an address pair (``X``, ``X6``) is one field."""
    return [k for k in key_names if not (k.endswith("6") and k[:-1] in key_names)]


def _percent(part: np.ndarray, total: int) -> list[str]:
    """nfdump's ``(%4.1f)`` share, 0 when there is nothing to share."""
    if total <= 0:
        return [" 0.0"] * len(part)
    return [f"{p * 100 / total:4.1f}" for p in part.tolist()]


def _numbers(table: pa.Table, name: str, plain: bool) -> list[str]:
    values = np.asarray(table.column(name), dtype=np.uint64)
    return format_numbers(values, plain=plain, fixed_width=True).to_pylist()


def write_statistic(
    out: TextIO,
    spec: StatSpec,
    table: pa.Table,
    totals: tuple[int, int, int],
    fmt: OutputFormat,
    *,
    limit: int,
    utc: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """One ``-s`` result (``StatAccumulator.result``). ``totals`` = (flows, packets,
    bytes) of all matching flows, for nfdump's percentages."""
    keys = output_keys(spec.key_names)
    if not fmt.is_text:
        write_rows(out, table, [*keys, *RATE_COLUMNS], fmt, quiet)
        return
    key = keys[0]
    if not quiet:
        out.write(top_heading(limit, spec.title, spec.order))
        out.write(STAT_HEADER.format(title=spec.title) + "\n")
    rows = table.num_rows
    if rows:
        first = np.asarray(pc.cast(table.column("first"), pa.int64()), dtype=np.int64)
        times = time_texts(first, utc=utc).to_pylist()
        durations = duration_texts(
            np.asarray(table.column("duration_ms"), dtype=np.int64), plain=plain
        ).to_pylist()
        key_texts = _key_texts(table, key).to_pylist()
        protocols = ["any"] * rows
        if "proto" in spec.key_names:  # -s proto, :p: nfdump names the protocol here
            protocols = [protocol_name(p, plain=plain) for p in table["proto"].to_pylist()]
        numbers = {name: _numbers(table, name, plain) for name in RATE_COLUMNS if name != "bpp"}
        bpp = np.asarray(table.column("bpp"), dtype=np.uint64) & np.uint64(0xFFFFFFFF)
        shares = [
            _percent(np.asarray(table.column(name), dtype=np.float64), total)
            for name, total in zip(("flows", "packets", "bytes"), totals, strict=True)
        ]
        for i in range(rows):
            out.write(
                f"{times[i]} {durations[i]:>16} {protocols[i]:<5} {key_texts[i]:>17} "
                f"{numbers['flows'][i]:>8}({shares[0][i]}) "
                f"{numbers['packets'][i]:>8}({shares[1][i]}) "
                f"{numbers['bytes'][i]:>8}({shares[2][i]}) "
                f"{numbers['pps'][i]:>8} {numbers['bps'][i]:>8} {int(bpp[i]):5d}\n"
            )
    out.write("\n")


# -- aggregated rows ---------------------------------------------------------------------


def aggregate_layout(keys: Sequence[AggregateKey] | None, *, bidir: bool) -> OutputFormat:
    """The text layout nfdump prints aggregated rows in when no ``-o`` is given:
    ``-A`` keys' tokens between ``%ts %td`` and the counters, ``-b`` its biline, and
    ``line`` for ``-a`` (``keys`` None)."""
    if bidir:
        return OutputFormat(FormatKind.FMT, TextLayout.parse(BIDIR_FMT))
    if keys is None:
        return OutputFormat(FormatKind.LINE, TextLayout.parse("%line"))
    pieces: list[Piece] = [*parse_fmt("%ts %td  ")]
    for index, key in enumerate(keys):
        if index:
            pieces.append(" ")
        pieces.append(VNI_TOKEN if key.token == "vni" else TOKENS[key.token])
    pieces += parse_fmt("  %pkt %byt %bps %bpp %fl")
    return OutputFormat(FormatKind.FMT, TextLayout(tuple(pieces)))


#: what a token reads that an aggregated row has of its own (counters, times, OR'd
#: flags) or holds in ``dst_port`` (the ICMP rule: ``icmp_type_code``)
_NOT_CARRIED: Final = frozenset({"flows", "packets", "bytes", "out_packets", "out_bytes",
                                 "time_start", "time_end", "tcp_flags",
                                 "icmp_type_code"})  # fmt: skip


def layout_columns(fmt: OutputFormat) -> list[str]:
    """The flow columns a text layout prints beyond counters and times (its tokens'
    ``TOKEN_READS``)."""
    if fmt.layout is None:
        return []
    names = [n for piece in fmt.layout.pieces if isinstance(piece, Token)
             for n in TOKEN_READS.get(piece.name, ()) if n not in _NOT_CARRIED]  # fmt: skip
    return list(dict.fromkeys(names))


def layout_prints_flags(fmt: OutputFormat) -> bool:
    """Whether a text layout shows TCP flags (aggregation then ORs them)."""
    return fmt.layout is not None and any(
        isinstance(piece, Token) and piece.name == "flg" for piece in fmt.layout.pieces
    )


def write_aggregate(
    out: TextIO,
    table: pa.Table,
    fmt: OutputFormat,
    key_names: Sequence[str],
    *,
    bidir: bool = False,
    utc: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """Aggregated rows (``Aggregator.result`` / ``BidirAggregator.result``) in a text
    layout, or as the contract's aggregate rows."""
    if not fmt.is_text:
        measures = BIDIR_COLUMNS if bidir else AGGREGATE_COLUMNS
        write_rows(out, table, [*output_keys(key_names), *measures], fmt, quiet)
        return
    writer = RecordWriter(fmt, out, utc=utc, plain_numbers=plain, quiet=quiet)
    writer.write_header()
    for batch in table.to_batches():
        writer.write_batch(batch)
    writer.finish()


def write_record_stat(
    out: TextIO,
    spec: StatSpec,
    table: pa.Table,
    fmt: OutputFormat,
    key_names: Sequence[str],
    *,
    limit: int,
    utc: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """``-s record/ORDER``: the aggregated rows with the largest ORDER, as records."""
    if spec.type != RECORD_STAT:
        raise ValueError(f"not a record statistic: {spec.type}")
    if not fmt.is_text:
        write_rows(out, table, [*output_keys(key_names), *RATE_COLUMNS], fmt, quiet)
        return
    if not quiet:
        out.write(top_heading(limit, "flows", spec.order))
    writer = RecordWriter(fmt, out, utc=utc, plain_numbers=plain, quiet=quiet)
    writer.write_header()
    for batch in table.to_batches():
        writer.write_batch(batch)
    out.flush()


# -- machine rows ------------------------------------------------------------------------


def _machine_column(table: pa.Table, name: str) -> pa.Array:
    """A field in its machine form: address pairs as text, times ISO-8601 UTC."""
    if name + "6" in table.column_names:
        return _key_texts(table, name)
    values = table.column(name)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        return iso_times(values)
    return values


def write_rows(
    out: TextIO, table: pa.Table, fields: Sequence[str], fmt: OutputFormat, quiet: bool
) -> None:
    """Rows as CSV (a header unless ``-q``), one JSON array, or NDJSON lines."""
    rows = table.num_rows
    columns = [_machine_column(table, name) for name in fields]
    if fmt.kind is FormatKind.CSV:
        if not quiet:
            out.write(",".join(fields) + "\n")
        parts: list[Any] = []
        for index, values in enumerate(columns):
            if index:
                parts.append(pa.scalar(","))
            parts.append(csv_cells(values))
        out.write(text_block(parts, rows))
        return
    parts = []
    for index, (name, values) in enumerate(zip(fields, columns, strict=True)):
        parts.append(pa.scalar(("," if index else "{") + json.dumps(name) + ":"))
        parts.append(json_values(values))
    parts.append(pa.scalar("}"))
    if fmt.kind is FormatKind.NDJSON:
        out.write(text_block(parts, rows))
        return
    body = text_block(parts, rows, ",\n")[:-2] + "\n" if rows else ""
    out.write("[\n" + body + "]\n")
