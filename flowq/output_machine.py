"""CSV, JSON and NDJSON: the contract's field names and value forms, built a batch at a
time with Arrow compute (no Python per row, except for IPv6 address texts and free-text
string columns).

Record columns are fixed before the first row, so a CSV has one header and every JSON
object the same keys: the contract's 22 core fields in the contract's order, then
``RECORD_EXTRA_FIELDS`` (VLANs, direction, engine, BGP next hop, the VMware vDS tenant
fields and the VXLAN segment id). The list only grows at its end and names are never
changed. A value the flow does not carry is an empty CSV cell and a JSON ``null``: the
same keys in every object, the same cells in every row.

Value forms: addresses as text (``10.1.2.3``, ``2001:db8::1``; an address column and its
IPv6 twin are one field), times ISO-8601 UTC with milliseconds
(``2026-11-22T10:05:00.123Z``), ``proto`` and ``tcp_flags`` as numbers, counters as plain
integers, other binary values as lowercase hex.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from flowq.output_text import (
    ADDRESS_COLUMNS,
    Part,
    address_texts,
    column,
    format_times,
    text_block,
)
from storage.schema import CORE_FIELDS, FLOW_SCHEMA, TIME_TYPE

CORE_FIELD_NAMES: Final = tuple(f.name for f in CORE_FIELDS)
#: the record columns after the core fields, in this order (append only)
RECORD_EXTRA_FIELDS: Final = (
    "flows",
    "src_vlan",
    "dst_vlan",
    "flow_direction",
    "bgp_next_hop",
    "flow_version",
    "engine_type",
    "engine_id",
    "tenant_proto",
    "tenant_src_addr",
    "tenant_src_port",
    "tenant_dst_addr",
    "tenant_dst_port",
    "layer2_segment_id",
    "vxlan_export_role",
)
#: CSV header / JSON keys of a flow record, in order
RECORD_FIELDS: Final = CORE_FIELD_NAMES + RECORD_EXTRA_FIELDS
_COMMA: Final = pa.scalar(",")
_EMPTY: Final = pa.scalar("")
_NULL: Final = pa.scalar("null")
_CLOSE_BRACE: Final = pa.scalar("}")
_SCHEMA_TYPES: Final = {f.name: f.type for f in FLOW_SCHEMA}
#: rows only (flowq writes the header), never quoted: ``csv_block`` checked no cell
#: needs quotes; nulls are empty cells, newline "\n"
_CSV_ROWS_ONLY: Final = pa_csv.WriteOptions(include_header=False, quoting_style="none")
#: a character that makes a CSV cell need RFC 4180 quotes
_CSV_SPECIAL: Final = r'[",\r\n]'


def field_values(batch: pa.RecordBatch, name: str) -> pa.Array:
    """Field ``name`` of every row in its machine form: address columns as text (merged
    with the IPv6 twin), times as ISO-8601 strings, the rest as stored; all null where
    the batch lacks the column."""
    values = present_values(batch, name)
    if values is not None:
        return values
    schema_type = _SCHEMA_TYPES.get(name, pa.null())
    text = name in ADDRESS_COLUMNS or schema_type == TIME_TYPE
    return pa.nulls(batch.num_rows, type=pa.string() if text else schema_type)


def present_values(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    """``field_values``, or None when the batch has no value for the field at all (the
    writers then emit one constant instead of a column of nulls)."""
    if name in ADDRESS_COLUMNS:
        v4, v6 = column(batch, name), column(batch, ADDRESS_COLUMNS[name])
        if _all_null(v4) and _all_null(v6):
            return None
        return address_texts(batch, name)
    array = column(batch, name)
    if _all_null(array):
        return None
    if pa.types.is_timestamp(array.type):
        return iso_times(array)
    return array


def _all_null(array: pa.Array | None) -> bool:
    return array is None or array.null_count == len(array)


def iso_times(array: pa.Array) -> pa.Array:
    """Timestamps -> ``2026-11-22T10:05:00.123Z`` (UTC, milliseconds); null stays null."""
    ms = pc.cast(pc.cast(array, pa.timestamp("ms", tz="UTC"), safe=False), pa.int64())
    values = np.asarray(pc.fill_null(ms, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    text = format_times(values, "%Y-%m-%dT%H:%M:%S.", utc=True, suffix="Z")
    if ms.null_count:
        text = pc.if_else(pc.is_valid(ms), text, pa.scalar(None, pa.string()))
    return text


def _plain_text(array: pa.Array) -> pa.Array:
    """Any column -> text without quoting (null stays null)."""
    kind = array.type
    if pa.types.is_string(kind):
        return array
    if pa.types.is_large_string(kind):
        return pc.cast(array, pa.string())
    if pa.types.is_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return pa.array([None if v is None else v.hex() for v in array.to_pylist()], pa.string())
    if pa.types.is_large_binary(kind):
        return _plain_text(pc.cast(array, pa.binary()))
    if pa.types.is_boolean(kind):
        return pc.if_else(array, "true", "false")
    if pa.types.is_null(kind):
        return pa.nulls(len(array), type=pa.string())
    return pc.cast(array, pa.string())


def _is_text(array: pa.Array) -> bool:
    kind = array.type
    return not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )


def _any_match(text: pa.Array, pattern: str) -> bool:
    return len(text) > 0 and bool(pc.any(pc.match_substring_regex(text, pattern)).as_py())


# -- CSV ---------------------------------------------------------------------------------


def csv_cells(array: pa.Array) -> pa.Array:
    """One CSV cell per value: RFC 4180 quoting where needed, "" for null."""
    text = _plain_text(array)
    if _is_text(array) and _any_match(text, _CSV_SPECIAL):
        needs_quotes = pc.match_substring_regex(text, _CSV_SPECIAL)
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(needs_quotes, quoted, text)
    return pc.fill_null(text, "")


def csv_header(fields: Sequence[str]) -> str:
    return ",".join(fields)


def csv_parts(batch: pa.RecordBatch, fields: Sequence[str]) -> list[Part]:
    """The pieces of the batch's CSV lines over ``fields`` (cells and commas)."""
    parts: list[Part] = []
    for index, name in enumerate(fields):
        if index:
            parts.append(_COMMA)
        values = present_values(batch, name)
        parts.append(_EMPTY if values is None else csv_cells(values))
    return parts


