"""What leaves ``parsers/``: column batches of flows, options records, template specs.

Flows leave as columns (numpy arrays keyed by column name, see ``parsers/elements.py``
for the names), never as one object per flow: ``storage/schema.py`` turns a
``FlowBatch`` into one Arrow ``RecordBatch`` without a Python loop per row.

Column value forms:
- numbers: 1-D numpy arrays (native byte order);
- times: 1-D ``int64`` nanoseconds since 1970-01-01 UTC;
- IPv4 addresses: 1-D ``uint32``; IPv6 and MAC addresses: 2-D ``uint8`` (rows x 16 / 6);
- strings and octet arrays: ``VarBinary`` (Arrow-style offsets + data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np


@dataclass(frozen=True, slots=True)
class VarBinary:
    """Variable-length values of one column: value i is ``data[offsets[i]:offsets[i+1]]``.

    The layout is Arrow's binary layout, so storage wraps it without copying.
    """

    offsets: np.ndarray  # int32 (or int64 for > 2 GiB), len(rows) + 1
    data: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def value(self, row: int) -> bytes:
        """One value as bytes (for tests and debugging, not for hot paths)."""
        return self.data[self.offsets[row] : self.offsets[row + 1]].tobytes()


ColumnValues: TypeAlias = np.ndarray | VarBinary


@dataclass(slots=True)
class FlowBatch:
    """Flow records decoded with one template (or one NetFlow v5 stream), as columns.

    ``extra_fields`` holds, in template order, the raw bytes of every field that no
    column takes (elements nobody maps, losers of a shared column, odd lengths), keyed
    ``"PEN:id"``: storage keeps them in a map column so no exported byte is lost.

    ``valid`` marks, for the few columns that need it, which rows hold a value (a
    template with both IPv4 and IPv6 address fields fills one family per flow and
    zeros in the other); a column not listed is valid in every row.
    """

    num_rows: int
    columns: dict[str, ColumnValues]
    extra_fields: list[tuple[str, ColumnValues]] = field(default_factory=list)
    valid: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a template: element (PEN, id) and its encoded length.

    ``length`` 65535 means variable length (RFC 7011 §7). PEN 0 is IANA / NetFlow v9.
    """

    pen: int
    element_id: int
    length: int

    @property
    def is_variable_length(self) -> bool:
        return self.length == VARIABLE_LENGTH


VARIABLE_LENGTH = 65535


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """A template or options template as the exporter defined it.

    For options templates the first ``scope_field_count`` fields are scope fields. In
    NetFlow v9 the scope field types are scope types (RFC 3954 §6.1), recorded with
    ``pen=-1`` so they never collide with field types.
    """

    template_id: int
    fields: tuple[FieldSpec, ...]
    scope_field_count: int = 0
    is_options: bool = False


@dataclass(frozen=True, slots=True)
class OptionsRecord:
    """One options data record: exporter metadata (sampling, interfaces, tables)."""

    exporter: tuple[str, int]
    version: int
    observation_domain: int
    template_id: int
    values: dict[str, object]
