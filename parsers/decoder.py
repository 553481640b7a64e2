"""The decoder session: datagrams in, flow column batches out.

``FlowDecoder`` is sans-I/O: the caller hands it datagram bytes with the exporter's
(address, port) and the receive time, and later asks for the decoded batches. Each
datagram is walked with ``struct`` formats derived from the construct definitions
(~1 µs per header); data sets are only sliced and staged per template, then decoded a
whole template buffer at a time by ``flush`` (one ``np.frombuffer`` per template).

A datagram is all or nothing: the walk collects template changes, staged sets, held
sets and options records, and applies them only after the whole datagram parsed; a
``ParseError`` anywhere leaves the template cache and every counter but the drop count
as they were.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from parsers import ipfix, netflow_v5, netflow_v9
from parsers.batch_assembly import (
    ContextTable,
    assemble_flow_batch,
    assemble_v5_batch,
    options_records,
)
from parsers.errors import (
    DropReason,
    MalformedSet,
    MalformedTemplate,
    ParseError,
    TruncatedDatagram,
    UnsupportedVersion,
)
from parsers.events import FlowBatch, OptionsRecord, TemplateSpec
from parsers.exporter_state import ExporterState
from parsers.record_decoder import RawColumns, RecordLayout, VarlenIndex
from parsers.templates import ExporterId, HeldSet, TemplateCache, TemplateKey
from parsers.timebase import NS_PER_S, UNKNOWN_NS

#: exporters whose counters the decoder keeps; beyond this the least recently added
#: one without templates is forgotten (a spoofing sender cannot grow memory)
MAX_EXPORTER_STATES: Final = 65536
#: options records buffered for ``take_options_records`` between calls
MAX_PENDING_OPTIONS_RECORDS: Final = 4096

_V5_HEADER = netflow_v5.V5_HEADER_STRUCT
_V9_HEADER = netflow_v9.V9_HEADER_STRUCT
_IPFIX_HEADER = ipfix.IPFIX_HEADER_STRUCT
_SET_HEADER = ipfix.SET_HEADER_STRUCT  # v9 flowset headers have the same layout
_MISSING: Final = object()


@dataclass(slots=True)
class DecoderStats:
    """Counters for the collector's metrics and the CLI summary (read-only outside)."""

    datagrams: Counter[int] = field(default_factory=Counter)  # by version, decoded ones
    dropped: Counter[str] = field(default_factory=Counter)  # by DropReason value
    flow_records: int = 0
    flow_records_by_version: Counter[int] = field(default_factory=Counter)
    options_records: int = 0
    sequence_lost: int = 0
    held_sets_undecodable: int = 0  # released later but malformed for their template
    reserved_sets_skipped: int = 0


@dataclass(slots=True)
class _Pending:
    """Sets staged for one layout (or one exporter's v5 stream) since the last flush."""

    state: ExporterState
    version: int
    bodies: list[bytes] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    contexts: list[int] = field(default_factory=list)
    positions: list[list[int]] = field(default_factory=list)  # variable-length only


class _ParsedDatagram:
    """Everything a datagram would change, applied only once it parsed completely.

    A plain slotted class with containers created on first use: most datagrams carry
    only data sets for known templates, and this object is built for every one.
    """

    __slots__ = (
        "changes",
        "context",
        "domain",
        "held",
        "memo",
        "options",
        "records",
        "reserved_sets",
        "sequence",
        "staged",
        "version",
    )

    def __init__(self, version: int, domain: int, context: tuple, sequence: int) -> None:
        self.version = version
        self.domain = domain
        self.context = context
        self.sequence = sequence
        self.staged: list[tuple[RecordLayout, bytes, int, VarlenIndex | None]] = []
        self.changes: dict[TemplateKey, RecordLayout | None] | None = None
        self.held: list[tuple[TemplateKey, bytes]] | None = None
        self.options: list[tuple[RecordLayout, bytes, int, VarlenIndex | None]] | None = None
        self.memo: list[tuple[tuple[int, int, int, bytes], list[TemplateSpec]]] | None = None
        #: data records (flow and options) of the sets whose template is known; None when
        #: a set's template is unknown and its record count with it
        self.records: int | None = 0
        self.reserved_sets = 0