def csv_block(batch: pa.RecordBatch, fields: Sequence[str]) -> bytes:
    """The batch's CSV lines over ``fields``, newline-terminated, as UTF-8 bytes.

    Arrow's CSV writer joins the cells (C++, about twice as fast as joining them with
    compute kernels) when no text cell needs RFC 4180 quotes; a batch with one (a free
    text column holding a comma or quote) is joined by ``csv_parts``."""
    columns: dict[str, pa.Array] = {}
    for name in fields:
        values = present_values(batch, name)
        if values is None:
            columns[name] = pa.nulls(batch.num_rows, pa.string())
            continue
        is_text = _is_text(values) or pa.types.is_boolean(values.type)
        text = _plain_text(values) if is_text else values
        if _is_text(values) and _any_match(text, _CSV_SPECIAL):
            return text_block(csv_parts(batch, fields), batch.num_rows).encode()
        columns[name] = text
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.table(columns), sink, _CSV_ROWS_ONLY)
    return sink.getvalue().to_pybytes()


# -- JSON --------------------------------------------------------------------------------


def json_values(array: pa.Array) -> pa.Array:
    """One JSON value text per value: numbers bare, text quoted and escaped, ``null``."""
    text = _plain_text(array)
    if _is_text(array):
        if _any_match(text, r'["\\\x00-\x1f]'):
            escaped = [
                None if v is None else json.dumps(v, ensure_ascii=False) for v in text.to_pylist()
            ]
            text = pa.array(escaped, pa.string())
        else:
            text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(text, "null")


def json_parts(batch: pa.RecordBatch, fields: Sequence[str]) -> list[Part]:
    """The pieces of the batch's JSON objects over ``fields`` (keys always present)."""
    parts: list[Part] = []
    for key, name in zip(_json_keys(tuple(fields)), fields, strict=True):
        values = present_values(batch, name)
        parts += [key, _NULL if values is None else json_values(values)]
    parts.append(_CLOSE_BRACE)
    return parts


@lru_cache(maxsize=64)
def _json_keys(fields: tuple[str, ...]) -> tuple[pa.Scalar, ...]:
    """``{"time_start":``, ``,"time_end":``, ...: the text before each value."""
    return tuple(
        pa.scalar(("," if index else "{") + json.dumps(name) + ":")
        for index, name in enumerate(fields)
    )
