"""Realistic export datagrams for the decode benchmark, generated deterministically.

Every datagram is built with flowcap's own construct definitions (message, set and
template headers from ``parsers/netflow_v5.py``, ``netflow_v9.py``, ``ipfix.py``); data
records come from a construct ``Struct`` per template, turned into a numpy dtype with
``parsers.fixed_layout.dtype_for`` so that hundreds of thousands of records are filled
at once (construct's ``build`` costs ~50 µs a record). Elements are named by their
IANA / vendor names and resolved through ``parsers/elements.py``, the one registry of
element numbers.

Flow values come from one seeded ``numpy`` generator: the same seed gives the same
bytes, so results of two runs (or two machines) decode identical input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from construct import Construct, GreedyBytes, Int8ub, Int16ub, Int32ub, Int64ub, Prefixed, Struct

from parsers import elements, ipfix, netflow_v5, netflow_v9
from parsers.elements import ElementKind
from parsers.events import VARIABLE_LENGTH
from parsers.fixed_layout import dtype_for
from parsers.templates import ExporterId

#: exporters fill datagrams up to about this size (the vDS template capture in the
#: corpus is 1408 bytes; NetFlow v5's 30 records make 1464)
DATAGRAM_BUDGET_BYTES: Final = 1420
#: Cisco IOS resends NetFlow v9 templates every 20 export packets by default; the
#: IPFIX scenarios refresh theirs on the same cadence (RFC 7011 §8.4 over UDP)
TEMPLATE_EVERY_DATAGRAMS: Final = 20
#: four exporters, so the decoder's per-exporter template lookup is exercised
EXPORTERS: Final[tuple[ExporterId, ...]] = (
    ("192.0.2.11", 50011),
    ("192.0.2.12", 50012),
    ("198.51.100.21", 49152),
    ("198.51.100.22", 61000),
)
BASE_UNIX_MS: Final = 1_700_000_000_000
#: all exporters together send one datagram every 2 ms (500 datagrams/s)
DATAGRAM_INTERVAL_MS: Final = 2
#: received this long after the export time
TRANSIT_NS: Final = 1_000_000
TEMPLATE_ID: Final = 264  # the vDS capture's IPv4 flow template id
V9_SOURCE_ID: Final = 0x00000100
#: RFC 7011 §7 short form: one length byte, then the value (values here are < 255 bytes)
VARLEN_SHORT: Final = Prefixed(Int8ub, GreedyBytes)


@dataclass(frozen=True, slots=True)
class TemplateField:
    """One template field: the element's registry name and its wire encoding
    (``None``: variable length)."""

    element: str
    wire: Construct | None

    @property
    def spec(self) -> elements.Element:
        return elements.by_name(self.element)

    @property
    def length(self) -> int:
        return VARIABLE_LENGTH if self.wire is None else self.wire.sizeof()


def _fields(*pairs: tuple[str, Construct | None]) -> tuple[TemplateField, ...]:
    return tuple(TemplateField(name, wire) for name, wire in pairs)


#: a Cisco IOS-like fixed NetFlow v9 template (v9 field types are the IANA ids)
V9_CISCO_FIELDS: Final = _fields(
    ("sourceIPv4Address", Int32ub),
    ("destinationIPv4Address", Int32ub),
    ("sourceTransportPort", Int16ub),
    ("destinationTransportPort", Int16ub),
    ("protocolIdentifier", Int8ub),
    ("ipClassOfService", Int8ub),
    ("tcpControlBits", Int8ub),
    ("ingressInterface", Int16ub),
    ("egressInterface", Int16ub),
    ("packetDeltaCount", Int32ub),
    ("octetDeltaCount", Int32ub),
    ("flowStartSysUpTime", Int32ub),
    ("flowEndSysUpTime", Int32ub),
    ("bgpSourceAsNumber", Int16ub),
    ("bgpDestinationAsNumber", Int16ub),
    ("sourceIPv4PrefixLength", Int8ub),
    ("destinationIPv4PrefixLength", Int8ub),
    ("ipNextHopIPv4Address", Int32ub),
    ("flowDirection", Int8ub),
)

#: the IPv4 flow template a VMware vSphere Distributed Switch sends (template 264 of
#: corpus/logstash-codec-netflow/ipfix_test_vmware_vds_tpl.dat, 72-byte records)
VDS_IPV4_FIELDS: Final = _fields(
    ("sourceIPv4Address", Int32ub),
    ("destinationIPv4Address", Int32ub),
    ("octetDeltaCount", Int64ub),
    ("packetDeltaCount", Int64ub),
    ("flowStartMilliseconds", Int64ub),
    ("flowEndMilliseconds", Int64ub),
    ("sourceTransportPort", Int16ub),
    ("destinationTransportPort", Int16ub),
    ("ingressInterface", Int32ub),
    ("egressInterface", Int32ub),
    ("layer2SegmentId", Int64ub),
    ("protocolIdentifier", Int8ub),
    ("flowEndReason", Int8ub),
    ("tcpControlBits", Int8ub),
    ("ipClassOfService", Int8ub),
    ("maximumTTL", Int8ub),
    ("flowDirection", Int8ub),
    ("ingressInterfaceAttr", Int16ub),
    ("egressInterfaceAttr", Int16ub),
    ("vxlanExportRole", Int8ub),
    ("paddingOctets", Int8ub),
)

#: the vDS template plus one variable-length string (VMware virtualObsID, 5..30 bytes)
VDS_VARLEN_FIELDS: Final = (*VDS_IPV4_FIELDS, TemplateField("virtualObsID", None))

#: the vDS template with its three VMware elements swapped for IANA ones of the same
#: sizes: the ``netflow`` package cannot decode enterprise elements, so this is the
#: IPFIX layout both decoders can be compared on
IANA_IPV4_FIELDS: Final = tuple(
    {
        "ingressInterfaceAttr": TemplateField("vlanId", Int16ub),
        "egressInterfaceAttr": TemplateField("postVlanId", Int16ub),
        "vxlanExportRole": TemplateField("ipVersion", Int8ub),
    }.get(f.element, f)
    for f in VDS_IPV4_FIELDS
)


@dataclass(frozen=True, slots=True)
class Datagram:
    """One export datagram as a collector receives it."""

    payload: bytes
    exporter: ExporterId
    received_at_ns: int
    flows: int  # data records it carries


@dataclass(frozen=True, slots=True)
class Scenario:
    """The datagrams of one benchmark case and the totals they carry."""

    name: str
    description: str
    is_fixed_length: bool
    datagrams: tuple[Datagram, ...]
    packets_total: int  # sum of packetDeltaCount: a decode check beyond the count
    bytes_total: int

    @property
    def flows(self) -> int:
        return sum(d.flows for d in self.datagrams)

    @property
    def payload_bytes(self) -> int:
        return sum(len(d.payload) for d in self.datagrams)


# -- flow values -------------------------------------------------------------------------


def _flow_table(rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """Plausible flows, keyed by flowcap column name (``elements.py``), all uint64.

    A data centre mix: clients in 10.20/16 talk to servers in 10.30.0/24 or to the
    internet; mostly TCP to well-known ports; heavy-tailed packet counts.
    """
    proto = rng.choice(np.array([6, 17, 1], dtype=np.uint64), count, p=[0.72, 0.25, 0.03])
    is_tcp, is_icmp = proto == 6, proto == 1
    internal_dst = rng.random(count) < 0.5
    dst_addr = np.where(
        internal_dst,
        0x0A1E0000 + rng.integers(1, 255, count),
        rng.integers(0x01000000, 0xDF000000, count),
    ).astype(np.uint64)
    well_known = np.array([443, 80, 53, 22, 123, 3306, 5432, 8080, 8443, 25], dtype=np.uint64)
    packets = np.minimum(np.ceil(rng.lognormal(1.5, 1.6, count)), 1_000_000).astype(np.uint64)
    table: dict[str, np.ndarray] = {
        "src_addr": (0x0A140000 + rng.integers(1, 65535, count)).astype(np.uint64),
        "dst_addr": dst_addr,
        "src_port": np.where(is_icmp, 0, rng.integers(32768, 61000, count)).astype(np.uint64),
        "dst_port": np.where(
            is_icmp, 0x0800, well_known[rng.integers(0, len(well_known), count)]
        ).astype(np.uint64),
        "proto": proto,
        "tos": rng.choice(np.array([0, 0x10, 0xB8], dtype=np.uint64), count, p=[0.9, 0.06, 0.04]),
        "tcp_flags": np.where(
            is_tcp, rng.choice(np.array([0x1B, 0x18, 0x12, 0x02, 0x11, 0x10]), count), 0
        ).astype(np.uint64),
        "in_if": rng.integers(1, 48, count).astype(np.uint64),
        "out_if": rng.integers(1, 48, count).astype(np.uint64),
        "packets": packets,
        "bytes": packets * rng.integers(40, 1500, count).astype(np.uint64),
        "src_as": np.zeros(count, dtype=np.uint64),
        "dst_as": np.where(internal_dst, 0, rng.integers(1, 64512, count)).astype(np.uint64),
        "src_mask": np.full(count, 16, dtype=np.uint64),
        "dst_mask": np.where(internal_dst, 24, rng.integers(8, 25, count)).astype(np.uint64),
        "next_hop": (0x0A000001 + rng.integers(0, 4, count)).astype(np.uint64),
        "flow_direction": rng.integers(0, 2, count).astype(np.uint64),
        "layer2_segment_id": np.where(
            rng.random(count) < 0.7, 5000 + rng.integers(0, 32, count), 0
        ).astype(np.uint64),
        "flow_end_reason": rng.choice(
            np.array([1, 2, 3], dtype=np.uint64), count, p=[0.6, 0.3, 0.1]
        ),
        "max_ttl": rng.choice(np.array([64, 128, 255, 63, 127], dtype=np.uint64), count),
        "ingress_if_attr": rng.integers(0, 4, count).astype(np.uint64),
        "egress_if_attr": rng.integers(0, 4, count).astype(np.uint64),
        "vxlan_export_role": np.zeros(count, dtype=np.uint64),
        "src_vlan": rng.integers(1, 4095, count).astype(np.uint64),
        "dst_vlan": rng.integers(1, 4095, count).astype(np.uint64),
        "ip_version": np.full(count, 4, dtype=np.uint64),
        # ms the flow lasted, and ms between its end and the export (inactive timeout 15 s)
        "duration_ms": np.minimum(rng.exponential(4000, count), 120_000).astype(np.uint64),
        "age_ms": rng.integers(0, 15_000, count).astype(np.uint64),
    }
    return table


@dataclass(frozen=True, slots=True)
class _Clock:
    """Per record: the export time and the exporter's uptime at export, in ms."""

    export_ms: np.ndarray
    uptime_ms: np.ndarray


