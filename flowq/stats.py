"""Top-N statistics (``-s TYPE[:p][/ORDER...]``) in Arrow, and the grouping machinery
``-A`` aggregation shares.

A statistic is a hash aggregation over the flows that passed the filter: each batch is
grouped as it arrives (Arrow ``group_by``), the partial groups are merged whenever they
grow, and the final table is ordered with ``select_k`` / ``sort_by``. Memory follows
the number of distinct keys, not the number of flows, and there is no Python loop per
flow.

What a key reads, as nfdump 1.7.1 counts it:

- An address key is two columns, the IPv4 ``X`` and the IPv6 ``X6`` (one of them null
  per flow); a flow with neither reads ``0.0.0.0``. Statistics over both directions
  (``ip``, ``port``, ``as``, ``if``, ``vlan``, ``mask``) count each flow once per side,
  so their percentages may add up to more than 100, as nfdump's do.
- Numeric fields an exporter did not send read 0 (nfdump zero-fills them).
- ICMP: the destination port of an ICMP / ICMPv6 flow is its ``type * 256 + code``, by
  the rule the filter language uses (``docs/filters.md``, "ICMP"): ``icmp_type_code``,
  else ``icmp_type`` / ``icmp_code``, else the exported port (NetFlow v5). So
  ``-s dstport`` counts echo requests under 2048, as nfdump does for flows nfcapd
  stored, and agrees with the filter ``dst port 2048``. The source port is the stored
  one (0 for ICMP).
- ``:p`` (``-s srcip:p``) splits each key by protocol, as nfdump's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from storage.schema import FLOW_SCHEMA
from storage.summaries import MEASURE_AGGREGATIONS, MEASURES, flow_measures, key_set_for

#: the ICMP protocols, whose destination port holds type << 8 | code
ICMP_PROTOCOLS: Final = (1, 58)


@dataclass(frozen=True, slots=True)
class StatType:
    """One ``-s`` type: nfdump's heading, the output key column (contract name) and the
    flow columns of each side counted (one side, or two for ``ip``, ``port``, ...)."""

    title: str
    key: str
    sides: tuple[tuple[str, ...], ...]


_SRC_ADDR: Final = ("src_addr", "src_addr6")
_DST_ADDR: Final = ("dst_addr", "dst_addr6")
#: -s TYPE -> its definition; titles are nfdump 1.7.1's ("Top 10 Src IP Addr ordered by")
STAT_TYPES: Final[dict[str, StatType]] = {
    "srcip": StatType("Src IP Addr", "src_addr", (_SRC_ADDR,)),
    "dstip": StatType("Dst IP Addr", "dst_addr", (_DST_ADDR,)),
    "ip": StatType("IP Addr", "addr", (_SRC_ADDR, _DST_ADDR)),
    "nhip": StatType("Nexthop IP", "next_hop", (("next_hop", "next_hop6"),)),
    "router": StatType("Router IP", "exporter", (("exporter", "exporter6"),)),
    "exporter": StatType("Router IP", "exporter", (("exporter", "exporter6"),)),
    "srcport": StatType("Src Port", "src_port", (("src_port",),)),
    "dstport": StatType("Dst Port", "dst_port", (("dst_port",),)),
    "port": StatType("Port", "port", (("src_port",), ("dst_port",))),
    "proto": StatType("Protocol", "proto", (("proto",),)),
    "tos": StatType("Tos", "tos", (("tos",),)),
    "srctos": StatType("Tos", "tos", (("tos",),)),
    "dsttos": StatType("Dst Tos", "dst_tos", (("dst_tos",),)),
    "srcas": StatType("Src AS", "src_as", (("src_as",),)),
    "dstas": StatType("Dst AS", "dst_as", (("dst_as",),)),
    "as": StatType("AS", "as", (("src_as",), ("dst_as",))),
    "inif": StatType("Input If", "in_if", (("in_if",),)),
    "outif": StatType("Output If", "out_if", (("out_if",),)),
    "if": StatType("In/Out If", "if", (("in_if",), ("out_if",))),
    "srcmask": StatType("Src Mask", "src_mask", (("src_mask",),)),
    "dstmask": StatType("Dst Mask", "dst_mask", (("dst_mask",),)),
    "mask": StatType("Mask", "mask", (("src_mask",), ("dst_mask",))),
    "srcvlan": StatType("Src Vlan", "src_vlan", (("src_vlan",),)),
    "dstvlan": StatType("Dst Vlan", "dst_vlan", (("dst_vlan",),)),
    "vlan": StatType("Vlan", "vlan", (("src_vlan",), ("dst_vlan",))),
    "dir": StatType("Dir", "flow_direction", (("flow_direction",),)),
}
RECORD_STAT: Final = "record"
ORDERS: Final = ("flows", "packets", "bytes", "pps", "bps", "bpp")
#: merge partial groups once they hold this many rows
MERGE_ROWS: Final = 1_000_000


class StatError(ValueError):
    """A -s / -A argument that cannot work; the CLI prints it and exits 2."""


@dataclass(frozen=True, slots=True)
class StatSpec:
    """One ``-s TYPE[:p]/ORDER`` (a ``-s`` with several orders gives one per order)."""

    type: str
    order: str = "flows"
    by_proto: bool = False

    @property
    def title(self) -> str:
        return "flows" if self.type == RECORD_STAT else STAT_TYPES[self.type].title

    @property
    def key_names(self) -> list[str]:
        """The output key columns: ``[key]``, ``[key, key6]`` for addresses, then
        ``proto`` with ``:p``."""
        if self.type == RECORD_STAT:
            return []
        definition = STAT_TYPES[self.type]
        names = [definition.key] if len(definition.sides[0]) == 1 else [
            definition.key, definition.key + "6"
        ]  # fmt: skip
        return [*names, "proto"] if self.by_proto and definition.key != "proto" else names


def parse_stats(text: str) -> list[StatSpec]:
    """``srcip/bytes``, ``dstport:p``, ``ip/bytes/packets`` -> one StatSpec per order.

    As nfdump 1.7.1 does, several orders print in its own order (flows, packets, bytes,
    pps, bps, bpp), whatever order they are given in; ``:p`` splits by protocol.
    """
    stat_type, *orders = text.strip().lower().split("/")
    by_proto = stat_type.endswith(":p")
    if by_proto:
        stat_type = stat_type[:-2]
    if stat_type not in STAT_TYPES and stat_type != RECORD_STAT:
        known = " ".join([*STAT_TYPES, RECORD_STAT])
        raise StatError(f"unknown statistic '{stat_type}' (known: {known})")
    for order in orders:
        if order not in ORDERS:
            raise StatError(f"unknown order '{order}' in -s {text} (known: {' '.join(ORDERS)})")
    chosen = set(orders) or {"flows"}
    return [StatSpec(stat_type, order, by_proto) for order in ORDERS if order in chosen]


def parse_stat(text: str) -> StatSpec:
    """The first of ``parse_stats`` (a ``-s`` with one order)."""
    return parse_stats(text)[0]


def stat_input_columns(spec: StatSpec) -> set[str]:
    """The flow columns a statistic reads."""
    columns = {"packets", "bytes", "time_start", "time_end", "flows"}
    if spec.type != RECORD_STAT:
        for side in STAT_TYPES[spec.type].sides:
            columns.update(side)
            if "dst_port" in side:
                columns.update(ICMP_PORT_COLUMNS)
    if spec.by_proto:
        columns.add("proto")
    return columns


def side_input_columns(side: Sequence[str], by_proto: bool = False) -> set[str]:
    """The flow columns the key of one side reads (``side_keys``, ``:p``)."""
    columns = set(side)
    if "dst_port" in side:
        columns.update(ICMP_PORT_COLUMNS)
    if by_proto:
        columns.add("proto")
    return columns


# -- key values --------------------------------------------------------------------------

#: what the ICMP destination-port rule reads
ICMP_PORT_COLUMNS: Final = ("proto", "dst_port", "icmp_type_code", "icmp_type", "icmp_code")


def _column(batch: pa.RecordBatch | pa.Table, name: str, type_: pa.DataType) -> pa.Array:
    """The column, or all nulls of ``type_`` when the batch does not hold it."""
    if name in batch.schema.names:
        values = batch.column(name)
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pa.nulls(batch.num_rows, type_)


def numeric_key(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    """A numeric key column with nfdump's zero for a value not sent."""
    values = _column(batch, name, FLOW_SCHEMA.field(name).type)
    return pc.fill_null(values, pa.scalar(0, values.type))


