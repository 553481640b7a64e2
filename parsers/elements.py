"""The information-element registry: the one place that knows element numbers.

Maps (private enterprise number, element id) to the IANA (or vendor) name, our column
name and the value kind. NetFlow v9 field types below 32768 are the IANA element with
the same id (the IPFIX registry grew out of v9); v9 types from 32768 up are vendor
numbers (Cisco NSEL, nProbe, ...) and live under PEN 0 with their v9 number, which
cannot collide with an IPFIX id (those are 15 bits).

Rules every entry follows (tests check them):
- Several elements may feed one column (``octetDeltaCount`` and ``octetTotalCount`` both
  feed ``bytes``); a template takes the one with the lowest ``priority`` and keeps the
  others' bytes in the ``extra_fields`` map, so nothing exported is lost.
- An IPv4 address column ``X`` has its IPv6 sibling ``X6`` (``src_addr`` / ``src_addr6``).
- Elements with ``column=None`` are known by name but kept raw in ``extra_fields``.
- Everywhere else in the code uses column names, never element numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class ElementKind(StrEnum):
    """How an element's bytes become a column value (RFC 7011 §6.1 data types)."""

    UNSIGNED = "unsigned"  # big-endian; reduced-size encoding allowed (RFC 7011 §6.2)
    SIGNED = "signed"
    FLOAT = "float"  # float32 or float64 on the wire, float64 column
    BOOLEAN = "boolean"  # 1 = true, 2 = false (RFC 7011 §6.1.5)
    IPV4 = "ipv4"  # 4 bytes -> uint32 column
    IPV6 = "ipv6"  # 16 bytes -> 16-byte binary column
    MAC = "mac"  # 6 bytes -> 6-byte binary column
    OCTETS = "octets"  # octetArray, fixed or variable length -> binary column
    STRING = "string"  # UTF-8, fixed or variable length -> string column
    DATETIME_SECONDS = "dateTimeSeconds"  # uint32 seconds since 1970
    DATETIME_MILLISECONDS = "dateTimeMilliseconds"  # uint64 ms since 1970
    DATETIME_MICROSECONDS = "dateTimeMicroseconds"  # NTP 64-bit format (RFC 7011 §6.1.9)
    DATETIME_NANOSECONDS = "dateTimeNanoseconds"  # NTP 64-bit format (RFC 7011 §6.1.10)
    SYSUPTIME_MILLISECONDS = "sysUpTimeMilliseconds"  # ms since exporter boot (v9 FIRST_SWITCHED)
    DELTA_MICROSECONDS = "deltaMicroseconds"  # µs before the message's export time
    DURATION_MILLISECONDS = "durationMilliseconds"
    DURATION_MICROSECONDS = "durationMicroseconds"
    LIST = "list"  # RFC 6313 basicList / subTemplateList / subTemplateMultiList: kept raw


#: kinds whose values become absolute times (int64 ns since 1970 in parser columns)
TIME_KINDS: Final = frozenset(
    {
        ElementKind.DATETIME_SECONDS,
        ElementKind.DATETIME_MILLISECONDS,
        ElementKind.DATETIME_MICROSECONDS,
        ElementKind.DATETIME_NANOSECONDS,
        ElementKind.SYSUPTIME_MILLISECONDS,
        ElementKind.DELTA_MICROSECONDS,
    }
)

#: PEN of RFC 5103 reverse elements: (29305, id) is the reverse of IANA element ``id``
REVERSE_PEN: Final = 29305


@dataclass(frozen=True, slots=True)
class Element:
    """One information element and where its value goes.

    ``size`` is the natural encoded length in bytes (the column's width for numbers;
    0 for variable-length kinds). ``priority`` orders elements that share a column:
    the lowest present in a template wins.
    """

    pen: int
    element_id: int
    name: str
    column: str | None
    kind: ElementKind
    size: int
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """What a column holds, for ``storage/schema.py`` to give it an Arrow type."""

    kind: ElementKind
    size: int


def _e(
    element_id: int,
    name: str,
    column: str | None,
    kind: ElementKind,
    size: int,
    priority: int = 0,
    pen: int = 0,
) -> Element:
    return Element(pen, element_id, name, column, kind, size, priority)