#: the export versions flowcap decodes
VERSIONS: Final = (netflow_v5.VERSION, netflow_v9.VERSION, ipfix.VERSION)


def export_version(payload: bytes) -> int | None:
    """The version field every NetFlow/IPFIX message starts with (uint16), None when the
    datagram is too short to hold it. The collector labels its received counter with it
    without interpreting bytes itself."""
    if len(payload) < 2:
        return None
    return (payload[0] << 8) | payload[1]


class FlowDecoder:
    """Decodes NetFlow v5, v9 and IPFIX datagrams from any number of exporters."""

    def __init__(self, templates: TemplateCache | None = None) -> None:
        self.templates = templates if templates is not None else TemplateCache()
        self.exporters: dict[ExporterId, ExporterState] = {}
        self.stats = DecoderStats()
        self._pending: dict[object, _Pending] = {}
        self._contexts: list[tuple] = []
        self._options_out: list[OptionsRecord] = []
        self._next_index = 0

    # -- input ---------------------------------------------------------------------

    def feed_datagram(self, payload: bytes, exporter: ExporterId, received_at_ns: int) -> int:
        """Walk one export datagram and stage its records; return how many.

        Raises ``ParseError`` (and changes nothing but the drop counter) when the
        datagram is malformed.
        """
        self.templates.expire_held(received_at_ns)
        try:
            version = export_version(payload)
            if version is None:
                raise TruncatedDatagram(f"{len(payload)} bytes, no version field", 0)
            if version == ipfix.VERSION:
                parsed = self._walk_ipfix(payload, exporter)
            elif version == netflow_v9.VERSION:
                parsed = self._walk_v9(payload, exporter)
            elif version == netflow_v5.VERSION:
                return self._feed_v5(payload, exporter, received_at_ns)
            else:
                raise UnsupportedVersion(f"version {version} is not 5, 9 or 10", 0)
        except ParseError as error:
            self.stats.dropped[error.reason.value] += 1
            raise
        return self._commit(parsed, exporter, received_at_ns)

    def exporter_state(self, exporter: ExporterId) -> ExporterState:
        """The per-exporter state (counters, sampling, clocks), created on first use."""
        return self._state(exporter)

    def _state(self, exporter: ExporterId) -> ExporterState:
        state = self.exporters.get(exporter)
        if state is None:
            if len(self.exporters) >= MAX_EXPORTER_STATES:
                for key in self.exporters:
                    if key not in self.templates.exporters:
                        del self.exporters[key]
                        break
            state = self.exporters[exporter] = ExporterState.create(exporter, self._next_index)
            self._next_index += 1
        return state

    def _layouts(self, exporter: ExporterId) -> dict[TemplateKey, RecordLayout]:
        cached = self.templates.exporters.get(exporter)
        return cached.layouts if cached is not None else {}

    # -- NetFlow v5 ----------------------------------------------------------------

    def _feed_v5(self, data: bytes, exporter: ExporterId, received_at_ns: int) -> int:
        size = len(data)
        if size < netflow_v5.HEADER_SIZE:
            raise TruncatedDatagram(f"NetFlow v5 header needs 24 bytes, got {size}", 0)
        (_, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling) = (
            _V5_HEADER.unpack_from(data, 0)
        )
        expected = netflow_v5.HEADER_SIZE + count * netflow_v5.RECORD_SIZE
        if count == 0 or (expected != size and (expected > size or any(data[expected:]))):
            raise MalformedSet(
                f"NetFlow v5 header says {count} records ({expected} bytes), "
                f"datagram has {size} bytes",
                2,
            )
        state = self._state(exporter)
        interval = sampling & netflow_v5.SAMPLING_INTERVAL_MASK
        context = (
            5,
            (engine_type << 8) | engine_id,
            secs * NS_PER_S + nsecs,
            uptime,
            UNKNOWN_NS,
            received_at_ns,
            interval if interval > 0 else 1,
            engine_type,
            engine_id,
        )
        pending_key = (5, state.index)
        pending = self._pending.get(pending_key)
        if pending is None:
            pending = self._pending[pending_key] = _Pending(state, 5)
        pending.bodies.append(data[netflow_v5.HEADER_SIZE : expected])
        pending.counts.append(count)
        pending.contexts.append(self._add_context(context))
        lost = state.sequence(5, context[1]).observe(sequence, count)
        self._count(state, 5, count, lost, received_at_ns)
        return count

    # -- NetFlow v9 ----------------------------------------------------------------

    def _walk_v9(self, data: bytes, exporter: ExporterId) -> _ParsedDatagram:
        size = len(data)
        if size < netflow_v9.HEADER_SIZE:
            raise TruncatedDatagram(f"NetFlow v9 header needs 20 bytes, got {size}", 0)
        _, _, uptime, secs, sequence, source_id = _V9_HEADER.unpack_from(data, 0)
        context = (
            9,
            source_id,
            secs * NS_PER_S,
            uptime,
            UNKNOWN_NS,
            0,
            1,
            (source_id >> 8) & 0xFF,  # nfdump's reading of the v9 source id
            source_id & 0xFF,
        )
        parsed = _ParsedDatagram(9, source_id, context, sequence)
        self._walk_sets(data, netflow_v9.HEADER_SIZE, size, exporter, parsed, is_ipfix=False)
        return parsed

    # -- IPFIX ---------------------------------------------------------------------

    def _walk_ipfix(self, data: bytes, exporter: ExporterId) -> _ParsedDatagram:
        size = len(data)
        if size < ipfix.HEADER_SIZE:
            raise TruncatedDatagram(f"IPFIX header needs 16 bytes, got {size}", 0)
        _, length, export_time, sequence, domain = _IPFIX_HEADER.unpack_from(data, 0)
        if length < ipfix.HEADER_SIZE:
            raise MalformedSet(f"IPFIX message length {length} is shorter than its header", 2)
        if length > size:
            raise TruncatedDatagram(f"IPFIX message length {length}, datagram has {size} bytes", 2)
        context = (
            10,
            domain,
            export_time * NS_PER_S,
            -1,
            UNKNOWN_NS,
            0,
            1,
            (domain >> 8) & 0xFF,
            domain & 0xFF,
        )
        parsed = _ParsedDatagram(10, domain, context, sequence)
        self._walk_sets(data, ipfix.HEADER_SIZE, length, exporter, parsed, is_ipfix=True)
        return parsed

    # -- the set walk, shared by v9 and IPFIX (same set header layout) ---------------

    def _walk_sets(
        self,
        data: bytes,
        position: int,
        end: int,
        exporter: ExporterId,
        parsed: _ParsedDatagram,
        is_ipfix: bool,
    ) -> None:
        version, domain = parsed.version, parsed.domain
        layouts = self._layouts(exporter)
        template_set = ipfix.TEMPLATE_SET_ID if is_ipfix else netflow_v9.TEMPLATE_FLOWSET_ID
        options_set = (
            ipfix.OPTIONS_TEMPLATE_SET_ID if is_ipfix else netflow_v9.OPTIONS_TEMPLATE_FLOWSET_ID
        )
        records = 0
        unknown_units = False
        while position < end:
            if end - position < 4:
                if any(data[position:end]):
                    raise MalformedSet(f"{end - position} stray bytes after the last set", position)
                break
            set_id, set_length = _SET_HEADER.unpack_from(data, position)
            if set_length < 4:
                if not any(data[position:end]):
                    break  # zero padding to the end (Palo Alto, Cisco ACI)
                raise MalformedSet(f"set {set_id} has length {set_length} (< 4)", position + 2)
            set_end = position + set_length
            if set_end > end:
                raise TruncatedDatagram(
                    f"set {set_id} of {set_length} bytes runs past the message end ({end})",
                    position + 2,
                )
            body_offset = position + 4
            if set_id >= 256:
                key = (version, domain, set_id)
                changes = parsed.changes
                layout = changes.get(key, _MISSING) if changes else _MISSING
                if layout is _MISSING:
                    layout = layouts.get(key)
                body = data[body_offset:set_end]
                if layout is None:
                    if parsed.held is None:
                        parsed.held = []
                    parsed.held.append((key, body))
                    unknown_units = True
                else:
                    staged = _stage_set(layout, body, body_offset)  # type: ignore[arg-type]
                    records += staged[2]
                    if layout.template.is_options:  # type: ignore[union-attr]
                        if parsed.options is None:
                            parsed.options = []
                        parsed.options.append(staged)
                    else:
                        parsed.staged.append(staged)
            elif set_id in (template_set, options_set):
                self._parse_templates(
                    data[body_offset:set_end],
                    body_offset,
                    set_id == options_set,
                    is_ipfix,
                    exporter,
                    parsed,
                )
            else:
                parsed.reserved_sets += 1  # ids 2..255 (v9) / 4..255 (IPFIX): skipped
            position = set_end
        parsed.records = None if unknown_units else records

    def _parse_templates(
        self,
        body: bytes,
        body_offset: int,
        is_options: bool,
        is_ipfix: bool,
        exporter: ExporterId,
        parsed: _ParsedDatagram,
    ) -> None:
        set_id = (3 if is_options else 2) if is_ipfix else (1 if is_options else 0)
        memo_key = (parsed.version, parsed.domain, set_id, body)
        cached = self.templates.exporters.get(exporter)
        specs = cached.set_memo.get(memo_key) if cached is not None else None
        if specs is None:
            if is_ipfix:
                specs = ipfix.parse_template_set(body, body_offset, is_options)
            elif is_options:
                specs = netflow_v9.parse_options_template_flowset(body, body_offset)
            else:
                specs = netflow_v9.parse_template_flowset(body, body_offset)
            if parsed.memo is None:
                parsed.memo = []
            parsed.memo.append((memo_key, specs))
        if parsed.changes is None:
            parsed.changes = {}
        changes = parsed.changes
        limits = self.templates.limits
        layouts = self._layouts(exporter)
        for spec in specs:
            if not spec.fields:  # IPFIX withdrawal (RFC 7011 §8.1)
                self._withdraw(spec, layouts, parsed)
                continue
            if len(spec.fields) > limits.max_fields_per_template:
                raise MalformedTemplate(
                    f"template {spec.template_id} has {len(spec.fields)} fields, "
                    f"limit {limits.max_fields_per_template}",
                    body_offset,
                )
            key = (parsed.version, parsed.domain, spec.template_id)
            current = changes.get(key) or layouts.get(key)
            if current is not None and current.template == spec:
                changes[key] = current  # a refresh: keep the compiled layout
            else:
                changes[key] = self.templates.compile(spec)
        added = sum(1 for k, v in changes.items() if v is not None and k not in layouts)
        removed = sum(1 for k, v in changes.items() if v is None and k in layouts)
        self.templates.check_new_templates(exporter, added - removed)

    def _withdraw(
        self,
        spec: TemplateSpec,
        layouts: dict[TemplateKey, RecordLayout],
        parsed: _ParsedDatagram,
    ) -> None:
        changes = parsed.changes
        assert changes is not None  # created by _parse_templates
        if spec.template_id >= 256:
            changes[(parsed.version, parsed.domain, spec.template_id)] = None
            return
        # all templates (id 2) or all options templates (id 3) of this domain
        for key, layout in list(layouts.items()) + list(changes.items()):
            if (
                key[0] == parsed.version
                and key[1] == parsed.domain
                and layout is not None
                and layout.template.is_options == spec.is_options
            ):
                changes[key] = None

    # -- commit --------------------------------------------------------------------

    def _commit(self, parsed: _ParsedDatagram, exporter: ExporterId, received_at_ns: int) -> int:
        state = self._state(exporter)
        version, domain = parsed.version, parsed.domain
        defined = self.templates.commit(exporter, parsed.changes) if parsed.changes else None
        if parsed.memo:
            cache_state = self.templates.exporter(exporter)
            for memo_key, specs in parsed.memo:
                self.templates.remember_set(cache_state, memo_key, specs)
        self.stats.reserved_sets_skipped += parsed.reserved_sets
        records = 0
        # sets held from earlier datagrams first: their options records (sampling, clock)
        # govern this datagram's flows too
        if defined:
            records += self._release_held(exporter, state, defined)
        for layout, body, count, index in parsed.options or ():
            context = self._datagram_context(parsed.context, state, received_at_ns)
            records += self._apply_options(layout, body, count, index, context, state)
        context = self._datagram_context(parsed.context, state, received_at_ns)
        if parsed.staged:
            context_id = len(self._contexts)
            self._contexts.append(context)
            for layout, body, count, index in parsed.staged:
                self._stage(layout, version, state, body, count, index, context_id)
                records += count
        if parsed.held:
            for key, body in parsed.held:
                self.templates.hold(exporter, HeldSet(key, body, context, received_at_ns))
            if defined:  # a data set before its template in this same datagram (akvorado)
                records += self._release_held(exporter, state, defined)
        tracker = state.sequence(version, domain)
        if version == netflow_v9.VERSION:  # counts packets (some exporters: records)
            lost = tracker.observe(parsed.sequence, 1, parsed.records)
        else:  # IPFIX counts data records
            lost = tracker.observe(parsed.sequence, parsed.records)
        self._count(state, version, 0, lost, received_at_ns)
        return records

    def _datagram_context(
        self, header_context: tuple, state: ExporterState, received_at_ns: int
    ) -> tuple:
        version, domain = header_context[0], header_context[1]
        stream = (version, domain)
        return (
            version,
            domain,
            header_context[2],
            header_context[3],
            state.system_init_ns.get(stream, UNKNOWN_NS),
            received_at_ns,
            state.default_sampling.get(stream, 1),
            header_context[7],
            header_context[8],
        )

    def _add_context(self, context: tuple) -> int:
        self._contexts.append(context)
        return len(self._contexts) - 1

    def _stage(
        self,
        layout: RecordLayout,
        version: int,
        state: ExporterState,
        body: bytes,
        count: int,
        index: VarlenIndex | None,
        context_id: int,
    ) -> None:
        if count == 0:
            return
        pending = self._pending.get(layout)
        if pending is None:
            pending = self._pending[layout] = _Pending(state, version)
        pending.bodies.append(body)
        pending.counts.append(count)
        pending.contexts.append(context_id)
        if index is not None:
            pending.positions.append(index.positions)
        state.flow_records += count
        self.stats.flow_records += count
        self.stats.flow_records_by_version[version] += count

    def _apply_options(
        self,
        layout: RecordLayout,
        body: bytes,
        count: int,
        index: VarlenIndex | None,
        context: tuple,
        state: ExporterState,
    ) -> int:
        if count == 0:
            return 0
        raw = _decode_now(layout, body, count, index)
        context_array = ContextTable.from_tuples([context] * count)
        for record in options_records(
            raw, context_array, state, context[0], layout.template.template_id
        ):
            state.apply_options(record)
            if len(self._options_out) < MAX_PENDING_OPTIONS_RECORDS:
                self._options_out.append(record)
        self.stats.options_records += count
        return count

    def _release_held(
        self, exporter: ExporterId, state: ExporterState, defined: list[TemplateKey]
    ) -> int:
        layouts = self._layouts(exporter)
        records = 0
        for held in self.templates.release(exporter, defined):
            layout = layouts.get(held.key)
            if layout is None:
                continue
            try:
                _, body, count, index = _stage_set(layout, held.body, 0)
            except ParseError:
                self.stats.held_sets_undecodable += 1
                continue
            if layout.template.is_options:
                records += self._apply_options(layout, body, count, index, held.context, state)
            else:
                context_id = self._add_context(held.context)
                self._stage(layout, held.key[0], state, body, count, index, context_id)
                records += count
        return records

    def _count(
        self, state: ExporterState, version: int, records: int, lost: int, received_at_ns: int
    ) -> None:
        state.datagrams += 1
        state.last_seen_ns = max(state.last_seen_ns, received_at_ns)
        state.sequence_lost += lost
        self.stats.datagrams[version] += 1
        self.stats.sequence_lost += lost
        if records:
            state.flow_records += records
            self.stats.flow_records += records
            self.stats.flow_records_by_version[version] += records

    # -- output --------------------------------------------------------------------

    def flush(self) -> list[FlowBatch]:
        """Decode everything staged since the last flush, one batch per template.

        The staged state is taken first, so even a failure here (a bug: the collector
        counts it) cannot wedge later flushes.
        """
        if not self._pending:
            return []
        pending_sets, self._pending = self._pending, {}
        context_tuples, self._contexts = self._contexts, []
        contexts = ContextTable.from_tuples(context_tuples)
        batches: list[FlowBatch] = []
        for key, pending in pending_sets.items():
            counts = np.array(pending.counts, dtype=np.int64)
            context = contexts.take(np.repeat(np.array(pending.contexts, dtype=np.int64), counts))
            buffer = b"".join(pending.bodies)
            if isinstance(key, RecordLayout):
                raw = _decode_buffer(key, buffer, pending, int(counts.sum()))
                batches.append(assemble_flow_batch(raw, context, pending.state, pending.version))
            else:
                batches.append(assemble_v5_batch(buffer, context, pending.state))
        return batches

    def take_options_records(self) -> list[OptionsRecord]:
        """Options records decoded since the last call (bounded; for logs and the CLI)."""
        records, self._options_out = self._options_out, []
        return records

    def expire(self, now_ns: int) -> int:
        """Drop sets held longer than the limit for their template; return how many.

        ``feed_datagram`` does this with each datagram's time; a caller with quiet
        periods (the daemon's timer) calls it too.
        """
        return self.templates.expire_held(now_ns)

    def finish(self) -> None:
        """End of input (a capture file): confirm every open sequence gap as lost."""
        for state in self.exporters.values():
            for tracker in state.sequences.values():
                lost = tracker.flush()
                state.sequence_lost += lost
                self.stats.sequence_lost += lost


