"""The one Arrow schema of stored flows, and the only place that maps a column to an
Arrow type.

Columns, in order: the contract's core fields (CSV record output lists these first),
the IPv6 twins of the address columns, per-datagram facts, then one column for every
element ``parsers/elements.py`` can produce (VMware vDS tenant addresses and ports,
VXLAN segment id, NAT, MPLS, ...), then ``extra_fields``: a map from ``"PEN:id"`` to the
raw bytes of every field nobody maps, so no exported byte is lost.

Addresses: an address column ``X`` holds IPv4 addresses as ``uint32`` and its twin
``X6`` holds IPv6 addresses as 16 bytes; exactly one of the two is set for a flow.
Grouping and filtering on a ``uint32`` column is ~4x faster in Arrow than on
``fixed_size_binary(16)`` (measured, 10 M rows), and most traffic is IPv4.
Times are UTC timestamps with millisecond resolution.

The schema is wide (every element has a column) but each batch and each file holds only
the columns its exporters sent: an Arrow null column still allocates its full data
buffer (8 bytes per row for ``uint64``), so ``to_record_batch`` builds the contract's
core columns plus the ones present, in schema order, and readers open files with
``FLOW_SCHEMA`` so absent columns read as null.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np
import pyarrow as pa

from parsers.elements import ColumnSpec, ElementKind, column_specs
from parsers.events import ColumnValues, FlowBatch, VarBinary

TIME_TYPE: Final = pa.timestamp("ms", tz="UTC")
IPV4_TYPE: Final = pa.uint32()
IPV6_TYPE: Final = pa.binary(16)
MAC_TYPE: Final = pa.binary(6)
EXTRA_FIELDS_TYPE: Final = pa.map_(pa.string(), pa.binary())
_NS_PER_MS: Final = 1_000_000

#: the contract's core fields, in the contract's order
CORE_FIELDS: Final = (
    pa.field("time_start", TIME_TYPE),
    pa.field("time_end", TIME_TYPE),
    pa.field("proto", pa.uint8()),
    pa.field("src_addr", IPV4_TYPE),
    pa.field("src_port", pa.uint16()),
    pa.field("dst_addr", IPV4_TYPE),
    pa.field("dst_port", pa.uint16()),
    pa.field("tcp_flags", pa.uint16()),
    pa.field("tos", pa.uint8()),
    pa.field("packets", pa.uint64()),
    pa.field("bytes", pa.uint64()),
    pa.field("in_if", pa.uint32()),
    pa.field("out_if", pa.uint32()),
    pa.field("src_as", pa.uint32()),
    pa.field("dst_as", pa.uint32()),
    pa.field("src_mask", pa.uint8()),
    pa.field("dst_mask", pa.uint8()),
    pa.field("next_hop", IPV4_TYPE),
    pa.field("exporter", IPV4_TYPE),
    pa.field("observation_domain", pa.uint32()),
    pa.field("time_received", TIME_TYPE),
    pa.field("sampling_interval", pa.uint32()),
)

#: facts of the export datagram rather than of an element
DATAGRAM_FIELDS: Final = (
    pa.field("src_addr6", IPV6_TYPE),
    pa.field("dst_addr6", IPV6_TYPE),
    pa.field("next_hop6", IPV6_TYPE),
    pa.field("exporter6", IPV6_TYPE),
    pa.field("exporter_port", pa.uint16()),
    pa.field("flow_version", pa.uint8()),
    pa.field("engine_type", pa.uint8()),
    pa.field("engine_id", pa.uint8()),
)


def arrow_type(spec: ColumnSpec) -> pa.DataType:
    """The Arrow type of an element column."""
    kind = spec.kind
    if kind is ElementKind.UNSIGNED:
        return {1: pa.uint8(), 2: pa.uint16(), 4: pa.uint32()}.get(spec.size, pa.uint64())
    if kind is ElementKind.SIGNED:
        return {1: pa.int8(), 2: pa.int16(), 4: pa.int32()}.get(spec.size, pa.int64())
    if kind is ElementKind.FLOAT:
        return pa.float64()
    if kind is ElementKind.BOOLEAN:
        return pa.bool_()
    if kind is ElementKind.IPV4:
        return IPV4_TYPE
    if kind is ElementKind.IPV6:
        return IPV6_TYPE
    if kind is ElementKind.MAC:
        return MAC_TYPE
    if kind is ElementKind.STRING:
        return pa.string()
    if kind in (ElementKind.OCTETS, ElementKind.LIST):
        return pa.binary()
    return TIME_TYPE  # every time kind becomes an absolute timestamp


def _build_schema() -> pa.Schema:
    fields = list(CORE_FIELDS) + list(DATAGRAM_FIELDS)
    known = {f.name for f in fields}
    for column, spec in column_specs().items():
        if column not in known:
            fields.append(pa.field(column, arrow_type(spec)))
            known.add(column)
    fields.append(pa.field("extra_fields", EXTRA_FIELDS_TYPE))
    return pa.schema(fields)


FLOW_SCHEMA: Final = _build_schema()
TIME_COLUMNS: Final = frozenset(f.name for f in FLOW_SCHEMA if f.type == TIME_TYPE)


def _validity(valid: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    """Arrow validity bitmap and null count for a boolean mask (None: all valid)."""
    if valid is None or bool(valid.all()):
        return None, 0
    bitmap = np.packbits(valid.astype(np.bool_), bitorder="little")
    return pa.py_buffer(bitmap), int(len(valid) - np.count_nonzero(valid))


def _arrow_array(
    values: ColumnValues, arrow: pa.DataType, column: str, valid: np.ndarray | None = None
) -> pa.Array:
    if isinstance(values, VarBinary):
        return _var_binary_array(values, arrow)
    bitmap, nulls = _validity(valid)
    if arrow == TIME_TYPE:
        milliseconds = np.floor_divide(values, _NS_PER_MS).astype(np.int64, copy=False)
        return pa.Array.from_buffers(
            arrow, len(milliseconds), [bitmap, pa.py_buffer(milliseconds)], null_count=nulls
        )
    if pa.types.is_fixed_size_binary(arrow):
        rows = np.ascontiguousarray(values, dtype=np.uint8)
        if rows.ndim != 2 or rows.shape[1] != arrow.byte_width:
            raise ValueError(f"{column}: expected rows of {arrow.byte_width} bytes")
        return pa.FixedSizeBinaryArray.from_buffers(
            arrow, len(rows), [bitmap, pa.py_buffer(rows)], null_count=nulls
        )
    if bitmap is not None:
        return pa.array(values, type=arrow, mask=~valid)
    return pa.array(values, type=arrow)


def _var_binary_array(values: VarBinary, arrow: pa.DataType) -> pa.Array:
    large = values.offsets.dtype == np.int64
    base = pa.large_binary() if large else pa.binary()
    array = pa.Array.from_buffers(
        base,
        len(values),
        [None, pa.py_buffer(values.offsets), pa.py_buffer(np.ascontiguousarray(values.data))],
    )
    if pa.types.is_string(arrow):
        try:
            return array.cast(pa.large_string() if large else pa.string()).cast(arrow)
        except pa.ArrowInvalid:  # devices send Latin-1 in "UTF-8" strings
            return pa.array(
                [v.decode("utf-8", "replace") for v in array.to_pylist()], type=arrow
            )
    return array.cast(arrow) if array.type != arrow else array


def _extra_fields_array(batch: FlowBatch) -> pa.Array:
    rows = batch.num_rows
    if not batch.extra_fields:
        offsets = pa.array(np.zeros(rows + 1, dtype=np.int32))
        empty = pa.array([], type=pa.string()), pa.array([], type=pa.binary())
        return pa.MapArray.from_arrays(offsets, *empty, type=EXTRA_FIELDS_TYPE)
    keys = [key for key, _ in batch.extra_fields]
    width = len(keys)
    value_arrays = []
    for _, values in batch.extra_fields:
        if isinstance(values, VarBinary):
            value_arrays.append(_var_binary_array(values, pa.binary()))
        else:
            rows_bytes = np.ascontiguousarray(values, dtype=np.uint8)
            fixed = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(rows_bytes.shape[1]), rows, [None, pa.py_buffer(rows_bytes)]
            )
            value_arrays.append(fixed.cast(pa.binary()))
    # record-major order: row 0's fields, then row 1's, ...
    order = (np.arange(width)[None, :] * rows + np.arange(rows)[:, None]).reshape(-1)
    values = pa.concat_arrays(value_arrays).take(pa.array(order))
    key_array = pa.array(np.tile(np.array(keys, dtype=object), rows), type=pa.string())
    offsets = pa.array(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    return pa.MapArray.from_arrays(offsets, key_array, values, type=EXTRA_FIELDS_TYPE)


CORE_COLUMNS: Final = frozenset(f.name for f in CORE_FIELDS)
_FIELD_INDEX: Final = {f.name: i for i, f in enumerate(FLOW_SCHEMA)}


@lru_cache(maxsize=4096)
def _batch_layout(columns: frozenset[str], has_extra: bool, complete: bool) -> pa.Schema:
    """The fields of a batch with these columns, in ``FLOW_SCHEMA`` order.

    Cached: a collector sees the same few column sets (one per template) over and over,
    and walking the 473-field schema per batch cost more than converting the columns.
    """
    unknown = columns - _FIELD_INDEX.keys()
    if unknown:
        raise KeyError(f"columns not in the flow schema: {sorted(unknown)}")
    if complete:
        return FLOW_SCHEMA
    names = set(columns) | CORE_COLUMNS
    if has_extra:
        names.add("extra_fields")
    return pa.schema([FLOW_SCHEMA.field(i) for i in sorted(_FIELD_INDEX[n] for n in names)])


def to_record_batch(batch: FlowBatch, complete: bool = False) -> pa.RecordBatch:
    """One Arrow record batch from a parser batch, fields in ``FLOW_SCHEMA`` order.

    Holds the core columns (null where absent) and the columns the batch has, plus
    ``extra_fields`` when some field went there; ``complete=True`` gives every schema
    column (costly: see the module docstring), for tests and small outputs.
    """
    schema = _batch_layout(frozenset(batch.columns), bool(batch.extra_fields), complete)
    arrays = []
    for schema_field in schema:
        name = schema_field.name
        if name == "extra_fields":
            arrays.append(_extra_fields_array(batch))
        elif name in batch.columns:
            arrays.append(
                _arrow_array(batch.columns[name], schema_field.type, name, batch.valid.get(name))
            )
        else:
            arrays.append(pa.nulls(batch.num_rows, type=schema_field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
