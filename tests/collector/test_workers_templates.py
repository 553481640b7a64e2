"""``--workers N`` on one port (SO_REUSEPORT) and templates persisted across restarts."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from storage.naming import parse_name
from storage.reader import flow_files as reader_flow_files
from tests.collector.exports import (
    flow_ids,
    ipfix_vds_datagrams,
    reference_table,
    row_multiset,
    stored_table,
    totals,
    v5_datagrams,
)
from tests.collector.harness import RECEIVE_BUFFER, assert_finished, flow_files, wait_for

WAIT_S = 30.0


@pytest.mark.parametrize("workers", [1, 2])
def test_templates_survive_a_restart(tmp_path: Path, flowcapd, exporters, workers: int) -> None:
    """Run 1 learns the vDS templates; run 2 gets data sets only (as from a vDS that
    re-sends templates rarely) and decodes them from the first datagram: no held set is
    left undecoded at the stop, so the count is exact."""
    senders = [exporters() for _ in range(1 if workers == 1 else 8)]
    args = ("-B", RECEIVE_BUFFER, "-b", "127.0.0.1", "--workers", str(workers))
    sends = []

    daemon = flowcapd.start(tmp_path, *args, metrics=False)
    for index, sender in enumerate(senders):
        payloads = ipfix_vds_datagrams(index * 100_000, 3, with_templates=True)
        sender.send(payloads, daemon.target)
        sends += [(p, sender.address) for p in payloads]
    assert daemon.stop() == 0, daemon.stderr
    assert len(flow_ids(stored_table(tmp_path))) == len(senders) * 3 * 16

    daemon = flowcapd.start(tmp_path, *args, metrics=False)
    if workers == 1:  # logged before the listening line (workers log it in their time)
        assert "restored 2 templates" in daemon.stderr
    for index, sender in enumerate(senders):
        payloads = ipfix_vds_datagrams(
            index * 100_000 + 50_000, 4, with_templates=False, sequence_start=48
        )
        sender.send(payloads, daemon.target)
        sends += [(p, sender.address) for p in payloads]
    assert daemon.stop() == 0, daemon.stderr

    stored = stored_table(tmp_path)
    expected = set()
    for index in range(len(senders)):
        expected |= set(range(index * 100_000, index * 100_000 + 48))
        expected |= set(range(index * 100_000 + 50_000, index * 100_000 + 50_000 + 64))
    ids = flow_ids(stored)
    assert len(ids) == len(expected) and set(ids) == expected
    reference, _ = reference_table(sends)
    assert row_multiset(stored) == row_multiset(reference)
    assert_finished(tmp_path)


def test_two_workers_many_exporters(tmp_path: Path, flowcapd, exporters) -> None:
    """32 exporters (source ports) spread over two workers by the kernel: every flow
    stored, each worker wrote its own files, the reader takes them together, and the
    parent's metrics endpoint sums both workers."""
    senders = [exporters() for _ in range(32)]
    daemon = flowcapd.start(tmp_path, "-B", RECEIVE_BUFFER, "-b", "127.0.0.1", "--workers", "2")
    assert re.search(r"\(2 workers", daemon.stderr)
    per_sender = 10
    for index, sender in enumerate(senders):
        sender.send(v5_datagrams(index * 1000, per_sender, engine_id=index), daemon.target)
    total = len(senders) * per_sender * 30
    wait_for(
        lambda: daemon.metric("flowcap_flows_written_total") == total,
        WAIT_S,
        f"the metrics endpoint to count {total} flows written",
    )
    samples = daemon.scrape()
    assert samples[("flowcap_packets_received_total", (("version", "5"),))] == 320
    assert samples[("flowcap_flows_decoded_total", ())] == total
    assert samples[("flowcap_workers", ())] == 2
    assert samples[("flowcap_kernel_drops_total", ())] == 0
    assert daemon.stop() == 0, daemon.stderr

    files = flow_files(tmp_path)
    workers = {parse_name(f.name).worker for f in files}  # type: ignore[union-attr]
    assert workers == {0, 1}
    assert {s.path for s in reader_flow_files([tmp_path])} == set(files)
    stored = stored_table(tmp_path)
    expected = {i * 1000 + j for i in range(32) for j in range(per_sender * 30)}
    ids = flow_ids(stored)
    assert len(ids) == total and set(ids) == expected
    packets = sum(i % 997 + 1 for i in expected)
    assert totals(stored) == (total, packets, packets * 100)
    assert_finished(tmp_path)


