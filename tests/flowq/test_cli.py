"""``flowq`` end to end, on flows stored by ``flowcapd --read``: exit codes, error
messages, inputs (Parquet file, directory, live spool, capture, a corrupt file), output
modes (golden files), and behaviour nfdump users rely on.

The dataset is built once per module: export datagrams written to a pcap (NetFlow v9
and VMware vDS IPFIX from ``bench/datagrams.py``, plus one IPFIX message of
conversations seen in both directions, ICMP and IPv6), stored with
``flowcapd --read FILE -l DIR`` (a subprocess, as an operator would run it). The capture
itself is an input too (``flowq -r capture.pcap``).

Golden outputs are ``tests/golden/cli_<case>.txt``, compared byte for byte with
``--utc``; two things vary from run to run and are masked before comparing: nfdump's
timing line (``Sys: ... Runtime: ...``) and the ``Bytes read`` count (the size of the
Parquet file, which depends on the compression library). Regenerate with
``pytest tests/flowq --update-golden`` and review the diff.

Most runs call ``flowq.cli.main`` in this process (what the console script runs);
the pipe, the live spool and the exit-code smoke test run the installed ``flowq``.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from construct import Bytes, Int8ub, Int16ub, Int32ub, Int64ub

from bench.datagrams import (
    BASE_UNIX_MS,
    TemplateField,
    generate_ipfix_vds,
    generate_v9,
    ipfix_template_set,
    record_struct,
)
from flowq.cli import main as flowq_main
from parsers import ipfix

BIN = Path(sys.executable).parent
FLOWQ = str(BIN / "flowq") if (BIN / "flowq").exists() else "flowq"
FLOWCAPD = str(BIN / "flowcapd") if (BIN / "flowcapd").exists() else "flowcapd"
COLLECTOR_PORT = 2055
#: the conversations' exporter (the bench scenarios use 192.0.2.11-12, 198.51.100.21-22)
BIDIR_EXPORTER = ("192.0.2.50", 4739)


# -- the dataset ---------------------------------------------------------------------------


def _fields(*pairs: tuple[str, object]) -> tuple[TemplateField, ...]:
    return tuple(TemplateField(name, wire) for name, wire in pairs)  # type: ignore[arg-type]


_COMMON = (("sourceTransportPort", Int16ub), ("destinationTransportPort", Int16ub),
           ("protocolIdentifier", Int8ub), ("tcpControlBits", Int8ub),
           ("packetDeltaCount", Int64ub), ("octetDeltaCount", Int64ub),
           ("flowStartMilliseconds", Int64ub), ("flowEndMilliseconds", Int64ub))  # fmt: skip
V4_FIELDS = _fields(("sourceIPv4Address", Int32ub), ("destinationIPv4Address", Int32ub),
                    *_COMMON, ("icmpTypeCodeIPv4", Int16ub))  # fmt: skip
V6_FIELDS = _fields(("sourceIPv6Address", Bytes(16)), ("destinationIPv6Address", Bytes(16)),
                    *_COMMON, ("icmpTypeCodeIPv6", Int16ub))  # fmt: skip

#: (src, sport, dst, dport, proto, flags, packets, bytes, start offset ms, duration ms,
#: icmp type << 8 | code): two directions of TCP, UDP (the server's record first),
#: split TCP sessions, ICMP echo both ways, and an IPv6 pair
CONVERSATIONS = [
    ("10.1.0.1", 40000, "10.2.0.1", 443, 6, 0x1B, 10, 5000, 0, 1500, 0),
    ("10.2.0.1", 443, "10.1.0.1", 40000, 6, 0x1B, 8, 9000, 5, 1490, 0),
    ("10.1.0.1", 40000, "10.2.0.1", 443, 6, 0x18, 4, 800, 1600, 700, 0),
    ("10.1.0.2", 53, "10.1.0.3", 33333, 17, 0, 1, 300, 0, 2, 0),
    ("10.1.0.3", 33333, "10.1.0.2", 53, 17, 0, 1, 60, 1, 0, 0),
    ("10.1.0.4", 55000, "10.2.0.9", 8443, 6, 0x02, 3, 180, 40, 3000, 0),
    ("10.1.0.1", 0, "10.2.0.1", 0, 1, 0, 4, 336, 100, 3000, 0x0800),
    ("10.2.0.1", 0, "10.1.0.1", 0, 1, 0, 4, 336, 101, 3000, 0x0000),
    ("2001:db8::1", 50000, "2001:db8::2", 80, 6, 0x1A, 6, 700, 200, 900, 0),
    ("2001:db8::2", 80, "2001:db8::1", 50000, 6, 0x1A, 5, 4000, 210, 880, 0),
]


def _conversation_message(export_ms: int) -> bytes:
    """One IPFIX message with the conversations (times just before ``export_ms``)."""
    sets = [ipfix_template_set(V4_FIELDS, 300), ipfix_template_set(V6_FIELDS, 301)]
    for template_id, fields, family in ((300, V4_FIELDS, 4), (301, V6_FIELDS, 6)):
        struct_ = record_struct(fields)
        records = b""
        for conversation in CONVERSATIONS:
            src, sport, dst, dport, proto, flags, pkts, octets, offset, length, icmp = conversation
            if ipaddress.ip_address(src).version != family:
                continue
            start = export_ms - 10_000 + offset
            addresses = [ipaddress.ip_address(a) for a in (src, dst)]
            values = [int(a) for a in addresses] if family == 4 else [a.packed for a in addresses]
            names = [f.element for f in fields]
            records += struct_.build(dict(zip(names, [
                *values, sport, dport, proto, flags, pkts, octets, start, start + length, icmp,
            ], strict=True)))  # fmt: skip
        sets.append(struct.pack("!HH", template_id, 4 + len(records)) + records)
    body = b"".join(sets)
    header = ipfix.IPFIX_HEADER.build({"version": 10, "length": 16 + len(body),
                                       "export_time": export_ms // 1000, "sequence": 0,
                                       "observation_domain": 0})  # fmt: skip
    return header + body


def export_datagrams() -> list[tuple[float, tuple[str, int], bytes]]:
    """(capture time s, exporter, payload) in time order."""
    datagrams = [
        (d.received_at_ns / 1e9, d.exporter, d.payload)
        for scenario in (generate_v9(4, seed=41), generate_ipfix_vds(3, seed=42))
        for d in scenario.datagrams
    ]
    export_ms = BASE_UNIX_MS + 100
    datagrams.append((export_ms / 1000, BIDIR_EXPORTER, _conversation_message(export_ms)))
    return sorted(datagrams, key=lambda d: d[0])


def write_pcap(path: Path, datagrams: list[tuple[float, tuple[str, int], bytes]]) -> None:
    with path.open("wb") as file:
        writer = dpkt.pcap.Writer(file, linktype=dpkt.pcap.DLT_EN10MB)
        for t_s, (address, port), payload in datagrams:
            udp = dpkt.udp.UDP(sport=port, dport=COLLECTOR_PORT, data=payload)
            udp.ulen = 8 + len(payload)
            ip = dpkt.ip.IP(src=socket.inet_aton(address), dst=socket.inet_aton("192.0.2.2"),
                            p=17, ttl=64, data=udp)  # fmt: skip
            ip.len = 20 + len(bytes(udp))
            frame = dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x01", dst=b"\x02\0\0\0\0\x02",
                                           type=dpkt.ethernet.ETH_TYPE_IP, data=ip)  # fmt: skip
            writer.writepkt(bytes(frame), ts=t_s)


@dataclass(frozen=True)
class Dataset:
    pcap: Path
    directory: Path  # flowcapd's -l directory
    parquet: Path  # its one Parquet file
    flows: int


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    base = tmp_path_factory.mktemp("cli")
    datagrams = export_datagrams()
    pcap = base / "exports.pcap"
    write_pcap(pcap, datagrams)
    directory = base / "flows"
    done = subprocess.run([FLOWCAPD, "--read", str(pcap), "-l", str(directory)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = re.search(r"read (\d+) datagrams: (\d+) flows written, dropped (\S+)", done.stderr)
    assert written and int(written.group(1)) == len(datagrams), done.stderr
    (parquet,) = directory.rglob("flowcap.*.parquet")
    return Dataset(pcap, directory, parquet, int(written.group(2)))


# -- running flowq -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def flowq(*args: str | Path) -> Run:
    """flowq's main() in this process, stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = flowq_main([str(a) for a in args])
    return Run(code, out.getvalue(), err.getvalue())


