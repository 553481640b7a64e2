"""Aggregation, like nfdump's flow cache: ``-A KEYS``, ``-a`` (the 5-tuple), ``-b`` / ``-B``
(bidirectional), and the records of ``-s record``, all in Arrow.

Keys are nfdump's names (``srcip,dstip,srcport,dstport,proto,srcas,inif,...``, nfdump's
``srcip4/24`` and flowcap's ``srcnet/24`` / ``srcnet/24/64`` prefixes). An address key
groups by the IPv4 column and its IPv6 twin together; a prefix masks both. Key values
read as nfdump's do (``flowq/stats.py``): a field not sent is 0 and an ICMP flow's
destination port is ``type * 256 + code``.

Aggregated rows carry the columns of a flow record, so nfdump's text layouts print them:
the key columns (contract names), ``flows``, ``packets``, ``bytes``, ``out_packets``,
``out_bytes`` (sums), ``time_start`` (earliest), ``time_end`` (latest), ``tcp_flags``
(OR of all, when asked for), then ``duration_ms``, ``pps``, ``bps``, ``bpp`` over both
directions. Fields that are neither keys nor counters are not kept (a text layout prints
them as 0; nfdump prints the first record's).

``-b``: TCP and UDP flows A->B and B->A become one row keyed by the sorted endpoint pair
(address and port) and the protocol; other protocols are only merged with flows in the
same direction, as nfdump 1.7.1 does. A row reads in the direction of its earliest flow
(nfdump: of the first record read): ``packets`` / ``bytes`` that way, ``out_packets`` /
``out_bytes`` the other. ``-B`` then turns a TCP/UDP row so that the source is the
client, by nfdump's rule: the side with the port below 1024 (else 32768, else 49152)
while the other's is not is the server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.stats import (
    ICMP_PORT_COLUMNS,
    GroupAccumulator,
    StatError,
    _column,
    _counter,
    address_key,
    empty_groups,
    icmp_dst_port,
    numeric_key,
    top,
)
from storage.schema import FLOW_SCHEMA
from storage.summaries import flow_measures

#: -A key -> (output column(s), token of nfdump's aggregate layout); an address key has
#: two columns, the IPv4 one and its IPv6 twin
AGGREGATE_KEYS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "srcip": (("src_addr", "src_addr6"), "sa"),
    "dstip": (("dst_addr", "dst_addr6"), "da"),
    "next": (("next_hop", "next_hop6"), "nh"),
    "bgpnext": (("bgp_next_hop", "bgp_next_hop6"), "nhb"),
    "router": (("exporter", "exporter6"), "ra"),
    "srcport": (("src_port",), "sp"),
    "dstport": (("dst_port",), "dp"),
    "proto": (("proto",), "pr"),
    "srcas": (("src_as",), "sas"),
    "dstas": (("dst_as",), "das"),
    "inif": (("in_if",), "in"),
    "outif": (("out_if",), "out"),
    "tos": (("tos",), "tos"),
    "srctos": (("tos",), "stos"),
    "dsttos": (("dst_tos",), "dtos"),
    "srcvlan": (("src_vlan",), "svln"),
    "dstvlan": (("dst_vlan",), "dvln"),
    "srcmask": (("src_mask",), "smk"),
    "dstmask": (("dst_mask",), "dmk"),
    "vni": (("vni",), "vni"),
}
#: -a: the 5-tuple
DEFAULT_KEYS: Final = ("srcip", "dstip", "srcport", "dstport", "proto")
#: the key columns of -b / -B rows
BIDIR_KEYS: Final = ("src_addr", "src_addr6", "src_port", "dst_addr", "dst_addr6",
                     "dst_port", "proto")  # fmt: skip
_NET = re.compile(r"^(src|dst)net(?:/(\d+))?(?:/(\d+))?$")
#: nfdump's own spellings: srcip4/24, dstip6/64 (the other family stays whole)
_NFDUMP_NET = re.compile(r"^(src|dst)ip([46])(?:/(\d+))?$")
#: flow columns a key reads beyond its own
_KEY_SOURCES: Final = {"vni": ("layer2_segment_id",), "dst_port": ICMP_PORT_COLUMNS}
_TCP_UDP: Final = (6, 17)
_VNI_MASK: Final = 0xFFFFFF  # RFC 7133 layer2SegmentId: segment type << 56 | VXLAN VNI
_COUNTERS: Final = ("flows", "packets", "bytes", "out_packets", "out_bytes")


@dataclass(frozen=True, slots=True)
class AggregateKey:
    """One parsed key: its output columns, nfdump layout token and, for prefixes, the
    IPv4 / IPv6 prefix lengths kept."""

    name: str
    columns: tuple[str, ...]
    token: str
    ipv4_prefix: int | None = None
    ipv6_prefix: int | None = None


def _parse_key(raw: str) -> AggregateKey:
    nfdump_net = _NFDUMP_NET.match(raw)
    if nfdump_net:
        side, family, bits = nfdump_net.groups()
        bits = bits or ("32" if family == "4" else "128")
        raw = f"{side}net/{bits}/128" if family == "4" else f"{side}net/32/{bits}"
    match = _NET.match(raw)
    if match:
        side, v4, v6 = match.groups()
        v4_bits = int(v4) if v4 else 32
        v6_bits = int(v6) if v6 else 128
        if not 0 <= v4_bits <= 32 or not 0 <= v6_bits <= 128:
            raise StatError(f"aggregation key '{raw}': prefix out of range")
        return AggregateKey(raw, (f"{side}_addr", f"{side}_addr6"), side[0] + "a", v4_bits, v6_bits)
    if raw in AGGREGATE_KEYS:
        columns, token = AGGREGATE_KEYS[raw]
        return AggregateKey(raw, columns, token)
    known = " ".join([*AGGREGATE_KEYS, "srcnet/N[/M]", "dstnet/N[/M]", "srcip4/N", "dstip6/N"])
    raise StatError(f"unknown aggregation key '{raw}' (known: {known})")


def parse_keys(text: str) -> list[AggregateKey]:
    """``srcip,dstport,srcnet/24`` -> keys, in the order given; StatError on an unknown
    or repeated key."""
    keys: list[AggregateKey] = []
    for raw in (part.strip().lower() for part in text.split(",")):
        if not raw:
            continue
        key = _parse_key(raw)
        taken = next((k for k in keys if set(k.columns) & set(key.columns)), None)
        if taken is not None:
            raise StatError(f"aggregation keys '{taken.name}' and '{key.name}' are the same field")
        keys.append(key)
    if not keys:
        raise StatError("no aggregation keys given")
    return keys


def key_input_columns(keys: Sequence[AggregateKey]) -> set[str]:
    """The flow columns an aggregation by ``keys`` reads."""
    columns = {"packets", "bytes", "out_packets", "out_bytes", "time_start", "time_end",
               "flows"}  # fmt: skip
    for key in keys:
        for column in key.columns:
            columns.update(_KEY_SOURCES.get(column, (column,)))
    return columns


def bidir_input_columns() -> set[str]:
    return key_input_columns(_parse_key(name) for name in DEFAULT_KEYS)


# -- key values --------------------------------------------------------------------------


def _mask_ipv4(column: pa.Array, bits: int) -> pa.Array:
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if bits else 0
    return pc.bit_wise_and(column, pa.scalar(mask, pa.uint32()))


def _mask_ipv6(column: pa.Array, bits: int) -> pa.Array:
    """Keep the first ``bits`` bits of each 16-byte address (nulls stay null)."""
    rows = len(column)
    if rows == 0 or column.null_count == rows or bits >= 128:
        return column
    start = column.offset * 16
    data = np.frombuffer(column.buffers()[1], dtype=np.uint8)[start : start + rows * 16]
    mask = np.zeros(16, dtype=np.uint8)
    whole, rest = divmod(bits, 8)
    mask[:whole] = 0xFF
    if rest:
        mask[whole] = (0xFF << (8 - rest)) & 0xFF
    masked = (data.reshape(rows, 16) & mask).reshape(-1)
    valid = np.asarray(column.is_valid(), dtype=np.bool_)
    validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), rows, [validity, pa.py_buffer(masked)], null_count=column.null_count
    )


def key_values(batch: pa.RecordBatch, key: AggregateKey) -> list[pa.Array]:
    """The key's column values for a batch, in ``key.columns`` order."""
    if len(key.columns) == 2:
        v4, v6 = address_key(batch, *key.columns)
        if key.ipv4_prefix is not None:
            v4 = _mask_ipv4(v4, key.ipv4_prefix)
        if key.ipv6_prefix is not None:
            v6 = _mask_ipv6(v6, key.ipv6_prefix)
        return [v4, v6]
    column = key.columns[0]
    if column == "dst_port":
        return [icmp_dst_port(batch)]
    if column == "vni":
        segment = pc.fill_null(_column(batch, "layer2_segment_id", pa.uint64()), 0)
        return [pc.bit_wise_and(segment, pa.scalar(_VNI_MASK, pa.uint64()))]
    return [numeric_key(batch, column)]


