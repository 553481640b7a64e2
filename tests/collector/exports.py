"""Export datagrams for the collector's end-to-end tests, and the reference they are
checked against.

The bench generators (``bench/datagrams.py``) give realistic traffic; the builders
here give flows that are *unique by construction* (a flow id in the source address),
so crash tests can tell a duplicated or lost flow from a legitimate repeat. Every
datagram is built with flowcap's construct definitions (``parsers/netflow_v5.py``,
``parsers/ipfix.py``); records are filled through numpy dtypes derived from them, but
IPv6 ones (16-byte addresses, which no derived dtype covers) by construct's ``build``.

The reference for "stored exactly" is what a fresh ``FlowDecoder`` makes of the same
datagrams from the same exporter address and port, through
``storage.schema.to_record_batch``: every column but ``time_received`` must match.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from construct import Bytes

from bench.datagrams import (
    VDS_IPV4_FIELDS,
    TemplateField,
    ipfix_template_set,
    record_struct,
)
from parsers import ipfix, netflow_v5
from parsers.decoder import FlowDecoder
from parsers.errors import ParseError
from parsers.fixed_layout import dtype_for
from storage.reader import scan
from storage.schema import to_record_batch

Exporter = tuple[str, int]
Send = tuple[bytes, Exporter]

#: flow ids live in the low 24 bits of the source address 10.x.y.z
V4_ID_BASE = 0x0A000000
#: the IPv6 twin: flow ids in the low 32 bits of 2001:db8:f10::/96
V6_ID_BASE = int(ipaddress.IPv6Address("2001:db8:f10::"))
IPFIX_V6_TEMPLATE_ID = 266  # the vDS capture's IPv6 flow template id

#: a VMware vDS IPv6 flow template: the IPv4 one with 16-byte addresses
VDS_IPV6_FIELDS = tuple(
    {
        "sourceIPv4Address": TemplateField("sourceIPv6Address", Bytes(16)),
        "destinationIPv4Address": TemplateField("destinationIPv6Address", Bytes(16)),
    }.get(f.element, f)
    for f in VDS_IPV4_FIELDS
)


# -- NetFlow v5 with unique flows ----------------------------------------------------------


def v5_datagrams(
    first_id: int, datagrams: int, records: int = netflow_v5.MAX_RECORDS, engine_id: int = 0
) -> list[bytes]:
    """``datagrams`` v5 messages of ``records`` flows each; flow ``i`` (from
    ``first_id``) comes from 10.0.0.0 + i, with ``i % 997 + 1`` packets and
    ``(i % 997 + 1) * 100`` bytes."""
    now_s = int(time.time())
    uptime_ms = 86_400_000
    out = []
    for d in range(datagrams):
        ids = np.arange(first_id + d * records, first_id + (d + 1) * records, dtype=np.uint64)
        body = np.zeros(records, dtype=netflow_v5.V5_RECORD_DTYPE)
        body["src_addr"] = V4_ID_BASE + ids
        body["dst_addr"] = 0xC0A80001 + ids % 251
        body["packets"] = ids % 997 + 1
        body["bytes"] = (ids % 997 + 1) * 100
        body["first_uptime_ms"] = uptime_ms - 5000
        body["last_uptime_ms"] = uptime_ms - 1000
        body["src_port"] = 1024 + ids % 50000
        body["dst_port"] = 443
        body["proto"] = 6
        body["tcp_flags"] = 0x1B
        header = netflow_v5.V5_HEADER.build(
            {
                "version": netflow_v5.VERSION,
                "count": records,
                "sys_uptime_ms": uptime_ms,
                "unix_secs": now_s,
                "unix_nsecs": 0,
                "flow_sequence": first_id + d * records,
                "engine_type": 0,
                "engine_id": engine_id,
                "sampling": 0,
            }
        )
        out.append(header + body.tobytes())
    return out


# -- IPFIX, vDS-like, with IPv4 and IPv6 records ----------------------------------------------


def _ipfix_message(sets: bytes, sequence: int, domain: int = 0) -> bytes:
    header = ipfix.IPFIX_HEADER.build(
        {
            "version": ipfix.VERSION,
            "length": ipfix.HEADER_SIZE + len(sets),
            "export_time": int(time.time()),
            "sequence": sequence,
            "observation_domain": domain,
        }
    )
    return header + sets


def _data_set(set_id: int, records: bytes) -> bytes:
    return ipfix.SET_HEADER.build({"set_id": set_id, "length": 4 + len(records)}) + records


def _vds_values(ids: np.ndarray) -> dict[str, np.ndarray]:
    now_ms = int(time.time() * 1000)
    return {
        "octetDeltaCount": (ids % 997 + 1) * 1000,
        "packetDeltaCount": ids % 997 + 1,
        "flowStartMilliseconds": np.full(len(ids), now_ms - 3000, dtype=np.uint64),
        "flowEndMilliseconds": np.full(len(ids), now_ms - 1000, dtype=np.uint64),
        "sourceTransportPort": 1024 + ids % 50000,
        "destinationTransportPort": np.full(len(ids), 8443, dtype=np.uint64),
        "ingressInterface": ids % 7,
        "egressInterface": ids % 5,
        "layer2SegmentId": 5000 + ids % 3,
        "protocolIdentifier": np.full(len(ids), 6, dtype=np.uint64),
        "flowEndReason": np.full(len(ids), 3, dtype=np.uint64),
        "tcpControlBits": np.full(len(ids), 0x18, dtype=np.uint64),
        "ipClassOfService": np.zeros(len(ids), dtype=np.uint64),
        "maximumTTL": np.full(len(ids), 64, dtype=np.uint64),
        "flowDirection": ids % 2,
        "ingressInterfaceAttr": 1 + ids % 3,
        "egressInterfaceAttr": 2 + ids % 2,
        "vxlanExportRole": ids % 2,
        "paddingOctets": np.zeros(len(ids), dtype=np.uint64),
    }


def _vds_v4_records(ids: np.ndarray) -> bytes:
    array = np.zeros(len(ids), dtype=dtype_for(record_struct(VDS_IPV4_FIELDS)))
    values = _vds_values(ids)
    values["sourceIPv4Address"] = V4_ID_BASE + ids
    values["destinationIPv4Address"] = 0x0A1E0001 + ids % 200
    for name in array.dtype.names or ():
        array[name] = values[name]
    return array.tobytes()


_V6_RECORD = record_struct(VDS_IPV6_FIELDS)


def _vds_v6_records(ids: np.ndarray) -> bytes:
    values = _vds_values(ids)
    out = []
    for row, flow_id in enumerate(ids.tolist()):
        record = {name: int(column[row]) for name, column in values.items()}
        record["sourceIPv6Address"] = (V6_ID_BASE + flow_id).to_bytes(16, "big")
        record["destinationIPv6Address"] = ipaddress.IPv6Address("ff02::1:3").packed
        out.append(_V6_RECORD.build(record))
    return b"".join(out)


def vds_template_sets() -> bytes:
    """The IPv4 (264) and IPv6 (266) flow templates, as one vDS sends them."""
    return ipfix_template_set(VDS_IPV4_FIELDS) + ipfix_template_set(
        VDS_IPV6_FIELDS, IPFIX_V6_TEMPLATE_ID
    )


def ipfix_vds_datagrams(
    first_id: int,
    datagrams: int,
    v4_per: int = 12,
    v6_per: int = 4,
    with_templates: bool = True,
    sequence_start: int = 0,
) -> list[bytes]:
    """vDS-like IPFIX messages: each holds ``v4_per`` IPv4 and ``v6_per`` IPv6 flows
    (ids from ``first_id``, consecutive); the first carries the templates when
    ``with_templates``."""
    out = []
    flow_id = first_id
    sequence = sequence_start
    per = v4_per + v6_per
    for d in range(datagrams):
        v4 = np.arange(flow_id, flow_id + v4_per, dtype=np.uint64)
        v6 = np.arange(flow_id + v4_per, flow_id + per, dtype=np.uint64)
        sets = vds_template_sets() if with_templates and d == 0 else b""
        if v4_per:
            sets += _data_set(264, _vds_v4_records(v4))
        if v6_per:
            sets += _data_set(IPFIX_V6_TEMPLATE_ID, _vds_v6_records(v6))
        out.append(_ipfix_message(sets, sequence))
        sequence += per
        flow_id += per
    return out


def flow_ids(table: pa.Table) -> list[int]:
    """The flow id of every row built by ``v5_datagrams`` / ``ipfix_vds_datagrams``
    (from the IPv4 or IPv6 source address), in row order, repeats kept."""
    if table.num_rows == 0:
        return []
    v4 = table["src_addr"].to_pylist()
    v6 = table["src_addr6"].to_pylist() if "src_addr6" in table.column_names else [None] * len(v4)
    return [
        a - V4_ID_BASE if a is not None else int.from_bytes(b, "big") - V6_ID_BASE
        for a, b in zip(v4, v6, strict=True)
    ]


# -- sending and reading -----------------------------------------------------------------------


def reference_table(
    sends: Iterable[Send | tuple[bytes, Exporter, int | None]],
) -> tuple[pa.Table, Counter[str]]:
    """What a fresh decoder makes of ``sends`` (in order; an optional third item is the
    receive time, default now): the flow table as the collector builds it, and the drop
    reasons it raised."""
    decoder = FlowDecoder()
    drops: Counter[str] = Counter()
    now_ns = time.time_ns()
    for payload, exporter, *when in sends:
        try:
            decoder.feed_datagram(payload, exporter, (when[0] if when else None) or now_ns)
        except ParseError as error:
            drops[error.reason.value] += 1
    batches = [to_record_batch(batch) for batch in decoder.flush()]
    return _concat(batches), drops


def stored_table(flow_dir: Path) -> pa.Table:
    """Every flow below ``flow_dir`` (Parquet files and live spools), via the reader."""
    problems: list = []
    batches = list(scan([flow_dir], on_problem=problems.append))
    assert not problems, problems
    return _concat(batches)


def _concat(batches: Sequence[pa.RecordBatch]) -> pa.Table:
    if not batches:
        return pa.table({})
    tables = [pa.Table.from_batches([b]) for b in batches if b.num_rows]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")


def _canonical(value: object) -> object:
    if isinstance(value, list):  # a map column: list of (key, value) pairs
        return tuple(sorted((k, v) for k, v in value))
    return value


def row_multiset(table: pa.Table, ignore: Sequence[str] = ("time_received",)) -> Counter:
    """The table's rows as a multiset of (column, value) tuples, null columns left out,
    so tables that differ only in all-null columns or column order compare equal."""
    names = [n for n in table.column_names if n not in ignore]
    rows: Counter = Counter()
    for row in table.select(names).to_pylist():
        rows[tuple(sorted((k, _canonical(v)) for k, v in row.items() if v is not None))] += 1
    return rows


def totals(table: pa.Table) -> tuple[int, int, int]:
    """(flows, packets, bytes)."""
    if table.num_rows == 0:
        return 0, 0, 0
    return (
        table.num_rows,
        int(pc.sum(table["packets"]).as_py() or 0),
        int(pc.sum(table["bytes"]).as_py() or 0),
    )


__all__ = [
    "IPFIX_V6_TEMPLATE_ID",
    "VDS_IPV6_FIELDS",
    "flow_ids",
    "ipfix_vds_datagrams",
    "reference_table",
    "row_multiset",
    "stored_table",
    "totals",
    "v5_datagrams",
    "vds_template_sets",
]