def icmp_dst_port(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """The destination port as nfdump has it: ``type << 8 | code`` for ICMP / ICMPv6
    flows (``icmp_type_code``, else ``icmp_type`` / ``icmp_code``, else the exported
    port), the port for the others; 0 when absent. The filter's rule
    (``flowq/filter_compile.py``), on arrays."""
    port = pc.fill_null(_column(batch, "dst_port", pa.uint16()), pa.scalar(0, pa.uint16()))
    if "proto" not in batch.schema.names:
        return port
    names = batch.schema.names
    if not any(n in names for n in ("icmp_type_code", "icmp_type")):
        return port
    u16 = pa.uint16()
    parts = pc.bit_wise_or(
        pc.shift_left(pc.cast(_column(batch, "icmp_type", pa.uint8()), u16), pa.scalar(8, u16)),
        pc.cast(pc.fill_null(_column(batch, "icmp_code", pa.uint8()), 0), u16),
    )
    exported = pc.coalesce(pc.cast(_column(batch, "icmp_type_code", u16), u16), parts)
    is_icmp = pc.is_in(_column(batch, "proto", pa.uint8()),
                       value_set=pa.array(ICMP_PROTOCOLS, pa.uint8()))  # fmt: skip
    return pc.if_else(pc.and_kleene(is_icmp, pc.is_valid(exported)), exported, port)


def address_key(
    batch: pa.RecordBatch | pa.Table, v4_name: str, v6_name: str
) -> tuple[pa.Array, pa.Array]:
    """(IPv4, IPv6) key columns; a flow with neither reads 0.0.0.0, as in nfdump."""
    v4 = _column(batch, v4_name, pa.uint32())
    v6 = _column(batch, v6_name, pa.binary(16))
    if v4.null_count or v6.null_count != len(v6):
        neither = pc.and_(pc.is_null(v4), pc.is_null(v6))
        v4 = pc.if_else(neither, pa.scalar(0, pa.uint32()), v4)
    return v4, v6


def side_keys(batch: pa.RecordBatch | pa.Table, side: Sequence[str]) -> list[pa.Array]:
    """The key columns of one side of a statistic (``("src_addr", "src_addr6")``,
    ``("dst_port",)``, ...), with nfdump's zero-fill and ICMP port rule."""
    if len(side) == 2:
        return list(address_key(batch, side[0], side[1]))
    if side[0] == "dst_port":
        return [icmp_dst_port(batch)]
    return [numeric_key(batch, side[0])]


# -- grouping ----------------------------------------------------------------------------


def _counter(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    return pc.cast(pc.fill_null(_column(batch, name, pa.uint64()), 0), pa.uint64())


def _measures(batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
    """Per flow: flows (1 when not sent), packets, bytes, first and last seen. Defined
    in ``storage.summaries``, whose per-file summaries must count exactly the same."""
    return flow_measures(batch)


#: (measure, Arrow hash aggregation) of a statistic: counters add up, times widen
AGGREGATIONS: Final = MEASURE_AGGREGATIONS


def _group(table: pa.Table, keys: list[str], aggregations: Sequence[tuple[str, str]]) -> pa.Table:
    """Arrow's hash ``group_by``, the aggregates named as their columns.

    Arrow hashes one integer key several times faster than several keys (measured:
    2.3 M flows by source and destination IPv4 address, 1.1-1.7 s as two keys, 0.6 s
    as one), so the integer keys of rows whose binary keys (IPv6 twins) are all null
    are packed into one uint64 when they fit (``_packed_keys``) and unpacked after;
    the other rows are grouped as they are. The groups are the same."""
    binary = [k for k in keys if not pa.types.is_integer(table.schema.field(k).type)]
    integer = [k for k in keys if k not in binary]
    if len(integer) > 1 or (integer and binary):
        plain = table
        if any(table[k].null_count < table.num_rows for k in binary):
            no_binary = pc.and_kleene(*(pc.is_null(table[k]) for k in binary)) if len(
                binary) > 1 else pc.is_null(table[binary[0]])  # fmt: skip
            plain, table = table.filter(no_binary), table.filter(pc.invert(no_binary))
        packed = _packed_keys(plain, integer)
        if packed is not None:
            parts = [_group_packed(plain, keys, integer, packed, aggregations)]
            if plain is not table and table.num_rows:
                parts.append(_group_plain(table, keys, aggregations).select(parts[0].column_names))
            return parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        if plain is not table:
            table = pa.concat_tables([plain, table])
    return _group_plain(table, keys, aggregations)


def _group_plain(
    table: pa.Table, keys: list[str], aggregations: Sequence[tuple[str, str]]
) -> pa.Table:
    grouped = table.group_by(keys, use_threads=True).aggregate(list(aggregations))
    names = {f"{column}_{function}": column for column, function in aggregations}
    return grouped.rename_columns([names.get(name, name) for name in grouped.column_names])


#: the packed key's column while grouping (no flow column has a leading underscore)
_PACKED_KEY: Final = "_packed_key"


def _packed_keys(table: pa.Table, names: list[str]) -> tuple[pa.Array, list] | None:
    """Integer columns ``names`` as one uint64 per row, and the layout to unpack it:
    (name, type, shift, has nulls) each, a column with nulls taking one more bit for
    them; None when they need more than 64 bits."""
    layout = []
    shift = 0
    for name in names:
        kind = table.schema.field(name).type
        nullable = table[name].null_count > 0
        layout.append((name, kind, shift, nullable))
        shift += kind.bit_width + nullable
    if shift > 64:
        return None
    packed = np.zeros(table.num_rows, dtype=np.uint64)
    for name, kind, offset, nullable in layout:
        column = table[name]
        values = np.asarray(pc.fill_null(column, 0).to_numpy(), dtype=np.uint64)
        packed |= values << np.uint64(offset)
        if nullable:
            valid = np.asarray(pc.is_valid(column).to_numpy(), dtype=np.uint64)
            packed |= valid << np.uint64(offset + kind.bit_width)
    return pa.array(packed, pa.uint64()), layout


def _group_packed(
    table: pa.Table,
    keys: list[str],
    integer: list[str],
    packed: tuple[pa.Array, list],
    aggregations: Sequence[tuple[str, str]],
) -> pa.Table:
    array, layout = packed
    measures = table.drop_columns(keys).append_column(_PACKED_KEY, array)
    grouped = _group_plain(measures, [_PACKED_KEY], aggregations)
    words = np.asarray(grouped[_PACKED_KEY].to_numpy(), dtype=np.uint64)
    columns = {name: grouped[name] for name in grouped.column_names if name != _PACKED_KEY}
    for name, kind, offset, nullable in layout:
        mask = np.uint64((1 << kind.bit_width) - 1)
        values = (words >> np.uint64(offset)) & mask
        invalid = None
        if nullable:
            invalid = ((words >> np.uint64(offset + kind.bit_width)) & np.uint64(1)) == 0
        columns[name] = pa.array(values.astype(kind.to_pandas_dtype()), kind, mask=invalid)
    for name in keys:
        if name not in columns:  # a binary twin: null in every row packed
            columns[name] = pa.nulls(grouped.num_rows, table.schema.field(name).type)
    ordered = list(keys) + [n for n in grouped.column_names if n != _PACKED_KEY]  # as Arrow
    return pa.table({name: columns[name] for name in ordered})


class GroupAccumulator:
    """Group-by over a stream of keyed tables, grouped in large steps.

    ``aggregations``: (column, function) pairs; a merge applies the same function again,
    so only functions that compose (sum, min, max) belong here.

    Tables are kept as they come (a batch's flows, or a file summary's groups) and
    grouped together once those added since the last grouping hold more rows than
    ``MERGE_ROWS`` and twice the grouped table: one ``group_by`` over many inputs costs
    less than one per input (35 file summaries: 40 ms, not 62), and with many
    distinct keys the grouped table grows geometrically, so each row is regrouped
    O(log n) times.
    """

    def __init__(
        self, key_names: list[str], aggregations: Sequence[tuple[str, str]] = AGGREGATIONS
    ) -> None:
        self.key_names = key_names
        self.aggregations = tuple(aggregations)
        self._parts: list[pa.Table] = []
        self._grouped_rows = 0  # rows of the grouped table, the first part
        self._pending_rows = 0  # rows of the parts after it

    def add(self, keyed: pa.Table) -> None:
        """``keyed``: key columns named ``key_names`` plus the measure columns."""
        if keyed.num_rows == 0:
            return
        self._parts.append(keyed)
        self._pending_rows += keyed.num_rows
        if self._pending_rows > max(MERGE_ROWS, 2 * self._grouped_rows):
            grouped = self._grouped()
            self._parts, self._grouped_rows, self._pending_rows = [grouped], grouped.num_rows, 0

    def _grouped(self) -> pa.Table:
        table = pa.concat_tables(self._parts, promote_options="permissive")
        return _group(table, self.key_names, self.aggregations)

    def result(self) -> pa.Table | None:
        """The groups, or None when nothing was added."""
        if not self._parts:
            return None
        if len(self._parts) == 1 and self._pending_rows == 0:
            return self._parts[0]
        return self._grouped()


def with_rates(table: pa.Table) -> pa.Table:
    """Add duration (ms), pps, bps and bpp of each group (``first`` / ``last``), as
    nfdump's statistic prints them: C's truncating divisions, 0 without a duration."""
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


def empty_groups(key_names: Sequence[str]) -> pa.Table:
    """A statistic without rows, with its columns."""
    return pa.table({
        **{name: pa.array([], pa.uint32()) for name in key_names},
        "flows": pa.array([], pa.uint64()), "packets": pa.array([], pa.uint64()),
        "bytes": pa.array([], pa.uint64()),
        "first": pa.array([], pa.timestamp("ms", tz="UTC")),
        "last": pa.array([], pa.timestamp("ms", tz="UTC")),
    })  # fmt: skip


class StatAccumulator:
    """One ``-s TYPE/ORDER`` over a stream of filtered batches."""

    def __init__(self, spec: StatSpec) -> None:
        if spec.type == RECORD_STAT:
            raise StatError("-s record aggregates flows: use flowq.aggregate")
        self.spec = spec
        self._sides = STAT_TYPES[spec.type].sides
        self.key_names = spec.key_names
        self._groups = GroupAccumulator(self.key_names)

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        measures = _measures(batch)
        for side in self._sides:
            self._groups.add(self._keyed(batch, side, measures))

    def _keyed(
        self, rows: pa.RecordBatch | pa.Table, side: tuple[str, ...], measures: dict
    ) -> pa.Table:
        extra = [numeric_key(rows, "proto")] if len(self.key_names) > len(
            self._sides[0]
        ) else []  # fmt: skip
        keys = [*side_keys(rows, side), *extra]
        return pa.table({**dict(zip(self.key_names, keys, strict=True)), **measures})

    def summary_key_sets(self) -> list[tuple[str, ...]] | None:
        """Per side, the key set of the per-file summaries (``storage.summaries``) that
        holds every column its key reads; None when a side has none."""
        found = [key_set_for(side_input_columns(side, self.spec.by_proto)) for side in self._sides]
        sets = [key_set for key_set in found if key_set is not None]
        return sets if len(sets) == len(found) else None

    def add_grouped(self, tables: Sequence[pa.Table]) -> None:
        """Per side (as ``summary_key_sets``), flows already grouped by the columns its
        key reads, with ``MEASURES`` (a file's summary): merged as its flows would be."""
        for side, table in zip(self._sides, tables, strict=True):
            if table.num_rows:
                measures = {name: table[name] for name in MEASURES}
                self._groups.add(self._keyed(table, side, measures))

    def result(self, limit: int) -> pa.Table:
        """The rows: key columns, flows, packets, bytes, first, last, duration_ms, pps,
        bps, bpp; the ``limit`` largest by the order (0: all), ties by key."""
        grouped = self._groups.result()
        table = with_rates(grouped if grouped is not None else empty_groups(self.key_names))
        return top(table, self.spec.order, limit, self.key_names)


def record_order_values(table: pa.Table, order: str) -> pa.Array:
    """A flow record's value for ``-O`` / ``-s record`` ORDER, as nfdump's flow cache
    computes it: packets and bytes over both directions of a biflow, pps and bps as
    ``1000 * packets / duration_ms`` (``8000 * bytes``) in integers, 0 without time."""
    if order == "flows":
        return pc.cast(pc.fill_null(_column(table, "flows", pa.uint64()), 1), pa.uint64())
    packets = pc.add(_counter(table, "packets"), _counter(table, "out_packets"))
    bytes_ = pc.add(_counter(table, "bytes"), _counter(table, "out_bytes"))
    if order == "packets":
        return packets
    if order == "bytes":
        return bytes_
    if order == "bpp":
        return pc.if_else(pc.greater(packets, 0),
                          pc.divide(bytes_, pc.max_element_wise(packets, 1)), 0)  # fmt: skip
    start = pc.cast(_column(table, "time_start", pa.timestamp("ms", tz="UTC")), pa.int64())
    end = pc.cast(_column(table, "time_end", pa.timestamp("ms", tz="UTC")), pa.int64())
    elapsed = pc.max_element_wise(pc.fill_null(pc.subtract(end, start), 0), 0)
    duration = pc.cast(elapsed, pa.uint64())
    count, scale = (packets, 1000) if order == "pps" else (bytes_, 8000)
    scaled = pc.multiply(count, pa.scalar(scale, pa.uint64()))
    return pc.if_else(pc.greater(duration, 0),
                      pc.divide(scaled, pc.max_element_wise(duration, 1)), 0)  # fmt: skip