def _time_values(
    column: str, kind: ElementKind, table: dict[str, np.ndarray], clock: _Clock
) -> np.ndarray:
    end_before_export = table["age_ms"]
    before = end_before_export + (table["duration_ms"] if column == "time_start" else 0)
    if kind is ElementKind.DATETIME_MILLISECONDS:
        return clock.export_ms - before
    if kind is ElementKind.SYSUPTIME_MILLISECONDS:
        return (clock.uptime_ms - before) % (1 << 32)
    raise ValueError(f"no generator for {column} as {kind}")


def _fill_records(
    record: Struct, sources: dict[str, Callable[[], np.ndarray]], count: int
) -> np.ndarray:
    """``count`` records of ``record``, each field from its source (absent: zero)."""
    array = np.zeros(count, dtype=dtype_for(record))
    for name in array.dtype.names or ():
        source = sources.get(name)
        if source is not None:
            array[name] = source()
    return array


def _template_sources(
    fields: Sequence[TemplateField], table: dict[str, np.ndarray], clock: _Clock
) -> dict[str, Callable[[], np.ndarray]]:
    sources: dict[str, Callable[[], np.ndarray]] = {}
    for field in fields:
        spec = field.spec
        if field.wire is None or spec.column is None:
            continue
        column, kind = spec.column, spec.kind
        if column in ("time_start", "time_end"):
            sources[field.element] = lambda c=column, k=kind: _time_values(c, k, table, clock)
        else:
            sources[field.element] = lambda c=column: table[c]
    return sources


