"""Interop with real software from Debian: softflowd exports, flowcapd and nfcapd store.

For NetFlow v5, v9 and IPFIX, softflowd reads the same capture twice (it sends to one
collector at a time; ``-n`` twice without ``-l`` keeps only the last), once exporting
to flowcapd and once to nfcapd 1.7. Each collector must have received every datagram
softflowd says it sent (flowcapd's ``stopped:`` line; nfcapd's socket drained with no
kernel drops and its own flow count), and what each stored must agree: total flows,
packets and bytes (``nfdump -I``), and flow by flow the multiset of (src, dst, sport,
dport, proto, packets, bytes). Both also equal the capture's own packet and byte totals.

ICMP: nfdump shows type and code as the destination port (type * 256 + code) and source
port 0; flowcap keeps them in ``icmp_type_code`` (or in ``dst_port`` where the export
carries them there), so the comparison maps flowcap's row to nfdump's convention.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench.bench_storage import _free_udp_port, nfdump_totals
from storage.reader import scan

if TYPE_CHECKING:
    from tests.interop.conftest import RunningProcess, TrafficPcap

FlowKey = tuple[Any, Any, int, int, int, int, int]
ICMP_PROTOCOLS = (1, 58)
#: the capture's ICMPv6 messages: echo request, echo reply, port unreachable
ICMP6_TYPE_CODES = (128 << 8, 129 << 8, 1 << 8 | 4)


def _flowcapd_command() -> str:
    beside = Path(sys.executable).with_name("flowcapd")
    return str(beside) if beside.exists() else "flowcapd"


# -- the exporter ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Export:
    flows: int
    records: int  # a flow seen both ways is two records
    datagrams: int
    failures: int


def run_softflowd(pcap: Path, port: int, version: int, workdir: Path) -> Export:
    """softflowd reads the whole capture, expires every flow at its end, sends, exits.

    ``-a``: flow times from the capture's clock, consistent with the export headers
    (without it sysUpTime is wall clock, flow times capture time, and collectors
    resolve the resulting uint32 wrap differently).
    ``-c none``: softflowd 1.1.0 with ``-r`` and a control socket blocks in accept()
    before reading anything (it never polls in capture-file mode).
    """
    command = [
        "softflowd",
        "-r",
        str(pcap),
        "-n",
        f"127.0.0.1:{port}",
        "-v",
        str(version),
        "-t",
        "maxlife=1",
        "-c",
        "none",
        "-p",
        str(workdir / "softflowd.pid"),
        "-a",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(
        r"Flows exported: (\d+) \((\d+) records\) in (\d+) packets \((\d+) failures\)",
        done.stdout,
    )
    assert found, done.stdout
    flows, records, datagrams, failures = map(int, found.groups())
    return Export(flows, records, datagrams, failures)


# -- the collectors --------------------------------------------------------------------


def udp_socket_counters(port: int) -> tuple[int, int] | None:
    """(bytes queued, datagrams dropped) of the IPv4 UDP socket bound to ``port``."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        columns = line.split()
        if int(columns[1].rsplit(":", 1)[1], 16) == port:
            return int(columns[4].split(":")[1], 16), int(columns[-1])
    return None


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def start_flowcapd(run_process: Any, flow_dir: Path) -> tuple[RunningProcess, int]:
    daemon = run_process(
        [
            _flowcapd_command(),
            "-p",
            "0",
            "-b",
            "127.0.0.1",
            "-l",
            str(flow_dir),
            "-t",
            "60",
            "--metrics",
            "off",
        ]
    )
    port = int(daemon.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    return daemon, port


def start_nfcapd(run_process: Any, directory: Path) -> tuple[RunningProcess, int]:
    """nfcapd on a free port (it cannot report a port it picked): retried if another
    program takes the port between the probe and nfcapd's bind."""
    for _ in range(3):
        port = _free_udp_port()
        nfcapd = run_process(
            [
                "nfcapd",
                "-p",
                str(port),
                "-b",
                "127.0.0.1",
                "-w",
                str(directory),
                "-t",
                "60",
                "-B",
                str(2 << 20),
            ]
        )
        wait_until(
            lambda p=port, n=nfcapd: (
                udp_socket_counters(p) is not None or n.process.poll() is not None
            ),
            10,
            "nfcapd to bind its port",
        )
        if nfcapd.process.poll() is None:
            return nfcapd, port
    raise AssertionError("nfcapd could not bind a free port:\n" + nfcapd.output())


def stop(process: RunningProcess) -> str:
    """SIGTERM to the process we started (both collectors finalize their files)."""
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=30) == 0, process.output()
    return process.output()


# -- what each stored ------------------------------------------------------------------


def flowcap_table(flow_dir: Path) -> pa.Table:
    problems: list[Any] = []
    batches = list(scan([flow_dir], on_problem=problems.append))
    assert not problems, problems
    return pa.Table.from_batches(batches)