def _counters(batch: pa.RecordBatch) -> dict[str, pa.Array]:
    measures = flow_measures(batch)
    for name in ("out_packets", "out_bytes"):
        measures[name] = _counter(batch, name)
    return measures


def _flag_bits(flags: pa.Array, prefix: str) -> dict[str, pa.Array]:
    """tcp_flags as eight 0/1 columns: Arrow has no OR aggregation, but 'max' per bit
    is one."""
    values = np.asarray(pc.fill_null(flags, 0), dtype=np.uint16)
    return {f"{prefix}{bit}": pa.array((values >> bit) & 1, pa.uint8()) for bit in range(8)}


def _flags_from_bits(table: pa.Table, prefix: str) -> np.ndarray:
    flags = np.zeros(table.num_rows, dtype=np.uint16)
    for bit in range(8):
        flags |= np.asarray(table[f"{prefix}{bit}"], dtype=np.uint16) << bit
    return flags


def _aggregations(
    flag_prefixes: Sequence[str], counters: Sequence[str] = _COUNTERS
) -> list[tuple[str, str]]:
    aggregations = [(name, "sum") for name in counters]
    aggregations += [("first", "min"), ("last", "max")]
    for prefix in flag_prefixes:
        aggregations += [(f"{prefix}{bit}", "max") for bit in range(8)]
    return aggregations


