"""Printing ``-s`` statistics and ``-A`` aggregates: nfdump's tables, or the contract's
CSV / JSON rows.

Statistic rows (contract): the key column(s) — ``src_addr`` for ``-s srcip``, ``addr``
for ``-s ip`` … — then ``flows,packets,bytes,pps,bps,bpp``, in descending ORDER.
Aggregate rows: the key columns, then ``flows,packets,bytes``, ``time_start`` (earliest)
and ``time_end`` (latest), ``duration_ms``, ``pps``, ``bps``, ``bpp``.
"""

from __future__ import annotations

import json
from typing import Final, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.numbers import duration_texts, format_numbers
from flowq.output import FormatKind, OutputFormat, protocol_name, time_texts
from flowq.output_machine import csv_cells, iso_times
from flowq.output_text import ipv4_texts, ipv6_text
from flowq.stats import StatSpec

RATE_COLUMNS: Final = ("flows", "packets", "bytes", "pps", "bps", "bpp")


def _key_texts(table: pa.Table, key: str) -> pa.Array:
    """Key values as text; an address key merges its IPv4 column with the IPv6 twin."""
    if key + "6" in table.column_names:
        v4 = table.column(key).combine_chunks()
        v6 = table.column(key + "6").combine_chunks()
        ipv4 = ipv4_texts(np.asarray(pc.fill_null(v4, 0), dtype=np.uint32))
        ipv6 = [ipv6_text(v) if v is not None else None for v in v6.to_pylist()]
        return pc.if_else(pc.is_valid(v4), ipv4, pa.array(ipv6, pa.string()))
    values = table.column(key).combine_chunks()
    return pc.cast(values, pa.string())


def _key_columns(table: pa.Table) -> list[str]:
    measures = {"flows", "packets", "bytes", "first", "last", "time_start", "time_end",
                "duration_ms", "pps", "bps", "bpp"}  # fmt: skip
    return [c for c in table.column_names if c not in measures and not (
        c.endswith("6") and c[:-1] in table.column_names
    )]  # fmt: skip


def _percent(part: np.ndarray, total: int) -> list[str]:
    if total <= 0:
        return ["  0.0"] * len(part)
    return [f"{100.0 * p / total:5.1f}" for p in part.tolist()]


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
    """One ``-s`` result. ``totals`` = (flows, packets, bytes) of all matching flows,
    for nfdump's percentages."""
    key = _key_columns(table)[0] if spec.type != "record" else None
    if fmt.kind in (FormatKind.CSV, FormatKind.JSON, FormatKind.NDJSON):
        _write_machine(out, table, [key] if key else [], RATE_COLUMNS, fmt, quiet)
        return
    assert key is not None
    first = np.asarray(pc.cast(table.column("first"), pa.int64()), dtype=np.int64)
    duration = np.asarray(table.column("duration_ms"), dtype=np.int64)
    keys = _key_texts(table, key).to_pylist()
    protos = ["any"] * table.num_rows
    if spec.type == "proto":  # nfdump names the protocol in the Proto column
        protos = [protocol_name(int(k)) if k is not None else "" for k in table[key].to_pylist()]
    if not quiet:
        shown = f"{limit}" if limit else "all"
        out.write(f"Top {shown} {spec.title} ordered by {spec.order}:\n")
        out.write(
            f"{'Date first seen':<23}     {'Duration':>12} {'Proto':<5} {spec.title:>17}    "
            f"{'Flows(%)':>8}     {'Packets(%)':>10}       {'Bytes(%)':>8}         "
            f"{'pps':>3}      {'bps':>3}   {'bpp':>3}\n"
        )
    flows = np.asarray(table.column("flows"), dtype=np.uint64)
    packets = np.asarray(table.column("packets"), dtype=np.uint64)
    bytes_ = np.asarray(table.column("bytes"), dtype=np.uint64)
    texts = {
        name: format_numbers(
            np.asarray(table.column(name), dtype=np.uint64), plain=plain
        ).to_pylist()
        for name in RATE_COLUMNS
    }
    times = time_texts(first, utc=utc).to_pylist()
    durations = duration_texts(duration, plain=plain).to_pylist()
    flow_pct = _percent(flows, totals[0])
    packet_pct = _percent(packets, totals[1])
    byte_pct = _percent(bytes_, totals[2])
    for i in range(table.num_rows):
        out.write(
            f"{times[i]:<23} {durations[i]:>16} {protos[i]:<5} {keys[i] or '':>17} "
            f"{texts['flows'][i]:>8}({flow_pct[i]}) {texts['packets'][i]:>8}({packet_pct[i]}) "
            f"{texts['bytes'][i]:>8}({byte_pct[i]}) {texts['pps'][i]:>8} {texts['bps'][i]:>8} "
            f"{texts['bpp'][i]:>5}\n"
        )
    if not quiet:
        out.write("\n")