def _address(v4: int | None, v6: bytes | None) -> Any:
    assert (v4 is None) != (v6 is None), (v4, v6)
    return ipaddress.IPv4Address(v4) if v4 is not None else ipaddress.IPv6Address(v6)


@dataclass(frozen=True, slots=True)
class StoredFlow:
    """One stored flow in nfdump's terms (ICMP type/code as the destination port)."""

    src: Any
    dst: Any
    sport: int
    dport: int
    proto: int
    packets: int
    bytes: int
    tcp_flags: int
    tos: int
    start_ms: int
    end_ms: int

    @property
    def key(self) -> FlowKey:
        return (self.src, self.dst, self.sport, self.dport, self.proto, self.packets, self.bytes)

    def details(self, times_unordered: bool) -> tuple:
        times = (self.start_ms, self.end_ms)
        return (*self.key, self.tcp_flags, self.tos, *(sorted(times) if times_unordered else times))


def flowcap_flows(table: pa.Table, icmp6_type_code: bool = True) -> list[StoredFlow]:
    """``icmp6_type_code`` False: ICMPv6 as nfcapd stores it when it ignores the element
    carrying type and code (destination port 0)."""

    def column(name: str) -> list[Any]:
        if name not in table.column_names:
            return [None] * len(table)
        values = table.column(name)
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.int64())
        return values.to_pylist()

    names = (
        "src_addr",
        "src_addr6",
        "dst_addr",
        "dst_addr6",
        "src_port",
        "dst_port",
        "proto",
        "icmp_type_code",
        "packets",
        "bytes",
        "tcp_flags",
        "tos",
        "time_start",
        "time_end",
    )
    flows = []
    for row in zip(*(column(name) for name in names), strict=True):
        src, src6, dst, dst6, sport, dport, proto, icmp, packets, octets, flags, tos = row[:12]
        if proto in ICMP_PROTOCOLS:  # nfdump's convention: type/code as the port
            sport, dport = 0, icmp if icmp is not None else (dport or 0)
            if proto == 58 and not icmp6_type_code:
                dport = 0
        flows.append(
            StoredFlow(
                _address(src, src6),
                _address(dst, dst6),
                sport or 0,
                dport or 0,
                proto,
                packets,
                octets,
                flags or 0,
                tos or 0,
                *row[12:],
            )
        )
    return flows


NFDUMP_FORMAT = "fmt:%sa|%da|%sp|%dp|%pr|%pkt|%byt|%flg|%tos|%ts|%te"


