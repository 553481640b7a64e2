"""Exporter control (``--allow``) and hostile input: what is dropped is counted by
reason on the metrics endpoint, exactly, and everything else is stored."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from collector.metrics import DROP_REASONS
from tests.collector.exports import (
    flow_ids,
    ipfix_vds_datagrams,
    reference_table,
    row_multiset,
    stored_table,
    v5_datagrams,
)
from tests.collector.harness import RECEIVE_BUFFER, assert_finished, wait_for
from tests.corpus import file_datagrams, file_names

WAIT_S = 30.0


def _dropped(daemon, reason: str) -> float:
    return daemon.metric("flowcap_packets_dropped_total", reason=reason)


def test_allow_list_drops_and_counts_others(tmp_path: Path, flowcapd, exporters) -> None:
    daemon = flowcapd.start(tmp_path, "-b", "127.0.0.1", "--allow", "127.0.0.2/32")
    stranger, allowed = exporters("127.0.0.1"), exporters("127.0.0.2")
    stranger.send(v5_datagrams(0, 7), daemon.target)
    allowed.send(v5_datagrams(100_000, 5), daemon.target)
    wait_for(
        lambda: (
            daemon.metric("flowcap_flows_written_total") == 150
            and _dropped(daemon, "not_allowed") == 7
        ),
        WAIT_S,
        "150 flows written and 7 datagrams dropped as not allowed",
    )
    samples = daemon.scrape()
    assert samples[("flowcap_packets_received_total", (("version", "5"),))] == 12
    assert samples[("flowcap_flows_decoded_total", ())] == 150
    assert daemon.stop() == 0, daemon.stderr

    stored = stored_table(tmp_path)
    assert sorted(flow_ids(stored)) == list(range(100_000, 100_150))
    assert set(stored["exporter"].to_pylist()) == {0x7F000002}
    assert "127.0.0.1" in daemon.stderr and "not allowed" in daemon.stderr
    assert_finished(tmp_path)


def _corrupt_corpus_datagrams(rng: random.Random) -> list[bytes]:
    """Corpus datagrams (v5, v9, IPFIX) cut short at random offsets, and some with a
    flipped byte."""
    names = [n for n in file_names() if n.endswith((".dat", ".pcap"))]
    if not names:
        pytest.skip("shared corpus not found")
    payloads = [d.payload for name in names for d in file_datagrams(name)]
    chosen = rng.sample(payloads, 60)
    out = []
    for payload in chosen[:40]:
        out.append(payload[: rng.randrange(0, len(payload))])
    for payload in chosen[40:]:
        flipped = bytearray(payload)
        flipped[rng.randrange(len(flipped))] ^= 0xFF
        out.append(bytes(flipped))
    return out


def test_malformed_datagrams_are_counted_and_good_flows_stored(
    tmp_path: Path, flowcapd, exporters
) -> None:
    """Random bytes, empty datagrams, truncated and bit-flipped corpus datagrams,
    interleaved with good v5 and IPFIX: the daemon keeps serving, every good flow is
    stored, each drop is counted under the reason the decoder gives, and
    ``flowcap_flows_written_total`` equals the flows stored."""
    rng = random.Random(5)
    daemon = flowcapd.start(tmp_path, "-B", RECEIVE_BUFFER, "-b", "127.0.0.1")
    good, noise, corpus = exporters(), exporters(), exporters()
    good_v5 = v5_datagrams(0, 20)
    good_ipfix = ipfix_vds_datagrams(100_000, 20)
    random_bytes = [rng.randbytes(rng.randrange(1, 1500)) for _ in range(40)]
    random_bytes += [b"", b"\x00", b"\x00\x05", b"\x00\x0a" + bytes(14), b"\x00\x07" * 20]
    corrupt = _corrupt_corpus_datagrams(rng)

    sends = []
    good_payloads = good_v5 + good_ipfix
    bad = [(p, noise) for p in random_bytes] + [(p, corpus) for p in corrupt]
    rng.shuffle(bad)
    stream = [(p, good) for p in good_payloads]
    for item in bad:  # interleave, keeping each exporter's own order
        stream.insert(rng.randrange(len(stream) + 1), item)
    for payload, exporter in stream:
        exporter.send([payload], daemon.target)
        sends.append((payload, exporter.address))

    expected, drops = reference_table(sends)
    assert sum(drops.values()) >= len(random_bytes)  # the noise is noise
    wait_for(
        lambda: daemon.metric("flowcap_flows_written_total") == expected.num_rows,
        WAIT_S,
        f"{expected.num_rows} flows written",
    )
    samples = daemon.scrape()
    counted = Counter(
        {
            labels[0][1]: value
            for (name, labels), value in samples.items()
            if name == "flowcap_packets_dropped_total"
        }
    )
    assert set(counted) >= set(DROP_REASONS)
    assert {r: n for r, n in counted.items() if n} == dict(drops)
    assert counted["internal_error"] == 0
    received = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "flowcap_packets_received_total"
    }
    assert sum(received.values()) == len(stream)
    assert samples[("flowcap_flows_decoded_total", ())] == expected.num_rows
    assert samples[("flowcap_kernel_drops_total", ())] == 0
    assert samples[("flowcap_flows_queue_dropped_total", ())] == 0
    assert daemon.stop() == 0, daemon.stderr

    stored = stored_table(tmp_path)
    assert stored.num_rows == expected.num_rows
    assert row_multiset(stored) == row_multiset(expected)
    good_ids = set(range(600)) | set(range(100_000, 100_320))
    assert good_ids <= set(
        flow_ids(stored.filter(pc.equal(stored["exporter_port"], good.address[1])))
    )
    assert "Traceback" not in daemon.stderr
    assert_finished(tmp_path)