def masked(text: str) -> str:
    """Output without what varies between runs: the timing line and bytes read."""
    kept = [line for line in text.splitlines(True) if not line.startswith("Sys: ")]
    return re.sub(r"Bytes read: \d+", "Bytes read: -", "".join(kept))


def csv_table(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    names = lines[0].split(",")
    return [dict(zip(names, line.split(","), strict=True)) for line in lines[1:]]


# -- golden outputs ------------------------------------------------------------------------

CONVERSATION_HOSTS = "net 10.1.0.0/16 or net 10.2.0.0/16 or net 2001:db8::/32"
GOLDEN_CASES: dict[str, tuple[str, ...]] = {
    "stat_text": ("-s", "srcip/bytes", "-s", "dstport:p", "-s", "proto/packets/bytes", "-n", "5"),
    "stat_plain_quiet": ("-s", "ip", "-s", "if/bytes", "-n", "3", "-N", "-q"),
    "stat_all_rows": ("-s", "router", "-s", "tos/bpp", "-n", "0"),
    "stat_rates": ("-s", "dstip/pps", "-s", "srcport/bps", "-n", "4", "proto udp"),
    "stat_no_match": ("-s", "srcip", "-s", "record", "proto 99"),
    "stat_csv": ("-s", "srcip/bytes", "-s", "dstport", "-n", "4", "-o", "csv"),
    "stat_json": ("-s", "proto/bytes", "-s", "as", "-o", "json"),
    "stat_ndjson": ("-s", "port:p", "-n", "3", "-o", "ndjson"),
    "record_stat": ("-s", "record/bytes", "-n", "4"),
    "record_stat_csv": ("-s", "record/packets", "-n", "3", "-o", "csv", CONVERSATION_HOSTS),
    "aggregate": ("-A", "srcip,dstport", "-O", "bytes", "-n", "6"),
    "aggregate_net": ("-A", "srcnet/16,proto", "-O", "flows"),
    "aggregate_vni": ("-A", "vni,proto", "-O", "bytes", "vni > 0"),
    "aggregate_csv": ("-A", "proto,srcas", "-o", "csv"),
    "aggregate_json": ("-A", "dstport", "-n", "5", "-O", "flows", "-o", "json"),
    "aggregate_no_match": ("-A", "srcip", "proto 99"),
    "5tuple": ("-a", "-O", "bytes", "-n", "5"),
    "5tuple_long": ("-a", "-o", "long", CONVERSATION_HOSTS),
    "bidir": ("-b", CONVERSATION_HOSTS),
    "bidir_guess": ("-B", CONVERSATION_HOSTS),
    "bidir_csv": ("-B", "-o", "csv", CONVERSATION_HOSTS),
    "bidir_json_top": ("-b", "-O", "bytes", "-n", "3", "-o", "json"),
    "series_text": ("--series", "1m"),
    "series_csv": ("--series", "30s", "-o", "csv", "proto tcp"),
    "series_json": ("--series", "1m", "-o", "json"),
    "records_ordered": ("-O", "bytes", "-n", "5"),
    "records_count": ("-c", "5", "-o", "long"),
    "records_window": ("-t", "2023-11-14T22:13:00Z/2023-11-14T22:13:10Z", "-O", "tstart",
                       "-n", "5"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_output(case: str, dataset: Dataset, golden: Callable[[str, str], None]) -> None:
    run = flowq("-R", dataset.directory, "--utc", *GOLDEN_CASES[case])
    assert run.code == 0, run.err
    assert run.err == ""
    golden(f"cli_{case}.txt", masked(run.out))


def test_machine_outputs_parse(dataset: Dataset) -> None:
    """JSON is JSON (one array per statistic), NDJSON one object a line, CSV rectangular."""
    stat = flowq("-R", dataset.directory, "-s", "srcip/bytes", "-n", "3", "-o", "json")
    rows = json.loads(stat.out)
    assert [list(r) for r in rows] == [["src_addr", "flows", "packets", "bytes", "pps", "bps",
                                        "bpp"]] * 3  # fmt: skip
    assert rows == sorted(rows, key=lambda r: -r["bytes"])
    bidir = flowq("-R", dataset.directory, "-b", "-o", "ndjson", CONVERSATION_HOSTS)
    objects = [json.loads(line) for line in bidir.out.splitlines()]
    assert {"out_packets", "out_bytes", "time_start", "time_end"} <= set(objects[0])
    aggregate = csv_table(flowq("-R", dataset.directory, "-A", "srcip,proto", "-o", "csv").out)
    total = sum(int(r["flows"]) for r in aggregate)
    assert total == dataset.flows


# -- exit codes and messages ---------------------------------------------------------------


def test_exit_0_with_output(dataset: Dataset) -> None:
    run = flowq("-R", dataset.directory, "-q", "-o", "csv")
    assert run.code == 0 and run.err == ""
    assert len(run.out.splitlines()) == dataset.flows


def test_exit_0_when_nothing_matched(dataset: Dataset) -> None:
    run = flowq("-R", dataset.directory, "--utc", "proto 99")
    assert run.code == 0 and run.err == ""
    assert "No matching flows\n" in run.out
    assert "Summary: total flows: 0," in run.out
    assert flowq("-R", dataset.directory, "-o", "csv", "-q", "proto 99").out == ""


def test_exit_1_no_such_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    run = flowq("-R", missing)
    assert (run.code, run.out) == (1, "")
    assert run.err == f"flowq: {missing}: no such file or directory\n"


def test_exit_2_filter_error_with_caret(dataset: Dataset) -> None:
    run = flowq("-R", dataset.directory, "src ip 10.0.0.1 and port http")
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "flowq: filter error at column 26: expected a port number, found 'http'\n"
        "  src ip 10.0.0.1 and port http\n"
        "                           ^\n"
    )


def test_filter_error_in_a_filter_file_names_line_and_column(dataset: Dataset, tmp_path: Path
                                                        ) -> None:  # fmt: skip
    path = tmp_path / "filter.txt"
    path.write_text("proto tcp and\n  dst prot 443\n")
    run = flowq("-R", dataset.directory, "-f", path)
    assert run.code == 2 and run.out == ""
    assert run.err == (
        "flowq: filter error at line 2, column 7: expected a field such as ip, net or port "
        "after 'dst', found 'prot'\n"
        "    dst prot 443\n"
        "        ^\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "fancy"), "flowq: unknown output format 'fancy'"),
        (("-s", "colour"), "flowq: unknown statistic 'colour'"),
        (("-s", "srcip/loudness"), "flowq: unknown order 'loudness'"),
        (("-t", "2026/13/01"), "flowq: invalid time '2026/13/01'"),
        (("-t", "yesterday"), "flowq: invalid time 'yesterday'"),
        (("-A", "colour"), "flowq: unknown aggregation key 'colour'"),
        (("-A", "srcip", "-b"), "flowq: -b/-B aggregate by the 5-tuple"),
        (("-n", "-1"), "flowq: -n must be >= 0"),
        (("--series", "5x"), "flowq: invalid interval '5x'"),
        (("-O", "colour"), "flowq: error: argument -O: invalid choice"),
    ],
)
def test_exit_2_usage_errors(args: tuple[str, ...], message: str, dataset: Dataset) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = flowq_main(["-R", str(dataset.directory), *args])
        except SystemExit as exit_:  # argparse's own errors exit 2 themselves
            code = int(exit_.code or 0)
    assert (code, out.getvalue()) == (2, "")
    assert err.getvalue().splitlines()[-1].startswith(message), err.getvalue()


def test_installed_command_exit_codes(dataset: Dataset, tmp_path: Path) -> None:
    """The console script: 0, 0 on no match, 1 missing directory, 2 bad filter."""

    def code(*args: str | Path) -> int:
        return subprocess.run([FLOWQ, *map(str, args)], capture_output=True,
                              timeout=60).returncode  # fmt: skip

    assert code("-R", dataset.directory, "-q", "-c", "1") == 0
    assert code("-R", dataset.directory, "proto 99") == 0
    assert code("-R", tmp_path / "nowhere") == 1
    assert code("-R", dataset.directory, "proto") == 2


# -- options --------------------------------------------------------------------------------


def test_filter_file_with_comments_equals_inline_filter(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "web.filter"
    path.write_text("# web traffic\nproto tcp   # TCP only\n  and dst port in [ 80 443 ]\n")
    from_file = flowq("-R", dataset.directory, "-f", path, "-o", "csv")
    inline = flowq("-R", dataset.directory, "-o", "csv", "proto tcp and dst port in [80 443]")
    assert from_file.code == 0 and from_file.out == inline.out
    assert len(from_file.out.splitlines()) > 5


def test_window_in_nfdump_and_iso_syntax(dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        nfdump_syntax = flowq("-R", dataset.directory, "-o", "csv", "-t",
                              "2023/11/14.22:13:00-2023/11/14.22:13:10")  # fmt: skip
        iso_syntax = flowq("-R", dataset.directory, "-o", "csv", "-t",
                           "2023-11-14T22:13:00+00:00/2023-11-14T22:13:10Z")  # fmt: skip
        open_ended = flowq("-R", dataset.directory, "-o", "csv", "-t", "2023/11/14.22:13:10")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert nfdump_syntax.code == 0 and nfdump_syntax.out == iso_syntax.out
    inside = csv_table(nfdump_syntax.out)
    later = csv_table(open_ended.out)
    assert 0 < len(inside) < dataset.flows and later
    assert all(r["time_start"] >= "2023-11-14T22:13:00" for r in inside)
    assert all(r["time_end"] <= "2023-11-14T22:13:10.000Z" for r in inside)
    assert all(r["time_start"] >= "2023-11-14T22:13:10" for r in later)


def test_count_stops_after_n_matching_flows(dataset: Dataset) -> None:
    """nfdump's -c: only the first N matching flows are processed, by every mode."""
    records = flowq("-R", dataset.directory, "-c", "7", "-o", "csv", "-q", "proto tcp")
    assert len(records.out.splitlines()) == 7
    summary = flowq("-R", dataset.directory, "-c", "7", "proto tcp")
    assert "Summary: total flows: 7," in summary.out
    stat = csv_table(flowq("-R", dataset.directory, "-c", "7", "-s", "proto", "-o", "csv").out)
    assert sum(int(r["flows"]) for r in stat) == 7


def test_limit_zero_prints_every_row(dataset: Dataset) -> None:
    every = csv_table(flowq("-R", dataset.directory, "-s", "srcip", "-n", "0", "-o", "csv").out)
    ten = csv_table(flowq("-R", dataset.directory, "-s", "srcip", "-o", "csv").out)
    assert len(ten) == 10 < len(every)
    assert sum(int(r["flows"]) for r in every) == dataset.flows


def test_several_orders_print_in_nfdumps_order(dataset: Dataset) -> None:
    run = flowq("-R", dataset.directory, "-s", "srcip/bytes/flows", "-n", "2")
    headings = [line for line in run.out.splitlines() if line.startswith("Top ")]
    assert headings == ["Top 2 Src IP Addr ordered by flows:",
                        "Top 2 Src IP Addr ordered by bytes:"]  # fmt: skip


def test_icmp_counts_under_type_and_code_like_the_filter(dataset: Dataset) -> None:
    """-s dstport counts an ICMP flow under type * 256 + code, as 'dst port' filters it
    (echo requests: 2048), whether the exporter sent icmpTypeCode or the port."""
    stat = csv_table(flowq("-R", dataset.directory, "-s", "dstport", "-n", "0", "-o", "csv",
                           "proto icmp").out)  # fmt: skip
    counts = {r["dst_port"]: int(r["flows"]) for r in stat}
    selected = flowq("-R", dataset.directory, "-q", "-o", "csv", "proto icmp and dst port 2048")
    assert counts["2048"] == len(selected.out.splitlines()) > 1
    echo = flowq("-R", dataset.directory, "-q", "-o", "csv", "icmp-type 8")
    assert echo.out == selected.out
    assert counts.get("0") == 1  # the echo reply (type 0 code 0)


def test_bidirectional_rows(dataset: Dataset) -> None:
    """-b joins TCP/UDP A->B and B->A, keeps ICMP apart; -B shows the client first."""
    rows = csv_table(flowq("-R", dataset.directory, "-b", "-o", "csv", CONVERSATION_HOSTS).out)
    by_ports = {(r["src_port"], r["dst_port"], r["proto"]): r for r in rows}
    https = by_ports[("40000", "443", "6")]
    assert (https["flows"], https["packets"], https["bytes"]) == ("3", "14", "5800")
    assert (https["out_packets"], https["out_bytes"]) == ("8", "9000")
    dns = by_ports[("53", "33333", "17")]  # the server's record came first
    assert (dns["packets"], dns["bytes"], dns["out_packets"], dns["out_bytes"]) == (
        "1", "300", "1", "60")  # fmt: skip
    assert sum(r["proto"] == "1" for r in rows) == 2  # echo and reply stay apart
    guessed = csv_table(flowq("-R", dataset.directory, "-B", "-o", "csv", CONVERSATION_HOSTS).out)
    dns = {(r["src_port"], r["dst_port"], r["proto"]): r for r in guessed}[("33333", "53", "17")]
    assert (dns["packets"], dns["bytes"], dns["out_packets"], dns["out_bytes"]) == (
        "1", "60", "1", "300")  # fmt: skip
    assert sum(int(r["flows"]) for r in guessed) == sum(int(r["flows"]) for r in rows) == 10


# -- inputs ---------------------------------------------------------------------------------


def test_reads_a_parquet_file_a_directory_and_the_capture(dataset: Dataset) -> None:
    args = ("-o", "csv", "-O", "tstart")
    directory = flowq("-R", dataset.directory, *args)
    one_file = flowq("-r", dataset.parquet, *args)
    directory_as_r = flowq("-r", dataset.directory, *args)
    capture = flowq("-r", dataset.pcap, *args)
    assert directory.code == one_file.code == capture.code == 0
    assert len(directory.out.splitlines()) == dataset.flows + 1
    assert one_file.out == directory.out == directory_as_r.out

    def without_receive_time(text: str) -> list[str]:
        table = csv_table(text)
        return sorted(str({k: v for k, v in r.items() if k != "time_received"}) for r in table)

    # decoded in memory, the same flows as flowcapd stored
    assert without_receive_time(capture.out) == without_receive_time(directory.out)


def test_capture_statistics_same_as_stored(dataset: Dataset) -> None:
    args = ("-s", "srcip/bytes", "-s", "dstport", "-n", "5", "-o", "csv")
    assert flowq("-r", dataset.pcap, *args).out == flowq("-R", dataset.directory, *args).out


def test_corrupt_parquet_file_is_reported_and_skipped(dataset: Dataset, tmp_path: Path) -> None:
    directory = tmp_path / "flows"
    shutil.copytree(dataset.directory, directory)
    broken = directory / "flowcap.202311142215-202311142220.0.0.parquet"
    broken.write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    run = flowq("-R", directory, "-o", "csv", "-q")
    assert run.code == 0
    assert len(run.out.splitlines()) == dataset.flows
    assert run.err.startswith(f"flowq: skipped {broken}: ")
    stat = flowq("-R", directory, "-s", "proto", "-o", "csv", "-q")
    assert stat.code == 0 and f"skipped {broken}" in stat.err


def test_reads_the_live_spool(dataset: Dataset, tmp_path: Path) -> None:
    """Flows the running daemon holds in its spool (not yet a Parquet file) are read."""
    scenario = generate_v9(3, seed=43)
    directory = tmp_path / "live"
    log = tmp_path / "flowcapd.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [FLOWCAPD, "-p", "0", "-b", "127.0.0.1", "-l", str(directory), "-t", "3600",
             "--metrics", "off"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        port = int(_wait(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)",
                                           log.read_text())).group(1))  # fmt: skip
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for datagram in scenario.datagrams:
                sender.sendto(datagram.payload, ("127.0.0.1", port))

        def all_flows_readable() -> bool:
            run = flowq("-R", directory, "-q", "-o", "csv")
            return run.code == 0 and len(run.out.splitlines()) == scenario.flows

        _wait(all_flows_readable)
        assert list(directory.rglob("*.spool")) and not list(directory.rglob("*.parquet"))
        stat = csv_table(flowq("-R", directory, "-s", "proto", "-o", "csv").out)
        assert sum(int(r["flows"]) for r in stat) == scenario.flows
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()  # this pid only
            daemon.wait()


def _wait(condition: Callable[[], object], timeout_s: float = 15.0) -> object:
    """Poll ``condition`` until it holds (what the daemon exposes: its log, its files)."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


# -- pipes and plots ------------------------------------------------------------------------


def test_head_closes_the_pipe_early(dataset: Dataset, tmp_path: Path) -> None:
    """``flowq -R big | head -1`` returns promptly and exits 0, without a traceback."""
    table = pq.read_table(dataset.parquet)
    big = tmp_path / "big"
    big.mkdir()
    pq.write_table(pa.concat_tables([table] * 400), big / dataset.parquet.name,
                   row_group_size=10_000)  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen([FLOWQ, "-R", str(big)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what head does after its line
    code = process.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert first.startswith(b"Date first seen")
    assert code == 0
    assert process.stderr.read() == b""
    process.stderr.close()
    assert elapsed < 20  # it stopped at the closed pipe, not after printing everything


def test_plot_writes_a_png(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "traffic.png"
    run = flowq("-R", dataset.directory, "--series", "30s", "--plot", path, "-q")
    assert run.code == 0
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack("!II", data[16:24])  # IHDR
    assert (width, height) == (1000, 500)
    assert len(data) > 10_000
