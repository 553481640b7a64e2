"""Round trip: generated flow records, encoded with our construct definitions, decode
to exactly the generated column values (style guide §7, property 2).

Everything on the wire is built here with construct: the message and set headers and
template records with the definitions of ``parsers/netflow_v5.py``,
``parsers/netflow_v9.py`` and ``parsers/ipfix.py``, the data records with a construct
``Struct`` of the template's fields (``BytesInteger`` / ``Bytes`` / length-prefixed
``GreedyBytes``). Nothing of the decoder's own code writes a test packet, and every
expected value (times included) is computed here from the generated inputs.

The wire builders at the top are shared with the other parser property tests
(``test_templates.py``, ``test_fuzz.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest
from construct import (
    Bytes,
    BytesInteger,
    Const,
    Construct,
    FocusedSeq,
    GreedyBytes,
    Int8ub,
    Int16ub,
    Prefixed,
    Struct,
)
from hypothesis import assume, event, given
from hypothesis import strategies as st

from parsers import ipfix, netflow_v5, netflow_v9
from parsers.decoder import FlowDecoder
from parsers.errors import MalformedSet
from parsers.events import FlowBatch, VarBinary

# ======================================================================================
# wire builders: construct definitions only
# ======================================================================================

VARLEN = 65535  # RFC 7011 §7
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01 (RFC 5905)
#: a 1-byte length prefix (values of 0..254 bytes)
SHORT_VARLEN: Construct = Prefixed(Int8ub, GreedyBytes)
#: 255 then a 2-byte length (RFC 7011 §7; allowed for short values too)
LONG_VARLEN: Construct = FocusedSeq(
    "value", Const(b"\xff"), "value" / Prefixed(Int16ub, GreedyBytes)
)


@dataclass(frozen=True)
class WireField:
    """A template field as the exporter writes it (pen 0: IANA / NetFlow v9)."""

    pen: int
    element_id: int
    length: int


def ipfix_specifier(f: WireField) -> dict:
    if f.pen:
        return {"raw_id": f.element_id | ipfix.ENTERPRISE_BIT, "length": f.length, "pen": f.pen}
    return {"raw_id": f.element_id, "length": f.length, "pen": None}


def ipfix_template_record(template_id: int, fields: Sequence[WireField]) -> bytes:
    return ipfix.TEMPLATE_RECORD.build(
        {
            "template_id": template_id,
            "field_count": len(fields),
            "fields": [ipfix_specifier(f) for f in fields],
        }
    )


def ipfix_options_template_record(
    template_id: int, fields: Sequence[WireField], scope_count: int
) -> bytes:
    return ipfix.OPTIONS_TEMPLATE_RECORD.build(
        {
            "template_id": template_id,
            "field_count": len(fields),
            "scope_field_count": scope_count,
            "fields": [ipfix_specifier(f) for f in fields],
        }
    )


def ipfix_withdrawal(template_id: int) -> bytes:
    """A template record with no fields (RFC 7011 §8.1); id 2 / 3 withdraws all."""
    return ipfix.TEMPLATE_RECORD.build({"template_id": template_id, "field_count": 0, "fields": []})


def ipfix_set(set_id: int, body: bytes, padding: int = 0) -> bytes:
    header = ipfix.SET_HEADER.build({"set_id": set_id, "length": 4 + len(body) + padding})
    return header + body + bytes(padding)


def ipfix_message(
    sets: Sequence[bytes], export_time: int, sequence: int = 0, domain: int = 0
) -> bytes:
    body = b"".join(sets)
    header = ipfix.IPFIX_HEADER.build(
        {
            "version": 10,
            "length": ipfix.HEADER_SIZE + len(body),
            "export_time": export_time,
            "sequence": sequence,
            "observation_domain": domain,
        }
    )
    return header + body


def v9_template_record(template_id: int, fields: Sequence[WireField]) -> bytes:
    return netflow_v9.V9_TEMPLATE_RECORD.build(
        {
            "template_id": template_id,
            "field_count": len(fields),
            "fields": [{"field_type": f.element_id, "length": f.length} for f in fields],
        }
    )


def v9_options_template_record(
    template_id: int, scope: Sequence[WireField], options: Sequence[WireField]
) -> bytes:
    return netflow_v9.V9_OPTIONS_TEMPLATE_RECORD.build(
        {
            "template_id": template_id,
            "scope_length": 4 * len(scope),
            "option_length": 4 * len(options),
            "scope_fields": [{"field_type": f.element_id, "length": f.length} for f in scope],
            "option_fields": [{"field_type": f.element_id, "length": f.length} for f in options],
        }
    )


def v9_flowset(flowset_id: int, body: bytes, padding: int = 0) -> bytes:
    header = netflow_v9.FLOWSET_HEADER.build(
        {"flowset_id": flowset_id, "length": 4 + len(body) + padding}
    )
    return header + body + bytes(padding)


def v9_message(
    flowsets: Sequence[bytes],
    uptime_ms: int,
    unix_secs: int,
    sequence: int = 0,
    source_id: int = 0,
    count: int | None = None,
) -> bytes:
    header = netflow_v9.V9_HEADER.build(
        {
            "version": 9,
            "count": len(flowsets) if count is None else count,
            "sys_uptime_ms": uptime_ms,
            "unix_secs": unix_secs,
            "sequence": sequence,
            "source_id": source_id,
        }
    )
    return header + b"".join(flowsets)


def v5_datagram(header: dict, records: Sequence[dict]) -> bytes:
    built = netflow_v5.V5_HEADER.build({"version": 5, "count": len(records), **header})
    return built + b"".join(netflow_v5.V5_RECORD.build(r) for r in records)


def field_construct(f: WireField, value: int | bytes, long_prefix: bool = False) -> Construct:
    if f.length == VARLEN:
        return LONG_VARLEN if long_prefix or len(value) >= 255 else SHORT_VARLEN  # type: ignore[arg-type]
    if isinstance(value, int):
        return BytesInteger(f.length)
    return Bytes(f.length)


def data_record(
    fields: Sequence[WireField],
    values: Sequence[int | bytes],
    long_prefix: Sequence[bool] | None = None,
) -> bytes:
    """One data record as a construct ``Struct`` of the template's fields."""
    prefixes = long_prefix or [False] * len(fields)
    record = Struct(
        *(
            f"f{i}" / field_construct(f, v, p)
            for i, (f, v, p) in enumerate(zip(fields, values, prefixes, strict=True))
        )
    )
    return record.build({f"f{i}": v for i, v in enumerate(values)})


