"""The Prometheus endpoint, exactly: known traffic into a real ``flowcapd`` (one worker
and two), the real endpoint scraped and parsed with prometheus_client's parser, every
number checked against what was sent. Plus the exporter-label cap, the merging of
worker snapshots and the kernel-drop reading, in process."""

from __future__ import annotations

import platform
import signal
import socket
import time
from collections import Counter
from importlib.metadata import version as package_version
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bench.datagrams import V9_CISCO_FIELDS, record_struct, v9_template_flowset
from collector.metrics import DROP_REASONS, GAUGES, FlowcapMetrics, kernel_drops, socket_inode
from collector.worker_stats import (
    GAUGE_KEYS,
    LATENCY_BUCKETS_S,
    MAX_EXPORTER_LABELS,
    OTHER_EXPORTER,
    ExporterLabels,
    WorkerReports,
    histogram_snapshot,
    merge_snapshots,
    write_histogram,
)
from parsers import ipfix, netflow_v5, netflow_v9
from tests.collector.exports import ipfix_vds_datagrams, v5_datagrams
from tests.collector.harness import (
    RECEIVE_BUFFER,
    assert_finished,
    flow_files,
    one_day_interval,
    wait_for,
)

WAIT_S = 30.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

V9_TEMPLATE_ID = 264
V9_RECORD = record_struct(V9_CISCO_FIELDS)


# -- traffic ----------------------------------------------------------------------------


def v9_datagrams(datagrams: int, records: int) -> list[bytes]:
    """NetFlow v9 messages of ``records`` flows each, the first one carrying the
    template; sequence numbers count packets (0, 1, 2, …) as IOS does."""
    uptime_ms = 86_400_000
    out = []
    for d in range(datagrams):
        body = b"".join(
            V9_RECORD.build(
                {
                    "sourceIPv4Address": 0x0A090000 + d * records + r,
                    "destinationIPv4Address": 0xC0A80001,
                    "sourceTransportPort": 1024 + r,
                    "destinationTransportPort": 53,
                    "protocolIdentifier": 17,
                    "ipClassOfService": 0,
                    "tcpControlBits": 0,
                    "ingressInterface": 1,
                    "egressInterface": 2,
                    "packetDeltaCount": 1,
                    "octetDeltaCount": 80,
                    "flowStartSysUpTime": uptime_ms - 2000,
                    "flowEndSysUpTime": uptime_ms - 1000,
                    "bgpSourceAsNumber": 0,
                    "bgpDestinationAsNumber": 0,
                    "sourceIPv4PrefixLength": 24,
                    "destinationIPv4PrefixLength": 24,
                    "ipNextHopIPv4Address": 0,
                    "flowDirection": 0,
                }
            )
            for r in range(records)
        )
        body += bytes(-(4 + len(body)) % 4)  # RFC 3954 §5.3 padding
        flowsets = ipfix.SET_HEADER.build({"set_id": V9_TEMPLATE_ID, "length": 4 + len(body)})
        flowsets += body
        count = records
        if d == 0:
            flowsets = v9_template_flowset(V9_CISCO_FIELDS, V9_TEMPLATE_ID) + flowsets
            count += 1
        header = netflow_v9.V9_HEADER.build(
            {
                "version": netflow_v9.VERSION,
                "count": count,
                "sys_uptime_ms": uptime_ms,
                "unix_secs": int(time.time()),
                "sequence": d,
                "source_id": 0,
            }
        )
        out.append(header + flowsets)
    return out


