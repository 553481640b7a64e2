"""End to end in one process: a ``FlowCollector`` on uvloop, exporters sending real UDP
datagrams to its port, and every flow sent found in the files exactly.

"Exactly" means: the same number of flows, packets and bytes, and the same rows, column
for column (but ``time_received``, the collector's clock), as a fresh ``FlowDecoder``
makes of the same datagrams from the same exporter address and port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import uvloop

from bench.datagrams import (
    EXPORTERS,
    Scenario,
    generate_ipfix_varlen,
    generate_ipfix_vds,
    generate_v5,
    generate_v9,
)
from collector.config import Config
from collector.worker import FlowCollector
from tests.collector.exports import (
    ipfix_vds_datagrams,
    reference_table,
    row_multiset,
    stored_table,
    totals,
)
from tests.collector.harness import UdpExporter, flow_files, spools
from tests.corpus import group, group_ids

WAIT_S = 30.0

Plan = list[tuple[UdpExporter, list[bytes]]]


def _config(flow_dir: Path, **changes: object) -> Config:
    config = Config(
        flow_dir=flow_dir,
        port=0,
        bind="127.0.0.1",
        metrics=None,
        rotation_interval_s=60,
        flush_interval_s=0.2,
    )
    return replace(config, **changes)


def run_collector(config: Config, plan: Plan, expected_flows: int) -> FlowCollector:
    """Start a collector, send every exporter's datagrams concurrently (each in its own
    order), wait until ``expected_flows`` are durably written, stop it."""

    async def main() -> FlowCollector:
        collector = FlowCollector(config)
        host, port = await collector.start()
        target = ("127.0.0.1" if host == "0.0.0.0" else host, port)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(e.send_async(p, target) for e, p in plan)), WAIT_S
            )
            await asyncio.wait_for(collector.wait_flows_written(expected_flows), WAIT_S)
        finally:
            await asyncio.wait_for(collector.stop(), WAIT_S)
        return collector

    return uvloop.run(main())


def assert_stored_exactly(flow_dir: Path, plan: Plan, collector: FlowCollector) -> None:
    sends = [(payload, exporter.address) for exporter, payloads in plan for payload in payloads]
    expected, drops = reference_table(sends)
    assert not drops
    stored = stored_table(flow_dir)
    assert totals(stored) == totals(expected)
    assert row_multiset(stored) == row_multiset(expected)
    assert not spools(flow_dir)
    assert flow_files(flow_dir)
    stats = collector.stats_snapshot()
    assert stats["dropped"] == {}
    assert stats["flows_written"] == expected.num_rows
    assert stats["flows_queue_dropped"] == 0


def _scenario_plan(
    scenario: Scenario, make: Callable[..., UdpExporter], host: str = "127.0.0.1"
) -> Plan:
    """One socket per exporter of the scenario, each with its datagrams in order."""
    plan = []
    for exporter in EXPORTERS:
        payloads = [d.payload for d in scenario.datagrams if d.exporter == exporter]
        plan.append((make(host), payloads))
    return plan


def test_generated_v5_v9_ipfix_stored_exactly(tmp_path: Path, exporters) -> None:
    """v5, v9, vDS IPFIX (PEN 6876 columns), varlen IPFIX and vDS IPv4+IPv6 records from
    17 source ports: every flow stored, column for column."""
    scenarios = [
        generate_v5(24, seed=1),
        generate_v9(48, seed=2),
        generate_ipfix_vds(48, seed=3),
        generate_ipfix_varlen(48, seed=4),
    ]
    plan: Plan = []
    for scenario in scenarios:
        plan += _scenario_plan(scenario, exporters)
    plan.append((exporters(), ipfix_vds_datagrams(0, 40, v4_per=10, v6_per=6)))
    expected_flows = sum(s.flows for s in scenarios) + 40 * 16

    collector = run_collector(_config(tmp_path), plan, expected_flows)

    assert_stored_exactly(tmp_path, plan, collector)
    stored = stored_table(tmp_path)
    assert stored.num_rows == expected_flows
    # the scenarios' own totals, independent of the reference decoder
    v4_only = stored.filter(stored["src_addr6"].is_null())
    assert v4_only.num_rows == expected_flows - 40 * 6
    generated_packets = sum(s.packets_total for s in scenarios)
    generated_bytes = sum(s.bytes_total for s in scenarios)
    custom = ipfix_flows_totals(40, v4_per=10, v6_per=6)
    assert totals(stored)[1:] == (generated_packets + custom[0], generated_bytes + custom[1])
    # VMware columns and IPv6 addresses made it to the files
    for column in ("ingress_if_attr", "egress_if_attr", "vxlan_export_role", "virtual_obs_id"):
        assert stored[column].null_count < stored.num_rows, column
    v6 = stored.filter(stored["src_addr6"].is_valid())
    assert v6.num_rows == 40 * 6
    assert v6["src_addr"].null_count == v6.num_rows
    assert set(v6["dst_addr6"].to_pylist()) == {bytes.fromhex("ff020000000000000000000000010003")}
    exporter_ports = set(stored["exporter_port"].to_pylist())
    assert exporter_ports == {e.address[1] for e, _ in plan}
    assert set(stored["exporter"].to_pylist()) == {0x7F000001}


def ipfix_flows_totals(datagrams: int, v4_per: int, v6_per: int) -> tuple[int, int]:
    """(packets, bytes) of ``ipfix_vds_datagrams(0, ...)``: flow i has i % 997 + 1
    packets of 1000 bytes each."""
    ids = range(datagrams * (v4_per + v6_per))
    packets = sum(i % 997 + 1 for i in ids)
    return packets, packets * 1000


# -- the real-device corpus, replayed over UDP ---------------------------------------------------

CORPUS_GROUPS = (
    "logstash/IPFIX VMware virtual distributed switch",
    "graylog/nprobe-netflow9-3.pcap",
    "pmacct/111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources",
    "graylog/netgraph-netflow5.pcap",
)


def _corpus_params() -> Sequence:
    ids = set(group_ids())
    return [
        pytest.param(g, marks=pytest.mark.skip(reason="shared corpus not found"))
        if g not in ids
        else g
        for g in CORPUS_GROUPS
    ]


@pytest.mark.corpus
@pytest.mark.parametrize("group_id", _corpus_params())
def test_corpus_group_replayed_over_udp(tmp_path: Path, exporters, group_id: str) -> None:
    payloads = [d.payload for d in group(group_id).datagrams()]
    plan: Plan = [(exporters(), payloads)]
    expected, _ = reference_table([(p, plan[0][0].address) for p in payloads])
    assert expected.num_rows > 0

    collector = run_collector(_config(tmp_path), plan, expected.num_rows)

    assert_stored_exactly(tmp_path, plan, collector)
    if "VMware" in group_id:
        stored = stored_table(tmp_path)
        assert stored.num_rows == 5
        assert set(stored["ingress_if_attr"].to_pylist()) == {1}
        assert set(stored["egress_if_attr"].to_pylist()) == {2}
        assert stored["src_addr6"].null_count == 4


# -- IPv6 sockets ---------------------------------------------------------------------------------


def test_ipv6_loopback_bind(tmp_path: Path, exporters) -> None:
    """``-b ::1``: an IPv6 exporter's address lands in ``exporter6``."""
    sender = exporters("::1")
    plan: Plan = [(sender, ipfix_vds_datagrams(0, 10))]
    collector = run_collector(_config(tmp_path, bind="::1"), plan, 160)
    assert collector.address[0] == "::1"  # known after the stop too
    assert_stored_exactly(tmp_path, plan, collector)
    stored = stored_table(tmp_path)
    assert stored["exporter"].null_count == stored.num_rows
    assert set(stored["exporter6"].to_pylist()) == {bytes(15) + b"\x01"}
    assert set(stored["exporter_port"].to_pylist()) == {sender.address[1]}


