"""``python -m bench query --quick`` runs, and nfdump and flowq see the same flows.

Correctness only: speed is measured in ``bench/``, never asserted in a test (style §7).
Needs nfcapd and nfdump; the dataset is built in a temporary directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_query import QUERIES

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("nfcapd") is None or shutil.which("nfdump") is None,
    reason="nfcapd / nfdump not installed",
)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = tmp_path_factory.mktemp("bench-query")
    output = workdir / "query.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "query", "--quick", "--data-dir", str(workdir / "data"),
         "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "query" in done.stdout and "ratio" in done.stdout  # the table
    return json.loads(output.read_text())["results"]


def test_both_stores_hold_every_generated_flow(quick_results):
    dataset = quick_results["dataset"]
    expected = dataset["expected"]
    assert expected["flows"] == dataset["flows"] > 0
    for store in ("nfcapd", "flowcap"):
        for key in ("flows", "packets", "bytes"):
            assert dataset[store][key] == expected[key], (store, key)


def test_every_query_runs_in_both_tools(quick_results):
    assert [q["name"] for q in quick_results["queries"]] == [q.name for q in QUERIES]
    for query in quick_results["queries"]:
        for tool in ("nfdump", "flowq"):
            assert query[tool]["error"] is None, (query["name"], tool, query[tool]["error"])
            assert query[tool]["best_s"] > 0 and query[tool]["max_rss_mb"] > 0


def test_both_tools_see_the_same_flow_count(quick_results):
    flows = quick_results["dataset"]["flows"]
    for query in quick_results["queries"]:
        seen = query["answers"]["flows_seen"]
        assert seen["nfdump"] == seen["flowq"], (query["name"], seen)
        if query["name"] in ("summary", "top-srcip-bytes", "top-dstport", "aggregate",
                             "dump-csv"):  # fmt: skip
            assert seen["flowq"] == flows, query["name"]


def test_selective_filter_and_top_talkers_agree(quick_results):
    queries = {q["name"]: q for q in quick_results["queries"]}
    for name in ("filter-csv", "top-srcip-bytes", "filtered-top"):
        assert queries[name]["answers"]["agree"], queries[name]["answers"]["problems"]


def test_cached_dataset_is_reused(tmp_path):
    """A second run on the same data directory times queries only."""
    data = tmp_path / "data"
    command = [sys.executable, "-m", "bench", "query", "--quick", "--data-dir", str(data),
               "--only", "summary", "--output", str(tmp_path / "q.json")]  # fmt: skip
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "cached dataset" in again.stderr
    assert "generating" not in again.stderr