# -- layout of a scenario: who sends what, when ------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    exporter_index: np.ndarray  # per datagram
    sends_template: np.ndarray  # per datagram, bool
    export_ms: np.ndarray  # per datagram
    uptime_ms: np.ndarray  # per datagram


def _plan(count: int) -> _Plan:
    index = np.arange(count)
    exporter_index = index % len(EXPORTERS)
    per_exporter = index // len(EXPORTERS)
    export_ms = BASE_UNIX_MS + index * DATAGRAM_INTERVAL_MS
    boot_ms = BASE_UNIX_MS - (exporter_index + 1) * 86_400_000 - 12_345  # up 1..4 days
    return _Plan(
        exporter_index,
        per_exporter % TEMPLATE_EVERY_DATAGRAMS == 0,
        export_ms.astype(np.uint64),
        (export_ms - boot_ms).astype(np.uint64),
    )


def _records_clock(plan: _Plan, records_per_datagram: np.ndarray) -> _Clock:
    return _Clock(
        np.repeat(plan.export_ms, records_per_datagram),
        np.repeat(plan.uptime_ms, records_per_datagram),
    )


def _datagram(plan: _Plan, i: int, payload: bytes, flows: int) -> Datagram:
    received = int(plan.export_ms[i]) * 1_000_000 + TRANSIT_NS
    return Datagram(payload, EXPORTERS[int(plan.exporter_index[i])], received, flows)


