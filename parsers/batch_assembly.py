"""Turn decoded record columns plus per-datagram context into finished columns.

The walk (``parsers/decoder.py``) remembers, for every staged set, which datagram it
came from; here those per-datagram facts (export time, header uptime, exporter,
domain, sampling) are repeated over the records with numpy and applied in one go:
absolute times, the exporter and domain columns, the sampling interval in force.
"""

from __future__ import annotations

import ipaddress
from typing import Final

import numpy as np

from parsers.elements import DURATION_KINDS, ElementKind
from parsers.events import ColumnValues, FlowBatch, OptionsRecord, VarBinary
from parsers.exporter_state import MAX_SAMPLING_INTERVAL, ExporterState
from parsers.netflow_v5 import COPIED_FIELDS as V5_COPIED_FIELDS
from parsers.netflow_v5 import V5_RECORD_DTYPE
from parsers.record_decoder import COLUMN_SPECS, RawColumns
from parsers.timebase import (
    ExportClock,
    TimeField,
    resolve_flow_times,
    time_field_to_unix_ns,
)

#: IPv4 address columns whose IPv6 twin is the same name + "6"
ADDRESS_PAIRS: Final = tuple(
    sorted(
        name
        for name, spec in COLUMN_SPECS.items()
        if spec.kind is ElementKind.IPV4
        and (twin := COLUMN_SPECS.get(name + "6")) is not None
        and twin.kind is ElementKind.IPV6
    )
)

#: per-datagram context fields, in the order of the decoder's context tuples
CONTEXT_FIELDS: Final = (
    "version",
    "domain",
    "export_ns",
    "header_uptime_ms",  # -1: the version has no uptime in its header (IPFIX)
    "system_init_ns",  # UNKNOWN_NS unless an options record said
    "received_at_ns",
    "sampling",
    "engine_type",
    "engine_id",
)
_CONTEXT_INDEX: Final = {name: i for i, name in enumerate(CONTEXT_FIELDS)}


