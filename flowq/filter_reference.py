"""The filter semantics written the slow, obvious way: one flow (a dict of column ->
Python value, as ``pyarrow``'s ``to_pylist`` gives) at a time, two-valued logic.

It exists to check ``filter_compile`` (the property test runs both on generated flows
and filters), so it shares only the AST and its tables with the compiler, and says
each rule directly: nfdump reads data an exporter did not send as 0 (``flows`` as 1),
flowcap's extension fields never match when absent, ``not`` is plain negation.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowq.filter_ast import (
    ADDRESS_FIELDS,
    QUANTITIES,
    AddressMatch,
    AllBits,
    And,
    AnyFlow,
    Compare,
    InSet,
    IpVersion,
    MacMatch,
    Node,
    Not,
    Op,
    Or,
    TimeCompare,
)

Row = Mapping[str, Any]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_WRAP: Final = 2**64  # nfdump computes rates in uint64
_OPS: Final[dict[Op, Callable[[Any, Any], bool]]] = {
    Op.EQ: operator.eq, Op.LT: operator.lt, Op.GT: operator.gt,
    Op.LE: operator.le, Op.GE: operator.ge,
}  # fmt: skip
_ICMP: Final = (1, 58)


def evaluate_reference(node: Node, row: Row, now: datetime | None = None) -> bool:
    """Whether the flow ``row`` matches; a column missing from ``row`` is absent."""
    match node:
        case AnyFlow():
            return True
        case Not(item):
            return not evaluate_reference(item, row, now)
        case And(items):
            return all(evaluate_reference(item, row, now) for item in items)
        case Or(items):
            return any(evaluate_reference(item, row, now) for item in items)
        case IpVersion(version):
            has_ipv6 = row.get("src_addr6") is not None or row.get("dst_addr6") is not None
            return has_ipv6 == (version == 6)
        case Compare(quantity, op, value):
            actual = quantity_value(quantity, row)
            return actual is not None and _OPS[op](actual, value)
        case InSet(quantity, values):
            return quantity_value(quantity, row) in values
        case AllBits(quantity, mask):
            actual = quantity_value(quantity, row)
            return actual is not None and actual & mask == mask
        case AddressMatch(name, patterns):
            address = _address(name, row)
            return address is not None and any(
                p.version == address[0] and address[1] & p.mask == p.value for p in patterns
            )
        case MacMatch(column, mac):
            return row.get(column) == mac
        case TimeCompare(column, op, epoch_ms, offset_ms):
            moment = row.get(column)
            if moment is None:
                return False
            if epoch_ms is None:
                epoch_ms = _epoch_ms(now or datetime.now(UTC)) + offset_ms
            return _OPS[op](_epoch_ms(moment), epoch_ms)
    raise TypeError(f"not a filter node: {node!r}")


def quantity_value(name: str, row: Row) -> int | None:
    """The value a filter compares for this flow; None: the flow has none (no match)."""
    spec = QUANTITIES[name]
    if not spec.derived:
        value = row.get(name)
        return spec.absent if value is None else value
    if name in ("dst_port", "icmp_type", "icmp_code"):
        return _icmp_quantity(name, row)
    if name == "flows":
        flows = row.get("flows")
        return 1 if flows is None else flows
    if name == "vni":
        segment = row.get("layer2_segment_id")
        return None if segment is None else segment & 0xFFFFFF
    start, end = row.get("time_start"), row.get("time_end")
    duration = 0 if start is None or end is None else _epoch_ms(end) - _epoch_ms(start)
    packets = row.get("packets") or 0
    octets = row.get("bytes") or 0
    if name == "duration":
        return duration
    if name == "bpp":
        return octets // packets if packets > 0 else 0
    if duration <= 0:
        return 0
    scaled = 1000 * packets if name == "pps" else 8000 * octets
    return (scaled % _WRAP) // duration


def _icmp_quantity(name: str, row: Row) -> int | None:
    """An ICMP flow's type << 8 | code replaces its destination port (nfdump): taken
    from icmp_type_code, else icmp_type/icmp_code, else the exported port (NetFlow v5)."""
    is_icmp = row.get("proto") in _ICMP
    exported = row.get("icmp_type_code")
    if exported is None and row.get("icmp_type") is not None:
        exported = row["icmp_type"] << 8 | (row.get("icmp_code") or 0)
    port = row.get("dst_port") or 0
    if name == "dst_port":
        return exported if is_icmp and exported is not None else port
    if not is_icmp:
        return None
    type_code = port if exported is None else exported
    return type_code >> 8 if name == "icmp_type" else type_code & 0xFF


def _address(name: str, row: Row) -> tuple[int, int] | None:
    """(IP version, address as int) of the field; nfdump's fields read 0.0.0.0 when
    the flow has neither an IPv4 nor an IPv6 value."""
    v4_column, v6_column, reads_zero = ADDRESS_FIELDS[name]
    if row.get(v4_column) is not None:
        return 4, row[v4_column]
    if row.get(v6_column) is not None:
        return 6, int.from_bytes(row[v6_column], "big")
    return (4, 0) if reads_zero else None


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS
