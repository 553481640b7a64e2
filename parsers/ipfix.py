"""IPFIX wire format (RFC 7011): message header, sets, template and options-template
records with enterprise field specifiers.

Set ids: 2 template, 3 options template, 4..255 reserved, 256+ data (RFC 7011 §3.3.2).
A template record with field count 0 withdraws its template; template id 2 (set 2) or
3 (set 3) with field count 0 withdraws all templates of that kind (RFC 7011 §8.1).
"""

from __future__ import annotations

import struct
from typing import Final

from construct import Array, ConstructError, If, Int16ub, Int32ub, Struct, this

from parsers.errors import MalformedTemplate
from parsers.events import FieldSpec, TemplateSpec
from parsers.fixed_layout import struct_for

VERSION: Final = 10
TEMPLATE_SET_ID: Final = 2
OPTIONS_TEMPLATE_SET_ID: Final = 3
MIN_DATA_SET_ID: Final = 256
ENTERPRISE_BIT: Final = 0x8000

IPFIX_HEADER = Struct(
    "version" / Int16ub,
    "length" / Int16ub,
    "export_time" / Int32ub,
    "sequence" / Int32ub,
    "observation_domain" / Int32ub,
)

SET_HEADER = Struct("set_id" / Int16ub, "length" / Int16ub)

FIELD_SPECIFIER = Struct(
    "raw_id" / Int16ub,
    "length" / Int16ub,
    "pen" / If(this.raw_id & ENTERPRISE_BIT, Int32ub),  # RFC 7011 §3.2
)

TEMPLATE_RECORD = Struct(
    "template_id" / Int16ub,
    "field_count" / Int16ub,
    "fields" / Array(this.field_count, FIELD_SPECIFIER),
)

OPTIONS_TEMPLATE_RECORD = Struct(
    "template_id" / Int16ub,
    "field_count" / Int16ub,
    "scope_field_count" / Int16ub,
    "fields" / Array(this.field_count, FIELD_SPECIFIER),
)

IPFIX_HEADER_STRUCT: Final = struct_for(IPFIX_HEADER)
SET_HEADER_STRUCT: Final = struct_for(SET_HEADER)
HEADER_SIZE: Final = IPFIX_HEADER_STRUCT.size
_HEAD: Final = struct.Struct(">HH")
_U16: Final = struct.Struct(">H")


def _record_size(body: bytes, position: int, field_count: int, head_size: int) -> int | None:
    """Bytes of a template record starting at ``position``, or None if it runs past
    the set (each enterprise field specifier carries 4 more bytes, RFC 7011 §3.2)."""
    cursor = position + head_size
    for _ in range(field_count):
        if cursor + 4 > len(body):
            return None
        (raw_id,) = _U16.unpack_from(body, cursor)
        cursor += 8 if raw_id & ENTERPRISE_BIT else 4
    return cursor - position if cursor <= len(body) else None


def _field_specs(fields: list) -> tuple[FieldSpec, ...]:
    return tuple(
        FieldSpec(f.pen if f.pen is not None else 0, f.raw_id & ~ENTERPRISE_BIT, f.length)
        for f in fields
    )


def parse_template_set(body: bytes, offset: int, is_options: bool) -> list[TemplateSpec]:
    """Template (set 2) or options-template (set 3) records of one set body.

    A returned spec with no fields is a withdrawal; template id 2 or 3 then means "all
    templates of this kind". Trailing bytes too short for a record, or all zero, are
    padding (RFC 7011 §3.3.1). ``offset`` is the body's position, for messages.
    """
    kind = "options template" if is_options else "template"
    templates: list[TemplateSpec] = []
    position = 0
    while len(body) - position >= _HEAD.size:
        if not any(body[position:]):
            break  # padding
        template_id, field_count = _HEAD.unpack_from(body, position)
        here = offset + position
        if field_count == 0:
            allowed = OPTIONS_TEMPLATE_SET_ID if is_options else TEMPLATE_SET_ID
            if template_id < MIN_DATA_SET_ID and template_id != allowed:
                raise MalformedTemplate(f"{kind} withdrawal of id {template_id}", here)
            templates.append(TemplateSpec(template_id, (), is_options=is_options))
            position += _HEAD.size
            continue
        if template_id < MIN_DATA_SET_ID:
            raise MalformedTemplate(f"{kind} id {template_id} is below 256", here)
        head_size = 6 if is_options else 4
        size = _record_size(body, position, field_count, head_size)
        if size is None:
            raise MalformedTemplate(
                f"{kind} {template_id} declares {field_count} fields, "
                f"{len(body) - position} bytes left in the set",
                here,
            )
        definition = OPTIONS_TEMPLATE_RECORD if is_options else TEMPLATE_RECORD
        try:
            record = definition.parse(body[position : position + size])
        except ConstructError as error:  # pragma: no cover - lengths were checked
            raise MalformedTemplate(str(error), here) from None
        scope_count = record.scope_field_count if is_options else 0
        if scope_count > field_count:  # 0 breaks RFC 7011 §3.4.2.2, but harms no one
            raise MalformedTemplate(
                f"options template {template_id}: scope field count {scope_count} "
                f"of {field_count} fields",
                here,
            )
        templates.append(
            TemplateSpec(template_id, _field_specs(record.fields), scope_count, is_options)
        )
        position += size
    return templates
