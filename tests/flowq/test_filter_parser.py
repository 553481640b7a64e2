"""The grammar: precedence, qualifiers, lists, literals, and every error's exact message
and caret column (what the user sees on stderr)."""

from __future__ import annotations

import pytest

from flowq.filter_ast import (
    AddressMatch,
    AllBits,
    And,
    AnyFlow,
    Compare,
    InSet,
    IpVersion,
    MacMatch,
    Not,
    Op,
    Or,
    TimeCompare,
)
from flowq.filter_lexer import AddressPattern, FilterError
from flowq.filter_parser import MAX_DEPTH, parse_filter

TCP = Compare("proto", Op.EQ, 6)
UDP = Compare("proto", Op.EQ, 17)
PORT_80 = Or((Compare("src_port", Op.EQ, 80), Compare("dst_port", Op.EQ, 80)))
HOST_1 = AddressPattern(4, 0x0A000001, 0xFFFFFFFF)


def test_style_guide_example_renders_exactly() -> None:
    text = "src ip 10.0.0.1 and port http"
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.position == 25
    assert caught.value.message == "expected a port number, found 'http'"
    assert caught.value.render(text) == (
        "flowq: filter error at column 26: expected a port number, found 'http'\n"
        "  src ip 10.0.0.1 and port http\n"
        "                           ^"
    )