def malformed_datagrams() -> list[tuple[str, str, bytes]]:
    """Datagrams the decoder must refuse: (the drop reason it gives, the version label
    the datagram is received under, the datagram)."""
    v5 = v5_datagrams(900_000, 1)[0]
    bad_set = ipfix.IPFIX_HEADER.build(
        {
            "version": ipfix.VERSION,
            "length": ipfix.HEADER_SIZE + 4,
            "export_time": int(time.time()),
            "sequence": 0,
            "observation_domain": 0,
        }
    ) + ipfix.SET_HEADER.build({"set_id": 264, "length": 2})  # a set shorter than its header
    return [
        ("truncated", "5", v5[:10]),  # a v5 header cut short
        ("unknown_version", "other", b"\x00\x07" + bytes(40)),
        ("malformed", "5", v5[: -netflow_v5.RECORD_SIZE]),  # 30 records announced, 29 sent
        ("malformed", "10", bad_set),
    ]


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample that must exist (a missing series fails, it does not read as 0)."""
    key = (name, _labels(**labels))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def series(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {
        dict(labels)[label]: v
        for (sample, labels), v in samples.items()
        if sample == name and label in dict(labels)
    }


# -- the real endpoint ------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_scraped_numbers_are_exact(tmp_path: Path, flowcapd, exporters, workers: int) -> None:
    """v5 (one stream with a deliberate sequence gap), v9 template + data, IPFIX with
    templates, IPFIX data held until its templates arrive, malformed datagrams, and an
    exporter outside ``--allow``: every counter, gauge and per-exporter series is what
    the traffic says, also summed over two workers on one port; SIGHUP's Parquet files
    show as files and bytes written."""
    started_s = time.time()
    daemon = flowcapd.start(
        tmp_path,
        "-B", RECEIVE_BUFFER,
        "-b", "127.0.0.1",
        "-t", one_day_interval(),
        "--allow", "127.0.0.0/29",
        "--workers", str(workers),
    )  # fmt: skip
    v5_sender, gappy, v9_sender = (
        exporters("127.0.0.2"),
        exporters("127.0.0.3"),
        exporters("127.0.0.4"),
    )
    ipfix_sender, late_templates = exporters("127.0.0.5"), exporters("127.0.0.6")
    noise, stranger = exporters("127.0.0.7"), exporters("127.0.0.9")

    v5 = v5_datagrams(0, 4)  # 4 x 30 flows
    gappy_all = v5_datagrams(200_000, 80, records=5)
    del gappy_all[3]  # 5 flows never sent; more than REORDER_WINDOW datagrams follow
    v9 = v9_datagrams(3, records=10)
    ipfix_flows = ipfix_vds_datagrams(300_000, 3)  # 3 x 16 flows, templates 264 and 266
    held_first = ipfix_vds_datagrams(400_000, 1, with_templates=False)
    templates_later = ipfix_vds_datagrams(400_016, 1, with_templates=True, sequence_start=16)
    bad = malformed_datagrams()
    refused = v5_datagrams(500_000, 2)

    v5_sender.send(v5, daemon.target)
    gappy.send(gappy_all, daemon.target)
    v9_sender.send(v9, daemon.target)
    ipfix_sender.send(ipfix_flows, daemon.target)
    late_templates.send(held_first, daemon.target)
    noise.send([payload for _, _, payload in bad], daemon.target)
    stranger.send(refused, daemon.target)
    late_templates.send(templates_later, daemon.target)

    flows = {
        "127.0.0.2": 4 * 30,
        "127.0.0.3": len(gappy_all) * 5,
        "127.0.0.4": 3 * 10,
        "127.0.0.5": 3 * 16,
        "127.0.0.6": 2 * 16,
    }
    datagrams = {
        "127.0.0.2": len(v5),
        "127.0.0.3": len(gappy_all),
        "127.0.0.4": len(v9),
        "127.0.0.5": len(ipfix_flows),
        "127.0.0.6": len(held_first) + len(templates_later),
    }
    total_flows = sum(flows.values())
    drops = Counter(reason for reason, _, _ in bad)
    drops["not_allowed"] = len(refused)
    received = Counter(version for _, version, _ in bad)
    received["5"] += len(v5) + len(gappy_all) + len(refused)
    received["9"] += len(v9)
    received["10"] += len(ipfix_flows) + len(held_first) + len(templates_later)
    assert sum(received.values()) == sum(datagrams.values()) + sum(drops.values())

    def settled() -> Samples | None:
        samples = daemon.scrape()
        done = (
            samples.get(("flowcap_flows_written_total", ())) == total_flows
            and sum(series(samples, "flowcap_packets_received_total", "version").values())
            == sum(received.values())
            and samples.get(("flowcap_sequence_lost_total", ())) == 5
            and samples.get(("flowcap_templates", ())) == 5
        )
        return samples if done else None

    samples = wait_for(settled, WAIT_S, f"{total_flows} flows written and every datagram")
    assert isinstance(samples, dict)
    scraped_s = time.time()

    assert series(samples, "flowcap_packets_received_total", "version") == received
    assert value(samples, "flowcap_flows_decoded_total") == total_flows
    assert series(samples, "flowcap_flows_decoded_by_version_total", "version") == {
        "5": flows["127.0.0.2"] + flows["127.0.0.3"],
        "9": flows["127.0.0.4"],
        "10": flows["127.0.0.5"] + flows["127.0.0.6"],
    }
    assert value(samples, "flowcap_flows_written_total") == total_flows
    assert series(samples, "flowcap_packets_dropped_total", "reason") == {
        reason: drops.get(reason, 0) for reason in DROP_REASONS
    }
    assert value(samples, "flowcap_sequence_lost_total") == 5
    assert value(samples, "flowcap_templates") == 5  # v9: 1, IPFIX: 2 + 2
    assert value(samples, "flowcap_held_sets") == 0
    assert value(samples, "flowcap_held_bytes") == 0
    assert value(samples, "flowcap_held_sets_released_total") == 2  # the IPv4 and IPv6 sets
    assert value(samples, "flowcap_held_sets_expired_total") == 0
    assert value(samples, "flowcap_held_sets_rejected_total") == 0
    assert value(samples, "flowcap_flows_queue_dropped_total") == 0
    assert value(samples, "flowcap_kernel_drops_total") == 0
    assert value(samples, "flowcap_workers") == workers
    assert value(samples, "flowcap_spool_backlog_rows") == total_flows  # none in Parquet yet
    assert value(samples, "flowcap_spool_backlog_bytes") > 0
    assert value(samples, "flowcap_parquet_files_written_total") == 0

    # per exporter: the refused and the malformed senders have no series
    assert series(samples, "flowcap_exporter_packets_decoded_total", "exporter") == datagrams
    assert series(samples, "flowcap_exporter_flows_decoded_total", "exporter") == flows
    assert series(samples, "flowcap_exporter_sequence_lost_total", "exporter") == {
        address: 5 if address == "127.0.0.3" else 0 for address in flows
    }
    last_seen = series(samples, "flowcap_exporter_last_seen_timestamp_seconds", "exporter")
    assert set(last_seen) == set(flows)
    assert all(started_s <= seen <= scraped_s for seen in last_seen.values()), last_seen

    # latency histograms: consistent with what was done
    decodes = value(samples, "flowcap_decode_duration_seconds_count")
    assert 1 <= decodes <= sum(datagrams.values())
    assert value(samples, "flowcap_decode_duration_seconds_bucket", le="+Inf") == decodes
    assert value(samples, "flowcap_decode_duration_seconds_sum") > 0
    appends = value(samples, "flowcap_write_duration_seconds_count", stage="append")
    assert 1 <= appends <= total_flows
    assert value(samples, "flowcap_write_duration_seconds_count", stage="fsync") >= 1
    assert value(samples, "flowcap_write_duration_seconds_count", stage="parquet") == 0

    space_free = value(samples, "flowcap_flow_dir_free_bytes")
    assert 0 < space_free <= value(samples, "flowcap_flow_dir_size_bytes")
    build = series(samples, "flowcap_build_info", "python")
    assert build == {platform.python_version(): 1}
    assert value(
        samples, "flowcap_build_info", version=package_version("flowcap"),
        python=platform.python_version(),
    ) == 1  # fmt: skip

    # SIGHUP: the interval's files are finalized now, and counted with their bytes
    daemon.send_signal(signal.SIGHUP)

    def rotated() -> Samples | None:
        samples = daemon.scrape()
        files = flow_files(tmp_path)
        done = (
            files
            and samples.get(("flowcap_parquet_files_written_total", ())) == len(files)
            and samples.get(("flowcap_spool_backlog_rows", ())) == 0
        )
        return samples if done else None

    samples = wait_for(rotated, WAIT_S, "Parquet files written after SIGHUP")
    assert isinstance(samples, dict)
    files = flow_files(tmp_path)
    assert 1 <= len(files) <= workers
    assert value(samples, "flowcap_parquet_written_bytes_total") == sum(
        f.stat().st_size for f in files
    )
    assert value(samples, "flowcap_spool_backlog_bytes") == 0
    assert value(samples, "flowcap_write_duration_seconds_count", stage="parquet") == len(files)
    assert value(samples, "flowcap_flows_written_total") == total_flows
    assert daemon.stop() == 0, daemon.stderr
    assert_finished(tmp_path)


# -- in process: the cap, the merge, the kernel's drops ---------------------------------


def _exporter_counts(index: int) -> dict[str, float]:
    return {
        "datagrams": index + 1,
        "flows": 10 * (index + 1),
        "sequence_lost": index % 3,
        "last_seen_s": 1_700_000_000.0 + index,
    }


def _exporter_samples(registry: CollectorRegistry) -> dict[str, dict[str, float]]:
    """{metric: {exporter: value}} of the per-exporter families."""
    out: dict[str, dict[str, float]] = {}
    for family in registry.collect():
        if family.name.startswith("flowcap_exporter_"):
            for sample in family.samples:
                out.setdefault(sample.name, {})[sample.labels["exporter"]] = sample.value
    return out


def test_exporter_labels_are_capped_and_sums_preserved() -> None:
    """More exporters than the cap: the first ``MAX_EXPORTER_LABELS`` seen keep their
    label, the rest are summed under ``other`` (last seen: the newest), every total is
    the same as without the cap, and the choice is sticky across scrapes."""
    count = MAX_EXPORTER_LABELS + 36
    per_exporter = {f"10.0.{i // 256}.{i % 256}": _exporter_counts(i) for i in range(count)}
    current = {"exporters": per_exporter}
    registry = CollectorRegistry()
    registry.register(FlowcapMetrics(lambda: current, list, 1, "test"))

    samples = _exporter_samples(registry)
    flows = samples["flowcap_exporter_flows_decoded_total"]
    named = list(per_exporter)[:MAX_EXPORTER_LABELS]
    assert set(flows) == {*named, OTHER_EXPORTER}
    for name, key in (
        ("flowcap_exporter_packets_decoded_total", "datagrams"),
        ("flowcap_exporter_flows_decoded_total", "flows"),
        ("flowcap_exporter_sequence_lost_total", "sequence_lost"),
    ):
        assert sum(samples[name].values()) == sum(c[key] for c in per_exporter.values())
        assert samples[name][named[5]] == per_exporter[named[5]][key]
    last_seen = samples["flowcap_exporter_last_seen_timestamp_seconds"]
    assert last_seen[OTHER_EXPORTER] == 1_700_000_000.0 + count - 1
    assert last_seen[named[0]] == 1_700_000_000.0

    # the next scrape: a newcomer listed first does not push out a labelled exporter
    current["exporters"] = newcomer = {"192.0.2.1": _exporter_counts(1000), **per_exporter}
    flows = _exporter_samples(registry)["flowcap_exporter_flows_decoded_total"]
    assert set(flows) == {*named, OTHER_EXPORTER}
    assert flows[OTHER_EXPORTER] == sum(
        c["flows"] for address, c in newcomer.items() if address not in named
    )


def test_two_workers_merge_whole_with_the_same_cap() -> None:
    """Each worker caps its own report; the parent merges them (counters add, last seen
    is the maximum) and caps again: at most ``MAX_EXPORTER_LABELS`` + 1 series, and
    the sums of both workers."""
    shared = "198.51.100.1"  # two sessions of one exporter, one on each worker
    reports = []
    for worker in range(2):
        raw = {shared: _exporter_counts(100 + worker)}
        raw |= {f"10.{worker}.0.{i}": _exporter_counts(i) for i in range(70)}
        capped = ExporterLabels().apply(raw)
        assert len(capped) == MAX_EXPORTER_LABELS + 1  # the worker caps its report
        assert sum(c["flows"] for c in capped.values()) == sum(c["flows"] for c in raw.values())
        reports.append({"exporters": capped, "flows_decoded": 7})
    total = merge_snapshots(reports)
    assert total["flows_decoded"] == 14
    assert total["exporters"][shared]["datagrams"] == 101 + 102
    assert total["exporters"][shared]["last_seen_s"] == 1_700_000_000.0 + 101

    registry = CollectorRegistry()
    registry.register(FlowcapMetrics(lambda: total, list, 2, "test"))
    samples = _exporter_samples(registry)
    flows = samples["flowcap_exporter_flows_decoded_total"]
    assert len(flows) == MAX_EXPORTER_LABELS + 1
    assert sum(flows.values()) == sum(c["flows"] for r in reports for c in r["exporters"].values())
    assert registry.get_sample_value("flowcap_workers") == 2


def test_histograms_merge_bucket_by_bucket() -> None:
    """Two workers' write latencies: the scraped histogram is their bucket-wise sum."""
    first, second = write_histogram(), write_histogram()
    first.labels("append").observe(0.0003)
    first.labels("append").observe(0.02)
    second.labels("append").observe(0.02)
    second.labels("parquet").observe(4.0)
    total = merge_snapshots([{"write_seconds": histogram_snapshot(h)} for h in (first, second)])
    registry = CollectorRegistry()
    registry.register(FlowcapMetrics(lambda: total, list, 2, "test"))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"flowcap_write_duration_seconds{name}", labels)

    assert sample("_count", stage="append") == 3
    assert sample("_sum", stage="append") == pytest.approx(0.0403)
    assert sample("_bucket", stage="append", le="0.0005") == 1
    assert sample("_bucket", stage="append", le="0.01") == 1
    assert sample("_bucket", stage="append", le="0.025") == 3
    assert sample("_bucket", stage="parquet", le="2.5") == 0
    assert sample("_bucket", stage="parquet", le="5.0") == 1
    assert sample("_count", stage="fsync") == 0
    assert sample("_bucket", stage="append", le="+Inf") == 3
    assert len(LATENCY_BUCKETS_S) + 1 == len(total["write_seconds"]["append"]["buckets"])


