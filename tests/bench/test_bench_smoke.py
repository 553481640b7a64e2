"""``python -m bench decode --quick`` runs and flowcap decodes every generated flow.

Correctness only: speed is measured in ``bench/``, never asserted in a test (style §7).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.datagrams import GENERATORS, VDS_IPV4_FIELDS, ipfix_template_set
from parsers import ipfix
from tests.corpus import require_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = tmp_path_factory.mktemp("bench") / "x.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "decode", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "scenario" in done.stdout  # the table
    return json.loads(output.read_text())


def test_every_scenario_measured_with_positive_numbers(quick_results):
    scenarios = {s["name"]: s for s in quick_results["scenarios"]}
    assert set(scenarios) == set(GENERATORS)
    for name, s in scenarios.items():
        assert s["datagrams"] > 0 and s["flows_generated"] > 0, name
        flowcap = s["flowcap"]
        assert flowcap["median_flows_per_s"] > 0, name
        assert flowcap["best_flows_per_s"] >= flowcap["median_flows_per_s"], name
        assert all(run["elapsed_s"] > 0 for run in flowcap["runs"]), name
        peer = s["netflow"]
        # the netflow package either decoded the datagrams or its failure is recorded
        assert peer["error"] or peer["median_flows_per_s"] > 0, name


def test_flowcap_decodes_every_generated_flow(quick_results):
    for s in quick_results["scenarios"]:
        flowcap = s["flowcap"]
        assert flowcap["problem"] is None, (s["name"], flowcap["problem"])
        assert flowcap["correct"] is True
        assert flowcap["flows_decoded"] == s["flows_generated"], s["name"]


def test_peer_decodes_netflow_v5_and_v9(quick_results):
    scenarios = {s["name"]: s for s in quick_results["scenarios"]}
    for name in ("v5", "v9"):
        peer = scenarios[name]["netflow"]
        assert peer["error"] is None, peer["error"]
        assert peer["flows_decoded"] == peer["flows_generated"], name


def test_machine_info_recorded(quick_results):
    machine = quick_results["machine"]
    for key in ("python", "numpy", "pyarrow", "cpu_model", "nproc"):
        assert machine[key], key


def test_generation_is_deterministic():
    for generate in GENERATORS.values():
        first, second = generate(30, 7), generate(30, 7)
        assert [d.payload for d in first.datagrams] == [d.payload for d in second.datagrams]


@pytest.mark.corpus
def test_vds_template_is_the_one_vmware_sends():
    """Our vDS template equals template 264 of the real vDS capture."""
    capture = require_corpus() / "logstash-codec-netflow" / "ipfix_test_vmware_vds_tpl.dat"
    data = capture.read_bytes()
    templates = {}
    position = ipfix.HEADER_SIZE
    while position < len(data):
        set_id, length = ipfix.SET_HEADER_STRUCT.unpack_from(data, position)
        body = data[position + 4 : position + length]
        for spec in ipfix.parse_template_set(body, position + 4, set_id == 3):
            templates[spec.template_id] = spec
        position += length
    ours = ipfix_template_set(VDS_IPV4_FIELDS)
    (spec,) = ipfix.parse_template_set(ours[4:], 4, is_options=False)
    assert spec == templates[264]