U, S, F, B = ElementKind.UNSIGNED, ElementKind.SIGNED, ElementKind.FLOAT, ElementKind.BOOLEAN
V4, V6, MAC = ElementKind.IPV4, ElementKind.IPV6, ElementKind.MAC
OCT, STR, LST = ElementKind.OCTETS, ElementKind.STRING, ElementKind.LIST
TS, TMS = ElementKind.DATETIME_SECONDS, ElementKind.DATETIME_MILLISECONDS
TUS, TNS = ElementKind.DATETIME_MICROSECONDS, ElementKind.DATETIME_NANOSECONDS
UPT, DUS = ElementKind.SYSUPTIME_MILLISECONDS, ElementKind.DELTA_MICROSECONDS
DURMS, DURUS = ElementKind.DURATION_MILLISECONDS, ElementKind.DURATION_MICROSECONDS

# --- IANA elements (PEN 0), and NetFlow v9 types below 32768 -------------------------
# The contract's core columns first; then everything else the corpus, nfdump or
# goflow2 map. Names are the IANA registry's.
_IANA: tuple[Element, ...] = (
    _e(1, "octetDeltaCount", "bytes", U, 8),
    _e(2, "packetDeltaCount", "packets", U, 8),
    _e(3, "deltaFlowCount", "flows", U, 8),
    _e(4, "protocolIdentifier", "proto", U, 1),
    _e(5, "ipClassOfService", "tos", U, 1),
    _e(6, "tcpControlBits", "tcp_flags", U, 2),
    _e(7, "sourceTransportPort", "src_port", U, 2),
    _e(8, "sourceIPv4Address", "src_addr", V4, 4),
    _e(9, "sourceIPv4PrefixLength", "src_mask", U, 1),
    _e(10, "ingressInterface", "in_if", U, 4),
    _e(11, "destinationTransportPort", "dst_port", U, 2),
    _e(12, "destinationIPv4Address", "dst_addr", V4, 4),
    _e(13, "destinationIPv4PrefixLength", "dst_mask", U, 1),
    _e(14, "egressInterface", "out_if", U, 4),
    _e(15, "ipNextHopIPv4Address", "next_hop", V4, 4),
    _e(16, "bgpSourceAsNumber", "src_as", U, 4),
    _e(17, "bgpDestinationAsNumber", "dst_as", U, 4),
    _e(18, "bgpNextHopIPv4Address", "bgp_next_hop", V4, 4),
    _e(21, "flowEndSysUpTime", "time_end", UPT, 4, priority=5),
    _e(22, "flowStartSysUpTime", "time_start", UPT, 4, priority=5),
    _e(23, "postOctetDeltaCount", "out_bytes", U, 8),
    _e(24, "postPacketDeltaCount", "out_packets", U, 8),
    _e(27, "sourceIPv6Address", "src_addr6", V6, 16),
    _e(28, "destinationIPv6Address", "dst_addr6", V6, 16),
    _e(29, "sourceIPv6PrefixLength", "src_mask", U, 1, priority=1),
    _e(30, "destinationIPv6PrefixLength", "dst_mask", U, 1, priority=1),
    _e(34, "samplingInterval", "sampling_interval", U, 4),
    _e(35, "samplingAlgorithm", "sampling_algorithm", U, 1),
    _e(48, "samplerId", "sampler_id", U, 4),
    _e(50, "samplerRandomInterval", "sampler_random_interval", U, 4),
    _e(61, "flowDirection", "flow_direction", U, 1),
    _e(62, "ipNextHopIPv6Address", "next_hop6", V6, 16),
    _e(63, "bgpNextHopIPv6Address", "bgp_next_hop6", V6, 16),
    _e(85, "octetTotalCount", "bytes", U, 8, priority=1),
    _e(86, "packetTotalCount", "packets", U, 8, priority=1),
    _e(150, "flowStartSeconds", "time_start", TS, 4, priority=3),
    _e(151, "flowEndSeconds", "time_end", TS, 4, priority=3),
    _e(152, "flowStartMilliseconds", "time_start", TMS, 8, priority=0),
    _e(153, "flowEndMilliseconds", "time_end", TMS, 8, priority=0),
    _e(154, "flowStartMicroseconds", "time_start", TUS, 8, priority=1),
    _e(155, "flowEndMicroseconds", "time_end", TUS, 8, priority=1),
    _e(156, "flowStartNanoseconds", "time_start", TNS, 8, priority=2),
    _e(157, "flowEndNanoseconds", "time_end", TNS, 8, priority=2),
    _e(158, "flowStartDeltaMicroseconds", "time_start", DUS, 4, priority=4),
    _e(159, "flowEndDeltaMicroseconds", "time_end", DUS, 4, priority=4),
    _e(160, "systemInitTimeMilliseconds", "system_init_time", TMS, 8),
    _e(161, "flowDurationMilliseconds", "duration", DURMS, 4),
    _e(162, "flowDurationMicroseconds", "duration", DURUS, 4, priority=1),
    _e(302, "selectorId", "sampler_id", U, 8, priority=1),
    _e(305, "samplingPacketInterval", "sampling_packet_interval", U, 4),
    _e(306, "samplingPacketSpace", "sampling_packet_space", U, 4),
    _e(323, "observationTimeMilliseconds", "observation_time", TMS, 8),
    _e(351, "layer2SegmentId", "layer2_segment_id", U, 8),
)