def _totals(table: dict[str, np.ndarray], count: int) -> tuple[int, int]:
    return int(table["packets"][:count].sum()), int(table["bytes"][:count].sum())


# -- NetFlow v5 --------------------------------------------------------------------------


def generate_v5(datagrams: int, seed: int) -> Scenario:
    """NetFlow v5: 30 records a datagram (1464 bytes), each exporter's own sequence."""
    rng = np.random.default_rng(seed)
    per = netflow_v5.MAX_RECORDS
    plan = _plan(datagrams)
    counts = np.full(datagrams, per)
    total = int(counts.sum())
    table = _flow_table(rng, total)
    clock = _records_clock(plan, counts)
    sources: dict[str, Callable[[], np.ndarray]] = {
        name: (lambda n=name: table[n]) for name in netflow_v5.COPIED_FIELDS
    }
    sources["first_uptime_ms"] = lambda: _time_values(
        "time_start", ElementKind.SYSUPTIME_MILLISECONDS, table, clock
    )
    sources["last_uptime_ms"] = lambda: _time_values(
        "time_end", ElementKind.SYSUPTIME_MILLISECONDS, table, clock
    )
    body = _fill_records(netflow_v5.V5_RECORD, sources, total).tobytes()
    sequence = [0] * len(EXPORTERS)
    out = []
    size = netflow_v5.RECORD_SIZE
    for i in range(datagrams):
        exporter = int(plan.exporter_index[i])
        export_ms = int(plan.export_ms[i])
        header = netflow_v5.V5_HEADER.build(
            {
                "version": netflow_v5.VERSION,
                "count": per,
                "sys_uptime_ms": int(plan.uptime_ms[i]) % (1 << 32),
                "unix_secs": export_ms // 1000,
                "unix_nsecs": export_ms % 1000 * 1_000_000,
                "flow_sequence": sequence[exporter],
                "engine_type": 0,
                "engine_id": exporter,
                "sampling": 0,
            }
        )
        sequence[exporter] += per
        out.append(_datagram(plan, i, header + body[i * per * size : (i + 1) * per * size], per))
    return Scenario(
        "v5",
        "NetFlow v5, 30 records/datagram (1464 B)",
        True,
        tuple(out),
        *_totals(table, total),
    )