class ContextTable:
    """Per-record copies of the datagram contexts: one int64 row per record.

    A plain 2-D int64 array is several times cheaper to build from tuples and to take
    rows from than a structured array; columns are read by name.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    @classmethod
    def from_tuples(cls, contexts: list[tuple]) -> ContextTable:
        return cls(np.array(contexts, dtype=np.int64).reshape(len(contexts), len(CONTEXT_FIELDS)))

    def take(self, index: np.ndarray) -> ContextTable:
        return ContextTable(self.rows.take(index, axis=0))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.rows[:, _CONTEXT_INDEX[name]]

    def __len__(self) -> int:
        return len(self.rows)


def _column_dtype(column: str) -> np.dtype:
    spec = COLUMN_SPECS[column]
    if spec.kind is ElementKind.IPV4:
        return np.dtype(np.uint32)
    return np.dtype(f"u{spec.size}")


def _clock(context: ContextTable, system_init_ns: np.ndarray | None) -> ExportClock:
    uptime = context["header_uptime_ms"]
    has_uptime = bool(len(uptime)) and bool((uptime >= 0).all())
    init = context["system_init_ns"] if system_init_ns is None else system_init_ns
    return ExportClock(context["export_ns"], uptime if has_uptime else None, init)


def _sampling(
    columns: dict[str, ColumnValues],
    context: ContextTable,
    state: ExporterState,
    version: int,
) -> np.ndarray:
    """The 1-in-N sampling in force for each record.

    In order: the record's own samplingInterval; its packet interval/space or random
    interval; its sampler id looked up in the exporter's sampler options; else the
    default the exporter's options (or v5 header) announced for the datagram.
    """
    default = context["sampling"].astype(np.uint32)
    own = sampling_interval_columns(columns)
    if own is not None:
        own = np.minimum(own, np.uint64(MAX_SAMPLING_INTERVAL))
        return np.where(own > 0, own, default).astype(np.uint32)
    sampler = columns.get("sampler_id")
    if isinstance(sampler, np.ndarray) and state.samplers:
        result = default.copy()
        domains = context["domain"]
        pairs = np.unique(
            np.column_stack([sampler.astype(np.uint64), domains.astype(np.uint64)]), axis=0
        )
        for sampler_id, domain in pairs.tolist():  # one step per distinct sampler, not per flow
            interval = state.samplers.get((version, domain, sampler_id))
            if interval is not None:
                result[(sampler == sampler_id) & (domains == domain)] = interval
        return result
    return default


def sampling_interval_columns(columns: dict[str, ColumnValues]) -> np.ndarray | None:
    """Sampling carried in the data records themselves (Huawei sends IE 34 per flow)."""
    for key in ("sampling_interval", "sampler_random_interval"):
        value = columns.get(key)
        if isinstance(value, np.ndarray):
            return value.astype(np.uint64)
    interval = columns.get("sampling_packet_interval")
    space = columns.get("sampling_packet_space")
    if isinstance(interval, np.ndarray) and isinstance(space, np.ndarray):
        safe = np.maximum(interval.astype(np.uint64), 1)
        return (safe + space.astype(np.uint64)) // safe
    size = columns.get("sampling_size")
    population = columns.get("sampling_population")
    if isinstance(size, np.ndarray) and isinstance(population, np.ndarray):
        return population.astype(np.uint64) // np.maximum(size.astype(np.uint64), 1)
    probability = columns.get("sampling_probability")
    if isinstance(probability, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inverse = np.where(probability > 0, np.rint(1 / probability), 0)
            inverse = np.nan_to_num(inverse, nan=0.0, posinf=MAX_SAMPLING_INTERVAL)
            return np.clip(inverse, 0, MAX_SAMPLING_INTERVAL).astype(np.uint64)
    return None


def _exporter_columns(state: ExporterState, rows: int) -> dict[str, ColumnValues]:
    columns: dict[str, ColumnValues] = {
        "exporter_port": np.full(rows, state.exporter[1], dtype=np.uint16)
    }
    if state.ipv4 is not None:
        columns["exporter"] = np.full(rows, state.ipv4, dtype=np.uint32)
    else:
        assert state.ipv6 is not None
        columns["exporter6"] = np.tile(np.frombuffer(state.ipv6, dtype=np.uint8), (rows, 1))
    return columns


def assemble_flow_batch(
    raw: RawColumns, context: ContextTable, state: ExporterState, version: int
) -> FlowBatch:
    """Finish one template's records: times, exporter, domain, sampling."""
    columns = dict(raw.columns)
    times = dict(raw.times)
    init_field = times.pop("system_init_time", None)
    system_init_ns = None
    clock = _clock(context, None)
    if init_field is not None:
        system_init_ns = time_field_to_unix_ns(init_field, clock)[0]
        columns["system_init_time"] = system_init_ns
        clock = _clock(context, system_init_ns)
    start = times.pop("time_start", None)
    end = times.pop("time_end", None)
    duration = times.pop("duration", None)
    observation = times.pop("observation_time", None)
    observation_ns = None
    if observation is not None:
        observation_ns = time_field_to_unix_ns(observation, clock)[0]
        columns["observation_time"] = observation_ns
    for column, field in times.items():
        columns[column] = time_field_to_unix_ns(field, clock)[0]
    columns["time_start"], columns["time_end"] = resolve_flow_times(
        start, end, duration, observation_ns, clock
    )
    _add_context_columns(columns, context, state, version, raw.num_rows)
    return FlowBatch(raw.num_rows, columns, list(raw.extra_fields), _address_families(columns))


def _address_families(columns: dict[str, ColumnValues]) -> dict[str, np.ndarray]:
    """Which rows of each IPv4/IPv6 address pair hold the flow's address.

    Cisco IOS XR, Procera and pmacct's exporters send one template with both families
    and zeros in the unused one: a row is IPv6 when its IPv4 field is 0.0.0.0 and its
    IPv6 field is not ::, or when both are zero and ipVersion says 6.
    """
    valid: dict[str, np.ndarray] = {}
    version = columns.get("ip_version")
    for name in ADDRESS_PAIRS:
        v4, v6 = columns.get(name), columns.get(name + "6")
        if not isinstance(v4, np.ndarray) or not isinstance(v6, np.ndarray):
            continue
        v4_zero = v4 == 0
        v6_set = v6.any(axis=1)
        is_v6 = v4_zero & v6_set
        if isinstance(version, np.ndarray):
            is_v6 |= v4_zero & ~v6_set & (version == 6)
        valid[name] = ~is_v6
        valid[name + "6"] = is_v6
    return valid


