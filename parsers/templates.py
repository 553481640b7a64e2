"""All template state lives here: compiled templates per exporter, the sets held for
templates not yet seen, and the limits that keep a hostile sender from exhausting
memory.

Keys follow RFC 7011 §8 for UDP: a template belongs to one transport session (exporter
address and source port), one protocol version, one observation domain (v9: source id)
and one template id. Two exporters, or two domains of one exporter, may reuse ids freely
(Cisco and nProbe do).

The cache is an object the caller owns; the decoder changes it only when a whole
datagram has parsed (``stage`` / ``commit``), so a rejected datagram leaves no trace.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from parsers.errors import TemplateLimitExceeded
from parsers.events import TemplateSpec
from parsers.record_decoder import RecordLayout, compile_layout

#: Templates one exporter (address, port) may define across all its domains. Real
#: exporters use tens (VMware vDS ~13, Cisco IOS XR ~60); 4096 leaves room for nProbe
#: with many interfaces while bounding a hostile sender to a few MB.
MAX_TEMPLATES_PER_EXPORTER: Final = 4096
#: Templates of all exporters together (memory bound, ~2 kB each compiled).
MAX_TEMPLATES_TOTAL: Final = 65536
#: Transport sessions (address, port) holding templates or held sets. A sender spoofing
#: source addresses fills this before memory: new sessions are then refused, counted.
MAX_EXPORTERS: Final = 16384
#: Fields one template may have: 1024 is far above any device seen (YAF ~60).
MAX_FIELDS_PER_TEMPLATE: Final = 1024
#: Bytes of data sets held for unknown templates, per exporter and in all. Enough for
#: a few seconds of a busy exporter that restarted its template cycle.
HELD_BYTES_PER_EXPORTER: Final = 4 * 1024 * 1024
HELD_BYTES_TOTAL: Final = 64 * 1024 * 1024
#: A held set waits this long for its template; after that it is counted and dropped.
#: Exporters resend templates every 20 packets or ~60 s (Cisco's defaults).
HELD_SET_MAX_AGE_S: Final = 120
#: Distinct template-set byte strings remembered per exporter so that the template
#: refreshes most exporters send with every N datagrams cost a dict lookup, not a parse.
TEMPLATE_SET_MEMO_SIZE: Final = 64

TemplateKey = tuple[int, int, int]  # (version, observation domain, template id)
ExporterId = tuple[str, int]  # (address, source port)


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """The limits above, as one value a test or the daemon config can change."""

    max_templates_per_exporter: int = MAX_TEMPLATES_PER_EXPORTER
    max_templates_total: int = MAX_TEMPLATES_TOTAL
    max_exporters: int = MAX_EXPORTERS
    max_fields_per_template: int = MAX_FIELDS_PER_TEMPLATE
    held_bytes_per_exporter: int = HELD_BYTES_PER_EXPORTER
    held_bytes_total: int = HELD_BYTES_TOTAL
    held_set_max_age_ns: int = HELD_SET_MAX_AGE_S * 1_000_000_000


@dataclass(frozen=True, slots=True)
class HeldSet:
    """A data set whose template was unknown when it arrived."""

    key: TemplateKey
    body: bytes
    context: tuple  # the decoder's per-datagram context, opaque here
    received_at_ns: int


@dataclass(slots=True)
class ExporterTemplates:
    """One transport session's templates and held sets."""

    layouts: dict[TemplateKey, RecordLayout] = field(default_factory=dict)
    held: deque[HeldSet] = field(default_factory=deque)
    held_bytes: int = 0
    #: (version, domain, set id, set body) -> templates parsed from those exact bytes
    set_memo: dict[tuple[int, int, int, bytes], list[TemplateSpec]] = field(default_factory=dict)


@dataclass(slots=True)
class TemplateCacheStats:
    """Counters the collector exports; read-only for everyone but the cache."""

    templates_learned: int = 0
    templates_redefined: int = 0
    templates_withdrawn: int = 0
    held_sets: int = 0
    held_sets_released: int = 0
    held_sets_expired: int = 0
    held_sets_rejected: int = 0  # over the byte limits
    held_bytes: int = 0


