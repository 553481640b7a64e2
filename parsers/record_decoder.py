"""Templates compiled into vectorized record decoders: template -> dtype / offset plan
-> columns.

A template is compiled once, when it is learned (``compile_layout``), into a
``RecordLayout``. Fixed-length templates become a big-endian numpy structured dtype
(``V<n>`` for addresses and odd sizes, incl. RFC 7011 §6.2 reduced-size encoding) and a
whole buffer of records is decoded with one ``np.frombuffer``. Templates with
variable-length fields (RFC 7011 §7) get one pass over the records that finds where
each fixed block and each variable field starts (the only per-record Python in the
decoder), then numpy gathers. Either way the result is columns, never row objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np

from parsers import elements
from parsers.elements import ColumnSpec, Element, ElementKind
from parsers.errors import MalformedSet
from parsers.events import ColumnValues, FieldSpec, TemplateSpec, VarBinary
from parsers.netflow_v9 import SCOPE_PEN
from parsers.timebase import TimeField

DURATION_COLUMN: Final = "duration"

_VALID_LENGTHS: Final[dict[ElementKind, frozenset[int] | None]] = {
    ElementKind.UNSIGNED: frozenset(range(1, 9)),
    ElementKind.SIGNED: frozenset(range(1, 9)),
    ElementKind.FLOAT: frozenset({4, 8}),
    ElementKind.BOOLEAN: frozenset({1}),
    ElementKind.IPV4: frozenset({4}),
    ElementKind.IPV6: frozenset({16}),
    ElementKind.MAC: frozenset({6}),
    ElementKind.DATETIME_SECONDS: frozenset(range(1, 5)),
    ElementKind.DATETIME_MILLISECONDS: frozenset(range(1, 9)),
    ElementKind.DATETIME_MICROSECONDS: frozenset({8}),
    ElementKind.DATETIME_NANOSECONDS: frozenset({8}),
    ElementKind.SYSUPTIME_MILLISECONDS: frozenset(range(1, 5)),
    ElementKind.DELTA_MICROSECONDS: frozenset(range(1, 5)),
    ElementKind.DURATION_MILLISECONDS: frozenset(range(1, 9)),
    ElementKind.DURATION_MICROSECONDS: frozenset(range(1, 9)),
    ElementKind.OCTETS: None,  # any length, variable included
    ElementKind.STRING: None,
    ElementKind.LIST: None,
}
_TIME_LIKE: Final = elements.TIME_KINDS | elements.DURATION_KINDS
_NUMERIC_ON_WIRE: Final = _TIME_LIKE | {ElementKind.UNSIGNED, ElementKind.SIGNED, ElementKind.IPV4}
COLUMN_SPECS: Final[dict[str, ColumnSpec]] = elements.column_specs()
_U16: Final = struct.Struct(">H")


def element_for(spec: FieldSpec) -> Element | None:
    """The registry entry of a template field (v9 scope fields have their own table)."""
    if spec.pen == SCOPE_PEN:
        return elements.v9_scope_field(spec.element_id)
    return elements.lookup(spec.pen, spec.element_id)


def extra_key(spec: FieldSpec) -> str:
    """``extra_fields`` key of a field no column takes."""
    if spec.pen == SCOPE_PEN:
        return f"scope:{spec.element_id}"
    return elements.extra_field_key(spec.pen, spec.element_id)


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """Where one template field goes: a column (``column``) or ``extra_fields``."""

    index: int
    spec: FieldSpec
    element: Element | None
    column: str | None  # None: kept raw under ``extra_key``
    extra_key: str

    @property
    def name(self) -> str:
        """Field name inside the structured dtype."""
        return f"f{self.index}"


def _fits_column(spec: FieldSpec, element: Element) -> bool:
    valid = _VALID_LENGTHS[element.kind]
    if spec.is_variable_length:
        return valid is None
    return valid is None or spec.length in valid


def _plan_fields(template: TemplateSpec) -> list[FieldPlan]:
    """Choose, per column, the field with the lowest priority; the rest go to extras."""
    winners: dict[str, tuple[int, int]] = {}  # column -> (priority, field index)
    candidates: list[tuple[FieldSpec, Element | None, str | None]] = []
    for index, spec in enumerate(template.fields):
        element = element_for(spec)
        column = None
        if (
            element is not None
            and element.column is not None
            and _fits_column(spec, element)
            and (element.kind not in elements.DURATION_KINDS or element.column == DURATION_COLUMN)
        ):
            column = element.column
            best = winners.get(column)
            if best is None or element.priority < best[0]:
                winners[column] = (element.priority, index)
        candidates.append((spec, element, column))
    return [
        FieldPlan(
            index,
            spec,
            element,
            column if column is not None and winners[column][1] == index else None,
            extra_key(spec),
        )
        for index, (spec, element, column) in enumerate(candidates)
    ]


def _wire_code(plan: FieldPlan) -> str:
    """numpy format of a field inside the record dtype."""
    length = plan.spec.length
    kind = plan.element.kind if plan.element is not None and plan.column else None
    if kind in _NUMERIC_ON_WIRE and length in (1, 2, 4, 8):
        return (">i" if kind is ElementKind.SIGNED else ">u") + str(length)
    if kind is ElementKind.FLOAT:
        return f">f{length}"
    return f"V{length}"


@dataclass(frozen=True, slots=True)
class RawColumns:
    """One template's records as columns, before clock context is applied.

    ``times`` holds raw time and duration elements by column: absolute times need no
    context, but sysUpTime and delta forms need the export header's clock.
    """

    num_rows: int
    columns: dict[str, ColumnValues]
    times: dict[str, TimeField]
    extra_fields: list[tuple[str, ColumnValues]]


@dataclass(frozen=True, slots=True)
class VarlenIndex:
    """Result of the per-record walk over variable-length records of one set body.

    ``positions`` is record-major: per record, the start of each segment (fixed block
    or variable field value) and, for variable fields, the value length.
    """

    num_records: int
    positions: list[int]


class RecordLayout:
    """A compiled template. Immutable once built; shared by every data set using it."""

    __slots__ = (
        "_column_plans",
        "_extra_plans",
        "_segment_stride",
        "_segments",
        "dtype",
        "fields",
        "is_variable_length",
        "min_record_size",
        "record_size",
        "template",
    )

    def __init__(self, template: TemplateSpec) -> None:
        self.template = template
        self.fields = _plan_fields(template)
        present = [p for p in self.fields if p.spec.length != 0]  # v9 zero-length fields
        self._column_plans = [p for p in present if p.column is not None]
        self._extra_plans = [p for p in present if p.column is None and not _is_padding(p)]
        self.is_variable_length = any(p.spec.is_variable_length for p in present)
        self.min_record_size = sum(
            1 if p.spec.is_variable_length else p.spec.length for p in present
        )
        if self.is_variable_length:
            self.record_size = 0
            self.dtype = None
            self._segments = _segments_of(present)
            self._segment_stride = sum(2 if kind == "var" else 1 for kind, _, _ in self._segments)
        else:
            self.record_size = self.min_record_size
            offsets, offset = [], 0
            for plan in present:
                offsets.append(offset)
                offset += plan.spec.length
            self.dtype = np.dtype(
                {
                    "names": [p.name for p in present],
                    "formats": [_wire_code(p) for p in present],
                    "offsets": offsets,
                    "itemsize": max(offset, 1),
                }
            )
            self._segments: list[Segment] = []
            self._segment_stride = 0

    # -- the per-set checks (run when the datagram is parsed) -------------------------

    def walk(self, body: bytes, body_offset: int) -> VarlenIndex:
        """Find every record of a variable-length set body; raise on any overrun.

        Trailing bytes shorter than the smallest possible record are padding (RFC 7011
        §3.3.1); so are trailing zero bytes that do not form a whole record.
        """
        positions: list[int] = []
        append = positions.append
        end = len(body)
        minimum = self.min_record_size
        segments = self._segments
        cursor = 0
        count = 0
        while end - cursor >= minimum and minimum > 0:
            record_start = cursor
            mark = len(positions)
            overrun = False
            for kind, size, _ in segments:
                if kind == "fixed":
                    append(cursor)
                    cursor += size
                    if cursor > end:
                        overrun = True
                        break
                    continue
                if cursor >= end:
                    overrun = True
                    break
                length = body[cursor]
                if length == 255:  # RFC 7011 §7: 3-byte length
                    if cursor + 3 > end:
                        overrun = True
                        break
                    (length,) = _U16.unpack_from(body, cursor + 1)
                    cursor += 3
                else:
                    cursor += 1
                append(cursor)
                append(length)
                cursor += length
                if cursor > end:
                    overrun = True
                    break
            if overrun:
                del positions[mark:]
                if not any(body[record_start:]):
                    break  # zero padding
                raise MalformedSet(
                    f"data set {self.template.template_id}: record {count} runs past the "
                    f"set end ({end} bytes)",
                    body_offset + record_start,
                )
            count += 1
        return VarlenIndex(count, positions)

    # -- decoding whole buffers ------------------------------------------------------

    def decode_fixed(self, buffer: bytes, count: int) -> RawColumns:
        """Decode ``count`` back-to-back fixed-length records."""
        assert self.dtype is not None
        if self.record_size == 0:
            return RawColumns(count, {}, {}, [])
        records = np.frombuffer(buffer, dtype=self.dtype, count=count)

        def wire(plan: FieldPlan) -> np.ndarray:
            values = records[plan.name]
            if values.dtype.kind == "V":
                return np.ascontiguousarray(values).view(np.uint8).reshape(count, plan.spec.length)
            return values

        return self._convert(count, wire)

    def rebase(self, located: list[tuple[list[int], int]]) -> np.ndarray:
        """Join ``walk`` results of several set bodies laid end to end in one buffer:
        each body's positions move by the body's start (lengths stay)."""
        stride = self._segment_stride
        is_position = np.array(
            [flag for kind, _, _ in self._segments for flag in ((1, 0) if kind == "var" else (1,))],
            dtype=np.int64,
        )
        parts = []
        for positions, base in located:
            table = np.array(positions, dtype=np.int64).reshape(-1, stride)
            parts.append(table + base * is_position)
        return np.concatenate(parts) if parts else np.zeros((0, stride), dtype=np.int64)

    def decode_variable(self, buffer: bytes, positions: np.ndarray, count: int) -> RawColumns:
        """Decode records located by ``walk`` and joined by ``rebase``."""
        data = np.frombuffer(buffer, dtype=np.uint8)
        table = positions.reshape(count, self._segment_stride)  # one row per record
        locations: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        column = 0
        for kind, _, members in self._segments:
            if kind == "fixed":
                starts = table[:, column]
                for plan, relative in members:
                    locations[plan.index] = (starts + relative, None)
                column += 1
            else:
                plan = members[0][0]
                locations[plan.index] = (table[:, column], table[:, column + 1])
                column += 2

        def wire(plan: FieldPlan) -> np.ndarray | VarBinary:
            starts, lengths = locations[plan.index]
            if lengths is not None:
                return _gather_variable(data, starts, lengths)
            width = plan.spec.length
            raw = data[starts[:, None] + np.arange(width)]
            code = _wire_code(plan)
            if code[0] == ">":
                return raw.view(code).reshape(count)
            return raw

        return self._convert(count, wire)

    def _convert(self, count: int, wire: object) -> RawColumns:
        columns: dict[str, ColumnValues] = {}
        times: dict[str, TimeField] = {}
        extras: list[tuple[str, ColumnValues]] = []
        for plan in self._column_plans:
            element = plan.element
            assert element is not None and plan.column is not None
            raw = wire(plan)  # type: ignore[operator]
            if element.kind in _TIME_LIKE:
                times[plan.column] = TimeField(element.kind, _as_unsigned(raw))
                continue
            value, overflow = _to_column(raw, element, COLUMN_SPECS[plan.column])
            columns[plan.column] = value
            if overflow:
                extras.append((plan.extra_key, _as_bytes(raw, plan.spec.length)))
        for plan in self._extra_plans:
            extras.append((plan.extra_key, _as_bytes(wire(plan), plan.spec.length)))  # type: ignore[operator]
        return RawColumns(count, columns, times, extras)


def _is_padding(plan: FieldPlan) -> bool:
    return plan.element is not None and elements.is_padding(plan.element)


Segment = tuple[str, int, list[tuple[FieldPlan, int]]]


def _segments_of(present: list[FieldPlan]) -> list[Segment]:
    """Fixed blocks (kind "fixed", size, members at relative offsets) and variable
    fields (kind "var", 0, [the field]) in record order."""
    segments: list[Segment] = []
    for plan in present:
        if plan.spec.is_variable_length:
            segments.append(("var", 0, [(plan, 0)]))
        elif segments and segments[-1][0] == "fixed":
            _, size, members = segments[-1]
            members.append((plan, size))
            segments[-1] = ("fixed", size + plan.spec.length, members)
        else:
            segments.append(("fixed", plan.spec.length, [(plan, 0)]))
    return segments


def _as_unsigned(raw: np.ndarray) -> np.ndarray:
    """A numeric wire value (typed big-endian 1-D or odd-width 2-D bytes) as uint64."""
    if raw.ndim == 1:
        return raw.astype(np.uint64)
    width = raw.shape[1]
    padded = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    padded[:, 8 - width :] = raw
    return padded.view(">u8").reshape(raw.shape[0]).astype(np.uint64)


def _as_signed(raw: np.ndarray) -> np.ndarray:
    if raw.ndim == 1:
        return raw.astype(np.int64)
    width = raw.shape[1]
    unsigned = _as_unsigned(raw).astype(np.int64)
    sign = np.int64(1) << np.int64(8 * width - 1)
    return (unsigned ^ sign) - sign


def _as_bytes(raw: np.ndarray | VarBinary, length: int) -> ColumnValues:
    """Raw field bytes for ``extra_fields``: 2-D uint8 rows, or VarBinary."""
    if isinstance(raw, VarBinary):
        return raw
    if raw.ndim == 2:
        return raw
    return np.ascontiguousarray(raw).view(np.uint8).reshape(len(raw), length)


def _column_dtype(spec: ColumnSpec, signed: bool) -> np.dtype:
    return np.dtype(f"{'i' if signed else 'u'}{max(spec.size, 1)}")


def _to_column(
    raw: np.ndarray | VarBinary, element: Element, spec: ColumnSpec
) -> tuple[ColumnValues, bool]:
    """(column values, whether some value did not fit the column and was kept raw)."""
    kind = element.kind
    if kind is ElementKind.UNSIGNED or kind is ElementKind.IPV4:
        assert isinstance(raw, np.ndarray)
        target = np.dtype(np.uint32) if kind is ElementKind.IPV4 else _column_dtype(spec, False)
        wide = _as_unsigned(raw) if raw.ndim == 2 or raw.dtype.itemsize > target.itemsize else raw
        overflow = (
            bool(
                wide.dtype.itemsize > target.itemsize
                and (wide >> np.uint64(8 * target.itemsize)).any()
            )
            if len(wide)
            else False
        )
        return wide.astype(target), overflow
    if kind is ElementKind.SIGNED:
        assert isinstance(raw, np.ndarray)
        target = _column_dtype(spec, True)
        wide = _as_signed(raw)
        limit = np.int64(1) << np.int64(8 * target.itemsize - 1)
        overflow = bool(target.itemsize < 8 and ((wide >= limit) | (wide < -limit)).any())
        return wide.astype(target), overflow
    if kind is ElementKind.FLOAT:
        assert isinstance(raw, np.ndarray)
        return raw.astype(np.float64), False
    if kind is ElementKind.BOOLEAN:
        assert isinstance(raw, np.ndarray)
        return (raw.reshape(len(raw), -1)[:, 0] == 1), False
    if kind in (ElementKind.IPV6, ElementKind.MAC):
        assert isinstance(raw, np.ndarray)
        return raw, False
    if isinstance(raw, VarBinary):
        return raw, False
    if kind is ElementKind.STRING:
        return _strip_trailing_nul(raw), False
    return _fixed_to_var(raw), False


def _fixed_to_var(raw: np.ndarray) -> VarBinary:
    rows, width = raw.shape
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return VarBinary(_narrow_offsets(offsets), np.ascontiguousarray(raw).reshape(-1))


def _strip_trailing_nul(raw: np.ndarray) -> VarBinary:
    """Fixed-width strings (v9 IF_NAME, 32 bytes) are NUL-padded: drop the padding."""
    rows, width = raw.shape
    nonzero = raw != 0
    last = np.where(nonzero.any(axis=1), width - np.argmax(nonzero[:, ::-1], axis=1), 0)
    keep = np.arange(width)[None, :] < last[:, None]
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(last, out=offsets[1:])
    return VarBinary(_narrow_offsets(offsets), raw[keep])


def _gather_variable(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> VarBinary:
    """Values at (start, length) pairs as one VarBinary, without a loop per value."""
    lengths = lengths.astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return VarBinary(_narrow_offsets(offsets), np.zeros(0, dtype=np.uint8))
    index = np.repeat(starts.astype(np.int64) - offsets[:-1], lengths) + np.arange(total)
    return VarBinary(_narrow_offsets(offsets), data[index])


def _narrow_offsets(offsets: np.ndarray) -> np.ndarray:
    return offsets.astype(np.int32) if offsets[-1] < 2**31 else offsets


def compile_layout(template: TemplateSpec) -> RecordLayout:
    """Compile a template once, when it is learned."""
    return RecordLayout(template)