def test_stop_right_after_start_with_workers(tmp_path: Path, flowcapd, exporters) -> None:
    """SIGTERM as soon as the parent says it listens, while its workers may still be
    starting: the signal waits for them (it killed a starting worker, or the parent
    before it forwarded signals, orphaning the workers), exit 0, every flow kept."""
    senders = [exporters() for _ in range(8)]
    expected: set[int] = set()
    for run in range(6):
        daemon = flowcapd.start(tmp_path, "-b", "127.0.0.1", "--workers", "2", metrics=False)
        for index, sender in enumerate(senders):
            first = run * 100_000 + index * 1000
            sender.send(v5_datagrams(first, 2), daemon.target)
            expected |= set(range(first, first + 60))
        assert daemon.stop() == 0, daemon.stderr
    ids = flow_ids(stored_table(tmp_path))
    assert len(ids) == len(expected) and set(ids) == expected
    assert_finished(tmp_path)


def test_kill9_of_the_parent_stops_its_workers(tmp_path: Path, flowcapd, exporters) -> None:
    """``kill -9`` of the parent alone (not its process group): the workers must not
    live on as orphans holding the port and the spools; they stop as on SIGTERM, and the
    next start finds every flow."""
    senders = [exporters() for _ in range(8)]
    daemon = flowcapd.start(tmp_path, "-b", "127.0.0.1", "--workers", "2")
    for index, sender in enumerate(senders):
        sender.send(v5_datagrams(index * 1000, 3), daemon.target)
    wait_for(
        lambda: daemon.metric("flowcap_flows_written_total") == 720, WAIT_S, "720 flows written"
    )
    daemon.kill9()
    daemon.wait_exit()  # fails while a worker keeps stderr open
    restarted = flowcapd.start(tmp_path, "-b", "127.0.0.1", "--workers", "2", metrics=False)
    assert restarted.stop() == 0, restarted.stderr
    ids = flow_ids(stored_table(tmp_path))
    assert sorted(ids) == sorted(i * 1000 + j for i in range(8) for j in range(90))
    assert_finished(tmp_path)


def test_a_killed_worker_is_restarted_and_its_spool_finalized(
    tmp_path: Path, flowcapd, exporters
) -> None:
    """``kill -9`` of one worker: the parent restarts it on the same socket (datagrams
    queued meanwhile are read), and at the stop no spool is left behind."""
    senders = [exporters() for _ in range(8)]
    daemon = flowcapd.start(tmp_path, "-b", "127.0.0.1", "--workers", "2")
    for index, sender in enumerate(senders):
        sender.send(v5_datagrams(index * 1000, 2), daemon.target)
    wait_for(
        lambda: daemon.metric("flowcap_flows_written_total") == 480, WAIT_S, "480 flows written"
    )
    workers = wait_for(
        lambda: len(daemon.worker_pids()) == 2 and daemon.worker_pids(), WAIT_S, "2 workers"
    )
    os.kill(workers[0], signal.SIGKILL)
    daemon.wait_line(r"worker \d exited with -9; restarting it")
    for index, sender in enumerate(senders):
        sender.send(v5_datagrams(index * 1000 + 500, 2), daemon.target)
    assert daemon.stop() == 0, daemon.stderr
    ids = flow_ids(stored_table(tmp_path))
    expected = {i * 1000 + j for i in range(8) for j in [*range(60), *range(500, 560)]}
    assert len(ids) == len(expected) and set(ids) == expected
    assert_finished(tmp_path)


def _templates_saved(flow_dir: Path, count: int) -> bool:
    """Whether the persisted snapshots hold ``count`` templates (a snapshot appears by
    rename, so one that exists is whole)."""
    held = 0
    for path in (flow_dir / ".flowcapd").glob("templates.w*.json"):
        snapshot = json.loads(path.read_text())
        held += sum(len(e["templates"]) for e in snapshot.get("exporters", []))
    return held >= count


def test_templates_survive_kill9(tmp_path: Path, flowcapd, exporters) -> None:
    """Templates learned are persisted while running (not only at a clean stop): after
    ``kill -9`` the next run still decodes data-only datagrams from the first one."""
    sender = exporters()
    daemon = flowcapd.start(tmp_path, "-b", "127.0.0.1", metrics=False)
    sender.send(ipfix_vds_datagrams(0, 2), daemon.target)
    wait_for(lambda: _templates_saved(tmp_path, 2), WAIT_S, "both templates persisted")
    daemon.kill9()

    daemon = flowcapd.start(tmp_path, "-b", "127.0.0.1", metrics=False)
    sender.send(
        ipfix_vds_datagrams(50_000, 3, with_templates=False, sequence_start=32), daemon.target
    )
    assert daemon.stop() == 0, daemon.stderr
    ids = set(flow_ids(stored_table(tmp_path)))
    assert set(range(50_000, 50_048)) <= ids  # the second run's flows, every one
    assert ids <= set(range(32)) | set(range(50_000, 50_048))
    assert_finished(tmp_path)
