"""Top-N statistics (``-s TYPE[/ORDER]``) and aggregation (``-A KEYS``), in Arrow.

Both are a hash aggregation over the flows that passed the filter: each batch is
grouped as it arrives (Arrow ``group_by``), the partial groups are merged whenever they
grow, and the final table is ordered with ``select_k`` / ``sort_by``. Memory follows
the number of distinct keys, not the number of flows, and there is no Python loop per
flow.

An address key is two columns, the IPv4 ``X`` and the IPv6 ``X6`` (one of them null per
flow); statistics over both directions (``ip``, ``port``, ``as``, ``if``) count each flow
once per side, as nfdump does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

#: -s TYPE -> (output key name, the flow columns of each side). The output key columns
#: are named by the contract (srcip -> src_addr, ip -> addr, ...).
STAT_TYPES: Final[dict[str, tuple[str, tuple[tuple[str, ...], ...]]]] = {
    "srcip": ("src_addr", (("src_addr", "src_addr6"),)),
    "dstip": ("dst_addr", (("dst_addr", "dst_addr6"),)),
    "ip": ("addr", (("src_addr", "src_addr6"), ("dst_addr", "dst_addr6"))),
    "srcport": ("src_port", (("src_port",),)),
    "dstport": ("dst_port", (("dst_port",),)),
    "port": ("port", (("src_port",), ("dst_port",))),
    "proto": ("proto", (("proto",),)),
    "srcas": ("src_as", (("src_as",),)),
    "dstas": ("dst_as", (("dst_as",),)),
    "as": ("as", (("src_as",), ("dst_as",))),
    "inif": ("in_if", (("in_if",),)),
    "outif": ("out_if", (("out_if",),)),
    "if": ("if", (("in_if",), ("out_if",))),
    "exporter": ("exporter", (("exporter", "exporter6"),)),
    "tos": ("tos", (("tos",),)),
}
#: nfdump's heading for each statistic ("Top 10 Src IP Addr ordered by bytes:")
STAT_TITLES: Final = {
    "srcip": "Src IP Addr", "dstip": "Dst IP Addr", "ip": "IP Addr", "srcport": "Src Port",
    "dstport": "Dst Port", "port": "Port", "proto": "Protocol", "srcas": "Src AS",
    "dstas": "Dst AS", "as": "AS", "inif": "Input If", "outif": "Output If", "if": "Interface",
    "exporter": "Exporter IP", "tos": "Tos", "record": "flows",
}  # fmt: skip
ORDERS: Final = ("flows", "packets", "bytes", "pps", "bps", "bpp")
#: merge partial groups once they hold this many rows
MERGE_ROWS: Final = 1_000_000
MEASURES: Final = ("flows", "packets", "bytes", "first", "last")


class StatError(ValueError):
    """A -s / -A argument that cannot work; the CLI prints it and exits 2."""


@dataclass(frozen=True, slots=True)
class StatSpec:
    """One ``-s TYPE/ORDER``."""

    type: str
    order: str = "flows"

    @property
    def title(self) -> str:
        return STAT_TITLES[self.type]


def parse_stat(text: str) -> StatSpec:
    """``srcip/bytes`` -> StatSpec; nfdump also accepts several orders ``a:b`` (first)."""
    stat_type, _, order = text.lower().partition("/")
    if stat_type not in STAT_TYPES and stat_type != "record":
        known = ", ".join([*STAT_TYPES, "record"])
        raise StatError(f"unknown statistic '{stat_type}' (known: {known})")
    order = (order or "flows").split(":", 1)[0]
    if order not in ORDERS:
        raise StatError(f"unknown order '{order}' (known: {', '.join(ORDERS)})")
    return StatSpec(stat_type, order)


def stat_input_columns(spec: StatSpec) -> set[str]:
    columns = {"packets", "bytes", "time_start", "time_end", "flows"}
    if spec.type != "record":
        for side in STAT_TYPES[spec.type][1]:
            columns.update(side)
    return columns


def _ones(rows: int) -> pa.Array:
    return pa.nulls(rows, pa.uint64()).fill_null(1) if rows else pa.array([], pa.uint64())


def _measures(batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
    rows = batch.num_rows
    flows = (
        pc.fill_null(batch.column("flows"), 1).cast(pa.uint64())
        if "flows" in batch.schema.names
        else _ones(rows)
    )
    return {
        "flows": flows,
        "packets": pc.fill_null(batch.column("packets"), 0).cast(pa.uint64()),
        "bytes": pc.fill_null(batch.column("bytes"), 0).cast(pa.uint64()),
        "first": batch.column("time_start"),
        "last": batch.column("time_end"),
    }


_AGGREGATIONS: Final = [
    ("flows", "sum"),
    ("packets", "sum"),
    ("bytes", "sum"),
    ("first", "min"),
    ("last", "max"),
]


def _group(table: pa.Table, keys: list[str]) -> pa.Table:
    grouped = table.group_by(keys, use_threads=True).aggregate(_AGGREGATIONS)
    return grouped.rename_columns(
        [
            {"flows_sum": "flows", "packets_sum": "packets", "bytes_sum": "bytes",
             "first_min": "first", "last_max": "last"}.get(name, name)
            for name in grouped.column_names
        ]
    )  # fmt: skip


class GroupAccumulator:
    """Partial group-by results over a stream of batches, merged as they grow."""

    def __init__(self, key_names: list[str]) -> None:
        self.key_names = key_names
        self._parts: list[pa.Table] = []
        self._rows = 0

    def add(self, keyed: pa.Table) -> None:
        """``keyed``: key columns named ``key_names`` plus the measure columns."""
        if keyed.num_rows == 0:
            return
        part = _group(keyed, self.key_names)
        self._parts.append(part)
        self._rows += part.num_rows
        if self._rows > MERGE_ROWS and len(self._parts) > 1:
            merged = _group(
                pa.concat_tables(self._parts, promote_options="permissive"), self.key_names
            )
            self._parts, self._rows = [merged], merged.num_rows

    def result(self) -> pa.Table:
        if not self._parts:
            return pa.table({name: pa.array([]) for name in [*self.key_names, *MEASURES]})
        if len(self._parts) == 1:
            return self._parts[0]
        return _group(pa.concat_tables(self._parts, promote_options="permissive"), self.key_names)


def with_rates(table: pa.Table) -> pa.Table:
    """Add duration (ms), pps, bps and bpp as nfdump computes them per group."""
    duration_ms = pc.subtract(
        pc.cast(table["last"], pa.int64()), pc.cast(table["first"], pa.int64())
    )
    seconds = pc.divide(pc.cast(duration_ms, pa.float64()), 1000.0)
    has_time = pc.greater(seconds, 0)
    packets = pc.cast(table["packets"], pa.float64())
    bytes_ = pc.cast(table["bytes"], pa.float64())
    pps = pc.if_else(has_time, pc.floor(pc.divide(packets, seconds)), 0.0)
    bps = pc.if_else(has_time, pc.floor(pc.divide(pc.multiply(bytes_, 8.0), seconds)), 0.0)
    bpp = pc.if_else(pc.greater(packets, 0), pc.floor(pc.divide(bytes_, packets)), 0.0)
    return (
        table.append_column("duration_ms", duration_ms)
        .append_column("pps", pc.cast(pps, pa.uint64()))
        .append_column("bps", pc.cast(bps, pa.uint64()))
        .append_column("bpp", pc.cast(bpp, pa.uint64()))
    )


def top(table: pa.Table, order: str, limit: int, tie_breakers: Sequence[str]) -> pa.Table:
    """The ``limit`` rows with the largest ``order`` (0: all), descending, with explicit
    tie-breakers so the output never depends on hash order."""
    sort_keys = [(order, "descending"), *((name, "ascending") for name in tie_breakers)]
    if limit and limit < table.num_rows:
        indices = pc.select_k_unstable(table, k=limit, sort_keys=sort_keys)
        table = table.take(indices)
    return table.sort_by(sort_keys)


class StatAccumulator:
    """One ``-s TYPE/ORDER`` over a stream of filtered batches."""

    def __init__(self, spec: StatSpec) -> None:
        self.spec = spec
        key, sides = STAT_TYPES[spec.type]
        self._sides = sides
        width = len(sides[0])
        self.key_names = [key] if width == 1 else [key, key + "6"]
        self._groups = GroupAccumulator(self.key_names)

    def add(self, batch: pa.RecordBatch) -> None:
        measures = _measures(batch)
        for side in self._sides:
            columns = {}
            for name, source in zip(self.key_names, side, strict=True):
                columns[name] = (
                    batch.column(source)
                    if source in batch.schema.names
                    else pa.nulls(batch.num_rows)
                )
            self._groups.add(pa.table({**columns, **measures}))

    def result(self, limit: int) -> pa.Table:
        table = with_rates(self._groups.result())
        return top(table, self.spec.order, limit, self.key_names)
