"""What a filter means, independent of its spelling: the AST the parser builds and the
compiler and the reference evaluator read.

Primitives reduce to a few node types over *quantities* (``QUANTITIES``: a column, or a
value derived from columns such as ``pps`` or an ICMP flow's type), *address fields*
(``ADDRESS_FIELDS``: an IPv4 column and its IPv6 twin), MAC columns and times, so each
back end implements a handful of node types rather than the grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeAlias

from flowq.filter_lexer import MAX_UINT64, AddressPattern
from storage.schema import FLOW_SCHEMA


class Op(StrEnum):
    EQ = "="
    LT = "<"
    GT = ">"
    LE = "<="
    GE = ">="


@dataclass(frozen=True, slots=True)
class AnyFlow:
    """``any`` (and the empty filter)."""


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class IpVersion:
    """``ipv6``: the flow has an IPv6 source or destination; ``ipv4``: it has not."""

    version: int


@dataclass(frozen=True, slots=True)
class Compare:
    quantity: str
    op: Op
    value: int


@dataclass(frozen=True, slots=True)
class InSet:
    quantity: str
    values: frozenset[int]


@dataclass(frozen=True, slots=True)
class AllBits:
    """Every bit of ``mask`` is set in the quantity (``flags SA``)."""

    quantity: str
    mask: int


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """The address field matches one of the patterns (hosts, networks)."""

    field: str
    patterns: tuple[AddressPattern, ...]


@dataclass(frozen=True, slots=True)
class MacMatch:
    column: str
    mac: bytes


@dataclass(frozen=True, slots=True)
class TimeCompare:
    """``first seen`` / ``last seen``: ``epoch_ms`` (UTC), or when None ``now`` plus
    ``offset_ms`` (``-1h``), resolved when the filter is compiled."""

    column: str
    op: Op
    epoch_ms: int | None
    offset_ms: int = 0


Node: TypeAlias = (
    AnyFlow
    | And
    | Or
    | Not
    | IpVersion
    | Compare
    | InSet
    | AllBits
    | AddressMatch
    | MacMatch
    | TimeCompare
)


@dataclass(frozen=True, slots=True)
class Quantity:
    """``absent``: what a flow that lacks the data compares as. nfdump zero-fills what
    an exporter did not send, so its fields read 0 (``flows`` 1); flowcap's own
    extensions (tenant, VNI) read None: they never match a flow without them."""

    noun: str
    maximum: int
    absent: int | None = 0
    derived: bool = False


def _column_max(column: str) -> int:
    return (1 << FLOW_SCHEMA.field(column).type.bit_width) - 1


def _plain(noun: str, *columns: str, absent: int | None = 0) -> dict[str, Quantity]:
    return {c: Quantity(noun, _column_max(c), absent) for c in columns}


QUANTITIES: Final[dict[str, Quantity]] = {
    **_plain("protocol number", "proto"),
    **_plain("protocol number", "tenant_proto", absent=None),
    **_plain("port number", "src_port", "xlate_src_port", "xlate_dst_port"),
    **_plain("port number", "tenant_src_port", "tenant_dst_port", absent=None),
    # an ICMP flow's destination port is its type << 8 | code, as in nfdump
    "dst_port": Quantity("port number", 65535, derived=True),
    "icmp_type": Quantity("ICMP type", 255, None, derived=True),
    "icmp_code": Quantity("ICMP code", 255, None, derived=True),
    **_plain("TOS value", "tos", "dst_tos"),
    **_plain("interface number", "in_if", "out_if"),
    **_plain("AS number", "src_as", "dst_as", "prev_as", "next_as"),
    **_plain("prefix length", "src_mask", "dst_mask"),
    **_plain("VLAN id", "src_vlan", "dst_vlan"),
    **_plain("number of packets", "packets", "out_packets"),
    **_plain("number of bytes", "bytes", "out_bytes"),
    "flows": Quantity("number of flows", MAX_UINT64, 1, derived=True),
    "duration": Quantity("duration in milliseconds", 2**63 - 1, derived=True),
    "pps": Quantity("packet rate", MAX_UINT64, derived=True),
    "bps": Quantity("bit rate", MAX_UINT64, derived=True),
    "bpp": Quantity("number of bytes per packet", MAX_UINT64, derived=True),
    **_plain("TCP flags value", "tcp_flags"),
    **_plain("engine type", "engine_type"),
    **_plain("engine id", "engine_id"),
    **_plain("flow direction", "flow_direction"),
    **_plain("observation domain id", "observation_domain"),
    **_plain("observation point id", "observation_point_id"),
    **_plain("NetFlow version", "flow_version"),
    **_plain("forwarding status", "forwarding_status"),
    **_plain("VRF id", "ingress_vrf_id", "egress_vrf_id"),
    "vni": Quantity("VXLAN network identifier", 2**24 - 1, None, derived=True),
    **_plain("VXLAN export role", "vxlan_export_role", absent=None),
}

#: address field -> (IPv4 column, IPv6 column, reads 0.0.0.0 when absent (nfdump))
ADDRESS_FIELDS: Final[dict[str, tuple[str, str, bool]]] = {
    "src": ("src_addr", "src_addr6", True),
    "dst": ("dst_addr", "dst_addr6", True),
    "next_hop": ("next_hop", "next_hop6", True),
    "bgp_next_hop": ("bgp_next_hop", "bgp_next_hop6", True),
    "exporter": ("exporter", "exporter6", True),
    "xlate_src": ("xlate_src_addr", "xlate_src_addr6", True),
    "xlate_dst": ("xlate_dst_addr", "xlate_dst_addr6", True),
    "tenant_src": ("tenant_src_addr", "tenant_src_addr6", False),
    "tenant_dst": ("tenant_dst_addr", "tenant_dst_addr6", False),
}