class TemplateCache:
    """Compiled templates of every exporter, with limits and held sets."""

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits or TemplateLimits()
        self.exporters: dict[ExporterId, ExporterTemplates] = {}
        self.template_count = 0
        self.stats = TemplateCacheStats()
        self._oldest_held_ns: int | None = None

    def exporter(self, exporter: ExporterId) -> ExporterTemplates:
        """The exporter's state, created empty on first sight."""
        state = self.exporters.get(exporter)
        if state is None:
            state = self.exporters[exporter] = ExporterTemplates()
        return state

    def check_new_templates(self, exporter: ExporterId, added: int) -> None:
        """Raise before staging if ``added`` more template ids (net of the withdrawals in
        the same datagram; may be negative) would break a limit."""
        if added <= 0:
            return
        state = self.exporters.get(exporter)
        if state is None and len(self.exporters) >= self.limits.max_exporters:
            raise TemplateLimitExceeded(
                f"exporter {exporter[0]}:{exporter[1]} is new and {len(self.exporters)} "
                f"exporters already hold templates, limit {self.limits.max_exporters}"
            )
        have = len(state.layouts) if state else 0
        if have + added > self.limits.max_templates_per_exporter:
            raise TemplateLimitExceeded(
                f"exporter {exporter[0]}:{exporter[1]} would hold {have + added} templates, "
                f"limit {self.limits.max_templates_per_exporter}"
            )
        if self.template_count + added > self.limits.max_templates_total:
            raise TemplateLimitExceeded(
                f"{self.template_count + added} templates in all, "
                f"limit {self.limits.max_templates_total}"
            )

    def compile(self, template: TemplateSpec) -> RecordLayout:
        """Compile a template (pure; nothing is stored until ``commit``)."""
        return compile_layout(template)

    def commit(
        self,
        exporter: ExporterId,
        changes: dict[TemplateKey, RecordLayout | None],
    ) -> list[TemplateKey]:
        """Apply a parsed datagram's template changes; return keys newly (re)defined.

        ``None`` withdraws. Called only after the whole datagram parsed.
        """
        state = self.exporter(exporter)
        defined: list[TemplateKey] = []
        for key, layout in changes.items():
            old = state.layouts.get(key)
            if layout is None:
                if old is not None:
                    del state.layouts[key]
                    self.template_count -= 1
                    self.stats.templates_withdrawn += 1
                continue
            if old is None:
                self.template_count += 1
                self.stats.templates_learned += 1
            elif old.template != layout.template:
                self.stats.templates_redefined += 1
            state.layouts[key] = layout
            defined.append(key)
        self._forget_if_empty(exporter)
        return defined

    def _forget_if_empty(self, exporter: ExporterId) -> None:
        """An exporter with no templates and nothing held holds no place: sessions that
        only ever sent unknown data (or withdrew everything) do not count against
        ``max_exporters``."""
        state = self.exporters.get(exporter)
        if state is not None and not state.layouts and not state.held:
            del self.exporters[exporter]

    def remember_set(
        self,
        state: ExporterTemplates,
        memo_key: tuple[int, int, int, bytes],
        parsed: list[TemplateSpec],
    ) -> None:
        """Memoize a parsed template set (bounded; oldest forgotten first)."""
        if len(state.set_memo) >= TEMPLATE_SET_MEMO_SIZE:
            del state.set_memo[next(iter(state.set_memo))]
        state.set_memo[memo_key] = parsed

    # -- held sets ----------------------------------------------------------------

    def hold(self, exporter: ExporterId, held: HeldSet) -> bool:
        """Keep a set for a template not yet known; False if over the limits."""
        state = self.exporters.get(exporter)
        if state is None:
            if len(self.exporters) >= self.limits.max_exporters:
                self.stats.held_sets_rejected += 1
                return False
            state = self.exporter(exporter)
        size = len(held.body)
        if (
            state.held_bytes + size > self.limits.held_bytes_per_exporter
            or self.stats.held_bytes + size > self.limits.held_bytes_total
        ):
            self.stats.held_sets_rejected += 1
            return False
        state.held.append(held)
        if self._oldest_held_ns is None or held.received_at_ns < self._oldest_held_ns:
            self._oldest_held_ns = held.received_at_ns
        state.held_bytes += size
        self.stats.held_bytes += size
        self.stats.held_sets += 1
        return True

    def release(self, exporter: ExporterId, keys: list[TemplateKey]) -> list[HeldSet]:
        """Held sets whose template is now known, in arrival order."""
        state = self.exporters.get(exporter)
        if state is None or not state.held or not keys:
            return []
        wanted = set(keys)
        released = [h for h in state.held if h.key in wanted]
        if released:
            state.held = deque(h for h in state.held if h.key not in wanted)
            freed = sum(len(h.body) for h in released)
            state.held_bytes -= freed
            self.stats.held_bytes -= freed
            self.stats.held_sets_released += len(released)
            self._forget_if_empty(exporter)
        return released

    def expire_held(self, now_ns: int) -> int:
        """Drop held sets older than the age limit; return how many.

        Cheap when nothing is due: the oldest hold time is remembered, so the decoder
        can call this for every datagram.
        """
        cutoff = now_ns - self.limits.held_set_max_age_ns
        if self._oldest_held_ns is None or self._oldest_held_ns >= cutoff:
            return 0
        expired = 0
        oldest: int | None = None
        for exporter, state in list(self.exporters.items()):
            if not state.held:
                continue
            # not only the front: receive times can go backwards (clock steps, replays)
            keep = deque(h for h in state.held if h.received_at_ns >= cutoff)
            for held in state.held:
                if held.received_at_ns < cutoff:
                    state.held_bytes -= len(held.body)
                    self.stats.held_bytes -= len(held.body)
                    expired += 1
            state.held = keep
            for held in keep:
                if oldest is None or held.received_at_ns < oldest:
                    oldest = held.received_at_ns
            self._forget_if_empty(exporter)
        self._oldest_held_ns = oldest
        self.stats.held_sets_expired += expired
        return expired

    def held_set_count(self) -> int:
        return sum(len(state.held) for state in self.exporters.values())