@pytest.mark.parametrize("text", ["", "   ", "# only a comment", "\n# a\n  # b\n", "any", "ANY"])
def test_empty_filter_is_any(text: str) -> None:
    assert parse_filter(text) == AnyFlow()


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("proto tcp or proto udp and port 80", Or((TCP, And((UDP, PORT_80))))),
        ("proto tcp and proto udp or port 80", Or((And((TCP, UDP)), PORT_80))),
        ("not proto tcp and proto udp", And((Not(TCP), UDP))),
        ("not (proto tcp and proto udp)", Not(And((TCP, UDP)))),
        ("not not proto tcp", Not(Not(TCP))),
        ("proto tcp and proto udp and port 80", And((TCP, UDP, PORT_80))),
        ("(proto tcp or proto udp) and port 80", And((Or((TCP, UDP)), PORT_80))),
        ("proto tcp && proto udp || ! port 80", Or((And((TCP, UDP)), Not(PORT_80)))),
        ("(proto tcp)and(proto udp)", And((TCP, UDP))),
        ("Not Proto TCP", Not(TCP)),
        ("proto tcp # and proto udp\n or proto 17", Or((TCP, UDP))),
    ],
)
def test_precedence_not_and_or(text: str, tree: object) -> None:
    assert parse_filter(text) == tree


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("ip 10.0.0.1", Or((AddressMatch("src", (HOST_1,)), AddressMatch("dst", (HOST_1,))))),
        ("src ip 10.0.0.1", AddressMatch("src", (HOST_1,))),
        ("dst host 10.0.0.1", AddressMatch("dst", (HOST_1,))),
        ("src or dst ip 10.0.0.1", parse_filter("ip 10.0.0.1")),
        ("dst or src ip 10.0.0.1", parse_filter("ip 10.0.0.1")),
        (
            "src and dst ip 10.0.0.1",
            And((AddressMatch("src", (HOST_1,)), AddressMatch("dst", (HOST_1,)))),
        ),
        ("src and dst port 80", And((Compare("src_port", Op.EQ, 80), PORT_80.items[1]))),
        (
            "src ip 10.0.0.1 and dst port 80",
            And((AddressMatch("src", (HOST_1,)), PORT_80.items[1])),
        ),
        ("port 80", PORT_80),
        ("port > 1k", Or((Compare("src_port", Op.GT, 1000), Compare("dst_port", Op.GT, 1000)))),
        ("dst port in [ 80, 443 8080 ]", InSet("dst_port", frozenset({80, 443, 8080}))),
        ("src port in [0x50]", InSet("src_port", frozenset({80}))),
        ("tos 4", Compare("tos", Op.EQ, 4)),  # bare tos: the source's, as nfdump
        ("dst tos ge 4", Compare("dst_tos", Op.GE, 4)),
        ("if 3", Or((Compare("in_if", Op.EQ, 3), Compare("out_if", Op.EQ, 3)))),
        ("in if 3", Compare("in_if", Op.EQ, 3)),
        ("out if 3", Compare("out_if", Op.EQ, 3)),
        ("packets > 2", Compare("packets", Op.GT, 2)),
        ("in bytes > 2", Compare("bytes", Op.GT, 2)),
        ("out bytes > 2", Compare("out_bytes", Op.GT, 2)),
        ("prev as 7", Compare("prev_as", Op.EQ, 7)),
        ("previous as 7", Compare("prev_as", Op.EQ, 7)),
        ("next as 7", Compare("next_as", Op.EQ, 7)),
        ("next ip 10.0.0.1", AddressMatch("next_hop", (HOST_1,))),
        ("bgpnext ip 10.0.0.1", AddressMatch("bgp_next_hop", (HOST_1,))),
        ("router ip 10.0.0.1", AddressMatch("exporter", (HOST_1,))),
        ("exporter ip 10.0.0.1", AddressMatch("exporter", (HOST_1,))),
        (
            "as in [1 2]",
            Or((InSet("src_as", frozenset({1, 2})), InSet("dst_as", frozenset({1, 2})))),
        ),
        ("flags SA", And((TCP, AllBits("tcp_flags", 0x12)))),
        ("flags X", And((TCP, AllBits("tcp_flags", 0x3F)))),
        ("flags CE", And((TCP, AllBits("tcp_flags", 0xC0)))),
        ("flags > 2", And((TCP, Compare("tcp_flags", Op.GT, 2)))),
        ("flags lt 2", And((TCP, Compare("tcp_flags", Op.LT, 2)))),
        ("icmp-type 8", Compare("icmp_type", Op.EQ, 8)),
        ("icmp-code 1", Compare("icmp_code", Op.EQ, 1)),
        ("flowdir ingress", Compare("flow_direction", Op.EQ, 0)),
        ("flowdir egress", Compare("flow_direction", Op.EQ, 1)),
        ("observation domain id 5", Compare("observation_domain", Op.EQ, 5)),
        ("observation point id 5", Compare("observation_point_id", Op.EQ, 5)),
        ("engine-type 1", Compare("engine_type", Op.EQ, 1)),
        ("engine-id > 1", Compare("engine_id", Op.GT, 1)),
        ("ipv4", IpVersion(4)),
        ("inet6", IpVersion(6)),
        ("proto ICMP6", Compare("proto", Op.EQ, 58)),
        ("proto ipv6-icmp", Compare("proto", Op.EQ, 58)),
        ("proto 0x11", Compare("proto", Op.EQ, 17)),
        ("proto ESP", Compare("proto", Op.EQ, 50)),
        ("proto gre", Compare("proto", Op.EQ, 47)),
        ("proto sctp", Compare("proto", Op.EQ, 132)),
        ("proto ah", Compare("proto", Op.EQ, 51)),
        ("vni 5001", Compare("vni", Op.EQ, 5001)),
        ("vxlan role 1", Compare("vxlan_export_role", Op.EQ, 1)),
        ("tenant proto udp", Compare("tenant_proto", Op.EQ, 17)),
        ("tenant dst port 22", Compare("tenant_dst_port", Op.EQ, 22)),
        ("tenant src ip 10.0.0.1", AddressMatch("tenant_src", (HOST_1,))),
        ("in src mac 0:1:2:3:4:5", MacMatch("in_src_mac", bytes(range(6)))),
        ("first seen > 1970-01-01T00:00:01Z", TimeCompare("time_start", Op.GT, 1000)),
        ("last seen <= 1970/01/01.00:00:02+00:00", None),  # nfdump form takes no zone
        ("last seen lt 1970-01-01T00:00:00.5Z", TimeCompare("time_end", Op.LT, 500)),
        ("last seen > -15m", TimeCompare("time_end", Op.GT, None, -900_000)),
        ("first seen < now", TimeCompare("time_start", Op.LT, None, 0)),
        ("first seen < now+2d", TimeCompare("time_start", Op.LT, None, 2 * 86_400_000)),
    ],
)
def test_primitives(text: str, tree: object) -> None:
    if tree is None:
        with pytest.raises(FilterError):
            parse_filter(text)
    else:
        assert parse_filter(text) == tree


