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
#: group the rows added since the last grouping once there are this many (and twice
#: the grouped rows): fewer regroups of the growing result. Measured on -A srcip,dstip
#: over 10 M flows (packed keys, ~24 bytes a pending row): 1 M 3.7 s / 1.0 GB peak,
#: 4 M 2.4 s / 1.1 GB
MERGE_ROWS: Final = 4_000_000


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


def stat_input_columns(spec: StatSpec) -> set[str]:
    """The flow columns a statistic reads."""
    columns = {"packets", "bytes", "time_start", "time_end", "flows"}
    sides = () if spec.type == RECORD_STAT else STAT_TYPES[spec.type].sides
    for side in sides:
        columns |= side_input_columns(side)
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


def _group_plain(
    table: pa.Table, keys: list[str], aggregations: Sequence[tuple[str, str]]
) -> pa.Table:
    """Arrow's hash ``group_by``: the key columns, then the aggregates named as their
    columns."""
    grouped = table.group_by(keys, use_threads=True).aggregate(list(aggregations))
    names = {f"{column}_{function}": column for column, function in aggregations}
    return grouped.rename_columns([names.get(name, name) for name in grouped.column_names])


#: the packed keys' columns while grouping (no flow column has a leading underscore)
_PACKED_KEY: Final = "_packed_key"


@dataclass(frozen=True, slots=True)
class KeyPacking:
    """Integer keys packed into as few uint64 words per row as hold them.

    Arrow hashes one integer key several times faster than several (2.3 M flows by
    source and destination IPv4 address: 1.1-1.7 s as two keys, 0.2-0.6 s as one), and
    packed rows are small: the 5-tuple's 45 bytes of keys (with the IPv6 twins) become
    16. Rows with a null integer key or a set binary key (an IPv6 address) are not
    packed: they are grouped with all their keys, apart (their keys differ from every
    packed row's).
    """

    integer: tuple[tuple[str, pa.DataType, int, int], ...]  # name, type, word, bit offset
    binary: tuple[tuple[str, pa.DataType], ...]
    words: int

    @classmethod
    def for_schema(cls, schema: pa.Schema, keys: Sequence[str]) -> KeyPacking | None:
        """The packing of ``keys``; None when it would not make fewer key columns."""
        integer: list[tuple[str, pa.DataType, int, int]] = []
        binary: list[tuple[str, pa.DataType]] = []
        word = offset = 0
        for name in keys:
            kind = schema.field(name).type
            if not pa.types.is_integer(kind):
                binary.append((name, kind))
                continue
            if offset + kind.bit_width > 64:
                word, offset = word + 1, 0
            integer.append((name, kind, word, offset))
            offset += kind.bit_width
        words = word + 1
        if not integer or words >= len(keys):
            return None
        return cls(tuple(integer), tuple(binary), words)

    @property
    def word_names(self) -> list[str]:
        return [f"{_PACKED_KEY}{word}" for word in range(self.words)]

    def split(self, keyed: pa.Table) -> tuple[pa.Table | None, pa.Table | None]:
        """(the packable rows as the packed words plus the other columns, the rest
        with all their keys); None for a side without rows."""
        if any(keyed.schema.field(name).type != kind for name, kind, _, _ in self.integer):
            return None, keyed
        conditions = [pc.is_valid(keyed[name]) for name, _, _, _ in self.integer
                      if keyed[name].null_count]  # fmt: skip
        conditions += [pc.is_null(keyed[name]) for name, _ in self.binary
                       if keyed[name].null_count < keyed.num_rows]  # fmt: skip
        rest = None
        if conditions:
            packable = conditions[0]
            for condition in conditions[1:]:
                packable = pc.and_(packable, condition)
            rest = keyed.filter(pc.invert(packable))
            keyed = keyed.filter(packable)
        words = [np.zeros(keyed.num_rows, dtype=np.uint64) for _ in range(self.words)]
        for name, _, word, offset in self.integer:
            values = np.asarray(keyed[name].to_numpy(), dtype=np.uint64)
            words[word] |= values << np.uint64(offset)
        key_names = [name for name, *_ in self.integer] + [name for name, _ in self.binary]
        table = keyed.drop_columns(key_names)
        for name, values in zip(self.word_names, words, strict=True):
            table = table.append_column(name, pa.array(values))
        has_rest = rest is not None and rest.num_rows > 0
        return (table if table.num_rows else None), (rest if has_rest else None)

    def unpack(self, grouped: pa.Table, keys: Sequence[str]) -> pa.Table:
        """Groups of packed rows -> the key columns (binary ones null), then the rest."""
        words = [np.asarray(grouped[name].to_numpy(), dtype=np.uint64) for name in self.word_names]
        columns: dict[str, pa.Array] = {}
        for name, kind, word, offset in self.integer:
            values = (words[word] >> np.uint64(offset)) & np.uint64((1 << kind.bit_width) - 1)
            columns[name] = pa.array(values.astype(kind.to_pandas_dtype()), kind)
        for name, kind in self.binary:
            columns[name] = pa.nulls(grouped.num_rows, kind)
        packed = set(self.word_names)
        others = {name: grouped[name] for name in grouped.column_names if name not in packed}
        return pa.table({**{name: columns[name] for name in keys}, **others})


