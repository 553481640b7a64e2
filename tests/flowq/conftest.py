"""Fixtures of the flowq output tests: the fixed flow dataset every format is checked on,
and the golden-file checker with its ``--update-golden`` option.

Golden files live in ``tests/golden/`` and are compared byte for byte. They change only
with ``pytest tests/flowq --update-golden`` (the option is registered here, so pass a
path under ``tests/flowq``), and the diff is reviewed like code.

The dataset (``output_flows``) has two batches with different column sets, as files
from different exporters have:

- batch 1, rows 0-12 (``NFDUMP_ROWS``): what nfcapd can store too (exporter 127.0.0.1,
  observation domain 0, IPv6 addresses of at most 16 characters, which nfdump does not
  shorten), so nfdump's output on the same flows must equal ours byte for byte;
- batch 2, rows 13-17: what nfdump cannot show the same way: long IPv6 addresses, a
  VMware vDS flow with tenant addresses and a VXLAN segment id, an aggregated flow
  count, an IPv6 exporter, a flow ending before it starts, a row of nulls.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from storage.schema import FLOW_SCHEMA

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
NFDUMP_ROWS = 13

#: 2026-11-22 10:05:00.123 UTC
T0_MS = int(datetime(2026, 11, 22, 10, 5, 0, 123000, tzinfo=UTC).timestamp() * 1000)
_SECOND = 1000
_DAY = 86_400_000


def pytest_addoption(parser: pytest.Parser) -> None:
    with contextlib.suppress(ValueError):  # another conftest may register it too
        parser.addoption(
            "--update-golden",
            action="store_true",
            default=False,
            help="rewrite tests/golden/ files from the current output (review the diff)",
        )


def _v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def _flow(**values: Any) -> dict[str, Any]:
    """One row; addresses given as text go to the IPv4 column or its IPv6 twin."""
    row: dict[str, Any] = {"exporter": "127.0.0.1", "observation_domain": 0}
    row.update(values)
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, str) and name in _ADDRESS_COLUMNS:
            if ":" in value:
                out[f"{name}6"] = _v6(value)
            else:
                out[name] = _v4(value)
        else:
            out[name] = value
    return out


_ADDRESS_COLUMNS = {
    "src_addr", "dst_addr", "next_hop", "bgp_next_hop", "exporter", "tenant_src_addr",
    "tenant_dst_addr",
}  # fmt: skip


def _times(start_ms: int, duration_ms: int) -> dict[str, int]:
    return {"time_start": start_ms, "time_end": start_ms + duration_ms}


NFDUMP_COMPARABLE = [
    _flow(  # 0: TCP with every classic field set
        **_times(T0_MS, 1500),
        proto=6,
        src_addr="10.1.2.3",
        src_port=443,
        dst_addr="192.168.10.20",
        dst_port=51000,
        tcp_flags=0x1B,
        tos=0,
        dst_tos=4,
        packets=10,
        bytes=5000,
        in_if=1,
        out_if=2,
        src_as=64512,
        dst_as=15169,
        src_mask=24,
        dst_mask=16,
        next_hop="10.1.2.254",
        bgp_next_hop="10.0.0.1",
        src_vlan=100,
        dst_vlan=200,
        flow_direction=0,
        out_packets=7,
        out_bytes=900,
    ),
    _flow(  # 1: UDP with flag bits set: nfdump shows no flags for non-TCP
        **_times(T0_MS + 2 * _SECOND, 2000),
        proto=17,
        src_addr="10.1.2.4",
        src_port=53,
        dst_addr="8.8.8.8",
        dst_port=33333,
        tcp_flags=0x12,
        tos=184,
        packets=3,
        bytes=400,
        in_if=3,
        out_if=4,
        flow_direction=1,
    ),
    _flow(  # 2: a SYN, zero duration: rates 0, bytes per packet still computed; 3 flows
        **_times(T0_MS + 3 * _SECOND, 0),
        flows=3,
        proto=6,
        src_addr="172.16.5.1",
        src_port=40000,
        dst_addr="10.10.10.10",
        dst_port=22,
        tcp_flags=0x02,
        packets=1,
        bytes=60,
    ),
    _flow(  # 3: ICMP echo over more than a day, counters in G and T
        **_times(T0_MS - 7 * _SECOND, _DAY + 3_661_001),
        proto=1,
        src_addr="10.0.0.4",
        src_port=0,
        dst_addr="192.168.1.5",
        dst_port=0,
        icmp_type_code=0x0800,
        packets=2_300_000_000,
        bytes=1_500_000_000_000,
    ),
    _flow(  # 4: at the M boundary; 7 ms make a huge bit rate
        **_times(T0_MS + 4 * _SECOND, 7),
        proto=255,
        src_addr="10.0.0.5",
        src_port=0,
        dst_addr="192.168.1.5",
        dst_port=0,
        packets=999_999,
        bytes=1_000_000,
    ),
    _flow(  # 5: protocol 0, no packets (bytes per packet 0)
        **_times(T0_MS + 5 * _SECOND, 10),
        proto=0,
        src_addr="0.0.0.1",
        src_port=1,
        dst_addr="255.255.255.255",
        dst_port=65535,
        packets=0,
        bytes=0,
    ),
    _flow(  # 6: IPv6 TCP, short addresses (nfdump shows them whole)
        **_times(T0_MS + 6 * _SECOND, 61_000),
        proto=6,
        src_addr="2001:db8::1",
        src_port=443,
        dst_addr="2001:db8::2",
        dst_port=50123,
        tcp_flags=0xC2,
        tos=32,
        packets=42,
        bytes=123_456,
        src_mask=64,
        dst_mask=48,
        next_hop="fe80::1",
        in_if=10,
        out_if=11,
    ),
    _flow(  # 7: ICMPv6 neighbour solicitation
        **_times(T0_MS + 7 * _SECOND, 250),
        proto=58,
        src_addr="::1",
        dst_addr="ff02::1:ff00:1",
        src_port=0,
        dst_port=0,
        icmp_type_code=0x8700,
        packets=1,
        bytes=72,
    ),
    _flow(  # 8: the exporter sent little: nulls show as nfdump's zeros
        **_times(T0_MS + 8 * _SECOND, 3 * 3_600_000 + 4 * 60_000 + 5_678),
        proto=17,
        src_addr="10.9.8.7",
        src_port=123,
        dst_addr="10.9.8.6",
        dst_port=123,
        packets=None,
        bytes=76,
    ),
    _flow(  # 9: ESP, big counters around the G/T edges
        **_times(T0_MS + 9 * _SECOND, 59_999),
        proto=50,
        src_addr="198.51.100.1",
        src_port=0,
        dst_addr="203.0.113.9",
        dst_port=0,
        packets=12_345_678_901_234,
        bytes=999_999_999_999,
        src_as=4_200_000_000,
        dst_as=65535,
    ),
    _flow(  # 10: protocol 94 and a duration past 100 days
        **_times(T0_MS - 123 * _DAY, 123 * _DAY + 1),
        proto=94,
        src_addr="10.0.0.94",
        src_port=0,
        dst_addr="10.0.0.95",
        dst_port=0,
        packets=5,
        bytes=600,
    ),
    _flow(  # 11: all TCP flags, ports at their limits
        **_times(T0_MS + 11 * _SECOND, 999),
        proto=6,
        src_addr="10.255.255.255",
        src_port=65535,
        dst_addr="10.0.0.0",
        dst_port=0,
        tcp_flags=0xFF,
        tos=255,
        packets=1_000_000,
        bytes=1_499_999_999,
        in_if=65535,
        out_if=4_294_967_295,
    ),
    _flow(  # 12: SCTP, 1 ms, a flow count of 0
        **_times(T0_MS + 12 * _SECOND, 1),
        flows=0,
        proto=132,
        src_addr="192.0.2.1",
        src_port=36412,
        dst_addr="192.0.2.2",
        dst_port=36412,
        packets=2,
        bytes=200,
    ),
]
assert len(NFDUMP_COMPARABLE) == NFDUMP_ROWS

GOLDEN_ONLY = [
    _flow(  # 13: long IPv6 addresses, IPv6 exporter and next hop
        **_times(T0_MS + 13 * _SECOND, 4321),
        proto=6,
        src_addr="2001:db8:1234:5678:9abc:def0:1234:5678",
        src_port=8443,
        dst_addr="fe80::aaaa:bbbb:cccc:dddd",
        dst_port=49152,
        tcp_flags=0x18,
        packets=17,
        bytes=17_000,
        exporter="2001:db8::99",
        observation_domain=2,
        next_hop="2001:db8:ffff::1",
        time_received=T0_MS + 20 * _SECOND,
    ),
    _flow(  # 14: VMware vDS: VXLAN outer flow, tenant inner 5-tuple, segment id
        **_times(T0_MS + 14 * _SECOND, 30_000),
        proto=17,
        src_addr="10.20.0.11",
        src_port=61000,
        dst_addr="10.20.0.12",
        dst_port=4789,
        packets=1_234_567,
        bytes=1_700_000_000,
        exporter="10.20.0.1",
        observation_domain=7,
        tenant_proto=6,
        tenant_src_addr="172.16.0.10",
        tenant_src_port=51515,
        tenant_dst_addr="fd00::20",
        tenant_dst_port=443,
        layer2_segment_id=5001,
        vxlan_export_role=1,
        flows=5,
        flow_version=10,
        sampling_interval=1,
        time_received=T0_MS + 45 * _SECOND,
    ),
    _flow(  # 15: ends before it starts (an exporter clock step): duration 0
        time_start=T0_MS + 15 * _SECOND,
        time_end=T0_MS + 14 * _SECOND,
        proto=6,
        src_addr="10.3.3.3",
        src_port=1234,
        dst_addr="10.4.4.4",
        dst_port=80,
        tcp_flags=0x11,
        packets=4,
        bytes=240,
        engine_type=1,
        engine_id=2,
    ),
    _flow(  # 16: nothing but a protocol: every other field null
        exporter=None,
        observation_domain=None,
        proto=47,
    ),
    _flow(  # 17: NetFlow v5 style ICMP: type and code in the destination port
        **_times(T0_MS + 17 * _SECOND, 0),
        proto=1,
        src_addr="10.5.5.5",
        src_port=0,
        dst_addr="10.6.6.6",
        dst_port=0x0303,
        packets=1,
        bytes=56,
        flow_version=5,
    ),
]


def _batch(rows: list[dict[str, Any]], extra_columns: tuple[str, ...] = ()) -> pa.RecordBatch:
    """Rows -> a batch with the core columns plus the ones the rows use, schema order."""
    used = {name for row in rows for name in row} | set(extra_columns)
    used |= {f.name for f in FLOW_SCHEMA if f.name in _CORE}
    fields = [f for f in FLOW_SCHEMA if f.name in used]
    arrays = [pa.array([row.get(f.name) for row in rows], type=f.type) for f in fields]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


_CORE = {
    "time_start", "time_end", "proto", "src_addr", "src_port", "dst_addr", "dst_port",
    "tcp_flags", "tos", "packets", "bytes", "in_if", "out_if", "src_as", "dst_as",
    "src_mask", "dst_mask", "next_hop", "exporter", "observation_domain", "time_received",
    "sampling_interval",
}  # fmt: skip


@pytest.fixture(scope="session")
def output_flows() -> list[pa.RecordBatch]:
    """The dataset: 13 nfdump-comparable rows, then 5 rows only flowq can show."""
    return [_batch(NFDUMP_COMPARABLE), _batch(GOLDEN_ONLY)]


@pytest.fixture(scope="session")
def nfdump_flows(output_flows: list[pa.RecordBatch]) -> pa.RecordBatch:
    return output_flows[0]


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``golden(name, text)``: assert ``text`` equals ``tests/golden/<name>`` byte for
    byte, or rewrite the file under ``--update-golden``."""
    update = bool(request.config.getoption("--update-golden", default=False))

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode())
            return
        if not path.exists():
            pytest.fail(f"{path} is missing: run pytest tests/flowq --update-golden")
        assert text == path.read_bytes().decode(), f"{name} differs from the golden file"

    return check


@pytest.fixture
def updating_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden", default=False))