def test_networks_and_lists() -> None:
    net = parse_filter("src net 10.1.2.3/16")
    assert net == AddressMatch("src", (AddressPattern(4, 0x0A010000, 0xFFFF0000),))
    masked = parse_filter("dst net 10.0.0.0 255.0.255.0")
    assert masked == AddressMatch("dst", (AddressPattern(4, 0x0A000000, 0xFF00FF00),))
    v6 = parse_filter("src net 2001:db8::/32")
    assert v6.patterns[0].version == 6 and v6.patterns[0].prefix_length() == 32
    listed = parse_filter("src ip in [10.0.0.1,10.1.0.0/16 2001:db8::/32 , ::1]")
    assert [p.version for p in listed.patterns] == [4, 4, 6, 6]
    assert [p.prefix_length() for p in listed.patterns] == [32, 16, 32, 128]
    assert masked.patterns[0].prefix_length() is None


def _error(text: str) -> tuple[int, str]:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    return caught.value.position + 1, caught.value.message


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("prot tcp", 1, "unknown keyword 'prot' (did you mean 'proto'?)"),
        ("src ip 10.0.0.1 and prto tcp", 21, "unknown keyword 'prto' (did you mean 'proto'?)"),
        ("foo", 1, "unknown keyword 'foo'"),
        ("proto tcp)", 10, "unbalanced ')'"),
        ("(proto tcp", 1, "unbalanced '(': no ')' closes it"),
        ("((proto tcp) or (port 80)", 1, "unbalanced '(': no ')' closes it"),
        ("(proto tcp port 80)", 12, "expected 'and', 'or' or ')', found 'port'"),
        ("proto tcp port 80", 11, "expected 'and', 'or' or the end of the filter, found 'port'"),
        ("src ip 10.0.0.300", 8, "invalid address '10.0.0.300'"),
        ("ip 10.0.0", 4, "invalid address '10.0.0'"),
        (
            "ip www.example.com",
            4,
            "invalid address 'www.example.com' (flowq does not resolve host names)",
        ),
        ("src ip", 7, "unexpected end of filter: expected an address"),
        ("src ip   # nothing", 8, "unexpected end of filter: expected an address"),
        (
            "src ip 10.0.0.1/24",
            8,
            "'10.0.0.1/24' is a network, not an address: use 'net 10.0.0.1/24' "
            "or 'ip in [ 10.0.0.1/24 ]'",
        ),
        ("proto tcp and", 14, "unexpected end of filter: expected a filter term"),
        ("proto tcp and or port 80", 15, "expected a filter term, found 'or'"),
        ("not", 4, "unexpected end of filter: expected a filter term"),
        (")", 1, "expected a filter term, found ')'"),
        ("10.0.0.1", 1, "expected a filter term, found '10.0.0.1'"),
        ("any any", 5, "expected 'and', 'or' or the end of the filter, found 'any'"),
        ("port http", 6, "expected a port number, found 'http'"),
        ("port 70000", 6, "port number 70000 is out of range 0..65535"),
        ("port 1M", 6, "port number 1M is out of range 0..65535"),
        ("port != 80", 6, "'!=' is not in nfdump's language: use 'not'"),
        ("!= 80", 1, "'!=' is not in nfdump's language: use 'not'"),
        ("packets => 5", 10, "expected a number of packets, found '>'"),
        ("bytes > 1.5k", 9, "expected a number of bytes, found '1.5k'"),
        ("packets >", 10, "unexpected end of filter: expected a number of packets"),
        ("proto", 6, "unexpected end of filter: expected a protocol name or number"),
        ("proto foo", 7, "unknown protocol 'foo'"),
        ("proto 300", 7, "protocol 300 is out of range 0..255"),
        ("flags SQ", 7, "invalid TCP flags 'SQ': use the letters F S R P A U E C, or X for FSRPAU"),
        (
            "flags",
            6,
            "unexpected end of filter: expected TCP flags (letters such as SA, or a number)",
        ),
        (
            "net 10.0.0.0",
            13,
            "unexpected end of filter: expected '/LENGTH' or a netmask after '10.0.0.0'",
        ),
        ("net 10.0.0.0/33", 14, "invalid prefix length '33' (0..32 for IPv4)"),
        ("net 2001:db8::/129", 16, "invalid prefix length '129' (0..128 for IPv6)"),
        ("net 10.0.0.0/", 14, "invalid prefix length '' (0..32 for IPv4)"),
        ("net 10.0.0.0 255.0.0", 14, "invalid netmask '255.0.0'"),
        (
            "net 2001:db8:: ffff::",
            16,
            "a netmask is valid only for IPv4: write '2001:db8::/LENGTH'",
        ),
        ("net 10.0.0.0/8 and net x/8", 24, "invalid address 'x'"),
        ("ip in [10.0.0.1", 7, "unbalanced '[': no ']' closes the list"),
        ("ip in []", 8, "expected an address or network, found ']'"),
        ("ip in [10.0.0.1, foo]", 18, "invalid address 'foo'"),
        ("ip in [10.0.0.1,]", 17, "expected an address or network, found ']'"),
        ("ip in 10.0.0.1", 7, "expected '[' after 'in', found '10.0.0.1'"),
        ("port in [80,,443]", 13, "expected a port number, found ','"),
        ("port in [80 http]", 13, "expected a port number, found 'http'"),
        ("in port 80", 1, "'in' cannot qualify 'port'"),
        ("src packets > 5", 1, "'src' cannot qualify 'packets'"),
        ("src if 5", 1, "'src' cannot qualify 'if'"),
        ("in src port 5", 1, "'in src' cannot qualify 'port'"),
        ("prev port 5", 1, "'prev' cannot qualify 'port'"),
        (
            "src 10.0.0.1",
            5,
            "expected a field such as ip, net or port after 'src', found '10.0.0.1'",
        ),
        ("src and port 80", 5, "expected a field such as ip, net or port after 'src', found 'and'"),
        ("mpls label1 5", 1, "nfdump's 'mpls' filter is not supported"),
        ("proto tcp and geo DE", 15, "nfdump's 'geo' filter is not supported"),
        ("first 2024/01/01", 7, "expected 'seen' after 'first', found '2024/01/01'"),
        (
            "first seen > yesterday",
            14,
            "invalid time 'yesterday' (expected YYYY/MM/DD.hh:mm:ss or ISO-8601)",
        ),
        ("last seen > 2024/13/01", 13, "invalid time '2024/13/01': month must be in 1..12"),
        ("last seen > -99999999w", 13, "time offset '-99999999w' is too large"),
        ("observation domain 5", 20, "expected 'id' after 'observation domain', found '5'"),
        ("observation id 5", 13, "expected 'domain' or 'point' after 'observation', found 'id'"),
        ("router 10.0.0.1", 8, "expected 'ip' after 'router', found '10.0.0.1'"),
        ("flowdir sideways", 9, "expected a flow direction, found 'sideways'"),
        ("icmp-type 256", 11, "ICMP type 256 is out of range 0..255"),
        ("src vlan 70000", 10, "VLAN id 70000 is out of range 0..65535"),
        ("as 4294967296", 4, "AS number 4294967296 is out of range 0..4294967295"),
        ("vni 16777216", 5, "VXLAN network identifier 16777216 is out of range 0..16777215"),
        ("tenant", 7, "unexpected end of filter: expected ip, net, port or proto after 'tenant'"),
        ("tenant src proto tcp", 8, "'src' cannot qualify 'tenant proto'"),
        ("mac 00:11:22:33:44", 5, "invalid MAC address '00:11:22:33:44'"),
        ("proto tcp & port 80", 11, "unexpected character '&' (use 'and' or '&&')"),
        ("proto tcp | port 80", 11, "unexpected character '|' (use 'or' or '||')"),
        ("port 80 ; port 81", 9, "unexpected character ';'"),
    ],
)
def test_error_messages_and_positions(text: str, column: int, message: str) -> None:
    assert _error(text) == (column, message)