def _add_context_columns(
    columns: dict[str, ColumnValues],
    context: ContextTable,
    state: ExporterState,
    version: int,
    rows: int,
) -> None:
    columns.update(_exporter_columns(state, rows))
    columns["observation_domain"] = context["domain"].astype(np.uint32)
    columns["time_received"] = context["received_at_ns"].astype(np.int64)
    columns["sampling_interval"] = _sampling(columns, context, state, version)
    columns["flow_version"] = np.full(rows, version, dtype=np.uint8)
    columns.setdefault("engine_type", context["engine_type"].astype(np.uint8))
    columns.setdefault("engine_id", context["engine_id"].astype(np.uint8))


def assemble_v5_batch(buffer: bytes, context: ContextTable, state: ExporterState) -> FlowBatch:
    """NetFlow v5 records: one fixed dtype, times from the header's uptime."""
    rows = len(context)
    records = np.frombuffer(buffer, dtype=V5_RECORD_DTYPE, count=rows)
    columns: dict[str, ColumnValues] = {
        name: records[name].astype(_column_dtype(name)) for name in V5_COPIED_FIELDS
    }
    clock = _clock(context, None)
    start = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, records["first_uptime_ms"])
    end = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, records["last_uptime_ms"])
    columns["time_start"], columns["time_end"] = resolve_flow_times(start, end, None, None, clock)
    _add_context_columns(columns, context, state, 5, rows)
    return FlowBatch(rows, columns, [])


# -- options records: few, so Python values per record are fine ---------------------


def _python_values(values: ColumnValues, column: str | None) -> list[object]:
    spec = COLUMN_SPECS.get(column) if column else None
    if isinstance(values, VarBinary):
        raw = [values.value(i) for i in range(len(values))]
        if spec is not None and spec.kind is ElementKind.STRING:
            return [v.decode("utf-8", "replace") for v in raw]
        return [v.hex() for v in raw]
    if values.ndim == 2:
        if spec is not None and spec.kind is ElementKind.IPV6:
            return [str(ipaddress.IPv6Address(bytes(row))) for row in values]
        if spec is not None and spec.kind is ElementKind.MAC:
            return [":".join(f"{b:02x}" for b in row) for row in values]
        return [bytes(row).hex() for row in values]
    if spec is not None and spec.kind is ElementKind.IPV4:
        return [str(ipaddress.IPv4Address(int(v))) for v in values]
    return values.tolist()


def options_records(
    raw: RawColumns,
    context: ContextTable,
    state: ExporterState,
    version: int,
    template_id: int,
) -> list[OptionsRecord]:
    """Options data records as dicts keyed by column (or ``"PEN:id"``) name."""
    columns: dict[str, list[object]] = {
        name: _python_values(values, name) for name, values in raw.columns.items()
    }
    clock = _clock(context, None)
    for name, field in raw.times.items():
        if field.kind in DURATION_KINDS:
            columns[name] = field.values.astype(np.int64).tolist()
            continue
        converted, known = time_field_to_unix_ns(field, clock)
        columns[name] = [int(v) if k else None for v, k in zip(converted, known, strict=True)]
    for key, values in raw.extra_fields:
        columns[key] = _python_values(values, None)
    domain = int(context["domain"][0]) if len(context) else 0
    return [
        OptionsRecord(
            state.exporter,
            version,
            domain,
            template_id,
            {name: column[row] for name, column in columns.items()},
        )
        for row in range(raw.num_rows)
    ]


__all__ = ["ContextTable", "assemble_flow_batch", "assemble_v5_batch", "options_records"]