def _stage_set(
    layout: RecordLayout, body: bytes, body_offset: int
) -> tuple[RecordLayout, bytes, int, VarlenIndex | None]:
    """Check a data set against its template: (layout, record bytes, count, index)."""
    if layout.is_variable_length:
        index = layout.walk(body, body_offset)
        return layout, body, index.num_records, index
    size = layout.record_size
    if size == 0:
        return layout, b"", 0, None
    count = len(body) // size
    if count == 0 and any(body):
        raise MalformedSet(
            f"data set {layout.template.template_id} is {len(body)} bytes, shorter than "
            f"one record ({size})",
            body_offset,
        )
    used = count * size
    return layout, body if used == len(body) else body[:used], count, None


def _decode_now(
    layout: RecordLayout, body: bytes, count: int, index: VarlenIndex | None
) -> RawColumns:
    if index is None:
        return layout.decode_fixed(body, count)
    return layout.decode_variable(body, layout.rebase([(index.positions, 0)]), count)


def _decode_buffer(
    layout: RecordLayout, buffer: bytes, pending: _Pending, count: int
) -> RawColumns:
    if not layout.is_variable_length:
        return layout.decode_fixed(buffer, count)
    located, base = [], 0
    for body, positions in zip(pending.bodies, pending.positions, strict=True):
        located.append((positions, base))
        base += len(body)
    return layout.decode_variable(buffer, layout.rebase(located), count)


__all__ = ["DecoderStats", "DropReason", "FlowDecoder"]