# -- NetFlow v9 and IPFIX: templates, then data sets ---------------------------------------


def record_struct(fields: Sequence[TemplateField]) -> Struct:
    """The construct of a template's fixed-length part, field names = element names."""
    return Struct(*(f.element / f.wire for f in fields if f.wire is not None))


def v9_template_flowset(fields: Sequence[TemplateField], template_id: int = TEMPLATE_ID) -> bytes:
    """A template flowset (id 0) defining ``fields`` (v9 field type = IANA element id)."""
    record = netflow_v9.V9_TEMPLATE_RECORD.build(
        {
            "template_id": template_id,
            "field_count": len(fields),
            "fields": [{"field_type": f.spec.element_id, "length": f.length} for f in fields],
        }
    )
    return _flowset(netflow_v9.TEMPLATE_FLOWSET_ID, record)


def ipfix_template_set(fields: Sequence[TemplateField], template_id: int = TEMPLATE_ID) -> bytes:
    """A template set (id 2) defining ``fields``, enterprise bit set for vendor ones."""
    specifiers = []
    for f in fields:
        pen = f.spec.pen
        raw_id = f.spec.element_id | (ipfix.ENTERPRISE_BIT if pen else 0)
        specifiers.append({"raw_id": raw_id, "length": f.length, "pen": pen or None})
    record = ipfix.TEMPLATE_RECORD.build(
        {"template_id": template_id, "field_count": len(fields), "fields": specifiers}
    )
    return _flowset(ipfix.TEMPLATE_SET_ID, record)


def _flowset(set_id: int, body: bytes) -> bytes:
    # v9 flowsets and IPFIX sets share the header layout; v9 pads to 4 bytes (RFC 3954 §5.3)
    return ipfix.SET_HEADER.build({"set_id": set_id, "length": 4 + len(body)}) + body


def _v9_data_flowset(records: bytes) -> bytes:
    padding = -(4 + len(records)) % 4
    return _flowset(TEMPLATE_ID, records + bytes(padding))


def _string_pool(rng: np.random.Generator) -> list[bytes]:
    """virtualObsID values: 256 names of 5..30 bytes ("vmnic…", "vds-…")."""
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789-", dtype=np.uint8)
    pool = []
    for length in rng.integers(5, 31, 256):
        pool.append(alphabet[rng.integers(0, len(alphabet), int(length))].tobytes())
    return pool