def write_aggregate(
    out: TextIO,
    table: pa.Table,
    fmt: OutputFormat,
    *,
    utc: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """``-A`` rows: nfdump's aggregate layout, or the contract's CSV / JSON rows."""
    keys = _key_columns(table)
    if fmt.kind in (FormatKind.CSV, FormatKind.JSON, FormatKind.NDJSON):
        measures = ("flows", "packets", "bytes", "time_start", "time_end", "duration_ms",
                    "pps", "bps", "bpp")  # fmt: skip
        _write_machine(out, table, keys, measures, fmt, quiet)
        return
    key_texts = [_key_texts(table, key).to_pylist() for key in keys]
    headers = [_AGGREGATE_TITLES.get(key, key) for key in keys]
    if not quiet:
        key_header = " ".join(f"{h:>16}" for h in headers)
        out.write(
            f"{'Date first seen':<23}     {'Duration':>12} {key_header} {'Packets':>9} "
            f"{'Bytes':>8} {'bps':>8} {'Bpp':>6} {'Flows':>5}\n"
        )
    first = np.asarray(pc.cast(table.column("time_start"), pa.int64()), dtype=np.int64)
    times = time_texts(first, utc=utc).to_pylist()
    durations = duration_texts(
        np.asarray(table.column("duration_ms"), dtype=np.int64), plain=plain
    ).to_pylist()
    numbers = {
        name: format_numbers(
            np.asarray(table.column(name), dtype=np.uint64), plain=plain
        ).to_pylist()
        for name in ("packets", "bytes", "bps", "bpp", "flows")
    }
    for i in range(table.num_rows):
        key_cells = " ".join(
            f"{texts[i] if texts[i] is not None else ''!s:>16}" for texts in key_texts
        )
        out.write(
            f"{times[i]:<23} {durations[i]:>16} {key_cells} {numbers['packets'][i]:>9} "
            f"{numbers['bytes'][i]:>8} {numbers['bps'][i]:>8} {numbers['bpp'][i]:>6} "
            f"{numbers['flows'][i]:>5}\n"
        )


_AGGREGATE_TITLES: Final = {
    "src_addr": "Src IP Addr", "dst_addr": "Dst IP Addr", "src_port": "Src Pt",
    "dst_port": "Dst Pt", "proto": "Proto", "next_hop": "Next-hop IP", "exporter": "Router IP",
    "src_as": "Src AS", "dst_as": "Dst AS", "in_if": "Input", "out_if": "Output", "tos": "Tos",
}  # fmt: skip


def _machine_values(table: pa.Table, name: str) -> pa.Array:
    if name + "6" in table.column_names:
        return _key_texts(table, name)
    values = table.column(name).combine_chunks()
    if pa.types.is_timestamp(values.type):
        return iso_times(values)
    return values


def _write_machine(
    out: TextIO,
    table: pa.Table,
    keys: list[str],
    measures: tuple[str, ...],
    fmt: OutputFormat,
    quiet: bool,
) -> None:
    fields = [*keys, *measures]
    columns = {name: _machine_values(table, name) for name in fields}
    if fmt.kind is FormatKind.CSV:
        if not quiet:
            out.write(",".join(fields) + "\n")
        cells = [csv_cells(columns[name]).to_pylist() for name in fields]
        for row in zip(*cells, strict=True):
            out.write(",".join(row) + "\n")
        return
    rows = [dict(zip(fields, values, strict=True)) for values in zip(
        *(columns[name].to_pylist() for name in fields), strict=True
    )]  # fmt: skip
    if fmt.kind is FormatKind.NDJSON:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    else:
        out.write(json.dumps(rows, indent=None) + "\n")