def test_dual_stack_receives_ipv4_and_ipv6(tmp_path: Path, exporters) -> None:
    """``-b ::`` takes both families; the IPv4 exporter is stored as ``exporter``
    (uint32), not as a v4-mapped IPv6 address."""
    v4, v6 = exporters("127.0.0.1"), exporters("::1")
    plan: Plan = [(v4, ipfix_vds_datagrams(0, 10)), (v6, ipfix_vds_datagrams(1000, 10))]

    async def main() -> FlowCollector:
        collector = FlowCollector(_config(tmp_path, bind="::"))
        host, port = await collector.start()
        assert host == "::"
        await v4.send_async(plan[0][1], ("127.0.0.1", port))
        await v6.send_async(plan[1][1], ("::1", port))
        await asyncio.wait_for(collector.wait_flows_written(320), WAIT_S)
        await collector.stop()
        return collector

    collector = uvloop.run(main())
    # what the collector saw: 127.0.0.1 as itself, ::1 as IPv6
    assert_stored_exactly(tmp_path, plan, collector)
    stored = stored_table(tmp_path)
    from_v4 = stored.filter(stored["exporter"].is_valid())
    from_v6 = stored.filter(stored["exporter6"].is_valid())
    assert from_v4.num_rows == from_v6.num_rows == 160
    assert set(from_v4["exporter"].to_pylist()) == {0x7F000001}
    assert set(from_v4["exporter_port"].to_pylist()) == {v4.address[1]}
    assert set(from_v6["exporter6"].to_pylist()) == {bytes(15) + b"\x01"}
    assert set(from_v6["exporter_port"].to_pylist()) == {v6.address[1]}