def test_multiline_filter_error_names_line_and_column() -> None:
    text = "proto tcp   # web traffic\nand port http\n"
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.render(text) == (
        "flowq: filter error at line 2, column 10: expected a port number, found 'http'\n"
        "  and port http\n"
        "           ^"
    )


def test_tabs_keep_the_caret_under_the_token() -> None:
    text = "proto\ttcp and port http"
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.render(text).splitlines()[1:] == [
        "  proto tcp and port http",
        "                     ^",
    ]


def test_end_of_filter_caret_after_the_last_token() -> None:
    text = "port"
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.render(text).splitlines()[2] == "      ^"


def test_nesting_is_bounded() -> None:
    deep = "(" * MAX_DEPTH + "any" + ")" * MAX_DEPTH
    assert parse_filter(deep) == AnyFlow()
    assert _error("(" * (MAX_DEPTH + 1) + "any" + ")" * (MAX_DEPTH + 1)) == (
        MAX_DEPTH + 1,
        f"filter nested deeper than {MAX_DEPTH} levels",
    )
    assert parse_filter("not " * MAX_DEPTH + "any") is not None


def test_long_chains_are_flat() -> None:
    """Thousands of 'or' terms (as -f files have) parse without deep recursion."""
    text = " or ".join(f"port {p}" for p in range(3000))
    tree = parse_filter(text)
    assert isinstance(tree, Or) and len(tree.items) == 3000


