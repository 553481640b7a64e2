"""``bench/bench_storage.py`` on a few flows: it stores every flow both ways and says so.

Correctness only: sizes and speed are the benchmark's to report, never asserted here.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bench import bench_storage
from parsers.decoder import FlowDecoder


def test_generated_datagrams_decode_to_the_generated_flows():
    flows = bench_storage.generate_flows(3000, bench_storage.BEGIN_MS, 10_000.0, seed=4)
    messages = bench_storage.build_datagrams(flows)
    assert all(len(payload) <= bench_storage.UDP_PAYLOAD_BYTES for payload, _ in messages)
    decoder = FlowDecoder()
    for payload, received_ns in messages:
        decoder.feed_datagram(payload, ("192.0.2.10", 2055), received_ns)
    batches = decoder.flush()
    assert sum(b.num_rows for b in batches) == 3000
    assert decoder.stats.sequence_lost == 0
    packets = sum(int(np.sum(b.columns["packets"])) for b in batches)
    assert packets == int(flows["packets"].astype(np.uint64).sum())
    assert len({frozenset(b.columns) for b in batches}) == 2  # IPv4 and IPv6 templates


def test_bench_runs_and_both_stores_keep_every_flow(tmp_path):
    if not (shutil.which("nfcapd") and shutil.which("nfdump")):
        pytest.skip("nfcapd/nfdump not installed (Debian package nfdump)")
    output = tmp_path / "storage.json"
    status = bench_storage.main(["--flows", "20000", "--output", str(output)])
    results = json.loads(output.read_text())["results"]
    assert status == 0
    assert results["flowcap"]["flows_stored"] == 20000
    assert results["nfcapd"]["lz4"]["flows_stored"] == 20000
    assert results["flowcap"]["packets_stored"] == results["packets"]
    assert results["nfcapd"]["lz4"]["packets_stored"] == results["packets"]
    assert results["flowcap"]["bytes_per_flow"] > 0
