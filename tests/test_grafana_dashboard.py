"""grafana/flowcap-dashboard.json: a dashboard Grafana imports, whose every query names
metrics flowcapd really exports.

The exported names come from the metrics collector of a live ``FlowCollector`` (the
same ``collect()`` the endpoint serves), never from a list written here, so a renamed
or dropped metric fails this test until the dashboard follows.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import uvloop

from collector.config import Config
from collector.metrics import FlowcapMetrics
from collector.worker import FlowCollector

DASHBOARD = Path(__file__).resolve().parent.parent / "grafana" / "flowcap-dashboard.json"
METRIC_NAME = re.compile(r"\bflowcap_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _exported(flow_dir: Path) -> tuple[set[str], set[str]]:
    """(sample names a query may use, histogram family names) of a live collector."""

    async def collect() -> list:
        collector = FlowCollector(Config(flow_dir=flow_dir, port=0, bind="127.0.0.1"))
        await collector.start()
        try:
            metrics = FlowcapMetrics(
                collector.stats_snapshot, collector.socket_inodes, 1, "test", flow_dir
            )
            return list(metrics.collect())
        finally:
            await asyncio.wait_for(collector.stop(), 30)

    names: set[str] = set()
    histograms: set[str] = set()
    for family in uvloop.run(collect()):
        if family.type == "histogram":
            histograms.add(family.name)
        elif family.type == "counter":
            names.add(f"{family.name}_total")
        else:
            names.add(family.name)
    return names, histograms


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _expressions(dashboard: dict) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard(dashboard: dict) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["title"], panel
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_query_names_metrics_flowcapd_exports(dashboard: dict, tmp_path: Path) -> None:
    names, histograms = _exported(tmp_path)
    assert "flowcap_packets_received_total" in names  # the discovery itself works
    used: set[str] = set()
    unknown = []
    for expr in _expressions(dashboard):
        for name in METRIC_NAME.findall(expr):
            base = next(
                (name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None
            )
            if name in names:
                used.add(name)
            elif base in histograms:
                used.add(base)
            else:
                unknown.append((name, expr))
    assert not unknown, f"queries name metrics flowcapd does not export: {unknown}"
    # what the dashboard is for (issue 5): each of these is shown somewhere
    assert {
        "flowcap_packets_received_total",
        "flowcap_flows_decoded_by_version_total",
        "flowcap_packets_dropped_total",
        "flowcap_kernel_drops_total",
        "flowcap_exporter_packets_decoded_total",
        "flowcap_exporter_flows_decoded_total",
        "flowcap_exporter_last_seen_timestamp_seconds",
        "flowcap_templates",
        "flowcap_held_sets",
        "flowcap_spool_backlog_rows",
        "flowcap_write_duration_seconds",
        "flowcap_parquet_files_written_total",
        "flowcap_parquet_written_bytes_total",
        "flowcap_flow_dir_free_bytes",
    } <= used


def test_queries_are_balanced(dashboard: dict) -> None:
    """A cheap guard against a typo Grafana would only show as a panel error."""
    pairs = {")": "(", "]": "[", "}": "{"}
    for expr in _expressions(dashboard):
        stack = []
        for char in re.sub(r'"[^"]*"', '""', expr):
            if char in "([{":
                stack.append(char)
            elif char in pairs:
                assert stack and stack.pop() == pairs[char], expr
        assert not stack, expr


def test_queries_parse_with_promtool(dashboard: dict, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Prometheus) is not installed")
    rules = [
        {
            "record": f"flowcap:dashboard_query_{index}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for index, expr in enumerate(_expressions(dashboard))
    ]
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
