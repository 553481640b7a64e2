"""``-A KEYS`` / ``-a``: aggregate flows by a key, like nfdump, in Arrow.

Keys are nfdump's names (``srcip,dstip,srcport,dstport,proto,srcnet/24,...``); an
address key groups by the IPv4 column and its IPv6 twin together, and ``srcnet/N``
masks both (IPv4 /N as an integer mask, IPv6 /N on the 16 bytes). Output rows are the
key columns (contract names), then flows, packets, bytes, time_start (earliest),
time_end (latest) and the rates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.stats import GroupAccumulator, StatError, _measures, top, with_rates

#: -A key -> (output column(s), source column(s)); addresses come as (X, X6) pairs
AGGREGATE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "srcip": ("src_addr", "src_addr6"),
    "dstip": ("dst_addr", "dst_addr6"),
    "next": ("next_hop", "next_hop6"),
    "router": ("exporter", "exporter6"),
    "srcport": ("src_port",),
    "dstport": ("dst_port",),
    "proto": ("proto",),
    "srcas": ("src_as",),
    "dstas": ("dst_as",),
    "inif": ("in_if",),
    "outif": ("out_if",),
    "tos": ("tos",),
    "srctos": ("tos",),
    "srcvlan": ("src_vlan",),
    "dstvlan": ("dst_vlan",),
    "vni": ("layer2_segment_id",),
}
#: -a: the 5-tuple
DEFAULT_KEYS: Final = ("srcip", "dstip", "srcport", "dstport", "proto")
_NET = re.compile(r"^(src|dst)net(?:/(\d+))?(?:/(\d+))?$")
#: nfdump's own spelling: srcip4/24, dstip6/64 (the other family stays whole)
_NFDUMP_NET = re.compile(r"^(src|dst)ip([46])/(\d+)$")


@dataclass(frozen=True, slots=True)
class AggregateKey:
    """One parsed key: the columns it groups by and, for srcnet/dstnet, the prefixes."""

    name: str
    columns: tuple[str, ...]
    ipv4_prefix: int | None = None
    ipv6_prefix: int | None = None


def parse_keys(text: str) -> list[AggregateKey]:
    """``srcip,dstport,srcnet/24`` -> keys; StatError on an unknown key."""
    keys = []
    for raw in (part.strip().lower() for part in text.split(",")):
        if not raw:
            continue
        nfdump_net = _NFDUMP_NET.match(raw)
        if nfdump_net:
            side, family, bits = nfdump_net.groups()
            raw = f"{side}net/{bits}/128" if family == "4" else f"{side}net/32/{bits}"
        match = _NET.match(raw)
        if match:
            side, v4, v6 = match.groups()
            v4_bits = int(v4) if v4 else 32
            v6_bits = int(v6) if v6 else 128
            if not 0 <= v4_bits <= 32 or not 0 <= v6_bits <= 128:
                raise StatError(f"aggregation key '{raw}': prefix out of range")
            columns = (f"{side}_addr", f"{side}_addr6")
            keys.append(AggregateKey(raw, columns, v4_bits, v6_bits))
        elif raw in AGGREGATE_KEYS:
            keys.append(AggregateKey(raw, AGGREGATE_KEYS[raw]))
        else:
            known = ", ".join([*AGGREGATE_KEYS, "srcnet/N", "dstnet/N"])
            raise StatError(f"unknown aggregation key '{raw}' (known: {known})")
    if not keys:
        raise StatError("no aggregation keys given")
    return keys


def key_input_columns(keys: list[AggregateKey]) -> set[str]:
    return {column for key in keys for column in key.columns} | {
        "packets", "bytes", "time_start", "time_end", "flows",
    }  # fmt: skip


def _mask_ipv4(column: pa.Array, bits: int) -> pa.Array:
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if bits else 0
    return pc.bit_wise_and(column, pa.scalar(mask, pa.uint32()))


def _mask_ipv6(column: pa.Array, bits: int) -> pa.Array:
    """Keep the first ``bits`` bits of each 16-byte address (nulls stay null)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows = len(column)
    if rows == 0 or column.null_count == rows:
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


class Aggregator:
    """``-A`` over a stream of filtered batches."""

    def __init__(self, keys: list[AggregateKey]) -> None:
        self.keys = keys
        self.key_names = [column for key in keys for column in key.columns]
        self._groups = GroupAccumulator(self.key_names)

    def _key_columns(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        columns: dict[str, pa.Array] = {}
        for key in self.keys:
            for column in key.columns:
                if column in batch.schema.names:
                    values = batch.column(column)
                else:
                    values = pa.nulls(batch.num_rows)
                if key.ipv4_prefix is not None and not column.endswith("6"):
                    values = _mask_ipv4(values, key.ipv4_prefix)
                elif (
                    key.ipv6_prefix is not None
                    and column.endswith("6")
                    and values.type != pa.null()
                ):
                    values = _mask_ipv6(values, key.ipv6_prefix)
                columns[column] = values
        return columns

    def add(self, batch: pa.RecordBatch) -> None:
        self._groups.add(pa.table({**self._key_columns(batch), **_measures(batch)}))

    def result(self, order: str | None, limit: int) -> pa.Table:
        """Aggregated rows ordered by ``order`` (default: earliest first, like nfdump)."""
        table = with_rates(self._groups.result())
        table = table.rename_columns(
            [{"first": "time_start", "last": "time_end"}.get(n, n) for n in table.column_names]
        )
        if order in (None, "tstart"):
            keys = [("time_start", "ascending"), *((k, "ascending") for k in self.key_names)]
            table = table.sort_by(keys)
            return table.slice(0, limit) if limit else table
        if order == "tend":
            keys = [("time_end", "ascending"), *((k, "ascending") for k in self.key_names)]
            table = table.sort_by(keys)
            return table.slice(0, limit) if limit else table
        return top(table, order, limit, self.key_names)
