"""``flowcapd --read FILE... -l DIR``: captures through the same pipeline into the same
files, checked against ``python -m parsers`` on the same files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import pytest

from parsers.capture import read_capture
from tests.collector.exports import reference_table, row_multiset, stored_table, totals
from tests.collector.harness import FLOWCAPD, assert_finished, flow_files
from tests.corpus import corpus_dir, require_corpus

#: pcaps (one with v5 and v9 from two exporters, one with IPv6 exporters and
#: MPLS/VRF fields) and raw dumps (the VMware vDS set, 12 concatenated v5 messages)
CAPTURES = (
    "graylog-plugin-netflow/nprobe-netflow9.pcap",
    "graylog-plugin-netflow/nprobe-netflow9-3.pcap",
    "pmacct/111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources/traffic-00.pcap",
    "akvorado/data+templates.pcap",
    "logstash-codec-netflow/ipfix_test_vmware_vds_tpl.dat",
    "logstash-codec-netflow/ipfix_test_vmware_vds_data264.dat",
    "logstash-codec-netflow/ipfix_test_vmware_vds_data266.dat",
    "logstash-codec-netflow/ipfix_test_vmware_vds_data266_267.dat",
    "logstash-codec-netflow/netflow5.dat",
)
RAW_EXPORTER = ("192.0.2.1", 2055)  # both tools' identity for raw dumps
TIMEOUT_S = 60.0


@pytest.fixture
def captures(tmp_path: Path) -> list[Path]:
    """The corpus captures, plus one pcap rewritten as pcapng (the corpus has none)."""
    directory = require_corpus()
    paths = [directory / name for name in CAPTURES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"corpus files missing: {missing}")
    pcapng = tmp_path / "nprobe-netflow9-3.pcapng"
    with open(paths[1], "rb") as source, open(pcapng, "wb") as target:
        reader = dpkt.pcap.Reader(source)
        writer = dpkt.pcapng.Writer(target, linktype=reader.datalink())
        for timestamp, frame in reader:
            writer.writepkt(frame, ts=timestamp)
    return [*paths, pcapng]


def _python_m_parsers(paths: list[Path]) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "parsers", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def _read(paths: list[Path], flow_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FLOWCAPD), "--read", *map(str, paths), "-l", str(flow_dir)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_read_captures_like_python_m_parsers(tmp_path: Path, captures: list[Path]) -> None:
    flow_dir = tmp_path / "flows"
    started_ns = time.time_ns()
    result = _read(captures, flow_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    rows = _python_m_parsers(captures)
    stored = stored_table(flow_dir)
    assert stored.num_rows == len(rows) > 1000
    assert totals(stored) == (
        len(rows),
        sum(r["packets"] for r in rows),
        sum(r["bytes"] for r in rows),
    )
    # column for column: the same datagrams, at the capture's times, to one decoder
    sends = []
    for path in captures:
        for datagram in read_capture(path.read_bytes(), raw_source=RAW_EXPORTER):
            sends.append((datagram.payload, datagram.source, datagram.captured_at_ns or None))
    expected, _ = reference_table(sends)
    assert row_multiset(stored) == row_multiset(expected)
    # flows of the pcaps are filed by capture time, raw dumps by the time of reading
    received = stored["time_received"].cast("int64").to_pylist()
    assert min(received) < 1_600_000_000_000  # the 2017 captures
    assert max(received) >= started_ns // 1_000_000
    assert len(flow_files(flow_dir)) > 1
    assert_finished(flow_dir)


def test_read_unreadable_file_exits_1(tmp_path: Path) -> None:
    """A missing file, a directory and a cut-off pcap are reported, one line each; the
    readable file is still ingested; exit 1."""
    good = corpus_dir() / CAPTURES[1]
    if not good.is_file():
        pytest.skip("shared corpus not found")
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(good.read_bytes()[:5000])
    missing = tmp_path / "missing.pcap"
    flow_dir = tmp_path / "flows"

    result = _read([missing, good, tmp_path, cut], flow_dir)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 3, result.stderr
    assert str(missing) in errors[0] and "No such file" in errors[0]
    assert str(tmp_path) in errors[1]
    assert str(cut) in errors[2]
    assert "Traceback" not in result.stderr
    rows = _python_m_parsers([good])
    assert stored_table(flow_dir).num_rows >= len(rows)
    assert_finished(flow_dir)