# ======================================================================================
# reading the decoder's output back as plain Python values
# ======================================================================================


def column_values(values: np.ndarray | VarBinary) -> list:
    """Numbers as ints, 2-D byte rows and VarBinary values as bytes."""
    if isinstance(values, VarBinary):
        return [values.value(i) for i in range(len(values))]
    if values.ndim == 2:
        assert values.dtype == np.uint8
        return [bytes(row) for row in values]
    return values.tolist()


def extra_values(batch: FlowBatch, key: str) -> list[list[bytes]]:
    """Every ``extra_fields`` entry under ``key``, in template order, as row bytes."""
    return [column_values(v) for k, v in batch.extra_fields if k == key]


def exporter_int(address: str) -> int:
    return int(ipaddress.ip_address(address))


def batch_of(batches: list[FlowBatch], exporter: tuple[str, int], domain: int) -> FlowBatch:
    """The one batch of this exporter and domain."""
    found = [
        b
        for b in batches
        if b.columns["exporter_port"][0] == exporter[1]
        and b.columns["observation_domain"][0] == domain
        and (
            b.columns["exporter"][0] == exporter_int(exporter[0])
            if "exporter" in b.columns
            else bytes(b.columns["exporter6"][0]) == ipaddress.ip_address(exporter[0]).packed
        )
    ]
    assert len(found) == 1, f"{len(found)} batches for {exporter} domain {domain}"
    return found[0]


# ======================================================================================
# what records can carry: a catalog of elements and how their values come back
# ======================================================================================

Form = Literal["uint", "bytes", "string", "raw"]


@dataclass(frozen=True)
class CatalogEntry:
    """An element a generated template may carry and where its value must come back.

    ``target`` is a column, or for ``raw`` an ``extra_fields`` key. Lengths are the
    encodings exporters use (the first the natural one, the rest reduced-size, RFC
    7011 §6.2).
    """

    pen: int
    element_id: int
    lengths: tuple[int, ...]
    target: str
    form: Form

    @property
    def v9_capable(self) -> bool:
        return self.pen == 0 and VARLEN not in self.lengths


VMWARE = 6876
UNKNOWN_PEN = 99999

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(0, 8, (4,), "src_addr", "uint"),
    CatalogEntry(0, 12, (4,), "dst_addr", "uint"),
    CatalogEntry(0, 15, (4,), "next_hop", "uint"),
    CatalogEntry(0, 27, (16,), "src_addr6", "bytes"),
    CatalogEntry(0, 28, (16,), "dst_addr6", "bytes"),
    CatalogEntry(0, 7, (2, 1), "src_port", "uint"),
    CatalogEntry(0, 11, (2,), "dst_port", "uint"),
    CatalogEntry(0, 4, (1,), "proto", "uint"),
    CatalogEntry(0, 5, (1,), "tos", "uint"),
    CatalogEntry(0, 6, (2, 1), "tcp_flags", "uint"),
    CatalogEntry(0, 1, (8, 4, 7, 6, 5, 3, 2, 1), "bytes", "uint"),
    CatalogEntry(0, 2, (8, 4, 2), "packets", "uint"),
    CatalogEntry(0, 10, (4, 2), "in_if", "uint"),
    CatalogEntry(0, 14, (4, 2), "out_if", "uint"),
    CatalogEntry(0, 16, (4, 2), "src_as", "uint"),
    CatalogEntry(0, 17, (4,), "dst_as", "uint"),
    CatalogEntry(0, 9, (1,), "src_mask", "uint"),
    CatalogEntry(0, 56, (6,), "in_src_mac", "bytes"),
    CatalogEntry(0, 58, (2,), "src_vlan", "uint"),
    CatalogEntry(0, 351, (8, 4), "layer2_segment_id", "uint"),
    CatalogEntry(0, 82, (VARLEN, 16), "interface_name", "string"),
    # VMware vDS / NSX (PEN 6876)
    CatalogEntry(VMWARE, 880, (1,), "tenant_proto", "uint"),
    CatalogEntry(VMWARE, 881, (4,), "tenant_src_addr", "uint"),
    CatalogEntry(VMWARE, 882, (4,), "tenant_dst_addr", "uint"),
    CatalogEntry(VMWARE, 883, (16,), "tenant_src_addr6", "bytes"),
    CatalogEntry(VMWARE, 884, (16,), "tenant_dst_addr6", "bytes"),
    CatalogEntry(VMWARE, 886, (2,), "tenant_src_port", "uint"),
    CatalogEntry(VMWARE, 887, (2,), "tenant_dst_port", "uint"),
    CatalogEntry(VMWARE, 888, (2,), "egress_if_attr", "uint"),
    CatalogEntry(VMWARE, 889, (1,), "vxlan_export_role", "uint"),
    CatalogEntry(VMWARE, 890, (2,), "ingress_if_attr", "uint"),
    CatalogEntry(VMWARE, 898, (VARLEN, 12), "virtual_obs_id", "string"),
    # nobody's element: kept raw under "PEN:id"
    CatalogEntry(UNKNOWN_PEN, 42, (3, VARLEN), f"{UNKNOWN_PEN}:42", "raw"),
    CatalogEntry(UNKNOWN_PEN, 43, (VARLEN, 5), f"{UNKNOWN_PEN}:43", "raw"),
)
V9_CATALOG = tuple(e for e in CATALOG if e.v9_capable)


@dataclass
class FieldPlan:
    """A chosen template field with its generated per-record values."""

    wire: WireField
    entry: CatalogEntry | None  # None: a time field, checked through the time columns
    values: list[int | bytes] = field(default_factory=list)
    long_prefix: list[bool] = field(default_factory=list)


def value_strategy(entry: CatalogEntry, length: int) -> st.SearchStrategy:
    if entry.form == "uint":
        return st.integers(0, (1 << (8 * length)) - 1)
    if entry.form == "bytes":
        return st.binary(min_size=length, max_size=length)
    if length == VARLEN:
        return st.binary(max_size=24) | st.binary(min_size=250, max_size=300)
    if entry.form == "string":  # fixed-width strings are NUL padded
        return st.binary(max_size=length).map(lambda v: v.ljust(length, b"\0"))
    return st.binary(min_size=length, max_size=length)