def _nfdump_time_ms(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _nfdump_flags(text: str) -> int:
    """nfdump's flag letters ``CEUAPRSF``, most significant bit first (``...AP.SF``)."""
    if text.startswith("0x"):
        return int(text, 16)
    return sum(1 << (7 - i) for i, c in enumerate(text) if c != ".")


def nfdump_flows(directory: Path) -> list[StoredFlow]:
    flows = []
    for path in sorted(directory.glob("nfcapd.2*")):
        out = subprocess.run(
            ["nfdump", "-r", str(path), "-q", "-N", "-6", "-o", NFDUMP_FORMAT],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env={**os.environ, "TZ": "UTC"},
        ).stdout
        for line in out.splitlines():
            if not line.strip():
                continue
            fields = [f.strip() for f in line.split("|")]
            src, dst, sport, dport, proto, packets, octets, flags, tos, start, end = fields
            if "." in dport:  # ICMP: "type.code"
                icmp_type, icmp_code = dport.split(".")
                dport = str(int(icmp_type) * 256 + int(icmp_code))
            flows.append(
                StoredFlow(
                    ipaddress.ip_address(src),
                    ipaddress.ip_address(dst),
                    int(sport),
                    int(dport),
                    int(proto),
                    int(packets),
                    int(octets),
                    _nfdump_flags(flags),
                    int(tos),
                    _nfdump_time_ms(start),
                    _nfdump_time_ms(end),
                )
            )
    return flows


def _difference(ours: Counter[Any], theirs: Counter[Any]) -> str:
    only_ours, only_theirs = ours - theirs, theirs - ours
    lines = [f"only in flowcapd ({sum(only_ours.values())}):"]
    lines += [f"  {key} x{n}" for key, n in sorted(only_ours.items(), key=str)[:20]]
    lines += [f"only in nfcapd ({sum(only_theirs.values())}):"]
    lines += [f"  {key} x{n}" for key, n in sorted(only_theirs.items(), key=str)[:20]]
    return "\n".join(lines)


# -- the test --------------------------------------------------------------------------

STOPPED = re.compile(
    r"stopped: (\d+) datagrams, (\d+) flows decoded, (\d+) written, dropped (.+)$", re.M
)
NFCAPD_STAT = re.compile(r"Flows: (\d+), Packets: (\d+), Bytes: (\d+), .*Bad Packets: (\d+)")


@pytest.mark.parametrize(
    ("version", "capture"),
    [
        pytest.param(5, "ipv4", id="netflow-v5"),
        pytest.param(9, "dual", id="netflow-v9-ipv4-ipv6"),
        pytest.param(10, "dual", id="ipfix-ipv4-ipv6"),
    ],
)
def test_softflowd_export_stored_by_flowcapd_as_by_nfcapd(
    version: int,
    capture: str,
    interop_tools: None,
    traffic_pcaps: dict[str, TrafficPcap],
    run_process: Any,
    tmp_path: Path,
) -> None:
    pcap = traffic_pcaps[capture]
    flow_dir, nfcapd_dir = tmp_path / "flowcap", tmp_path / "nfcapd"
    nfcapd_dir.mkdir()
    flowcapd, flowcapd_port = start_flowcapd(run_process, flow_dir)
    nfcapd, nfcapd_port = start_nfcapd(run_process, nfcapd_dir)

    to_flowcapd = run_softflowd(pcap.path, flowcapd_port, version, tmp_path)
    to_nfcapd = run_softflowd(pcap.path, nfcapd_port, version, tmp_path)
    assert to_flowcapd == to_nfcapd  # the same capture exports the same way
    assert to_flowcapd.failures == 0 and to_flowcapd.records > 100

    # unlike flowcapd, nfcapd is not known to read what is queued once told to stop:
    # let it read everything first
    wait_until(
        lambda: (udp_socket_counters(nfcapd_port) or (0, 0))[0] == 0,
        20,
        "nfcapd to read its socket",
    )
    assert udp_socket_counters(nfcapd_port) == (0, 0), "nfcapd's socket dropped datagrams"
    nfcapd_log = stop(nfcapd)
    flowcapd_log = stop(flowcapd)  # flowcapd drains its socket on SIGTERM

    # each collector received all softflowd sent
    stopped = STOPPED.search(flowcapd_log)
    assert stopped, flowcapd_log
    datagrams, decoded, written, dropped = stopped.groups()
    assert int(datagrams) == to_flowcapd.datagrams
    assert int(decoded) == int(written) == to_flowcapd.records
    assert dropped == "none"
    stat = NFCAPD_STAT.search(nfcapd_log)
    assert stat, nfcapd_log
    assert int(stat.group(1)) == to_nfcapd.records and stat.group(4) == "0"

    # the same totals: flowcapd's files, nfdump on nfcapd's, and the capture itself
    table = flowcap_table(flow_dir)
    ours = {
        "flows": table.num_rows,
        "packets": pc.sum(table.column("packets")).as_py(),
        "bytes": pc.sum(table.column("bytes")).as_py(),
    }
    theirs = nfdump_totals(nfcapd_dir)
    assert ours == theirs
    assert ours == {"flows": to_flowcapd.records, "packets": pcap.packets, "bytes": pcap.ip_bytes}
    if version == 5:
        assert table.column("src_addr").null_count == 0  # v5: IPv4 only
    else:
        assert table.column("src_addr6").null_count < len(table)  # IPv6 flows came through

    # and flow by flow
    if pcap.has_ipv6:
        # softflowd's IPv6 templates carry type and code in icmpTypeCodeIPv6 (139), which
        # nfcapd 1.7.1 ignores in NetFlow v9 (it stores port 0); flowcapd keeps them
        icmp6 = pc.equal(table.column("proto"), 58)
        codes = set(table.column("icmp_type_code").filter(icmp6).to_pylist())
        assert codes == set(ICMP6_TYPE_CODES), codes
    our_flows = flowcap_flows(table, icmp6_type_code=version != 9)
    their_flows = nfdump_flows(nfcapd_dir)
    ours_by_key = Counter(flow.key for flow in our_flows)
    theirs_by_key = Counter(flow.key for flow in their_flows)
    assert ours_by_key == theirs_by_key, _difference(ours_by_key, theirs_by_key)

    # the rest of each record too: TCP flags, ToS, start and end to the millisecond.
    # softflowd's IPFIX times are flowStart/EndSysUpTime (22/21) against the options
    # record's systemInitTimeMilliseconds; nfcapd 1.7.1 stores them swapped (tshark
    # and flowcapd read start <= end), so for IPFIX the pair is compared unordered.
    assert all(flow.start_ms <= flow.end_ms for flow in our_flows)
    # NetFlow v9 headers carry the export time in whole seconds: flows may read up to
    # 1 s early
    first_ms, last_ms = int(pcap.first_s * 1000) - 1000, int(pcap.last_s * 1000) + 1
    assert all(first_ms <= f.start_ms and f.end_ms <= last_ms for f in our_flows)
    unordered = version == 10
    ours_detailed = Counter(flow.details(unordered) for flow in our_flows)
    theirs_detailed = Counter(flow.details(unordered) for flow in their_flows)
    assert ours_detailed == theirs_detailed, _difference(ours_detailed, theirs_detailed)