class GroupAccumulator:
    """Group-by over a stream of keyed tables, grouped in large steps.

    ``aggregations``: (column, function) pairs; a merge applies the same function again,
    so only functions that compose (sum, min, max) belong here.

    Tables are kept as they come (a batch's flows, or a file summary's groups; integer
    keys packed by ``KeyPacking`` where they fit) and grouped together once those added
    since the last grouping hold more rows than ``MERGE_ROWS`` and twice the grouped
    tables: one ``group_by`` over many inputs costs less than one per input, and with
    many distinct keys the grouped tables grow geometrically, so each row is regrouped
    O(log n) times.
    """

    def __init__(
        self, key_names: list[str], aggregations: Sequence[tuple[str, str]] = MEASURE_AGGREGATIONS
    ) -> None:
        self.key_names = key_names
        self.aggregations = tuple(aggregations)
        self._packing: KeyPacking | None = None
        self._packing_decided = False
        self._packed: list[pa.Table] = []  # rows with a packed key
        self._rest: list[pa.Table] = []  # rows with all their keys
        self._grouped_rows = 0  # rows of the grouped tables, the first parts
        self._pending_rows = 0  # rows of the parts after them

    def add(self, keyed: pa.Table) -> None:
        """``keyed``: key columns named ``key_names`` plus the measure columns."""
        if keyed.num_rows == 0:
            return
        if not self._packing_decided:
            self._packing = KeyPacking.for_schema(keyed.schema, self.key_names)
            self._packing_decided = True
        packed, rest = (None, keyed) if self._packing is None else self._packing.split(keyed)
        if packed is not None:
            self._packed.append(packed)
        if rest is not None:
            self._rest.append(rest)
        self._pending_rows += keyed.num_rows
        if self._pending_rows > max(MERGE_ROWS, 2 * self._grouped_rows):
            self._merge()

    def _merge(self) -> None:
        if self._packed and self._packing is not None:
            self._packed = [self._grouped(self._packed, self._packing.word_names)]
        if self._rest:
            self._rest = [self._grouped(self._rest, self.key_names)]
        self._grouped_rows = sum(part.num_rows for part in (*self._packed, *self._rest))
        self._pending_rows = 0

    def _grouped(self, parts: list[pa.Table], keys: list[str]) -> pa.Table:
        table = parts[0]
        if len(parts) > 1:
            table = pa.concat_tables(parts, promote_options="permissive")
        return _group_plain(table, keys, self.aggregations)

    def result(self) -> pa.Table | None:
        """The groups (key columns first), or None when nothing was added."""
        if not self._packed and not self._rest:
            return None
        if self._pending_rows:
            self._merge()
        parts = list(self._rest)
        if self._packed and self._packing is not None:
            parts.insert(0, self._packing.unpack(self._packed[0], self.key_names))
        if len(parts) == 1:
            return parts[0]
        return pa.concat_tables(
            [parts[0], parts[1].select(parts[0].column_names)], promote_options="permissive"
        )


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


def empty_groups(
    key_names: Sequence[str], counters: Sequence[str] = ("flows", "packets", "bytes")
) -> pa.Table:
    """Groups without rows, with their columns (a statistic's, or with ``counters``
    an aggregation's)."""
    return pa.table({
        **{name: pa.array([], pa.uint32()) for name in key_names},
        **{name: pa.array([], pa.uint64()) for name in counters},
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
        # defined in storage.summaries, whose per-file summaries must count the same
        measures = flow_measures(batch)
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