def finish_rows(table: pa.Table) -> pa.Table:
    """Grouped rows -> aggregate rows: first/last as time_start/time_end, and duration,
    pps, bps, bpp over both directions (C's truncating divisions, 0 without time)."""
    table = table.rename_columns(
        [{"first": "time_start", "last": "time_end"}.get(n, n) for n in table.column_names]
    )
    duration_ms = pc.subtract(
        pc.cast(table["time_end"], pa.int64()),
        pc.cast(table["time_start"], pa.int64()),
    )
    duration_ms = pc.max_element_wise(pc.fill_null(duration_ms, 0), 0)
    packets = pc.add(table["packets"], table["out_packets"])
    bytes_ = pc.add(table["bytes"], table["out_bytes"])
    seconds = pc.divide(pc.cast(duration_ms, pa.float64()), 1000.0)
    has_time = pc.greater(seconds, 0)
    packets_f, bytes_f = pc.cast(packets, pa.float64()), pc.cast(bytes_, pa.float64())
    rates = {
        "pps": pc.if_else(has_time, pc.floor(pc.divide(packets_f, seconds)), 0.0),
        "bps": pc.if_else(has_time, pc.floor(pc.divide(pc.multiply(bytes_f, 8.0), seconds)), 0.0),
        "bpp": pc.if_else(pc.greater(packets, 0), pc.floor(pc.divide(bytes_f, packets_f)), 0.0),
    }
    table = table.append_column("duration_ms", duration_ms)
    for name, values in rates.items():
        table = table.append_column(name, pc.cast(values, pa.uint64()))
    return table


def order_rows(
    table: pa.Table, order: str | None, limit: int, key_names: Sequence[str]
) -> pa.Table:
    """Rows by ``-O`` order (tstart / tend ascending, counters and rates descending over
    both directions, as nfdump), else earliest first; ties by key. ``limit`` 0: all."""
    if order in (None, "tstart", "tend"):
        column = "time_end" if order == "tend" else "time_start"
        keys = [(column, "ascending"), *((k, "ascending") for k in key_names)]
        table = table.sort_by(keys)
        return table.slice(0, limit) if limit else table
    if order in ("packets", "bytes"):
        total = pc.add(table[order], table[f"out_{order}"])
        ranked = table.append_column("_order", total)
        ordered = top(ranked, "_order", limit, key_names)
        return ordered.drop_columns(["_order"])
    return top(table, order, limit, key_names)