def test_kernel_drops_reads_our_socket_from_proc() -> None:
    """A socket with the smallest receive buffer, flooded and then drained: the drops
    /proc/net/udp shows for its inode are exactly the datagrams sent and not read, and
    another socket's drops are not ours."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bystander = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
        receiver.bind(("127.0.0.1", 0))
        bystander.bind(("127.0.0.1", 0))
        sent = 200
        for _ in range(sent):
            sender.sendto(bytes(1000), receiver.getsockname())
        receiver.setblocking(False)
        read = 0
        while True:
            try:
                receiver.recv(2048)
            except BlockingIOError:
                break
            read += 1
        drops = kernel_drops([socket_inode(receiver.fileno())])
        assert drops > 0
        assert drops == sent - read
        assert kernel_drops([socket_inode(bystander.fileno())]) == 0
        assert kernel_drops([]) == 0
    finally:
        for sock in (receiver, sender, bystander):
            sock.close()


def test_every_gauge_is_a_level_when_a_worker_retires() -> None:
    """A restarted worker's gauges must not be kept like its counters: the keys the
    parent drops on retirement are exactly the gauges the endpoint shows."""
    assert {key for _, _, key in GAUGES} == GAUGE_KEYS


def test_a_restarted_worker_keeps_its_predecessors_counts() -> None:
    """A worker killed and restarted counts from zero: the parent keeps its last
    counters, per-exporter counts and histogram buckets (the totals never go back), and
    forgets its gauges (a dead worker holds no templates)."""
    latency = write_histogram()
    latency.labels("fsync").observe(0.003)
    before = {
        "flows_decoded": 100,
        "templates": 4,
        "exporters": {"192.0.2.7": _exporter_counts(9)},
        "write_seconds": histogram_snapshot(latency),
    }
    reports = WorkerReports()
    reports.update(0, before)
    reports.retire(0)
    reports.update(0, {"flows_decoded": 5, "templates": 1, "exporters": {}})
    total = reports.total()
    assert total["flows_decoded"] == 105
    assert total["templates"] == 1
    assert total["exporters"]["192.0.2.7"] == _exporter_counts(9)
    assert total["write_seconds"]["fsync"] == before["write_seconds"]["fsync"]