def _generate_templated(
    name: str,
    description: str,
    fields: Sequence[TemplateField],
    version: int,
    datagrams: int,
    seed: int,
) -> Scenario:
    rng = np.random.default_rng(seed)
    plan = _plan(datagrams)
    is_v9 = version == netflow_v9.VERSION
    header_size = netflow_v9.HEADER_SIZE if is_v9 else ipfix.HEADER_SIZE
    template = v9_template_flowset(fields) if is_v9 else ipfix_template_set(fields)
    struct = record_struct(fields)
    fixed_size = struct.sizeof()
    variable = any(f.wire is None for f in fields)
    pool = _string_pool(rng) if variable else []

    # how many records fit each datagram (data set header: 4 bytes)
    room = DATAGRAM_BUDGET_BYTES - header_size - 4 - np.where(plan.sends_template, len(template), 0)
    strings: list[list[bytes]] = []
    if variable:
        counts = np.zeros(datagrams, dtype=np.int64)
        for i in range(datagrams):
            chosen, used = [], 0
            while True:
                value = pool[int(rng.integers(0, len(pool)))]
                size = fixed_size + 1 + len(value)
                if used + size > room[i]:
                    break
                chosen.append(value)
                used += size
            strings.append(chosen)
            counts[i] = len(chosen)
    else:
        counts = room // fixed_size
    total = int(counts.sum())
    table = _flow_table(rng, total)
    clock = _records_clock(plan, counts)
    fixed = _fill_records(struct, _template_sources(fields, table, clock), total).tobytes()

    sequence = [0] * len(EXPORTERS)  # v9: export packets; IPFIX: data records
    out = []
    first = 0
    for i in range(datagrams):
        count = int(counts[i])
        exporter = int(plan.exporter_index[i])
        chunk = fixed[first * fixed_size : (first + count) * fixed_size]
        if variable:
            records = b"".join(
                chunk[r * fixed_size : (r + 1) * fixed_size] + VARLEN_SHORT.build(value)
                for r, value in enumerate(strings[i])
            )
        else:
            records = chunk
        first += count
        sends_template = bool(plan.sends_template[i])
        export_ms = int(plan.export_ms[i])
        if is_v9:
            sets = (template if sends_template else b"") + _v9_data_flowset(records)
            header = netflow_v9.V9_HEADER.build(
                {
                    "version": version,
                    "count": count + int(sends_template),
                    "sys_uptime_ms": int(plan.uptime_ms[i]) % (1 << 32),
                    "unix_secs": export_ms // 1000,
                    "sequence": sequence[exporter],
                    "source_id": V9_SOURCE_ID,
                }
            )
            sequence[exporter] += 1
        else:
            sets = (template if sends_template else b"") + _flowset(TEMPLATE_ID, records)
            header = ipfix.IPFIX_HEADER.build(
                {
                    "version": version,
                    "length": ipfix.HEADER_SIZE + len(sets),
                    "export_time": export_ms // 1000,
                    "sequence": sequence[exporter],
                    "observation_domain": 0,
                }
            )
            sequence[exporter] += count
        out.append(_datagram(plan, i, header + sets, count))
    return Scenario(name, description, not variable, tuple(out), *_totals(table, total))


def generate_v9(datagrams: int, seed: int) -> Scenario:
    """NetFlow v9, Cisco-like 46-byte template, resent every 20 datagrams."""
    return _generate_templated(
        "v9",
        "NetFlow v9, Cisco-like template (46 B records), template every 20 datagrams",
        V9_CISCO_FIELDS,
        netflow_v9.VERSION,
        datagrams,
        seed,
    )


def generate_ipfix_vds(datagrams: int, seed: int) -> Scenario:
    """IPFIX as a VMware vDS sends it: the 72-byte IPv4 template with PEN 6876 fields."""
    return _generate_templated(
        "ipfix-vds",
        "IPFIX, VMware vDS IPv4 template (72 B records, PEN 6876 elements)",
        VDS_IPV4_FIELDS,
        ipfix.VERSION,
        datagrams,
        seed,
    )


def generate_ipfix_varlen(datagrams: int, seed: int) -> Scenario:
    """The vDS template plus a variable-length virtualObsID of 5..30 bytes."""
    return _generate_templated(
        "ipfix-varlen",
        "IPFIX, vDS template + variable-length virtualObsID (5..30 B)",
        VDS_VARLEN_FIELDS,
        ipfix.VERSION,
        datagrams,
        seed,
    )


def generate_ipfix_iana(datagrams: int, seed: int) -> Scenario:
    """The vDS layout with IANA elements only, so the ``netflow`` package can take it."""
    return _generate_templated(
        "ipfix-iana",
        "IPFIX, vDS layout with IANA elements only (72 B records)",
        IANA_IPV4_FIELDS,
        ipfix.VERSION,
        datagrams,
        seed,
    )


#: scenario name -> generator(datagrams, seed), in report order
GENERATORS: Final[dict[str, Callable[[int, int], Scenario]]] = {
    "v5": generate_v5,
    "v9": generate_v9,
    "ipfix-vds": generate_ipfix_vds,
    "ipfix-iana": generate_ipfix_iana,
    "ipfix-varlen": generate_ipfix_varlen,
}
