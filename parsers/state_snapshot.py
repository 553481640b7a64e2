"""The decoder's learned state as plain JSON-able data, so templates survive restarts.

A vDS resends its templates rarely; without them the first minutes after a restart
would be undecodable. The collector persists ``snapshot(decoder)`` (atomically) and
feeds it back with ``restore`` at start. Only what the exporters told us is kept:
templates, and the sampling and system-init times their options records announced.
Pure data in, pure data out: the file I/O is the collector's.
"""

from __future__ import annotations

from typing import Any, Final

from parsers.decoder import FlowDecoder
from parsers.events import FieldSpec, TemplateSpec

SNAPSHOT_FORMAT: Final = 1


def snapshot(decoder: FlowDecoder) -> dict[str, Any]:
    """Templates and exporter facts, as dicts, lists, strings and ints."""
    exporters: dict[tuple[str, int], dict[str, Any]] = {}

    def entry(exporter: tuple[str, int]) -> dict[str, Any]:
        if exporter not in exporters:
            exporters[exporter] = {
                "address": exporter[0],
                "port": exporter[1],
                "templates": [],
                "default_sampling": [],
                "samplers": [],
                "system_init_ns": [],
            }
        return exporters[exporter]

    for exporter, cached in decoder.templates.exporters.items():
        for (version, domain, template_id), layout in sorted(cached.layouts.items()):
            template = layout.template
            entry(exporter)["templates"].append(
                {
                    "version": version,
                    "domain": domain,
                    "id": template_id,
                    "options": template.is_options,
                    "scope_fields": template.scope_field_count,
                    "fields": [[f.pen, f.element_id, f.length] for f in template.fields],
                }
            )
    for exporter, state in decoder.exporters.items():
        if not (state.default_sampling or state.samplers or state.system_init_ns):
            continue
        item = entry(exporter)
        item["default_sampling"] = [[v, d, n] for (v, d), n in state.default_sampling.items()]
        item["samplers"] = [[v, d, s, n] for (v, d, s), n in state.samplers.items()]
        item["system_init_ns"] = [[v, d, t] for (v, d), t in state.system_init_ns.items()]
    return {"format": SNAPSHOT_FORMAT, "exporters": list(exporters.values())}


def _ints(row: object, count: int) -> list[int]:
    if not isinstance(row, list) or len(row) != count or not all(isinstance(v, int) for v in row):
        raise ValueError(f"expected {count} integers, got {row!r}")
    return row


def restore(decoder: FlowDecoder, data: dict[str, Any]) -> int:
    """Load a snapshot into a fresh decoder; return the templates restored.

    Raises ``ValueError`` on anything malformed, before changing the decoder.
    """
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise ValueError("not a flowcap template snapshot (format 1)")
    plan: list[tuple[tuple[str, int], dict, list[tuple[tuple[int, int, int], TemplateSpec]]]] = []
    for item in data.get("exporters", []):
        if not isinstance(item, dict):
            raise ValueError("exporter entry is not an object")
        address, port = item.get("address"), item.get("port")
        if not isinstance(address, str) or not isinstance(port, int):
            raise ValueError(f"bad exporter {address!r}:{port!r}")
        templates = []
        for t in item.get("templates", []):
            fields = tuple(FieldSpec(*_ints(f, 3)) for f in t["fields"])
            version, domain, template_id, scope = _ints(
                [t["version"], t["domain"], t["id"], t["scope_fields"]], 4
            )
            if not fields or not 0 <= scope <= len(fields):
                raise ValueError(f"template {template_id}: bad fields")
            spec = TemplateSpec(template_id, fields, scope, bool(t["options"]))
            templates.append(((version, domain, template_id), spec))
        plan.append(((address, port), item, templates))
    restored = 0
    for exporter, item, templates in plan:
        changes = {key: decoder.templates.compile(spec) for key, spec in templates}
        if changes:
            decoder.templates.check_new_templates(exporter, len(changes))
            decoder.templates.commit(exporter, changes)
            restored += len(changes)
        state = decoder.exporter_state(exporter)
        for v, d, n in (_ints(r, 3) for r in item.get("default_sampling", [])):
            state.default_sampling[(v, d)] = n
        for v, d, s, n in (_ints(r, 4) for r in item.get("samplers", [])):
            state.samplers[(v, d, s)] = n
        for v, d, t in (_ints(r, 3) for r in item.get("system_init_ns", [])):
            state.system_init_ns[(v, d)] = t
    return restored