# --- VMware vSphere Distributed Switch (PEN 6876) ------------------------------------
VMWARE_PEN: Final = 6876
_VMWARE: tuple[Element, ...] = (
    _e(880, "tenantProtocol", "tenant_proto", U, 1, pen=VMWARE_PEN),
    _e(881, "tenantSourceIPv4", "tenant_src_addr", V4, 4, pen=VMWARE_PEN),
    _e(882, "tenantDestIPv4", "tenant_dst_addr", V4, 4, pen=VMWARE_PEN),
    _e(883, "tenantSourceIPv6", "tenant_src_addr6", V6, 16, pen=VMWARE_PEN),
    _e(884, "tenantDestIPv6", "tenant_dst_addr6", V6, 16, pen=VMWARE_PEN),
    _e(886, "tenantSourcePort", "tenant_src_port", U, 2, pen=VMWARE_PEN),
    _e(887, "tenantDestPort", "tenant_dst_port", U, 2, pen=VMWARE_PEN),
    _e(888, "egressInterfaceAttr", "egress_if_attr", U, 2, pen=VMWARE_PEN),
    _e(889, "vxlanExportRole", "vxlan_export_role", U, 1, pen=VMWARE_PEN),
    _e(890, "ingressInterfaceAttr", "ingress_if_attr", U, 2, pen=VMWARE_PEN),
    _e(898, "virtualObsID", "virtual_obs_id", STR, 0, pen=VMWARE_PEN),
)

_ALL: tuple[Element, ...] = _IANA + _VMWARE

_BY_KEY: Final = MappingProxyType({(e.pen, e.element_id): e for e in _ALL})
_BY_NAME: Final = MappingProxyType({e.name: e for e in _ALL})


def lookup(pen: int, element_id: int) -> Element | None:
    """The element for (PEN, id), or None when nobody maps it (kept in extra_fields)."""
    return _BY_KEY.get((pen, element_id))


def by_name(name: str) -> Element:
    """The element with this IANA / vendor name (tests map expected.json keys this way)."""
    return _BY_NAME[name]


def all_elements() -> tuple[Element, ...]:
    """Every registered element, for the schema and for tests."""
    return _ALL


def column_specs() -> dict[str, ColumnSpec]:
    """Every column an element can produce, with its kind and width."""
    specs: dict[str, ColumnSpec] = {}
    for element in _ALL:
        if element.column is None:
            continue
        current = specs.get(element.column)
        if current is None or element.priority < 0:
            specs[element.column] = ColumnSpec(element.kind, element.size)
    return specs


def extra_field_key(pen: int, element_id: int) -> str:
    """The ``extra_fields`` map key of an element nobody maps: ``"PEN:id"``."""
    return f"{pen}:{element_id}"