def test_examples_in_the_filter_reference_parse() -> None:
    """Every quoted filter in docs/filters.md's command lines and backticked filters in
    its tables is valid (the errors section aside)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "filters.md").read_text()
    commands = re.findall(r"^flowq .*?'([^']+)'", doc, flags=re.MULTILINE)
    assert len(commands) >= 4
    table_cells = re.findall(r"^\| `([^`|]+)`", doc, flags=re.MULTILINE)
    examples = [
        "proto tcp or proto udp and port 53",
        "(proto tcp)and(port 80)",
        "port>=1024",
        "flags S and not flags A",
        "net 10.0.0.0 255.255.0.0",
        "vlan > 5",
        "icmp-type >= 3",
        "observation domain id > 5",
        "ip in [10.0.0.1, 10.1.0.0/16]",
        "proto ipv6-icmp",
        "proto ip",
        "proto ipv6",
        "bytes > 1500k",
        "next ip 0.0.0.0",
        "first seen > 2026/11/22.10:05",
        "last seen < 2026-11-22T11:05+01:00",
        "first seen > now-1h and last seen < -15m",
    ]
    for text in commands + examples:
        parse_filter(text)
    concrete = [c for c in table_cells if not re.search(r"\b[A-Z]+\b", c)]  # no placeholders
    assert "any" in concrete and "ipv6`, `inet6" not in concrete
    for text in concrete:
        parse_filter(text)
    with pytest.raises(FilterError):
        parse_filter("bytes > 1.5M")