def expected_value(plan: FieldPlan, wire_value: int | bytes) -> int | bytes:
    """Fixed-width strings lose their NUL padding; everything else comes back as sent
    (variable-length strings byte for byte, NULs included)."""
    assert plan.entry is not None
    if plan.entry.form == "string" and plan.wire.length != VARLEN:
        assert isinstance(wire_value, bytes)
        return wire_value.rstrip(b"\0")
    return wire_value


def check_catalog_columns(batch: FlowBatch, plans: Sequence[FieldPlan]) -> None:
    """Every catalog field's values came back exactly, in record order."""
    for plan in plans:
        entry = plan.entry
        if entry is None:
            continue
        expected = [expected_value(plan, v) for v in plan.values]
        if entry.form == "raw":
            assert extra_values(batch, entry.target) == [expected], entry.target
            continue
        got = batch.columns[entry.target]
        if entry.form == "uint":
            assert isinstance(got, np.ndarray) and got.ndim == 1, entry.target
            assert got.dtype.kind == "u", entry.target
        assert column_values(got) == expected, entry.target


@st.composite
def catalog_plans(
    draw: st.DrawFn, catalog: Sequence[CatalogEntry], records: int, max_fields: int = 10
) -> list[FieldPlan]:
    entries = draw(
        st.lists(
            st.sampled_from(catalog), min_size=1, max_size=max_fields, unique_by=lambda e: e.target
        )
    )
    plans = []
    for entry in entries:
        length = draw(st.sampled_from(entry.lengths))
        plan = FieldPlan(WireField(entry.pen, entry.element_id, length), entry)
        plan.values = draw(
            st.lists(value_strategy(entry, length), min_size=records, max_size=records)
        )
        if length == VARLEN:
            plan.long_prefix = draw(st.lists(st.booleans(), min_size=records, max_size=records))
        plans.append(plan)
    return plans


def encode_records(plans: Sequence[FieldPlan], records: int) -> list[bytes]:
    fields = [p.wire for p in plans]
    return [
        data_record(
            fields,
            [p.values[r] for p in plans],
            [bool(p.long_prefix and p.long_prefix[r]) for p in plans],
        )
        for r in range(records)
    ]


def min_record_size(fields: Sequence[WireField]) -> int:
    return sum(1 if f.length == VARLEN else f.length for f in fields)


# ======================================================================================
# time forms (expected ns computed here, independently of parsers/timebase.py)
# ======================================================================================


