"""Flow batches as JSON-ready rows, in the contract's field names and value forms.

Addresses are text (an address column and its IPv6 twin become one field), times are
ISO-8601 UTC with milliseconds, counters plain integers, unmapped fields hex strings
under ``extra_fields``. Used by ``python -m parsers``; per-row Python is fine here: this
formats output for a person, it is not the ingest path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Final

import numpy as np

from parsers.elements import TIME_KINDS, ElementKind, column_specs
from parsers.events import ColumnValues, FlowBatch, OptionsRecord, VarBinary

#: the contract's core fields, listed first in every row
CORE_FIELD_ORDER: Final = (
    "time_start", "time_end", "proto", "src_addr", "src_port", "dst_addr", "dst_port",
    "tcp_flags", "tos", "packets", "bytes", "in_if", "out_if", "src_as", "dst_as",
    "src_mask", "dst_mask", "next_hop", "exporter", "observation_domain", "time_received",
    "sampling_interval",
)  # fmt: skip
_DATAGRAM_TIME_COLUMNS: Final = frozenset({"time_start", "time_end", "time_received"})
_SPECS: Final = column_specs()
#: IPv4 address columns; each has an IPv6 twin named with a trailing "6"
_IPV4_COLUMNS: Final = frozenset(
    {c for c, spec in _SPECS.items() if spec.kind is ElementKind.IPV4} | {"exporter"}
)


def field_name(column: str) -> str:
    """The output field of a column: an address and its IPv6 twin share one name."""
    if column.endswith("6") and column[:-1] in _IPV4_COLUMNS:
        return column[:-1]
    return column


def iso_times(ns: np.ndarray) -> list[str]:
    """ns since 1970 -> ``2026-11-22T10:05:00.123Z`` (UTC, milliseconds)."""
    milliseconds = np.floor_divide(np.asarray(ns, dtype=np.int64), 1_000_000)
    text = np.datetime_as_string(milliseconds.view("datetime64[ms]"), unit="ms")
    return [t + "Z" for t in text.tolist()]


def _texts(values: ColumnValues, column: str) -> list[object]:
    spec = _SPECS.get(column)
    kind = spec.kind if spec is not None else None
    if column in _DATAGRAM_TIME_COLUMNS or kind in TIME_KINDS:
        return iso_times(values)  # type: ignore[arg-type]
    if isinstance(values, VarBinary):
        raw = [values.value(i) for i in range(len(values))]
        if kind is ElementKind.STRING:
            return [v.decode("utf-8", "replace") for v in raw]
        return [v.hex() for v in raw]
    if values.ndim == 2:
        if values.shape[1] == 16:
            return [str(ipaddress.IPv6Address(bytes(row))) for row in values]
        if values.shape[1] == 6:
            return [":".join(f"{b:02x}" for b in row) for row in values]
        return [bytes(row).hex() for row in values]
    if column in _IPV4_COLUMNS:
        return [str(ipaddress.IPv4Address(v)) for v in values.tolist()]
    return values.tolist()


def flow_rows(batch: FlowBatch) -> Iterator[dict[str, object]]:
    """One dict per flow: core fields first, then every other column present."""
    fields: dict[str, list[object]] = {}
    for column, values in batch.columns.items():
        texts = _texts(values, column)
        valid = batch.valid.get(column)
        if valid is not None:
            texts = [t if ok else None for t, ok in zip(texts, valid.tolist(), strict=True)]
        name = field_name(column)
        if name in fields:  # an address and its IPv6 twin: the one set in each row
            texts = [a if a is not None else b for a, b in zip(fields[name], texts, strict=True)]
        fields[name] = texts
    order = [c for c in CORE_FIELD_ORDER if c in fields]
    order += sorted(c for c in fields if c not in CORE_FIELD_ORDER)
    extras = [(key, _texts(values, key)) for key, values in batch.extra_fields]
    for row in range(batch.num_rows):
        record: dict[str, object] = {name: fields[name][row] for name in order}
        if extras:
            record["extra_fields"] = {key: values[row] for key, values in extras}
        yield record


def options_row(record: OptionsRecord) -> dict[str, object]:
    """An options record as one JSON object (marked ``"record": "options"``)."""
    return {
        "record": "options",
        "exporter": f"{record.exporter[0]}:{record.exporter[1]}",
        "version": record.version,
        "observation_domain": record.observation_domain,
        "template_id": record.template_id,
        **record.values,
    }
