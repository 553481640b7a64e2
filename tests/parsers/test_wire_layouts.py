"""The derived fast readers read what construct writes (style guide §2).

Every fixed layout has one definition, a construct ``Struct``; the hot path reads it
with a ``struct.Struct`` and whole arrays with a numpy dtype derived from it
(``parsers/fixed_layout.py``). Here hypothesis picks field values, construct's
``build()`` writes them, and both derived readers must read them back identically, at
any offset and (numpy) for several records back to back.
"""

from __future__ import annotations

import struct

import construct
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers import ipfix, netflow_v5, netflow_v9
from parsers.errors import TruncatedDatagram
from parsers.fixed_layout import dtype_for, field_names, struct_for, unpack_checked

#: every fixed construct definition the decoder derives a reader from, with the readers
#: the modules derived at import (None where the module derives only the other kind)
DEFINITIONS: dict[str, tuple[construct.Struct, struct.Struct | None, np.dtype | None]] = {
    "V5_HEADER": (netflow_v5.V5_HEADER, netflow_v5.V5_HEADER_STRUCT, None),
    "V5_RECORD": (netflow_v5.V5_RECORD, None, netflow_v5.V5_RECORD_DTYPE),
    "V9_HEADER": (netflow_v9.V9_HEADER, netflow_v9.V9_HEADER_STRUCT, None),
    "FLOWSET_HEADER": (netflow_v9.FLOWSET_HEADER, netflow_v9.FLOWSET_HEADER_STRUCT, None),
    "V9_FIELD": (netflow_v9.V9_FIELD, None, None),
    "IPFIX_HEADER": (ipfix.IPFIX_HEADER, ipfix.IPFIX_HEADER_STRUCT, None),
    "SET_HEADER": (ipfix.SET_HEADER, ipfix.SET_HEADER_STRUCT, None),
}

#: construct definitions with variable parts: nothing may be derived from them
VARIABLE_DEFINITIONS = {
    "FIELD_SPECIFIER": ipfix.FIELD_SPECIFIER,
    "TEMPLATE_RECORD": ipfix.TEMPLATE_RECORD,
    "OPTIONS_TEMPLATE_RECORD": ipfix.OPTIONS_TEMPLATE_RECORD,
    "V9_TEMPLATE_RECORD": netflow_v9.V9_TEMPLATE_RECORD,
    "V9_OPTIONS_TEMPLATE_RECORD": netflow_v9.V9_OPTIONS_TEMPLATE_RECORD,
}


def _integer_fields(definition: construct.Struct) -> list[tuple[str, construct.FormatField]]:
    fields = []
    for subcon in definition.subcons:
        inner = subcon.subcon if isinstance(subcon, construct.Renamed) else subcon
        assert isinstance(inner, construct.FormatField), subcon.name
        fields.append((subcon.name, inner))
    return fields


def _value_strategy(field: construct.FormatField) -> st.SearchStrategy[int]:
    bits = 8 * field.length
    if field.fmtstr[1:].islower():  # signed struct codes are lower case
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


def _record_strategy(definition: construct.Struct) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries(
        {name: _value_strategy(field) for name, field in _integer_fields(definition)}
    )


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_module_readers_are_derived_from_the_definition(name: str) -> None:
    definition, module_struct, module_dtype = DEFINITIONS[name]
    derived = struct_for(definition)
    assert derived.size == definition.sizeof()
    assert dtype_for(definition).itemsize == definition.sizeof()
    assert field_names(definition) == tuple(n for n, _ in _integer_fields(definition))
    if module_struct is not None:
        assert module_struct.format == derived.format
    if module_dtype is not None:
        assert module_dtype == dtype_for(definition)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