class Aggregator:
    """``-A`` / ``-a`` (and ``-s record``) over a stream of filtered batches.

    ``with_flags``: also OR the TCP flags of each row (a layout printing ``%flg``).
    ``carry``: other flow columns a layout prints, kept as the smallest value of each
    row's flows (nfdump prints the first record's; for a single flow they agree).
    """

    def __init__(
        self, keys: list[AggregateKey], *, with_flags: bool = False, carry: Sequence[str] = ()
    ) -> None:
        self.keys = keys
        self.key_names = [column for key in keys for column in key.columns]
        self.with_flags = with_flags
        taken = {*self.key_names, *_COUNTERS, "time_start", "time_end", "tcp_flags"}
        self.carry = [name for name in carry if name not in taken]
        aggregations = _aggregations(["flag"] if with_flags else [])
        aggregations += [(name, "min") for name in self.carry]
        self._groups = GroupAccumulator(self.key_names, aggregations)

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        columns: dict[str, pa.Array] = {}
        for key in self.keys:
            columns.update(zip(key.columns, key_values(batch, key), strict=True))
        columns.update(_counters(batch))
        if self.with_flags:
            columns.update(_flag_bits(_column(batch, "tcp_flags", pa.uint16()), "flag"))
        for name in self.carry:
            if name == "dst_port":
                columns[name] = icmp_dst_port(batch)
            else:
                columns[name] = _column(batch, name, FLOW_SCHEMA.field(name).type)
        self._groups.add(pa.table(columns))

    def result(self, order: str | None, limit: int) -> pa.Table:
        """The aggregate rows ordered by ``order`` (default: earliest first); ``limit``
        0: all."""
        table = self._groups.result()
        if table is None:
            table = empty_groups(self.key_names, _COUNTERS)
        elif self.with_flags:
            flags = _flags_from_bits(table, "flag")
            table = table.drop_columns([f"flag{bit}" for bit in range(8)])
            table = table.append_column("tcp_flags", pa.array(flags, pa.uint16()))
        return order_rows(finish_rows(table), order, limit, self.key_names)


# -- bidirectional -----------------------------------------------------------------------


