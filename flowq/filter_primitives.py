"""The filter primitives: which keyword makes which AST node, with which qualifiers
(src, dst, src or dst, src and dst, in, out, prev, next) and values.

Adding a primitive means one handler and one table entry here, plus its quantity in
``filter_ast`` when it reads a new column. A handler gets the parser positioned after
its keyword and calls back into it for values (``numeric``, ``addresses``, ...); a
qualified handler returns None for a qualifier it does not take, and the parser reports
it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

from flowq.filter_ast import (
    AllBits,
    And,
    AnyFlow,
    Compare,
    IpVersion,
    MacMatch,
    Node,
    Op,
    Or,
    TimeCompare,
)
from flowq.filter_lexer import (
    FilterError,
    Token,
    TokenKind,
    parse_mac,
    parse_number,
    parse_protocol,
    parse_tcp_flags,
    parse_time_literal,
)

if TYPE_CHECKING:
    from flowq.filter_parser import Parser

#: a primitive after a qualifier (None: it does not take that qualifier); one without
_Qualified: TypeAlias = Callable[["Parser", str], "Node | None"]
_Simple: TypeAlias = Callable[["Parser", Token], Node]

#: words that start a qualifier
DIRECTIONS: Final = frozenset({"src", "dst", "in", "out", "prev", "previous"})
# nfdump primitives flowq does not implement (no column, or nfdump-internal state)
UNSUPPORTED: Final = frozenset(
    {"ident", "count", "sysid", "tun", "tunip", "mpls", "geo", "payload", "asa", "nat"}
    | {"pblock", "client", "server", "app", "latency", "pf", "flowlabel", "xevent", "acl"}
)
_SIDES: Final = ("", "src", "dst", "src or dst", "src and dst")
_TCP: Final = Compare("proto", Op.EQ, 6)


def _pair(p: Parser, direction: str, src: str, dst: str, bare_is_src: bool = False) -> Node | None:
    """``[src|dst|src or dst|src and dst] FIELD ...``; bare FIELD: either (tos: source)."""
    if direction not in _SIDES:
        return None
    if direction == "src" or (direction == "" and bare_is_src):
        return p.numeric(src)
    if direction == "dst":
        return p.numeric(dst)
    return p.numeric(src, dst, both=direction == "src and dst")


def _address_field(prefix: str, network: bool = False) -> _Qualified:
    def handler(p: Parser, direction: str) -> Node | None:
        if direction not in _SIDES:
            return None
        if direction in ("src", "dst"):
            return p.addresses(f"{prefix}{direction}", network=network)
        fields = (f"{prefix}src", f"{prefix}dst")
        return p.addresses(*fields, both=direction == "src and dst", network=network)

    return handler


def _if(p: Parser, direction: str) -> Node | None:
    columns = {"": ("in_if", "out_if"), "in": ("in_if",), "out": ("out_if",)}.get(direction)
    return None if columns is None else p.numeric(*columns, lists=False)


def _counter(column: str) -> _Qualified:
    def handler(p: Parser, direction: str) -> Node | None:
        if direction not in ("", "in", "out"):
            return None
        return p.numeric(f"out_{column}" if direction == "out" else column, lists=False)

    return handler


def _as(p: Parser, direction: str) -> Node | None:
    if direction in ("prev", "next"):
        return p.numeric(f"{direction}_as")
    return _pair(p, direction, "src_as", "dst_as")


_MAC_COLUMNS: Final = {
    "": ("in_src_mac", "in_dst_mac", "out_src_mac", "out_dst_mac"),
    "in": ("in_src_mac", "in_dst_mac"), "out": ("out_src_mac", "out_dst_mac"),
    "src": ("in_src_mac", "out_src_mac"), "dst": ("in_dst_mac", "out_dst_mac"),
    "in src": ("in_src_mac",), "in dst": ("in_dst_mac",),
    "out src": ("out_src_mac",), "out dst": ("out_dst_mac",),
}  # fmt: skip


def _mac(p: Parser, direction: str) -> Node | None:
    columns = _MAC_COLUMNS.get(direction)
    if columns is None:
        return None
    mac = parse_mac(p.value_token("a MAC address"))
    nodes = tuple(MacMatch(c, mac) for c in columns)
    return nodes[0] if len(nodes) == 1 else Or(nodes)


QUALIFIED: Final[dict[str, _Qualified]] = {
    "ip": _address_field(""),
    "host": _address_field(""),
    "net": _address_field("", network=True),
    "port": lambda p, d: _pair(p, d, "src_port", "dst_port"),
    "as": _as,
    "tos": lambda p, d: _pair(p, d, "tos", "dst_tos", bare_is_src=True),
    "mask": lambda p, d: _pair(p, d, "src_mask", "dst_mask"),
    "vlan": lambda p, d: _pair(p, d, "src_vlan", "dst_vlan"),
    "if": _if,
    "packets": _counter("packets"),
    "bytes": _counter("bytes"),
    "mac": _mac,
    "xip": _address_field("xlate_"),
    "nip": _address_field("xlate_"),
    "xnet": _address_field("xlate_", network=True),
    "xport": lambda p, d: _pair(p, d, "xlate_src_port", "xlate_dst_port"),
    "nport": lambda p, d: _pair(p, d, "xlate_src_port", "xlate_dst_port"),
}


def _proto(p: Parser, keyword: Token) -> Node:
    return Compare("proto", Op.EQ, parse_protocol(p.value_token("a protocol name or number")))


def _flags(p: Parser, keyword: Token) -> Node:
    """nfdump: letters match when all are set; a number compares the whole value; both
    imply ``proto tcp``."""
    token = p.peek()
    if token.kind in (TokenKind.END, TokenKind.RPAREN):
        raise p.expected("TCP flags (letters such as SA, or a number)", token)
    if (
        token.kind is TokenKind.WORD
        and parse_number(token.text) is None
        and not p.is_word("eq", "lt", "gt", "le", "ge")
    ):
        return And((_TCP, AllBits("tcp_flags", parse_tcp_flags(p.take()))))
    return And((_TCP, p.numeric("tcp_flags", lists=False)))


def _flowdir(p: Parser, keyword: Token) -> Node:
    token = p.value_token("a flow direction (ingress, egress or a number)")
    named = {"ingress": 0, "egress": 1}.get(token.lower)
    value = named if named is not None else p.number("flow_direction", token)
    return Compare("flow_direction", Op.EQ, value)


def _observation(p: Parser, keyword: Token) -> Node:
    kind = p.expect_word("'domain' or 'point' after 'observation'", "domain", "point")
    p.expect_word(f"'id' after 'observation {kind.lower}'", "id")
    column = "observation_domain" if kind.lower == "domain" else "observation_point_id"
    return p.numeric(column, lists=False)


def _seen(column: str) -> _Simple:
    def handler(p: Parser, keyword: Token) -> Node:
        p.expect_word(f"'seen' after '{keyword.text}'", "seen")
        op = p.comparator()
        token = p.value_token("a time (YYYY/MM/DD.hh:mm:ss, ISO-8601 or -1h)")
        epoch_ms, offset_ms = parse_time_literal(token)
        return TimeCompare(column, op, epoch_ms, offset_ms)

    return handler


def _ip_of(field: str) -> _Simple:
    def handler(p: Parser, keyword: Token) -> Node:
        p.expect_word(f"'ip' after '{keyword.text}'", "ip", "host")
        return p.addresses(field)

    return handler


def _then(word: str, quantity: str) -> _Simple:
    def handler(p: Parser, keyword: Token) -> Node:
        p.expect_word(f"'{word}' after '{keyword.text}'", word)
        return p.numeric(quantity, lists=False)

    return handler


def _tenant(p: Parser, keyword: Token) -> Node:
    """flowcap extension: VMware vDS tenant (inner, overlay) addresses, ports, protocol."""
    direction, first = p.parse_direction()
    field = p.peek()
    node: Node | None = None
    if p.is_word("ip", "host", "net"):
        p.take()
        node = _address_field("tenant_", network=field.lower == "net")(p, direction)
    elif p.is_word("port"):
        p.take()
        node = _pair(p, direction, "tenant_src_port", "tenant_dst_port")
    elif p.is_word("proto"):
        p.take()
        if direction == "":
            protocol = parse_protocol(p.value_token("a protocol name or number"))
            node = Compare("tenant_proto", Op.EQ, protocol)
    else:
        raise p.expected("ip, net, port or proto after 'tenant'", field)
    if node is None:
        where = first.position if first is not None else field.position
        raise FilterError(where, f"'{direction}' cannot qualify 'tenant {field.lower}'")
    return node


def _numeric(quantity: str) -> _Simple:
    return lambda p, keyword: p.numeric(quantity, lists=False)


_NUMERIC: Final = {  # keyword [CMP] N
    "icmp-type": "icmp_type", "icmp-code": "icmp_code", "engine-type": "engine_type",
    "engine-id": "engine_id", "nfversion": "flow_version", "fwdstat": "forwarding_status",
    "flows": "flows", "duration": "duration", "pps": "pps", "bps": "bps", "bpp": "bpp",
    "vni": "vni",
}  # fmt: skip
SIMPLE: Final[dict[str, _Simple]] = {
    **{keyword: _numeric(quantity) for keyword, quantity in _NUMERIC.items()},
    "any": lambda p, k: AnyFlow(),
    "ipv4": lambda p, k: IpVersion(4),
    "inet": lambda p, k: IpVersion(4),
    "ipv6": lambda p, k: IpVersion(6),
    "inet6": lambda p, k: IpVersion(6),
    "proto": _proto,
    "flags": _flags,
    "flowdir": _flowdir,
    "dir": _flowdir,
    "observation": _observation,
    "first": _seen("time_start"),
    "last": _seen("time_end"),
    "next": _ip_of("next_hop"),
    "bgpnext": _ip_of("bgp_next_hop"),
    "router": _ip_of("exporter"),
    "exporter": _ip_of("exporter"),
    "ingress": _then("vrf", "ingress_vrf_id"),
    "egress": _then("vrf", "egress_vrf_id"),
    "vxlan": _then("role", "vxlan_export_role"),
    "tenant": _tenant,
}
KEYWORDS: Final = sorted({*SIMPLE, *QUALIFIED, *DIRECTIONS, "not", "and", "or"})
