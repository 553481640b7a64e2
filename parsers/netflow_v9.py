"""NetFlow v9 wire format (RFC 3954): header, flowsets, template and options-template
records.

Flowset ids: 0 template, 1 options template, 2..255 reserved, 256+ data (RFC 3954 §5).
v9 has no message length; the walk ends at the datagram's end (trailing zero bytes
are padding: Palo Alto PAN-OS 8.1 sends 1220 zero bytes after a 180-byte message).
"""

from __future__ import annotations

from typing import Final

from construct import Array, ConstructError, Int16ub, Int32ub, Struct, this

from parsers.errors import MalformedTemplate
from parsers.events import FieldSpec, TemplateSpec
from parsers.fixed_layout import struct_for

VERSION: Final = 9
TEMPLATE_FLOWSET_ID: Final = 0
OPTIONS_TEMPLATE_FLOWSET_ID: Final = 1
MIN_DATA_FLOWSET_ID: Final = 256
#: pen recorded for v9 options scope fields, whose numbers are scope types (RFC 3954 §6.1)
SCOPE_PEN: Final = -1

V9_HEADER = Struct(
    "version" / Int16ub,
    "count" / Int16ub,
    "sys_uptime_ms" / Int32ub,
    "unix_secs" / Int32ub,
    "sequence" / Int32ub,
    "source_id" / Int32ub,
)

FLOWSET_HEADER = Struct("flowset_id" / Int16ub, "length" / Int16ub)

V9_FIELD = Struct("field_type" / Int16ub, "length" / Int16ub)

V9_TEMPLATE_RECORD = Struct(
    "template_id" / Int16ub,
    "field_count" / Int16ub,
    "fields" / Array(this.field_count, V9_FIELD),
)

V9_OPTIONS_TEMPLATE_RECORD = Struct(
    "template_id" / Int16ub,
    "scope_length" / Int16ub,  # bytes of scope field specifiers
    "option_length" / Int16ub,  # bytes of option field specifiers
    "scope_fields" / Array(this.scope_length // 4, V9_FIELD),
    "option_fields" / Array(this.option_length // 4, V9_FIELD),
)

V9_HEADER_STRUCT: Final = struct_for(V9_HEADER)
FLOWSET_HEADER_STRUCT: Final = struct_for(FLOWSET_HEADER)
HEADER_SIZE: Final = V9_HEADER_STRUCT.size
_TEMPLATE_HEAD_STRUCT: Final = struct_for(Struct("template_id" / Int16ub, "count" / Int16ub))
_OPTIONS_HEAD_STRUCT: Final = struct_for(
    Struct("template_id" / Int16ub, "scope_length" / Int16ub, "option_length" / Int16ub)
)


def parse_template_flowset(body: bytes, offset: int) -> list[TemplateSpec]:
    """Template records of one template flowset body (RFC 3954 §5.2).

    ``offset`` is the body's position in the datagram, for error messages. Trailing
    bytes shorter than a record header, or all zero, are padding.
    """
    templates: list[TemplateSpec] = []
    position = 0
    while len(body) - position >= _TEMPLATE_HEAD_STRUCT.size:
        if not any(body[position:]):
            break  # padding
        template_id, field_count = _TEMPLATE_HEAD_STRUCT.unpack_from(body, position)
        size = 4 + 4 * field_count
        if template_id < MIN_DATA_FLOWSET_ID:
            raise MalformedTemplate(f"template id {template_id} is below 256", offset + position)
        if field_count == 0:
            raise MalformedTemplate(f"template {template_id} has no fields", offset + position)
        if position + size > len(body):
            raise MalformedTemplate(
                f"template {template_id} declares {field_count} fields, "
                f"{len(body) - position - 4} bytes left in the flowset",
                offset + position,
            )
        try:
            record = V9_TEMPLATE_RECORD.parse(body[position : position + size])
        except ConstructError as error:  # pragma: no cover - lengths were checked
            raise MalformedTemplate(str(error), offset + position) from None
        fields = tuple(FieldSpec(0, f.field_type, f.length) for f in record.fields)
        templates.append(TemplateSpec(template_id, fields))
        position += size
    return templates


def parse_options_template_flowset(body: bytes, offset: int) -> list[TemplateSpec]:
    """Options template records of one flowset body (RFC 3954 §6.1).

    Scope fields keep their scope type under ``SCOPE_PEN``. A scope field of length 0
    is allowed (Juniper SRX sends one) and simply carries no bytes.
    """
    templates: list[TemplateSpec] = []
    position = 0
    while len(body) - position >= _OPTIONS_HEAD_STRUCT.size:
        if not any(body[position:]):
            break  # padding
        template_id, scope_length, option_length = _OPTIONS_HEAD_STRUCT.unpack_from(body, position)
        size = 6 + scope_length + option_length
        if template_id < MIN_DATA_FLOWSET_ID:
            raise MalformedTemplate(
                f"options template id {template_id} is below 256", offset + position
            )
        if scope_length % 4 or option_length % 4:
            raise MalformedTemplate(
                f"options template {template_id}: scope length {scope_length} / option "
                f"length {option_length} are not multiples of 4",
                offset + position,
            )
        if scope_length + option_length == 0:
            raise MalformedTemplate(
                f"options template {template_id} has no fields", offset + position
            )
        if position + size > len(body):
            raise MalformedTemplate(
                f"options template {template_id} needs {size} bytes, "
                f"{len(body) - position} left in the flowset",
                offset + position,
            )
        try:
            record = V9_OPTIONS_TEMPLATE_RECORD.parse(body[position : position + size])
        except ConstructError as error:  # pragma: no cover - lengths were checked
            raise MalformedTemplate(str(error), offset + position) from None
        scope = tuple(FieldSpec(SCOPE_PEN, f.field_type, f.length) for f in record.scope_fields)
        options = tuple(FieldSpec(0, f.field_type, f.length) for f in record.option_fields)
        templates.append(TemplateSpec(template_id, scope + options, len(scope), is_options=True))
        # RFC 3954 §6.1 pads the flowset, not each record: the all-zero check above
        # ends the walk at that padding
        position += size
    return templates