@given(data=st.data())
def test_struct_and_dtype_read_what_construct_builds(name: str, data: st.DataObject) -> None:
    definition = DEFINITIONS[name][0]
    records = data.draw(st.lists(_record_strategy(definition), min_size=1, max_size=4))
    prefix = data.draw(st.binary(max_size=7))
    built = [definition.build(record) for record in records]
    payload = prefix + b"".join(built) + b"\xa5"  # a trailing byte nobody reads
    names = field_names(definition)
    reader = struct_for(definition)
    dtype = dtype_for(definition)
    size = definition.sizeof()
    # construct itself reads back what it built (the definitions are self-consistent)
    for record, raw in zip(records, built, strict=True):
        assert len(raw) == size
        parsed = definition.parse(raw)
        assert {n: parsed[n] for n in names} == record
    # struct.Struct at every record's offset
    for index, record in enumerate(records):
        values = reader.unpack_from(payload, len(prefix) + index * size)
        assert dict(zip(names, values, strict=True)) == record
        checked = unpack_checked(reader, payload, len(prefix) + index * size, name)
        assert checked == values
    # numpy: the whole array with one frombuffer, as the decoder reads record arrays
    array = np.frombuffer(payload, dtype=dtype, count=len(records), offset=len(prefix))
    for index, record in enumerate(records):
        assert {n: int(array[n][index]) for n in names} == record
    # and after the conversion to native byte order the decoder does once per buffer
    native = array.astype(dtype.newbyteorder("="))
    for n in names:
        assert native[n].tolist() == [r[n] for r in records]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
@given(data=st.data())
def test_unpack_checked_refuses_short_input(name: str, data: st.DataObject) -> None:
    definition = DEFINITIONS[name][0]
    reader = struct_for(definition)
    payload = data.draw(st.binary(max_size=reader.size * 2))
    offset = data.draw(st.integers(-4, len(payload) + 4))
    if offset >= 0 and offset + reader.size <= len(payload):
        assert unpack_checked(reader, payload, offset, name) == reader.unpack_from(payload, offset)
    else:
        with pytest.raises(TruncatedDatagram):
            unpack_checked(reader, payload, offset, name)


@pytest.mark.parametrize("name", sorted(VARIABLE_DEFINITIONS))
def test_variable_definitions_cannot_be_derived(name: str) -> None:
    with pytest.raises(TypeError):
        struct_for(VARIABLE_DEFINITIONS[name])
    with pytest.raises(TypeError):
        dtype_for(VARIABLE_DEFINITIONS[name])


def test_little_endian_fields_cannot_be_derived() -> None:
    definition = construct.Struct("value" / construct.Int32ul)
    with pytest.raises(TypeError):
        struct_for(definition)


@pytest.mark.parametrize(
    ("field", "code"),
    [
        (construct.Int8ub, "u1"),
        (construct.Int16ub, "u2"),
        (construct.Int32ub, "u4"),
        (construct.Int64ub, "u8"),
        (construct.Int8sb, "i1"),
        (construct.Int16sb, "i2"),
        (construct.Int32sb, "i4"),
        (construct.Int64sb, "i8"),
    ],
)
def test_every_integer_width_derives_the_same_size(field: construct.FormatField, code: str) -> None:
    """numpy reads struct's "L" as the platform's 8-byte long; the mapping must not."""
    definition = construct.Struct("a" / construct.Int8ub, "value" / field)
    assert dtype_for(definition)["value"] == np.dtype(">" + code)
    assert struct_for(definition).size == definition.sizeof() == dtype_for(definition).itemsize


@given(data=st.data())
def test_signed_fields_read_alike(data: st.DataObject) -> None:
    definition = construct.Struct(
        "a" / construct.Int8sb,
        "b" / construct.Int16sb,
        "c" / construct.Int32sb,
        "d" / construct.Int64sb,
        "e" / construct.Int64ub,
    )
    record = data.draw(_record_strategy(definition))
    raw = definition.build(record)
    assert struct_for(definition).unpack(raw) == tuple(record[n] for n in field_names(definition))
    array = np.frombuffer(raw, dtype=dtype_for(definition))
    assert {n: int(array[n][0]) for n in record} == record
