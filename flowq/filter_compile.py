"""Filter AST -> one ``pyarrow.compute`` expression, evaluated by Arrow over whole
batches (never a Python loop per flow) and pushed down into the Parquet scan.

What a caller may rely on:
- Rows where the expression is true are exactly the rows ``filter_reference`` accepts;
  rows where it is false *or null* are not (``Table.filter`` and dataset scans drop
  nulls). Negation is compiled into the atoms (negation normal form), so ``not`` of a
  comparison on a missing value is true, as in nfdump. Negate an AST with
  ``Not(node)``, never the compiled expression with ``~``.
- Positive comparisons on plain columns stay plain (``bytes > 1000``,
  ``time_start >= T``), so Parquet statistics can skip row groups.
- A column absent from a file reads as null (the reader opens files with
  ``FLOW_SCHEMA``) and means what nfdump's zero-filled field means (``QUANTITIES``).
- ``filter_columns`` names every column the expression reads (for projection);
  ``time_bounds`` gives the span of ``time_end`` a matching flow can have (for pruning
  files by name).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

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
from flowq.filter_lexer import AddressPattern
from storage.schema import FLOW_SCHEMA, IPV6_TYPE, MAC_TYPE, TIME_TYPE

Expression = pc.Expression
_TRUE: Final = pc.scalar(True)
_FALSE: Final = pc.scalar(False)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: up to this many ranges an address list compiles to range tests (prunable); beyond,
#: to one is_in per prefix length
_MAX_RANGE_TESTS: Final = 8
_U16, _U64, _I64 = pa.uint16(), pa.uint64(), pa.int64()
_COMPARE: Final[dict[str, Callable[[Expression, object], Expression]]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge,
}  # fmt: skip
_INVERSE: Final = {Op.EQ: "!=", Op.LT: ">=", Op.GT: "<=", Op.LE: ">", Op.GE: "<"}
_PYTHON_OPS: Final[dict[Op, Callable[[int, int], bool]]] = {
    Op.EQ: operator.eq, Op.LT: operator.lt, Op.GT: operator.gt,
    Op.LE: operator.le, Op.GE: operator.ge,
}  # fmt: skip


def compile_filter(node: Node, now: datetime | None = None) -> Expression:
    """The expression selecting the flows ``node`` matches; ``now`` resolves relative
    times (``last seen > -1h``), default the current time."""
    return _Compiler(_now_ms(now)).compile(node, positive=True)


def filter_columns(node: Node) -> set[str]:
    """The columns the compiled expression reads."""
    compiler = _Compiler(0)
    compiler.compile(node, positive=True)
    return compiler.columns


def time_bounds(node: Node, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """(earliest, latest) ``time_end`` of any flow the filter can match, from the
    ``first seen`` / ``last seen`` terms that constrain the whole filter (None: open).

    Assumes a flow ends no earlier than it starts, so ``first seen >= T`` bounds
    ``time_end`` from below too. For pruning files by name (files hold the flows that
    ended in their interval, give or take the reader's slack), never as a ``-t`` window:
    the filter itself still decides which flows match.
    """
    low, high = _bounds(node, True, _now_ms(now))
    return _as_time(low), _as_time(high)


def _as_time(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else _EPOCH + timedelta(milliseconds=epoch_ms)


def _now_ms(now: datetime | None) -> int:
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _any(parts: list[Expression]) -> Expression:
    return _balanced(operator.or_, parts) if parts else _FALSE


def _balanced(
    combine: Callable[[Expression, Expression], Expression], parts: list[Expression]
) -> Expression:
    """Combine pairwise into a tree of logarithmic depth (a -f file may chain thousands
    of terms)."""
    while len(parts) > 1:
        paired = [combine(a, b) for a, b in zip(parts[::2], parts[1::2], strict=False)]
        parts = paired + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def _merge_alternatives(items: tuple[Node, ...]) -> tuple[Node, ...]:
    """``port 80 or port 443 or ...`` -> one set test per quantity, ``ip A or ip B``
    -> one address test per field: same meaning, one Arrow kernel instead of thousands
    (nfdump's own advice is 'in [ list ]'; people write the chain anyway)."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    slots: list[Node | tuple[str, str]] = []
    values: dict[str, frozenset[int]] = {}
    patterns: dict[str, dict[AddressPattern, None]] = {}  # an ordered set per field
    for item in flat:
        if isinstance(item, Compare) and item.op is Op.EQ:
            item = InSet(item.quantity, frozenset({item.value}))
        if isinstance(item, InSet):
            if item.quantity not in values:
                slots.append(("set", item.quantity))
            values[item.quantity] = values.get(item.quantity, frozenset()) | item.values
        elif isinstance(item, AddressMatch):
            if item.field not in patterns:
                slots.append(("address", item.field))
            patterns.setdefault(item.field, {}).update(dict.fromkeys(item.patterns))
        else:
            slots.append(item)
    merged: list[Node] = []
    for slot in slots:
        if not isinstance(slot, tuple):
            merged.append(slot)
        elif slot[0] == "address":
            merged.append(AddressMatch(slot[1], tuple(patterns[slot[1]])))
        elif len(values[slot[1]]) == 1:  # a single value stays a prunable comparison
            merged.append(Compare(slot[1], Op.EQ, next(iter(values[slot[1]]))))
        else:
            merged.append(InSet(slot[1], values[slot[1]]))
    return tuple(merged)


class _Compiler:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.columns: set[str] = set()
        # > 0 while compiling the siblings of 'proto X' (X not ICMP) in a conjunction:
        # there an ICMP flow never reaches the test, so 'dst port' is the plain column
        # (the common 'proto tcp and dst port 443' stays one prunable comparison)
        self.not_icmp = 0

    def field(self, column: str) -> Expression:
        self.columns.add(column)
        return pc.field(column)

    def compile(self, node: Node, positive: bool) -> Expression:
        """``positive`` False compiles ``not node``: negation travels down to the atoms,
        and a negated atom is true where the atom is false or null."""
        match node:
            case AnyFlow():
                return _TRUE if positive else _FALSE
            case Not(item):
                return self.compile(item, not positive)
            case And(items) | Or(items):
                if isinstance(node, Or):
                    items = _merge_alternatives(items)
                    if len(items) == 1:
                        return self.compile(items[0], positive)
                conjunction = isinstance(node, And) == positive
                not_icmp = positive and isinstance(node, And) and any(map(_not_icmp, items))
                self.not_icmp += not_icmp
                parts = [self.compile(item, positive) for item in items]
                self.not_icmp -= not_icmp
                return _balanced(operator.and_ if conjunction else operator.or_, parts)
            case IpVersion(version):
                is_ipv6 = self.field("src_addr6").is_valid() | self.field("dst_addr6").is_valid()
                return is_ipv6 if (version == 6) == positive else ~is_ipv6
            case Compare(quantity, op, value) if self.is_plain(quantity):
                return self.plain_compare(quantity, op, value, positive)
            case TimeCompare(column, op, epoch_ms, offset_ms):
                moment = epoch_ms if epoch_ms is not None else self.now_ms + offset_ms
                scalar = pa.scalar(moment, _I64).cast(TIME_TYPE)
                return self.column_compare(column, op, scalar, False, positive)
            case MacMatch(column, mac):
                scalar = pa.scalar(mac, MAC_TYPE)
                return self.column_compare(column, Op.EQ, scalar, False, positive)
        match node:
            case Compare(quantity, op, value):
                value_expr, guard = self.quantity(quantity)
                scalar = pa.scalar(value, _type_of(quantity))
                atom = _COMPARE[op](value_expr, scalar)
            case InSet(quantity, values) if self.is_plain(quantity):
                column = self.field(quantity)
                value_set = pa.array(sorted(values), _type_of(quantity))
                atom = pc.is_in(column, value_set=value_set)  # false, not null, for a null
                if QUANTITIES[quantity].absent in values:
                    atom = atom | column.is_null()
                return atom if positive else ~atom
            case InSet(quantity, values):
                value_expr, guard = self.quantity(quantity)
                atom = pc.is_in(value_expr, value_set=pa.array(sorted(values), _type_of(quantity)))
            case AllBits(quantity, mask):
                value_expr, guard = self.quantity(quantity)
                scalar = pa.scalar(mask, _type_of(quantity))
                atom = pc.bit_wise_and(value_expr, scalar) == scalar
            case AddressMatch(name, patterns):
                atom, guard = self.address(name, patterns), None
            case _:
                raise TypeError(f"not a filter node: {node!r}")
        if guard is not None:
            atom = guard & atom
        return atom if positive else ~pc.coalesce(atom, _FALSE)

    # --- plain columns ---------------------------------------------------------------
    def is_plain(self, quantity: str) -> bool:
        return not QUANTITIES[quantity].derived or (quantity == "dst_port" and self.not_icmp > 0)

    def plain_compare(self, column: str, op: Op, value: int, positive: bool) -> Expression:
        absent = QUANTITIES[column].absent
        absent_matches = absent is not None and _PYTHON_OPS[op](absent, value)
        scalar = pa.scalar(value, FLOW_SCHEMA.field(column).type)
        return self.column_compare(column, op, scalar, absent_matches, positive)

    def column_compare(
        self, column: str, op: Op, scalar: pa.Scalar, absent_matches: bool, positive: bool
    ) -> Expression:
        """``column OP scalar``, a null reading as a value that matches or not."""
        col = self.field(column)
        if positive:
            test = _COMPARE[op](col, scalar)
            return test | col.is_null() if absent_matches else test
        inverse = _COMPARE[_INVERSE[op]](col, scalar)
        return inverse if absent_matches else inverse | col.is_null()

    # --- derived quantities ----------------------------------------------------------
    def quantity(self, name: str) -> tuple[Expression, Expression | None]:
        """(value, guard): the quantity's value (never null but for tenant/VNI data a
        flow lacks) and a condition the flow must meet for it to exist (ICMP)."""
        if self.is_plain(name):
            absent = QUANTITIES[name].absent
            value = self.field(name)
            if absent is not None:
                value = pc.coalesce(value, pa.scalar(absent, _type_of(name)))
            return value, None
        if name in ("dst_port", "icmp_type", "icmp_code"):
            return self.icmp(name)
        if name == "flows":
            return pc.coalesce(self.field("flows"), pa.scalar(1, _U64)), None
        if name == "vni":  # RFC 7133 layer2SegmentId: segment type << 56 | VXLAN VNI
            return pc.bit_wise_and(self.field("layer2_segment_id"), pa.scalar(0xFFFFFF, _U64)), None
        zero = pa.scalar(0, _U64)
        if name == "bpp":  # nfdump: bytes / packets, 0 without packets
            packets = pc.coalesce(self.field("packets"), zero)
            return _ratio(pc.coalesce(self.field("bytes"), zero), packets, _U64, 1), None
        start = self.field("time_start").cast(_I64)
        ended = self.field("time_end").cast(_I64)
        duration = pc.coalesce(pc.subtract(ended, start), pa.scalar(0, _I64))
        if name == "duration":
            return duration, None
        # nfdump: 1000 * packets / duration_ms (8000 * bytes for bps), 0 when duration is 0
        counter, scale = ("packets", 1000) if name == "pps" else ("bytes", 8000)
        return _ratio(pc.coalesce(self.field(counter), zero), duration, _I64, scale), None

    def icmp(self, name: str) -> tuple[Expression, Expression | None]:
        """nfdump keeps an ICMP flow's type << 8 | code in its destination port: from
        icmpTypeCode (or icmpType/icmpCode) when exported, else from the exported port
        (NetFlow v5 exporters put it there)."""
        if self.not_icmp:
            return pc.scalar(pa.scalar(0, _U16)), _FALSE
        is_icmp = pc.is_in(self.field("proto"), value_set=pa.array([1, 58], pa.uint8()))
        parts = pc.bit_wise_or(
            pc.shift_left(self.field("icmp_type").cast(_U16), pa.scalar(8, _U16)),
            pc.coalesce(self.field("icmp_code"), pa.scalar(0, pa.uint8())).cast(_U16),
        )
        exported = pc.coalesce(self.field("icmp_type_code"), parts)
        port = pc.coalesce(self.field("dst_port"), pa.scalar(0, _U16))
        if name == "dst_port":
            return pc.if_else(is_icmp & exported.is_valid(), exported, port), None
        type_code = pc.coalesce(exported, port)
        if name == "icmp_type":
            return pc.shift_right(type_code, pa.scalar(8, _U16)), is_icmp
        return pc.bit_wise_and(type_code, pa.scalar(0xFF, _U16)), is_icmp

    # --- addresses -------------------------------------------------------------------
    def address(self, name: str, patterns: tuple[AddressPattern, ...]) -> Expression:
        """The field's IPv4 column against IPv4 patterns, its IPv6 twin against IPv6
        ones; a flow with neither reads 0.0.0.0 for nfdump's fields."""
        v4_column, v6_column, reads_zero = ADDRESS_FIELDS[name]
        v4 = [p for p in patterns if p.version == 4]
        v6 = [p for p in patterns if p.version == 6]
        parts = []
        if v4:
            parts.append(self.address_tests(self.field(v4_column), v4, pa.uint32()))
            if reads_zero and any(p.value == 0 for p in v4):
                v6_null = self.field(v6_column).is_null()
                parts.append(self.field(v4_column).is_null() & v6_null)
        if v6:
            parts.append(self.address_tests(self.field(v6_column), v6, IPV6_TYPE))
        return _any(parts)

    def address_tests(
        self, column: Expression, patterns: list[AddressPattern], arrow_type: pa.DataType
    ) -> Expression:
        ipv6 = arrow_type == IPV6_TYPE

        def scalar(value: int) -> pa.Scalar:
            if ipv6:
                return pa.scalar(value.to_bytes(16, "big"), IPV6_TYPE)
            return pa.scalar(value, arrow_type)

        contiguous = [p for p in patterns if p.prefix_length() is not None]
        tests = [  # nfdump's non-contiguous dotted netmasks (IPv4 only)
            pc.bit_wise_and(column, scalar(p.mask)) == scalar(p.value)
            for p in patterns
            if p.prefix_length() is None
        ]
        ranges = _merge(sorted(p.bounds() for p in contiguous))
        if len(ranges) <= _MAX_RANGE_TESTS:
            for low, high in ranges:
                test = column == scalar(low)
                if low != high:
                    test = (column >= scalar(low)) & (column <= scalar(high))
                tests.append(test)
            return _any(tests)
        by_length: dict[int, set[int]] = {}
        for p in contiguous:
            by_length.setdefault(p.prefix_length() or 0, set()).add(p.value)
        width = 128 if ipv6 else 32
        for length, values in sorted(by_length.items()):
            if length == 0:
                tests.append(column.is_valid())
            elif not ipv6:
                mask = ((1 << length) - 1) << (width - length)
                masked = column if length == width else pc.bit_wise_and(column, scalar(mask))
                tests.append(pc.is_in(masked, value_set=pa.array(sorted(values), arrow_type)))
            elif length % 8 == 0:
                size = length // 8
                prefixes = [(v >> (width - length)).to_bytes(size, "big") for v in values]
                head = column if size == 16 else pc.binary_slice(column, 0, size)
                tests.append(pc.is_in(head, value_set=pa.array(prefixes, pa.binary(size))))
            else:
                for value in sorted(values):
                    high = value | ((1 << (width - length)) - 1)
                    tests.append((column >= scalar(value)) & (column <= scalar(high)))
        return _any(tests)


def _not_icmp(node: Node) -> bool:
    return (
        isinstance(node, Compare)
        and node.quantity == "proto"
        and node.op is Op.EQ
        and (node.value not in (1, 58))
    )


def _type_of(quantity: str) -> pa.DataType:
    derived = {"dst_port": _U16, "icmp_type": _U16, "icmp_code": _U16, "duration": _I64}
    if QUANTITIES[quantity].derived:
        return derived.get(quantity, _U64)
    return FLOW_SCHEMA.field(quantity).type


def _ratio(
    numerator: Expression, denominator: Expression, denominator_type: pa.DataType, scale: int
) -> Expression:
    """``scale * numerator // denominator`` in uint64 (wrapping, as nfdump's C does);
    0 where the denominator is not positive."""
    positive = denominator > pa.scalar(0, denominator_type)
    safe = pc.if_else(positive, denominator, pa.scalar(1, denominator_type)).cast(_U64)
    scaled = numerator if scale == 1 else pc.multiply(numerator, pa.scalar(scale, _U64))
    return pc.if_else(positive, pc.divide(scaled, safe), pa.scalar(0, _U64))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping or adjacent ranges -> the fewest equivalent ranges."""
    merged: list[tuple[int, int]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _bounds(node: Node, positive: bool, now_ms: int) -> tuple[int | None, int | None]:
    """(earliest, latest) time_end in ms of a flow matching ``node`` (or ``not node``)."""
    match node:
        case Not(item):
            return _bounds(item, not positive, now_ms)
        case And(items) | Or(items):
            spans = [_bounds(item, positive, now_ms) for item in items]
            lows, highs = [s[0] for s in spans], [s[1] for s in spans]
            if isinstance(node, And) == positive:  # every part holds: the tightest bound
                known_lows = [x for x in lows if x is not None]
                known_highs = [x for x in highs if x is not None]
                return max(known_lows, default=None), min(known_highs, default=None)
            low = None if None in lows else min(x for x in lows if x is not None)
            high = None if None in highs else max(x for x in highs if x is not None)
            return low, high
        case TimeCompare(column, op, epoch_ms, offset_ms) if positive:
            moment = epoch_ms if epoch_ms is not None else now_ms + offset_ms
            low = moment if op in (Op.EQ, Op.GT, Op.GE) else None
            high = moment if op in (Op.EQ, Op.LT, Op.LE) and column == "time_end" else None
            return low, high
    return None, None