def ntp_nanoseconds(unix_ns: int) -> int:
    """dateTimeNanoseconds for a time: NTP seconds and the fraction rounded up, so the
    fraction's floor back to ns is exact."""
    seconds, nanos = divmod(unix_ns, NS_PER_S)
    fraction = -((-nanos << 32) // NS_PER_S)  # ceil
    return ((seconds + NTP_UNIX_OFFSET_S) << 32) | fraction


def ntp_microseconds(unix_us: int) -> int:
    """dateTimeMicroseconds: the fraction's 11 low bits zero (RFC 7011 §6.1.9), rounded
    up onto that grid so that the time read back lies within the same microsecond."""
    seconds, micros = divmod(unix_us, 1_000_000)
    fraction = -((-micros << 32) // 1_000_000)
    fraction = (fraction + 0x7FF) & ~0x7FF
    assert fraction < 1 << 32
    return ((seconds + NTP_UNIX_OFFSET_S) << 32) | fraction


UPTIME_WRAP = 1 << 32
EXPORT_TIMES = st.integers(1_000_000_000, 2_000_000_000)  # 2001 .. 2033, seconds
#: ages of flow events before the export (ms): less than half the uptime wrap
AGES_MS = st.integers(0, 20 * 24 * 3600 * 1000)


@dataclass
class TimePlan:
    """Time fields of a template, with the expected absolute times per record."""

    name: str
    plans: list[FieldPlan]
    starts_ns: list[int]
    ends_ns: list[int]
    precision_ns: int = 1  # expected and decoded agree after // precision_ns
    options_sets: list[bytes] = field(default_factory=list)  # sent in the same message
    system_init_ns: int | None = None


TIME_FORMS = (
    "none",
    "seconds",
    "milliseconds",
    "microseconds",
    "nanoseconds",
    "delta_microseconds",
    "uptime_init_in_record",
    "uptime_init_from_options",
    "start_and_duration",
)
INIT_OPTIONS_TEMPLATE_ID = 4000


def _time_field(element_id: int, length: int, values: list[int]) -> FieldPlan:
    return FieldPlan(WireField(0, element_id, length), None, list(values))


@st.composite
def ipfix_time_plans(
    draw: st.DrawFn, form: str, records: int, export_s: int, domain: int
) -> TimePlan:
    export_ns = export_s * NS_PER_S
    export_ms = export_s * 1000
    n = records
    if form == "none":  # both times fall back to the export time
        return TimePlan(form, [], [export_ns] * n, [export_ns] * n)
    if form == "seconds":
        ages = draw(st.lists(st.integers(0, 10**6), min_size=2 * n, max_size=2 * n))
        starts = [export_s - max(a, b) for a, b in zip(ages[:n], ages[n:], strict=True)]
        ends = [export_s - min(a, b) for a, b in zip(ages[:n], ages[n:], strict=True)]
        return TimePlan(
            form,
            [_time_field(150, 4, starts), _time_field(151, 4, ends)],
            [s * NS_PER_S for s in starts],
            [e * NS_PER_S for e in ends],
        )
    if form in ("milliseconds", "start_and_duration"):
        starts = [export_ms - a for a in draw(st.lists(AGES_MS, min_size=n, max_size=n))]
        durations = draw(st.lists(st.integers(0, (1 << 32) - 1), min_size=n, max_size=n))
        ends = [s + d for s, d in zip(starts, durations, strict=True)]
        if form == "milliseconds":
            plans = [_time_field(152, 8, starts), _time_field(153, 8, ends)]
        else:  # flowDurationMilliseconds with only a start
            plans = [_time_field(152, 8, starts), _time_field(161, 4, durations)]
        return TimePlan(form, plans, [s * NS_PER_MS for s in starts], [e * NS_PER_MS for e in ends])
    if form == "microseconds":
        export_us = export_s * 1_000_000
        starts = [
            export_us - a for a in draw(st.lists(st.integers(0, 10**12), min_size=n, max_size=n))
        ]
        ends = [
            s + d
            for s, d in zip(
                starts, draw(st.lists(st.integers(0, 10**10), min_size=n, max_size=n)), strict=True
            )
        ]
        return TimePlan(
            form,
            [
                _time_field(154, 8, [ntp_microseconds(s) for s in starts]),
                _time_field(155, 8, [ntp_microseconds(e) for e in ends]),
            ],
            [s * 1000 for s in starts],
            [e * 1000 for e in ends],
            precision_ns=1000,
        )
    if form == "nanoseconds":
        starts = [
            export_ns - a for a in draw(st.lists(st.integers(0, 10**15), min_size=n, max_size=n))
        ]
        ends = [
            s + d
            for s, d in zip(
                starts, draw(st.lists(st.integers(0, 10**13), min_size=n, max_size=n)), strict=True
            )
        ]
        return TimePlan(
            form,
            [
                _time_field(156, 8, [ntp_nanoseconds(s) for s in starts]),
                _time_field(157, 8, [ntp_nanoseconds(e) for e in ends]),
            ],
            starts,
            ends,
        )
    if form == "delta_microseconds":  # µs before the message's export time
        deltas = draw(st.lists(st.integers(0, (1 << 32) - 1), min_size=2 * n, max_size=2 * n))
        start_d = [max(a, b) for a, b in zip(deltas[:n], deltas[n:], strict=True)]
        end_d = [min(a, b) for a, b in zip(deltas[:n], deltas[n:], strict=True)]
        return TimePlan(
            form,
            [_time_field(158, 4, start_d), _time_field(159, 4, end_d)],
            [export_ns - d * 1000 for d in start_d],
            [export_ns - d * 1000 for d in end_d],
        )
    # flowStart/EndSysUpTime with systemInitTimeMilliseconds: the exporter booted up to
    # 200 days before the export, so its 32-bit uptime may have wrapped several times
    boot_age_ms = draw(st.integers(0, 200 * 24 * 3600 * 1000))
    init_ms = export_ms - boot_age_ms
    # events after the boot and less than half a wrap (24.8 days) before the export
    ages = draw(
        st.lists(
            st.integers(0, min(boot_age_ms, 24 * 24 * 3600 * 1000)), min_size=2 * n, max_size=2 * n
        )
    )
    start_ms = [export_ms - max(a, b) for a, b in zip(ages[:n], ages[n:], strict=True)]
    end_ms = [export_ms - min(a, b) for a, b in zip(ages[:n], ages[n:], strict=True)]
    plans = [
        _time_field(22, 4, [(s - init_ms) % UPTIME_WRAP for s in start_ms]),
        _time_field(21, 4, [(e - init_ms) % UPTIME_WRAP for e in end_ms]),
    ]
    time_plan = TimePlan(
        form,
        plans,
        [s * NS_PER_MS for s in start_ms],
        [e * NS_PER_MS for e in end_ms],
        system_init_ns=init_ms * NS_PER_MS,
    )
    if form == "uptime_init_in_record":
        plans.append(_time_field(160, 8, [init_ms] * n))
    else:  # an options record (scope observationDomainId) announces the init time
        options_fields = [WireField(0, 149, 4), WireField(0, 160, 8)]
        time_plan.options_sets = [
            ipfix_set(
                3, ipfix_options_template_record(INIT_OPTIONS_TEMPLATE_ID, options_fields, 1)
            ),
            ipfix_set(INIT_OPTIONS_TEMPLATE_ID, data_record(options_fields, [domain, init_ms])),
        ]
    return time_plan


def check_times(batch: FlowBatch, times: TimePlan) -> None:
    got_start = batch.columns["time_start"]
    got_end = batch.columns["time_end"]
    assert got_start.dtype == np.int64 and got_end.dtype == np.int64
    p = times.precision_ns
    assert [t // p for t in got_start.tolist()] == [t // p for t in times.starts_ns], times.name
    assert [t // p for t in got_end.tolist()] == [t // p for t in times.ends_ns], times.name
    if times.name == "uptime_init_in_record":
        assert batch.columns["system_init_time"].tolist() == [times.system_init_ns] * batch.num_rows


# ======================================================================================
# IPFIX
# ======================================================================================

EXPORTERS = st.sampled_from(
    [("192.0.2.1", 4739), ("198.51.100.7", 40000), ("2001:db8::5", 4739), ("10.1.2.3", 2055)]
)
RECEIVED_AT_NS = 1_700_000_000_123_456_789


def check_context_columns(
    batch: FlowBatch, exporter: tuple[str, int], domain: int, version: int, received_at_ns: int
) -> None:
    n = batch.num_rows
    address = ipaddress.ip_address(exporter[0])
    if address.version == 4:
        assert batch.columns["exporter"].tolist() == [int(address)] * n
    else:
        assert column_values(batch.columns["exporter6"]) == [address.packed] * n
    assert batch.columns["exporter_port"].tolist() == [exporter[1]] * n
    assert batch.columns["observation_domain"].tolist() == [domain] * n
    assert batch.columns["flow_version"].tolist() == [version] * n
    assert batch.columns["time_received"].tolist() == [received_at_ns] * n
    for values in batch.columns.values():
        assert len(values) == n


@st.composite
def ipfix_flows(draw: st.DrawFn, time_form: str) -> dict:
    records = draw(st.integers(1, 8))
    export_s = draw(EXPORT_TIMES)
    domain = draw(st.integers(0, (1 << 32) - 1))
    plans = draw(catalog_plans(CATALOG, records))
    times = draw(ipfix_time_plans(time_form, records, export_s, domain))
    fields_in_order = draw(st.permutations(plans + times.plans))
    min_size = min_record_size([p.wire for p in fields_in_order])
    padding = draw(st.integers(0, max(0, min(min_size - 1, 7))))
    return {
        "records": records,
        "export_s": export_s,
        "domain": domain,
        "plans": list(fields_in_order),
        "times": times,
        "padding": padding,
        "template_id": draw(st.integers(256, 65535)),
        "exporter": draw(EXPORTERS),
        "shape": draw(
            st.sampled_from(["one message", "template first", "split data", "data first"])
        ),
        "sequence": draw(st.integers(0, (1 << 32) - 1)),
    }


@pytest.mark.parametrize("time_form", TIME_FORMS)
@given(data=st.data())
def test_ipfix_round_trip(time_form: str, data: st.DataObject) -> None:
    case = data.draw(ipfix_flows(time_form))
    plans: list[FieldPlan] = case["plans"]
    times: TimePlan = case["times"]
    fields = [p.wire for p in plans]
    records = case["records"]
    event(f"shape: {case['shape']}")
    encoded = encode_records(plans, records)
    template_set = ipfix_set(2, ipfix_template_record(case["template_id"], fields))
    tid, pad, export_s, domain = (
        case["template_id"],
        case["padding"],
        case["export_s"],
        case["domain"],
    )
    sequence = case["sequence"]
    options = 1 if times.options_sets else 0  # IPFIX sequence numbers count data records
    if case["shape"] == "one message":
        messages = [
            ipfix_message(
                [*times.options_sets, template_set, ipfix_set(tid, b"".join(encoded), pad)],
                export_s,
                sequence,
                domain,
            )
        ]
    elif case["shape"] == "template first":
        messages = [
            ipfix_message([*times.options_sets, template_set], export_s, sequence, domain),
            ipfix_message(
                [ipfix_set(tid, b"".join(encoded), pad)],
                export_s,
                (sequence + options) % (1 << 32),
                domain,
            ),
        ]
    elif case["shape"] == "data first":  # held sets, padding included, then the template
        # (options first: a held set keeps the clock known when it arrived)
        messages = [ipfix_message(times.options_sets, export_s, sequence, domain)]
        messages += [
            ipfix_message(
                [ipfix_set(tid, r, pad)], export_s, (sequence + options + i) % (1 << 32), domain
            )
            for i, r in enumerate(encoded)
        ]
        messages.append(
            ipfix_message(
                [template_set], export_s, (sequence + options + records) % (1 << 32), domain
            )
        )
    else:  # one data set per record, the first message carrying the template too
        messages = [
            ipfix_message(
                [*times.options_sets, template_set, ipfix_set(tid, encoded[0], pad)],
                export_s,
                sequence,
                domain,
            ),
            *(
                ipfix_message(
                    [ipfix_set(tid, r, pad), ipfix_set(tid, b"")],
                    export_s,
                    (sequence + options + i) % (1 << 32),
                    domain,
                )
                for i, r in enumerate(encoded[1:], start=1)
            ),
        ]
    decoder = FlowDecoder()
    fed = sum(decoder.feed_datagram(m, case["exporter"], RECEIVED_AT_NS) for m in messages)
    assert fed == records + (1 if times.options_sets else 0)
    batches = decoder.flush()
    assert len(batches) == 1
    batch = batches[0]
    assert batch.num_rows == records
    check_catalog_columns(batch, plans)
    check_times(batch, times)
    check_context_columns(batch, case["exporter"], domain, 10, RECEIVED_AT_NS)
    assert batch.columns["sampling_interval"].tolist() == [1] * records
    assert decoder.stats.flow_records == records
    assert decoder.flush() == []
    decoder.finish()
    assert decoder.stats.sequence_lost == 0


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_ipfix_variable_length_prefixes(values: list[bytes], long_prefix: list[bool]) -> None:
    """1-byte and 3-byte length prefixes (RFC 7011 §7), values of 0..300 bytes, in an
    unknown enterprise element and a VMware string, between fixed fields."""
    fields = [
        WireField(0, 7, 2),
        WireField(UNKNOWN_PEN, 43, VARLEN),
        WireField(VMWARE, 898, VARLEN),
        WireField(0, 4, 1),
    ]
    encoded = b"".join(
        data_record(fields, [i, v, v[::-1], 6], [long_prefix[i], not long_prefix[i], False, False])
        for i, v in enumerate(values)
    )
    message = ipfix_message(
        [ipfix_set(2, ipfix_template_record(300, fields)), ipfix_set(300, encoded)], 1_600_000_000
    )
    decoder = FlowDecoder()
    assert decoder.feed_datagram(message, ("192.0.2.9", 4739), RECEIVED_AT_NS) == len(values)
    (batch,) = decoder.flush()
    assert batch.columns["src_port"].tolist() == list(range(len(values)))
    assert extra_values(batch, f"{UNKNOWN_PEN}:43") == [values]
    assert column_values(batch.columns["virtual_obs_id"]) == [v[::-1] for v in values]
    assert batch.columns["proto"].tolist() == [6] * len(values)


def test_ipfix_long_prefix_for_a_short_value_and_a_255_byte_value() -> None:
    fields = [WireField(VMWARE, 898, VARLEN)]
    values = [b"", b"x", b"y" * 254, b"z" * 255, b"w" * 1000]
    encoded = b"".join(data_record(fields, [v], [i % 2 == 1]) for i, v in enumerate(values))
    assert encoded.startswith(b"\x00\xff\x00\x01x")  # both prefix forms really are there
    message = ipfix_message(
        [ipfix_set(2, ipfix_template_record(256, fields)), ipfix_set(256, encoded)], 1_600_000_000
    )
    decoder = FlowDecoder()
    decoder.feed_datagram(message, ("192.0.2.9", 4739), RECEIVED_AT_NS)
    (batch,) = decoder.flush()
    assert column_values(batch.columns["virtual_obs_id"]) == values


@given(
    st.integers(1, 1 << 22),
    st.lists(st.integers(0, (1 << 32) - 1), min_size=1, max_size=5),
    st.sampled_from([4, 2]),
    st.booleans(),
)
def test_ipfix_options_sampling_interval_applies_to_flows(
    interval: int, addresses: list[int], interval_length: int, same_message: bool
) -> None:
    """An options template (scope observationDomainId) and its data record with
    samplingInterval: the interval is taken for the domain's flows and the options
    record is handed out as such."""
    interval %= 1 << (8 * interval_length)
    assume(interval > 0)
    domain = 77
    option_fields = [WireField(0, 149, 4), WireField(0, 34, interval_length)]
    options = [
        ipfix_set(3, ipfix_options_template_record(260, option_fields, 1)),
        ipfix_set(260, data_record(option_fields, [domain, interval]), padding=3),
    ]
    flow_fields = [WireField(0, 8, 4)]
    flows = [
        ipfix_set(2, ipfix_template_record(256, flow_fields)),
        ipfix_set(256, b"".join(data_record(flow_fields, [a]) for a in addresses)),
    ]
    exporter = ("192.0.2.44", 4739)
    decoder = FlowDecoder()
    if same_message:
        decoder.feed_datagram(ipfix_message(options + flows, 1_600_000_000, 0, domain), exporter, 1)
    else:
        decoder.feed_datagram(ipfix_message(options, 1_600_000_000, 0, domain), exporter, 1)
        decoder.feed_datagram(ipfix_message(flows, 1_600_000_000, 1, domain), exporter, 2)
    (batch,) = decoder.flush()
    assert batch.columns["src_addr"].tolist() == addresses
    assert batch.columns["sampling_interval"].tolist() == [interval] * len(addresses)
    (record,) = decoder.take_options_records()
    assert record.values["sampling_interval"] == interval
    assert record.values["observation_domain_id"] == domain
    assert (record.exporter, record.version, record.observation_domain, record.template_id) == (
        exporter,
        10,
        domain,
        260,
    )
    assert decoder.stats.options_records == 1
    # another domain of the same exporter is not sampled
    decoder.feed_datagram(ipfix_message(flows, 1_600_000_000, 0, domain + 1), exporter, 3)
    (other,) = decoder.flush()
    assert other.columns["sampling_interval"].tolist() == [1] * len(addresses)


@given(st.data())
def test_ipfix_withdrawn_template_redefined_with_another_layout(data: st.DataObject) -> None:
    """Template 256 withdrawn (field count 0), then redefined with a different layout:
    records before the withdrawal decode with the old layout, after it with the new."""
    first = data.draw(catalog_plans(CATALOG, 3, max_fields=5))
    second = data.draw(catalog_plans(CATALOG, 2, max_fields=5))
    first_fields = [p.wire for p in first]
    second_fields = [p.wire for p in second]
    assume(first_fields != second_fields)
    exporter = ("192.0.2.60", 4739)
    messages = [
        ipfix_message(
            [
                ipfix_set(2, ipfix_template_record(256, first_fields)),
                ipfix_set(256, b"".join(encode_records(first, 3))),
            ],
            1_600_000_000,
        ),
        ipfix_message([ipfix_set(2, ipfix_withdrawal(256))], 1_600_000_001),
        ipfix_message(
            [
                ipfix_set(2, ipfix_template_record(256, second_fields)),
                ipfix_set(256, b"".join(encode_records(second, 2))),
            ],
            1_600_000_002,
        ),
    ]
    decoder = FlowDecoder()
    counts = [decoder.feed_datagram(m, exporter, i) for i, m in enumerate(messages)]
    assert counts == [3, 0, 2]
    batches = decoder.flush()
    assert [b.num_rows for b in batches] == [3, 2]
    check_catalog_columns(batches[0], first)
    check_catalog_columns(batches[1], second)
    assert decoder.templates.stats.templates_withdrawn == 1
    assert decoder.templates.stats.templates_learned == 2
    assert decoder.templates.template_count == 1


# ======================================================================================
# NetFlow v9
# ======================================================================================


@st.composite
def v9_uptime_times(
    draw: st.DrawFn, records: int
) -> tuple[int, list[FieldPlan], list[int], list[int]]:
    """(header uptime, FIRST/LAST_SWITCHED fields, expected start and end offsets in ms
    relative to the export time). Events up to ~24 days old, or slightly after the
    header time (seen on Cisco), across the 32-bit uptime wrap."""
    header_uptime = draw(st.integers(0, UPTIME_WRAP - 1))
    ages = st.integers(-5_000, 24 * 24 * 3600 * 1000)
    first = draw(st.lists(ages, min_size=records, max_size=records))
    last = draw(st.lists(ages, min_size=records, max_size=records))
    plans = [
        _time_field(22, 4, [(header_uptime - a) % UPTIME_WRAP for a in first]),
        _time_field(21, 4, [(header_uptime - a) % UPTIME_WRAP for a in last]),
    ]
    return header_uptime, plans, [-a for a in first], [-a for a in last]


@st.composite
def v9_exporter_cases(draw: st.DrawFn, exporter: tuple[str, int], source_id: int) -> dict:
    records = draw(st.integers(1, 6))
    plans = draw(catalog_plans(V9_CATALOG, records))
    unix_secs = draw(EXPORT_TIMES)
    with_times = draw(st.booleans())
    header_uptime, time_plans, start_ms, end_ms = draw(v9_uptime_times(records))
    if not with_times:
        time_plans, start_ms, end_ms = [], [0] * records, [0] * records
    ordered = draw(st.permutations(plans + time_plans))
    return {
        "exporter": exporter,
        "source_id": source_id,
        "records": records,
        "plans": list(ordered),
        "unix_secs": unix_secs,
        "uptime": header_uptime,
        "starts_ns": [unix_secs * NS_PER_S + ms * NS_PER_MS for ms in start_ms],
        "ends_ns": [unix_secs * NS_PER_S + ms * NS_PER_MS for ms in end_ms],
        # padding shorter than a record (else it reads as more records, RFC 3954 §5.3)
        "padding": draw(st.integers(0, min(3, min_record_size([p.wire for p in ordered]) - 1))),
        "separate": draw(st.booleans()),  # template and data in separate datagrams
    }


#: exporters that must not share templates: other address, other port, other source id
V9_SESSIONS = [
    (("192.0.2.1", 2055), 0),
    (("192.0.2.2", 2055), 0),
    (("192.0.2.1", 2056), 0),
    (("192.0.2.1", 2055), 1),
    (("2001:db8::1", 2055), 0),
]


@given(st.data())
def test_v9_round_trip_several_exporters_same_template_id(data: st.DataObject) -> None:
    sessions = data.draw(
        st.lists(st.sampled_from(V9_SESSIONS), min_size=1, max_size=4, unique=True)
    )
    cases = [data.draw(v9_exporter_cases(exporter, source_id)) for exporter, source_id in sessions]
    template_id = data.draw(st.integers(256, 65535))
    datagrams: list[tuple[bytes, tuple[str, int]]] = []
    for case in cases:
        fields = [p.wire for p in case["plans"]]
        template = v9_flowset(0, v9_template_record(template_id, fields))
        data_set = v9_flowset(
            template_id, b"".join(encode_records(case["plans"], case["records"])), case["padding"]
        )
        header = {
            "uptime_ms": case["uptime"],
            "unix_secs": case["unix_secs"],
            "source_id": case["source_id"],
        }
        if case["separate"]:
            datagrams.append((v9_message([template], sequence=0, **header), case["exporter"]))
            datagrams.append((v9_message([data_set], sequence=1, **header), case["exporter"]))
        else:
            datagrams.append(
                (v9_message([template, data_set], sequence=0, **header), case["exporter"])
            )
    # any interleaving: another exporter's template never serves this one's data, and
    # data arriving before its template is held until the template comes
    order = data.draw(st.permutations(range(len(datagrams))))
    decoder = FlowDecoder()
    fed = sum(
        decoder.feed_datagram(datagrams[i][0], datagrams[i][1], RECEIVED_AT_NS) for i in order
    )
    assert fed == sum(c["records"] for c in cases)
    batches = decoder.flush()
    assert len(batches) == len(cases)
    for case in cases:
        batch = batch_of(batches, case["exporter"], case["source_id"])
        assert batch.num_rows == case["records"]
        check_catalog_columns(batch, case["plans"])
        assert batch.columns["time_start"].tolist() == case["starts_ns"]
        assert batch.columns["time_end"].tolist() == case["ends_ns"]
        check_context_columns(batch, case["exporter"], case["source_id"], 9, RECEIVED_AT_NS)
    decoder.finish()
    assert decoder.stats.sequence_lost == 0


def test_v9_first_switched_just_before_the_uptime_wrap() -> None:
    """softflowd: FIRST_SWITCHED 0xFFFFFFFF, LAST_SWITCHED 2577, header uptime 3381:
    the flow started 3382 ms and ended 804 ms before the export."""
    fields = [WireField(0, 22, 4), WireField(0, 21, 4), WireField(0, 8, 4)]
    message = v9_message(
        [
            v9_flowset(0, v9_template_record(1024, fields)),
            v9_flowset(1024, data_record(fields, [0xFFFFFFFF, 2577, 0x0A000202])),
        ],
        uptime_ms=3381,
        unix_secs=1430591888,
    )
    decoder = FlowDecoder()
    decoder.feed_datagram(message, ("10.0.2.15", 2055), RECEIVED_AT_NS)
    (batch,) = decoder.flush()
    export_ns = 1430591888 * NS_PER_S
    assert batch.columns["time_start"].tolist() == [export_ns - 3382 * NS_PER_MS]
    assert batch.columns["time_end"].tolist() == [export_ns - 804 * NS_PER_MS]


@given(st.integers(1, 1 << 16), st.integers(1, 5), st.sampled_from([1, 2, 4]))
def test_v9_options_sampling_interval(interval: int, records: int, scope_length: int) -> None:
    """A v9 options template (scope System) announcing SAMPLING_INTERVAL (34)."""
    interval %= 1 << 16
    assume(interval > 0)
    scope = [WireField(0, 1, scope_length)]
    options = [WireField(0, 34, 2), WireField(0, 35, 1)]
    flow_fields = [WireField(0, 2, 4)]
    message = v9_message(
        [
            v9_flowset(1, v9_options_template_record(300, scope, options), padding=2),
            v9_flowset(300, data_record(scope + options, [1, interval, 2])),
            v9_flowset(0, v9_template_record(301, flow_fields)),
            v9_flowset(301, b"".join(data_record(flow_fields, [i]) for i in range(records))),
        ],
        uptime_ms=1000,
        unix_secs=1_600_000_000,
        source_id=3,
    )
    decoder = FlowDecoder()
    assert decoder.feed_datagram(message, ("192.0.2.3", 2055), RECEIVED_AT_NS) == records + 1
    (batch,) = decoder.flush()
    assert batch.columns["packets"].tolist() == list(range(records))
    assert batch.columns["sampling_interval"].tolist() == [interval] * records
    (record,) = decoder.take_options_records()
    assert record.values["sampling_interval"] == interval
    assert record.values["sampling_algorithm"] == 2
    assert record.values["scope_system"] == 1


# ======================================================================================
# NetFlow v5
# ======================================================================================

V5_RECORD_FIELDS = netflow_v5.V5_RECORD.subcons


def _v5_record_strategy() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {s.name: st.integers(0, (1 << (8 * s.sizeof())) - 1) for s in V5_RECORD_FIELDS}
    )


@st.composite
def v5_datagrams(
    draw: st.DrawFn, sequence: int, engine: tuple[int, int]
) -> tuple[dict, list[dict]]:
    count = draw(st.integers(1, netflow_v5.MAX_RECORDS))
    records = draw(st.lists(_v5_record_strategy(), min_size=count, max_size=count))
    header_uptime = draw(st.integers(0, UPTIME_WRAP - 1))
    ages = st.integers(-5_000, 24 * 24 * 3600 * 1000)
    for record in records:  # times within half a wrap of the header, wrapping freely
        record["first_uptime_ms"] = (header_uptime - draw(ages)) % UPTIME_WRAP
        record["last_uptime_ms"] = (header_uptime - draw(ages)) % UPTIME_WRAP
    header = {
        "sys_uptime_ms": header_uptime,
        "unix_secs": draw(EXPORT_TIMES),
        "unix_nsecs": draw(st.integers(0, NS_PER_S - 1)),
        "flow_sequence": sequence,
        "engine_type": engine[0],
        "engine_id": engine[1],
        "sampling": draw(st.integers(0, 0xFFFF)),
    }
    return header, records


def _v5_expected_time(header: dict, uptime: int) -> int:
    age_ms = (header["sys_uptime_ms"] - uptime) % UPTIME_WRAP
    if age_ms >= 1 << 31:
        age_ms -= UPTIME_WRAP  # slightly after the header time
    return header["unix_secs"] * NS_PER_S + header["unix_nsecs"] - age_ms * NS_PER_MS


@given(st.data())
def test_v5_round_trip(data: st.DataObject) -> None:
    exporter = data.draw(EXPORTERS)
    datagrams = []
    sequence = data.draw(st.integers(0, (1 << 32) - 1))
    # one sequence stream per engine (type, id): one engine per exporter here
    engine = data.draw(st.tuples(st.integers(0, 255), st.integers(0, 255)))
    for _ in range(data.draw(st.integers(1, 3))):
        header, records = data.draw(v5_datagrams(sequence, engine))
        datagrams.append((header, records))
        sequence = (sequence + len(records)) % (1 << 32)
    padding = data.draw(st.integers(0, 4))
    decoder = FlowDecoder()
    for i, (header, records) in enumerate(datagrams):
        payload = v5_datagram(header, records) + bytes(padding)
        assert decoder.feed_datagram(payload, exporter, RECEIVED_AT_NS + i) == len(records)
    (batch,) = decoder.flush()
    rows = [(h, r) for h, records in datagrams for r in records]
    assert batch.num_rows == len(rows)
    for name in netflow_v5.COPIED_FIELDS:
        assert batch.columns[name].tolist() == [r[name] for _, r in rows], name
    assert batch.columns["time_start"].tolist() == [
        _v5_expected_time(h, r["first_uptime_ms"]) for h, r in rows
    ]
    assert batch.columns["time_end"].tolist() == [
        _v5_expected_time(h, r["last_uptime_ms"]) for h, r in rows
    ]
    assert batch.columns["engine_type"].tolist() == [h["engine_type"] for h, _ in rows]
    assert batch.columns["engine_id"].tolist() == [h["engine_id"] for h, _ in rows]
    assert batch.columns["observation_domain"].tolist() == [
        h["engine_type"] << 8 | h["engine_id"] for h, _ in rows
    ]
    assert batch.columns["sampling_interval"].tolist() == [
        (h["sampling"] & 0x3FFF) or 1 for h, _ in rows
    ]
    assert batch.columns["time_received"].tolist() == [
        RECEIVED_AT_NS + i for i, (_, records) in enumerate(datagrams) for _ in records
    ]
    assert batch.columns["flow_version"].tolist() == [5] * len(rows)
    decoder.finish()
    assert decoder.stats.sequence_lost == 0


def test_v5_first_uptime_just_before_the_wrap() -> None:
    """The corpus' softflowd v5 datagram: first=0xFFFFFFFF, last=2577, header uptime
    3381, unix_secs 1430591888, unix_nsecs 280328000."""
    header = {
        "sys_uptime_ms": 3381,
        "unix_secs": 1430591888,
        "unix_nsecs": 280328000,
        "flow_sequence": 0,
        "engine_type": 0,
        "engine_id": 0,
        "sampling": 0,
    }
    record = {s.name: 0 for s in V5_RECORD_FIELDS}
    record.update(first_uptime_ms=0xFFFFFFFF, last_uptime_ms=2577, src_port=54435, dst_port=22)
    decoder = FlowDecoder()
    decoder.feed_datagram(v5_datagram(header, [record]), ("10.0.2.2", 9995), RECEIVED_AT_NS)
    (batch,) = decoder.flush()
    export_ns = 1430591888 * NS_PER_S + 280328000
    assert batch.columns["time_start"].tolist() == [export_ns - 3382 * NS_PER_MS]
    assert batch.columns["time_end"].tolist() == [export_ns - 804 * NS_PER_MS]


@pytest.mark.parametrize("count", [1, 30])
def test_v5_header_count_must_match(count: int) -> None:
    header = {
        "sys_uptime_ms": 1,
        "unix_secs": 1,
        "unix_nsecs": 0,
        "flow_sequence": 0,
        "engine_type": 0,
        "engine_id": 0,
        "sampling": 0,
    }
    record = {s.name: 1 for s in V5_RECORD_FIELDS}
    payload = v5_datagram(header, [record] * count)
    decoder = FlowDecoder()
    with pytest.raises(MalformedSet):
        decoder.feed_datagram(payload[:-1], ("192.0.2.1", 9995), 0)
    with pytest.raises(MalformedSet):
        decoder.feed_datagram(payload + b"\x01", ("192.0.2.1", 9995), 0)
    assert decoder.feed_datagram(payload, ("192.0.2.1", 9995), 0) == count


def test_v5_sequences_are_per_engine() -> None:
    """Two engines of one exporter interleave; each counts its own flows."""
    header = {"sys_uptime_ms": 1, "unix_secs": 1, "unix_nsecs": 0, "sampling": 0}
    record = {s.name: 0 for s in V5_RECORD_FIELDS}
    decoder = FlowDecoder()
    sequences = {0: 1000, 1: 7}
    for i in range(10):
        engine = i % 2
        count = 1 + i % 3
        payload = v5_datagram(
            {**header, "flow_sequence": sequences[engine], "engine_type": 0, "engine_id": engine},
            [record] * count,
        )
        decoder.feed_datagram(payload, ("192.0.2.1", 9995), RECEIVED_AT_NS)
        sequences[engine] += count
    decoder.finish()
    assert decoder.stats.sequence_lost == 0
    (batch,) = decoder.flush()
    assert sorted(set(batch.columns["observation_domain"].tolist())) == [0, 1]


@pytest.mark.parametrize(
    ("source", "column", "expected"),
    [
        ("::ffff:192.0.2.7", "exporter", int(ipaddress.ip_address("192.0.2.7"))),  # dual stack
        ("fe80::1%eth0", "exporter6", ipaddress.ip_address("fe80::1").packed),
    ],
)
def test_exporter_address_forms(source: str, column: str, expected: int | bytes) -> None:
    fields = [WireField(0, 8, 4)]
    message = ipfix_message(
        [
            ipfix_set(2, ipfix_template_record(256, fields)),
            ipfix_set(256, data_record(fields, [9])),
        ],
        1_600_000_000,
    )
    decoder = FlowDecoder()
    decoder.feed_datagram(message, (source, 4739), RECEIVED_AT_NS)
    (batch,) = decoder.flush()
    assert column_values(batch.columns[column]) == [expected]