def _address_words(v4: pa.Array, v6: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each address as (high, low) 64-bit words, to order endpoints: IPv6 big-endian,
    IPv4 as (0, address). Within one flow both sides are of one family."""
    rows = len(v4)
    high = np.zeros(rows, dtype=np.uint64)
    low = np.asarray(pc.fill_null(v4, 0), dtype=np.uint64).copy()
    if v6.null_count < rows:
        filled = pc.fill_null(v6, pa.scalar(bytes(16), pa.binary(16)))
        start = filled.offset * 16
        data = np.frombuffer(filled.buffers()[1], dtype=np.uint8)[start : start + rows * 16]
        words = data.reshape(rows, 16).view(">u8").astype(np.uint64)
        is_v6 = np.asarray(pc.is_valid(v6), dtype=np.bool_)
        high = np.where(is_v6, words[:, 0], high)
        low = np.where(is_v6, words[:, 1], low)
    return high, low


def _greater(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> np.ndarray:
    """Lexicographic a > b over parallel word arrays."""
    result = np.zeros(len(a[0]), dtype=np.bool_)
    equal = np.ones(len(a[0]), dtype=np.bool_)
    for x, y in zip(a, b, strict=True):
        result |= equal & (x > y)
        equal &= x == y
    return result


def server_side_first(proto: np.ndarray, src_port: np.ndarray, dst_port: np.ndarray) -> np.ndarray:
    """nfdump's -B guess (NeedSwap): a TCP/UDP flow whose source port looks like the
    server's (below 1024, 32768 or 49152 while the destination port is not)."""
    sp, dp = src_port.astype(np.int64), dst_port.astype(np.int64)
    server = np.zeros(len(sp), dtype=np.bool_)
    for limit in (1024, 32768, 49152):
        server |= (sp < limit) & (dp >= limit)
    return np.isin(proto, _TCP_UDP) & server


class BidirAggregator:
    """``-b`` / ``-B`` over a stream of filtered batches (``guess_direction``: ``-B``)."""

    key_names: Final = list(BIDIR_KEYS)

    def __init__(self, *, guess_direction: bool, with_flags: bool = False) -> None:
        self.guess_direction = guess_direction
        self.with_flags = with_flags
        flag_prefixes = ["ab_flag", "ba_flag"] if with_flags else []
        self._groups = GroupAccumulator(
            ["lo4", "lo6", "lo_port", "hi4", "hi6", "hi_port", "proto"],
            [*_aggregations(flag_prefixes, ("flows", "packets", "bytes", "ba_packets", "ba_bytes")),
             ("ab_first", "min"), ("ba_first", "min")],
        )  # fmt: skip

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        src4, src6 = address_key(batch, "src_addr", "src_addr6")
        dst4, dst6 = address_key(batch, "dst_addr", "dst_addr6")
        src_port, dst_port = numeric_key(batch, "src_port"), icmp_dst_port(batch)
        proto = numeric_key(batch, "proto")
        src_words = (*_address_words(src4, src6), np.asarray(src_port, dtype=np.uint64))
        dst_words = (*_address_words(dst4, dst6), np.asarray(dst_port, dtype=np.uint64))
        # the record runs hi -> lo: only TCP and UDP pair with their reverse (nfdump)
        swapped = np.isin(np.asarray(proto), _TCP_UDP) & _greater(src_words, dst_words)
        swap = pa.array(swapped)
        counters = _counters(batch)
        no_time = pa.scalar(None, counters["first"].type)
        columns = {
            "lo4": pc.if_else(swap, dst4, src4), "lo6": pc.if_else(swap, dst6, src6),
            "lo_port": pc.if_else(swap, dst_port, src_port),
            "hi4": pc.if_else(swap, src4, dst4), "hi6": pc.if_else(swap, src6, dst6),
            "hi_port": pc.if_else(swap, src_port, dst_port), "proto": proto,
            "flows": counters["flows"], "first": counters["first"], "last": counters["last"],
            # lo -> hi is "packets" / "bytes"; the reverse goes to ba_*; a record's own
            # reverse counters (RFC 5103 biflows) go the other way
            "packets": pc.if_else(swap, counters["out_packets"], counters["packets"]),
            "bytes": pc.if_else(swap, counters["out_bytes"], counters["bytes"]),
            "ba_packets": pc.if_else(swap, counters["packets"], counters["out_packets"]),
            "ba_bytes": pc.if_else(swap, counters["bytes"], counters["out_bytes"]),
            "ab_first": pc.if_else(swap, no_time, counters["first"]),
            "ba_first": pc.if_else(swap, counters["first"], no_time),
        }  # fmt: skip
        if self.with_flags:
            flags = pc.fill_null(_column(batch, "tcp_flags", pa.uint16()), 0)
            no_flags = pa.scalar(0, flags.type)
            columns.update(_flag_bits(pc.if_else(swap, no_flags, flags), "ab_flag"))
            columns.update(_flag_bits(pc.if_else(swap, flags, no_flags), "ba_flag"))
        self._groups.add(pa.table(columns))

    def result(self, order: str | None, limit: int) -> pa.Table:
        """Rows with the columns of -A rows, the key ``BIDIR_KEYS`` as each row reads
        (see the module docstring)."""
        table = self._groups.result()
        if table is None:
            table = empty_groups(BIDIR_KEYS, _COUNTERS)
            return order_rows(finish_rows(table), order, limit, BIDIR_KEYS)
        ab_first = pc.cast(table["ab_first"], pa.int64())
        ba_first = pc.cast(table["ba_first"], pa.int64())
        # read the row in the direction of its earliest flow; lo -> hi on a tie
        turn = pc.and_(pc.is_valid(ba_first),
                       pc.or_(pc.is_null(ab_first), pc.less(ba_first, ab_first)))  # fmt: skip
        turned = np.asarray(pc.fill_null(turn, False), dtype=np.bool_)
        if self.guess_direction:
            lo_port = np.asarray(table["lo_port"], dtype=np.uint64)
            hi_port = np.asarray(table["hi_port"], dtype=np.uint64)
            src = np.where(turned, hi_port, lo_port)
            dst = np.where(turned, lo_port, hi_port)
            turned ^= server_side_first(np.asarray(table["proto"]), src, dst)
        flip = pa.array(turned)

        def pick(when_turned: str, otherwise: str) -> pa.Array:
            return pc.if_else(flip, table[when_turned], table[otherwise])

        rows = {
            "src_addr": pick("hi4", "lo4"), "src_addr6": pick("hi6", "lo6"),
            "src_port": pick("hi_port", "lo_port"),
            "dst_addr": pick("lo4", "hi4"), "dst_addr6": pick("lo6", "hi6"),
            "dst_port": pick("lo_port", "hi_port"), "proto": table["proto"],
            "flows": table["flows"],
            "packets": pick("ba_packets", "packets"), "bytes": pick("ba_bytes", "bytes"),
            "out_packets": pick("packets", "ba_packets"), "out_bytes": pick("bytes", "ba_bytes"),
            "first": table["first"], "last": table["last"],
        }  # fmt: skip
        if self.with_flags:
            ab = _flags_from_bits(table, "ab_flag")
            ba = _flags_from_bits(table, "ba_flag")
            rows["tcp_flags"] = pa.array(np.where(turned, ba, ab), pa.uint16())
        result = pa.table({name: _plain(values) for name, values in rows.items()})
        return order_rows(finish_rows(result), order, limit, BIDIR_KEYS)


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
