"""Every grammar element on a small hand-made flow table: the compiled expression and
the reference evaluator must select exactly the expected rows. Plus projection
(``filter_columns``), time bounds, Parquet scans with absent columns, and the Arrow
behaviour the compiler relies on (fixed_size_binary compares bytewise, unsigned)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from flowq.filter_ast import ADDRESS_FIELDS, QUANTITIES, Not
from flowq.filter_compile import compile_filter, filter_columns, time_bounds
from flowq.filter_parser import parse_filter
from flowq.filter_reference import evaluate_reference
from storage.schema import FLOW_SCHEMA

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def mac(text: str) -> bytes:
    return bytes(int(p, 16) for p in text.split(":"))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# fmt: off
FLOWS: list[dict] = [
    # 0: IPv4 TCP, SYN+ACK, every nfdump field set
    dict(proto=6, src_addr=v4("10.0.0.1"), dst_addr=v4("192.168.1.10"), src_port=1234,
         dst_port=443, tcp_flags=0x12, packets=10, bytes=1500, time_start=at(0),
         time_end=at(2), in_if=1, out_if=2, src_as=64500, dst_as=15169, src_mask=24,
         dst_mask=16, src_vlan=10, dst_vlan=20, tos=0, dst_tos=8, next_hop=v4("10.0.0.254"),
         bgp_next_hop=v4("10.255.0.1"), exporter=v4("172.16.0.1"), flow_direction=0,
         engine_type=1, engine_id=2, observation_domain=1, flow_version=10, prev_as=3,
         next_as=4, out_packets=7, out_bytes=700, in_src_mac=mac("00:11:22:33:44:55"),
         out_dst_mac=mac("66:77:88:99:aa:bb"), forwarding_status=64, ingress_vrf_id=7),
    # 1: IPv4 UDP DNS, zero duration, EF tos, no VLAN / AS / interfaces
    dict(proto=17, src_addr=v4("10.0.0.2"), dst_addr=v4("8.8.8.8"), src_port=53000,
         dst_port=53, packets=1, bytes=80, time_start=at(10), time_end=at(10), tos=184,
         exporter=v4("172.16.0.1"), flow_direction=1, observation_domain=1),
    # 2: ICMP echo request, type/code exported in icmp_type_code, dst port 0
    dict(proto=1, src_addr=v4("10.0.0.3"), dst_addr=v4("10.0.0.4"), src_port=0, dst_port=0,
         icmp_type_code=0x0800, packets=4, bytes=336, time_start=at(20), time_end=at(23),
         exporter=v4("172.16.0.2")),
    # 3: ICMP port unreachable the NetFlow v5 way: type/code in the dst port
    dict(proto=1, src_addr=v4("10.0.0.4"), dst_addr=v4("10.0.0.3"), src_port=0,
         dst_port=0x0303, packets=1, bytes=56, time_start=at(30), time_end=at(30)),
    # 4: IPv6 TCP SYN
    dict(proto=6, src_addr6=v6("2001:db8::1"), dst_addr6=v6("2001:db8:1::2"), src_port=5555,
         dst_port=80, tcp_flags=0x02, packets=3, bytes=180, time_start=at(40),
         time_end=at(41.5), next_hop6=v6("fe80::1"), exporter6=v6("2001:db8:ffff::1"),
         src_mask=64, dst_mask=48),
    # 5: ICMPv6 neighbour solicitation, type/code in icmp_type/icmp_code
    dict(proto=58, src_addr6=v6("fe80::1"), dst_addr6=v6("ff02::1:ff00:2"), dst_port=0,
         icmp_type=135, icmp_code=0, packets=1, bytes=72, time_start=at(50),
         time_end=at(50)),
    # 6: VMware vDS: VXLAN outer IPv4, tenant IPv4 SSH, aggregated flow count
    dict(proto=17, src_addr=v4("10.10.0.1"), dst_addr=v4("10.10.0.2"), src_port=49152,
         dst_port=4789, packets=100, bytes=150_000, time_start=at(60), time_end=at(160),
         tenant_proto=6, tenant_src_addr=v4("192.168.100.5"),
         tenant_dst_addr=v4("192.168.100.6"), tenant_src_port=33000, tenant_dst_port=22,
         layer2_segment_id=(1 << 56) | 5001, vxlan_export_role=1, flows=3,
         flow_direction=1, exporter=v4("172.16.0.3")),
    # 7: VMware vDS: outer and tenant IPv6, VNI 6000
    dict(proto=17, src_addr6=v6("2001:db8::10"), dst_addr6=v6("2001:db8::11"),
         src_port=50000, dst_port=4789, packets=20, bytes=20_000, time_start=at(70),
         time_end=at(80), tenant_proto=6, tenant_src_addr6=v6("fd00::5"),
         tenant_dst_addr6=v6("fd00::6"), tenant_src_port=40000, tenant_dst_port=443,
         layer2_segment_id=(1 << 56) | 6000, vxlan_export_role=2),
    # 8: a row of nulls (what nfdump zero-fills)
    dict(),
    # 9: IPv4 TCP with ECN flags (CWR ECE SYN), NAT, a long flow
    dict(proto=6, src_addr=v4("10.1.2.3"), dst_addr=v4("10.1.2.4"), src_port=40000,
         dst_port=8080, tcp_flags=0xC2, packets=2_000_000, bytes=3_000_000_000,
         time_start=at(-3600), time_end=at(100), xlate_src_addr=v4("203.0.113.5"),
         xlate_src_port=61000, src_vlan=20, in_if=2, out_if=1, src_as=15169,
         dst_as=64500),
]
# fmt: on

COLUMNS = sorted(
    {name for name, q in QUANTITIES.items() if not q.derived}
    | {c for v4_col, v6_col, _ in ADDRESS_FIELDS.values() for c in (v4_col, v6_col)}
    | {"dst_port", "icmp_type_code", "icmp_type", "icmp_code", "flows"}
    | {"layer2_segment_id", "time_start", "time_end", "packets", "bytes"}
    | {"in_src_mac", "in_dst_mac", "out_src_mac", "out_dst_mac"}
)


def flow_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([FLOW_SCHEMA.field(c) for c in COLUMNS] + [pa.field("row", pa.int64())])
    data = {c: [row.get(c) for row in rows] for c in COLUMNS}
    data["row"] = list(range(len(rows)))
    return pa.table(data, schema=schema)


TABLE = flow_table(FLOWS)
ALL = set(range(len(FLOWS)))
IPV6 = {4, 5, 7}


def matching(text: str, table: pa.Table = TABLE) -> set[int]:
    return set(table.filter(compile_filter(parse_filter(text), now=NOW))["row"].to_pylist())


def reference(text: str) -> set[int]:
    node = parse_filter(text)
    return {i for i, row in enumerate(TABLE.to_pylist()) if evaluate_reference(node, row, NOW)}


CASES: list[tuple[str, set[int]]] = [
    # any, empty, comments, address families
    ("any", ALL),
    ("", ALL),
    ("  # nothing but a comment\n", ALL),
    ("ipv4", ALL - IPV6),
    ("inet", ALL - IPV6),
    ("ipv6", IPV6),
    ("inet6", IPV6),
    # protocols
    ("proto tcp", {0, 4, 9}),
    ("proto 17", {1, 6, 7}),
    ("proto icmp", {2, 3}),
    ("proto icmp6", {5}),
    ("proto ipv6-icmp", {5}),
    ("proto 0", {8}),  # nfdump reads a missing protocol as 0
    ("proto gre", set()),
    # addresses
    ("ip 10.0.0.3", {2, 3}),
    ("host 10.0.0.3", {2, 3}),
    ("src ip 10.0.0.3", {2}),
    ("dst ip 10.0.0.3", {3}),
    ("src or dst ip 10.0.0.3", {2, 3}),
    ("src and dst ip 10.0.0.3", set()),
    ("ip 2001:db8::1", {4}),
    ("dst host 2001:db8:1::2", {4}),
    ("ip 0.0.0.0", {8}),  # no address at all reads 0.0.0.0, as in nfdump
    ("not ip 10.0.0.3", ALL - {2, 3}),
    ("net 10.0.0.0/24", {0, 1, 2, 3}),
    ("src net 10.0.0.0/30", {0, 1, 2}),
    ("dst net 192.168.0.0/16", {0}),
    ("net 10.0.0.0 255.255.255.0", {0, 1, 2, 3}),
    ("net 10.0.0.1 255.0.0.255", {0, 6}),  # nfdump allows non-contiguous masks: 10.x.x.1
    ("net 10.0.0.7/24", {0, 1, 2, 3}),  # host bits ignored
    ("net 0.0.0.0/0", ALL - IPV6),
    ("net ::/0", IPV6),
    ("net 2001:db8::/32", {4, 7}),
    ("net 2001:db8:1::/48", {4}),
    ("src net 2001:db8::/33", {4, 7}),
    ("net ff00::/8", {5}),
    ("ip in [10.0.0.3, 10.1.2.0/24 2001:db8::10]", {2, 3, 7, 9}),
    ("src ip in [ 10.0.0.1 ]", {0}),
    ("dst ip in [10.0.0.0/24,192.168.0.0/16,fe80::/10]", {0, 2, 3}),
    (  # more than 8 ranges: the is_in-per-prefix-length form
        "ip in [1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.0/24 "
        "10.10.0.0/16 2001:db8:1::/48 ff02::/16 fe80::1 ::1 2001:db8::11 2001:db8::/120]",
        {1, 4, 5, 6, 7},
    ),
    ("ip in [0.0.0.0/0]", ALL - IPV6),
    # ports
    ("port 443", {0}),
    ("src port 53000", {1}),
    ("dst port 53", {1}),
    ("port > 50000", {1}),
    ("port gt 50000", {1}),
    ("dst port < 100", {1, 4, 8}),  # the row of nulls reads port 0; ICMP 3.3 is 771
    ("dst port lt 100", {1, 4, 8}),
    ("dst port 0", {8}),  # an ICMP flow's dst port is its type/code (nfdump)
    ("dst port 2048", {2}),  # ICMP echo request: 8 << 8
    ("dst port 771", {3}),
    ("dst port 34560", {5}),  # 135 << 8
    ("src port 0", {2, 3, 5, 8}),
    ("port 1k", set()),
    ("port in [80 443, 4789]", {0, 4, 6, 7}),
    ("src port in [53000]", {1}),
    ("src and dst port in [0]", {8}),
    ("src and dst port >= 80", {0, 4, 6, 7, 9}),
    ("dst or src port 5555", {4}),
    ("port >= 8080 and port <= 8080", {1, 5, 6, 7, 9}),  # either port, each
    ("src port >= 40000 and src port <= 40000", {9}),
    ("port = 80", {4}),
    ("port == 80", {4}),
    ("port eq 80", {4}),
    ("port le 53", {1, 2, 3, 5, 8}),
    ("port ge 50000", {1, 7}),
    # ICMP
    ("icmp-type 8", {2}),
    ("icmp-code 0", {2, 5}),
    ("icmp-type 3 and icmp-code 3", {3}),
    ("icmp-type 135", {5}),
    ("icmp-type 0", set()),
    ("not icmp-type 8", ALL - {2}),
    # interfaces, AS, masks, VLANs, tos
    ("in if 1", {0}),
    ("out if 1", {9}),
    ("if 2", {0, 9}),
    ("if 0", {1, 2, 3, 4, 5, 6, 7, 8}),  # missing interfaces read 0, as in nfdump
    ("src as 64500", {0}),
    ("dst as 64500", {9}),
    ("as 15169", {0, 9}),
    ("as > 60000", {0, 9}),
    ("as in [64500 1]", {0, 9}),
    ("dst as in [15169, 2]", {0}),
    ("prev as 3", {0}),
    ("next as 4", {0}),
    ("src mask 24", {0}),
    ("mask 48", {4}),
    ("dst mask 16", {0}),
    ("vlan 20", {0, 9}),
    ("src vlan 20", {9}),
    ("dst vlan 20", {0}),
    ("not vlan 0", {0}),  # 9 has no dst VLAN: it reads 0
    ("tos 184", {1}),
    ("src tos 184", {1}),
    ("dst tos 8", {0}),
    ("tos > 0", {1}),
    ("src and dst tos 0", ALL - {0, 1}),
    # next hop, BGP next hop, router / exporter, NAT
    ("next ip 10.0.0.254", {0}),
    ("next ip fe80::1", {4}),
    ("next ip 0.0.0.0", ALL - {0, 4}),
    ("next ip in [10.0.0.0/8]", {0}),
    ("bgpnext ip 10.255.0.1", {0}),
    ("router ip 172.16.0.1", {0, 1}),
    ("exporter ip 2001:db8:ffff::1", {4}),
    ("router ip in [172.16.0.0/24]", {0, 1, 2, 6}),
    ("xip 203.0.113.5", {9}),
    ("src nip 203.0.113.5", {9}),
    ("src xnet 203.0.113.0/24", {9}),
    ("xport 61000", {9}),
    ("src nport 61000", {9}),
    # TCP flags (imply proto tcp)
    ("flags S", {0, 4, 9}),
    ("flags A", {0}),
    ("flags SA", {0}),
    ("flags AS", {0}),
    ("flags sa", {0}),
    ("flags S and not flags A", {4, 9}),
    ("flags X", set()),
    ("flags F", set()),
    ("flags EC", {9}),
    ("flags 2", {4}),
    ("flags > 2", {0, 9}),
    ("flags 0x12", {0}),
    ("not flags S", ALL - {0, 4, 9}),
    # counters (k/M/G are powers of 1000) and rates
    ("packets 10", {0}),
    ("packets > 10", {6, 7, 9}),
    ("in packets > 10", {6, 7, 9}),
    ("out packets 7", {0}),
    ("packets < 2", {1, 3, 5, 8}),
    ("packets > 1M", {9}),
    ("bytes > 1k", {0, 6, 7, 9}),
    ("bytes >= 1500", {0, 6, 7, 9}),
    ("bytes 1500", {0}),
    ("bytes > 2G", {9}),
    ("bytes > 3g", set()),
    ("out bytes 700", {0}),
    ("bytes > 0x400", {0, 6, 7, 9}),
    ("flows 1", ALL - {6}),  # nfdump: 1 unless the exporter says otherwise
    ("flows > 1", {6}),
    ("duration 0", {1, 3, 5, 8}),
    ("duration 2000", {0}),
    ("duration > 1k", {0, 2, 4, 6, 7, 9}),
    ("duration > 1h", None),  # not a number: syntax error (checked below)
    ("pps 5", {0}),  # 10 packets in 2 s
    ("pps 0", {1, 3, 5, 8}),  # zero duration: 0 (nfdump)
    ("pps > 500", {9}),  # 2 M packets in 3700 s
    ("bps 6000", {0}),  # 8 * 1500 bytes / 2 s
    ("bps > 1M", {9}),
    ("bpp 150", {0}),
    ("bpp < 60", {3, 8}),
    ("bpp 0", {8}),
    # first / last seen (flowcap extension)
    ("first seen > 2026-11-22T10:00:50Z", {6, 7}),
    ("first seen >= 2026-11-22T10:00:50Z", {5, 6, 7}),
    ("first seen = 2026-11-22T10:00:40Z", {4}),
    ("first seen < 2026-11-22T10:00:00Z", {9}),
    ("last seen <= 2026-11-22T10:00:10Z", {0, 1}),
    ("last seen > 2026-11-22T10:01:00Z", {6, 7, 9}),
    ("last seen > 2026-11-22T10:00:41.499Z", {4, 5, 6, 7, 9}),
    ("last seen > 2026-11-22T10:00:41.5Z", {5, 6, 7, 9}),
    ("first seen > -1h", {1, 2, 3, 4, 5, 6, 7}),  # NOW is T0 + 1h
    ("first seen >= now-1h", {0, 1, 2, 3, 4, 5, 6, 7}),
    ("not last seen > 2026-11-22T10:00:30Z", {0, 1, 2, 3, 8}),
    # exporter-side fields
    ("observation domain id 1", {0, 1}),
    ("observation domain id 0", ALL - {0, 1}),
    ("flowdir 1", {1, 6}),
    ("flowdir egress", {1, 6}),
    ("flowdir ingress", ALL - {1, 6}),
    ("dir 0", ALL - {1, 6}),
    ("engine-type 1", {0}),
    ("engine-id 2", {0}),
    ("engine-type > 0", {0}),
    ("nfversion 10", {0}),
    ("fwdstat 64", {0}),
    ("ingress vrf 7", {0}),
    # MAC addresses
    ("mac 00:11:22:33:44:55", {0}),
    ("in src mac 00:11:22:33:44:55", {0}),
    ("in dst mac 00:11:22:33:44:55", set()),
    ("dst mac 66:77:88:99:AA:BB", {0}),
    ("out mac 66:77:88:99:aa:bb", {0}),
    # VMware tenant / VXLAN (flowcap extensions): absent never matches
    ("tenant ip 192.168.100.6", {6}),
    ("tenant src ip 192.168.100.5", {6}),
    ("tenant dst ip 192.168.100.5", set()),
    ("tenant ip fd00::5", {7}),
    ("tenant net 192.168.100.0/24", {6}),
    ("tenant dst net fd00::/8", {7}),
    ("tenant ip in [192.168.100.6 fd00::6]", {6, 7}),
    ("tenant ip 0.0.0.0", set()),
    ("tenant port 22", {6}),
    ("tenant dst port 443", {7}),
    ("tenant src port > 35000", {7}),
    ("tenant port in [22 443]", {6, 7}),
    ("tenant proto tcp", {6, 7}),
    ("not tenant proto tcp", ALL - {6, 7}),
    ("vni 5001", {6}),
    ("vni > 5500", {7}),
    ("vni 0", set()),
    ("not vni 5001", ALL - {6}),
    ("vxlan role 2", {7}),
    # precedence: not > and > or; parentheses; && || !
    ("proto tcp or proto udp and port 53", {0, 1, 4, 9}),
    ("(proto tcp or proto udp) and port 53", {1}),
    ("not proto tcp and port 443", set()),
    ("not (proto tcp and port 443)", ALL - {0}),
    ("proto udp and not port 53 or ipv6 and proto tcp", {4, 6, 7}),
    ("proto tcp && port 443 || !ipv4", {0} | IPV6),
    ("not not proto icmp", {2, 3}),
    ("((proto icmp))", {2, 3}),
    ("proto tcp and (flags S and not flags A) and not ipv6", {9}),
    ("proto tcp and not dst port 443", {4, 9}),
    ("proto tcp and port in [443 8080]", {0, 9}),
    ("proto udp and (icmp-type 8 or dst port 53)", {1}),
    ("proto icmp and dst port 2048", {2}),
    # case-insensitivity
    ("PROTO TCP AND SRC IP 10.0.0.1", {0}),
    ("Proto Udp Or Flags S", {0, 1, 4, 6, 7, 9}),
    ("ICMP-TYPE 8", {2}),
    ("FlowDir Egress", {1, 6}),
    ("BYTES GT 1K", {0, 6, 7, 9}),
    # comments and line breaks (-f FILE)
    ("proto tcp # web\nand port 443", {0}),
    ("# header\nproto udp\n# and a trailer", {1, 6, 7}),
]


@pytest.mark.parametrize(("text", "expected"), [c for c in CASES if c[1] is not None])
def test_filter_selects_expected_rows(text: str, expected: set[int]) -> None:
    assert matching(text) == expected
    assert reference(text) == expected


@pytest.mark.parametrize(("text", "expected"), [c for c in CASES if c[1] is not None])
def test_negation_selects_the_complement(text: str, expected: set[int]) -> None:
    node = Not(parse_filter(text))
    assert set(TABLE.filter(compile_filter(node, now=NOW))["row"].to_pylist()) == ALL - expected


def test_units_that_are_not_numbers_are_rejected() -> None:
    from flowq.filter_lexer import FilterError

    with pytest.raises(FilterError):
        parse_filter("duration > 1h")


def test_filter_columns_names_what_the_expression_reads() -> None:
    assert filter_columns(parse_filter("any")) == set()
    assert filter_columns(parse_filter("src ip 10.0.0.1")) == {"src_addr"}
    assert filter_columns(parse_filter("ip 0.0.0.0")) == {
        "src_addr", "src_addr6", "dst_addr", "dst_addr6"
    }  # fmt: skip
    assert filter_columns(parse_filter("proto tcp and dst port 443")) == {"proto", "dst_port"}
    assert filter_columns(parse_filter("icmp-type 8")) == {
        "proto", "icmp_type_code", "icmp_type", "icmp_code", "dst_port"
    }  # fmt: skip
    assert filter_columns(parse_filter("bps > 1M")) == {"bytes", "time_start", "time_end"}
    assert filter_columns(parse_filter("vni 5 or ipv6")) == {
        "layer2_segment_id", "src_addr6", "dst_addr6"
    }  # fmt: skip
    assert filter_columns(parse_filter("not flags S")) == {"proto", "tcp_flags"}


def test_common_filters_compile_to_plain_prunable_comparisons() -> None:
    assert str(compile_filter(parse_filter("proto tcp and dst port 443"))) == (
        "((proto == 6) and (dst_port == 443))"
    )
    assert str(compile_filter(parse_filter("bytes > 1k"))) == "(bytes > 1000)"


def test_time_bounds_from_conjunctive_first_and_last_seen() -> None:
    t1, t2 = "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z"
    d1, d2 = datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC)

    def bounds(text: str) -> tuple[datetime | None, datetime | None]:
        return time_bounds(parse_filter(text), now=NOW)

    assert bounds("any") == (None, None)
    assert bounds(f"first seen >= {t1}") == (d1, None)
    assert bounds(f"last seen >= {t1}") == (d1, None)
    assert bounds(f"last seen < {t2}") == (None, d2)
    assert bounds(f"first seen < {t2}") == (None, None)  # a flow may end much later
    assert bounds(f"first seen > {t1} and last seen <= {t2} and proto tcp") == (d1, d2)
    assert bounds(f"proto tcp and (last seen = {t1})") == (d1, d1)
    assert bounds(f"last seen > {t1} or proto tcp") == (None, None)
    assert bounds(f"last seen > {t1} or last seen > {t2}") == (d1, None)
    assert bounds(f"(last seen < {t1} or last seen < {t2}) and last seen > {t1}") == (d1, d2)
    assert bounds(f"not last seen > {t1}") == (None, None)  # null times match negations
    assert bounds(f"not (proto tcp or not last seen > {t1})") == (d1, None)
    assert bounds("last seen > -1h") == (NOW - timedelta(hours=1), None)


def test_relative_times_resolve_against_now() -> None:
    node = parse_filter("first seen > now-30m")
    early = set(TABLE.filter(compile_filter(node, now=T0))["row"].to_pylist())
    assert early == {0, 1, 2, 3, 4, 5, 6, 7}
    late = set(TABLE.filter(compile_filter(node, now=T0 + timedelta(days=1)))["row"].to_pylist())
    assert late == set()


def test_fixed_size_binary_compares_bytewise_unsigned() -> None:
    """The IPv6 network test is a range test on binary(16): Arrow must order it like
    memcmp (0x80.. after 0x7f..), or networks above 8000::/1 would break."""
    values = [v6("7fff::1"), v6("8000::"), v6("ff02::1"), v6("::1"), None]
    table = pa.table({"a": pa.array(values, pa.binary(16))})
    low = pa.scalar(v6("8000::"), pa.binary(16))
    assert table.filter(pc.field("a") >= low)["a"].to_pylist() == values[1:3]
    assert matching("net 8000::/1", flow_table([{"src_addr6": v} for v in values])) == {1, 2}


def test_parquet_scan_with_absent_columns(tmp_path: Path) -> None:
    """A file without the tenant, ICMP or flag columns, read with FLOW_SCHEMA as the
    reader does: the filter still runs, absent data means what nfdump's zero does."""
    path = tmp_path / "flows.parquet"
    core = pa.table(
        {
            "proto": pa.array([6, 1, 17], pa.uint8()),
            "src_addr": pa.array([v4("10.0.0.1"), v4("10.0.0.2"), None], pa.uint32()),
            "src_addr6": pa.array([None, None, v6("2001:db8::1")], pa.binary(16)),
            "dst_port": pa.array([443, 0x0800, 53], pa.uint16()),
        }
    )
    pq.write_table(core, path, row_group_size=1)
    dataset = ds.dataset(path, schema=FLOW_SCHEMA)

    def scan(text: str) -> list:
        table = dataset.to_table(columns=["proto"], filter=compile_filter(parse_filter(text)))
        return table["proto"].to_pylist()

    assert scan("icmp-type 8") == [1]
    assert scan("vni 5 or tenant port 22") == []
    assert scan("not vni 5") == [6, 1, 17]
    assert scan("vlan 0 and flows 1 and tos 0") == [6, 1, 17]
    assert scan("ip 10.0.0.2 or ipv6") == [1, 17]
    assert scan("flags S") == []
    assert scan("not flags S") == [6, 1, 17]
    assert scan("dst port < 1024") == [6, 17]


def test_long_or_chains_become_set_tests() -> None:
    """A -f file chaining thousands of 'port N' / 'host A' terms compiles to a few set
    tests (nfdump's advice is 'in [ list ]'), with the same answers."""
    text = " or ".join(f"port {p} or host 10.0.{p % 256}.{p // 256}" for p in range(2000))
    text += " or dst port 443 or host 2001:db8::1"
    expression = str(compile_filter(parse_filter(text)))
    assert expression.count("is_in") <= 8
    assert matching(text) == reference(text) == {0, 1, 2, 3, 4, 5, 8}


def test_every_column_the_language_reads_has_the_expected_type() -> None:
    for v4_column, v6_column, _ in ADDRESS_FIELDS.values():
        assert FLOW_SCHEMA.field(v4_column).type == pa.uint32()
        assert FLOW_SCHEMA.field(v6_column).type == pa.binary(16)
    for name, quantity in QUANTITIES.items():
        if not quantity.derived:
            assert pa.types.is_unsigned_integer(FLOW_SCHEMA.field(name).type), name
    for column in ("in_src_mac", "in_dst_mac", "out_src_mac", "out_dst_mac"):
        assert FLOW_SCHEMA.field(column).type == pa.binary(6)
