"""``python -m bench storage``: bytes per flow of flowcap's files against nfcapd's.

Generates vDS-like IPFIX exports (the VMware vSphere Distributed Switch templates of
the corpus capture: IPv4 and IPv6 flows with VMware PEN 6876 fields), sends the
datagrams over UDP on 127.0.0.1 to an ``nfcapd`` it starts (``-y`` LZ4; ``-z`` LZO or
none on request), and feeds the same datagrams through ``FlowDecoder`` ->
``to_record_batch`` -> ``IntervalWriter``. Both must store every flow and packet
(``nfdump -I`` for nfcapd). Prints a table, writes JSON (``measure`` returns it).

Traffic model (what makes the sizes honest): 3000 VMs with zipf-like popularity, 300 of
them servers, 15 % of peers outside; server ports from a weighted well-known list,
client ports ephemeral (Linux or Windows range by host); 80 % of conversations exported
in both directions; packets log-normal (heavy tail, a third single-packet flows of
0 ms), bytes per packet by application; durations up to the 60 s active timeout; flows
exported in end-time order, 20 (IPv4) or 15 (IPv6) per datagram.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.environment import RESULTS_DIR, machine_info, write_json
from parsers.decoder import FlowDecoder
from parsers.elements import VMWARE_PEN
from parsers.ipfix import ENTERPRISE_BIT, IPFIX_HEADER, SET_HEADER, TEMPLATE_RECORD
from storage.interval_writer import IntervalWriter
from storage.parquet_writer import parquet_options
from storage.schema import to_record_batch

#: (element id, length, PEN) of the vDS templates, as the corpus capture defines them
_V4_FIELDS: Final = (
    (8, 4, 0), (12, 4, 0), (1, 8, 0), (2, 8, 0), (152, 8, 0), (153, 8, 0), (7, 2, 0),
    (11, 2, 0), (10, 4, 0), (14, 4, 0), (351, 8, 0), (4, 1, 0), (136, 1, 0), (6, 1, 0),
    (5, 1, 0), (53, 1, 0), (61, 1, 0), (890, 2, VMWARE_PEN), (888, 2, VMWARE_PEN),
    (889, 1, VMWARE_PEN), (210, 1, 0),
)  # fmt: skip
_V6_FIELDS: Final = ((27, 16, 0), (28, 16, 0), *_V4_FIELDS[2:])
V4_TEMPLATE_ID: Final = 256
V6_TEMPLATE_ID: Final = 258
_COMMON_DTYPE: Final = [
    ("bytes", ">u8"), ("packets", ">u8"), ("start", ">u8"), ("end", ">u8"),
    ("sport", ">u2"), ("dport", ">u2"), ("in_if", ">u4"), ("out_if", ">u4"),
    ("segment", ">u8"), ("proto", "u1"), ("end_reason", "u1"), ("flags", "u1"),
    ("tos", "u1"), ("ttl", "u1"), ("direction", "u1"), ("in_attr", ">u2"),
    ("out_attr", ">u2"), ("vxlan_role", "u1"), ("pad", "u1"),
]  # fmt: skip
V4_DTYPE: Final = np.dtype([("src", ">u4"), ("dst", ">u4"), *_COMMON_DTYPE])
V6_DTYPE: Final = np.dtype([("src", "V16"), ("dst", "V16"), *_COMMON_DTYPE])
UDP_PAYLOAD_BYTES: Final = 1472
#: the generated traffic starts at an interval start (2025-11-22 08:00 UTC): same files
#: and row groups on every run
BEGIN_MS: Final = 1_763_798_400_000
#: (port, proto, weight, mean bytes per packet) of the server side
_SERVICES: Final = (
    (443, 6, 30, 700), (80, 6, 8, 600), (53, 17, 14, 120), (445, 6, 5, 900),
    (389, 6, 4, 300), (88, 17, 2, 400), (123, 17, 2, 76), (3389, 6, 3, 350),
    (22, 6, 3, 200), (5985, 6, 3, 500), (3306, 6, 3, 400), (1433, 6, 2, 450),
    (8080, 6, 3, 650), (9200, 6, 2, 800), (6379, 6, 2, 150), (2049, 6, 2, 1100),
    (902, 6, 2, 700), (161, 17, 2, 150), (514, 17, 2, 250), (137, 17, 1, 90),
)  # fmt: skip
_TCP_FLAGS: Final = ((0x1B, 30), (0x1A, 15), (0x18, 10), (0x02, 10), (0x12, 5), (0x10, 15),
                     (0x19, 6), (0x14, 5), (0x04, 4))  # fmt: skip


def _zipf(rng: np.random.Generator, n: int, size: int, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** a
    return rng.choice(n, size=size, p=weights / weights.sum())


def _pick(rng: np.random.Generator, weights: list[float], size: int) -> np.ndarray:
    return rng.choice(len(weights), size=size, p=np.array(weights) / sum(weights))


def generate_flows(
    count: int, start_ms: int, flows_per_s: float, seed: int = 1, hosts: int = 3000
) -> np.ndarray:
    """``count`` flows (``V4_DTYPE`` records) in export order: by end time."""
    rng = np.random.default_rng(seed)
    n = int(count / 1.75) + 16  # conversations: 80 % of them give two flows
    address = (10 << 24) + (np.arange(hosts) // 250 + 1) * 256 + np.arange(hosts) % 250 + 1
    vds_port = rng.permutation(np.arange(hosts)) + 100  # each VM's port on the switch
    windows = rng.random(hosts) < 0.4
    servers = rng.choice(hosts, size=max(hosts // 10, 1), replace=False)
    client, server = _zipf(rng, hosts, n), servers[_zipf(rng, len(servers), n)]
    external = rng.random(n) < 0.15
    outside = rng.integers(0x0B000000, 0xDF000000, size=20_000, dtype=np.int64)
    peer = np.where(external, outside[_zipf(rng, 20_000, n)], address[server])
    service = _pick(rng, [s[2] for s in _SERVICES], n)
    port = np.array([s[0] for s in _SERVICES])[service]
    proto = np.array([s[1] for s in _SERVICES], dtype=np.uint8)[service]
    proto[rng.random(n) < 0.02] = 1
    ephemeral = np.where(
        windows[client], rng.integers(49152, 65536, n), rng.integers(32768, 61000, n)
    )
    packets = np.minimum(1 + np.floor(rng.lognormal(0.8, 1.7, n)), 5e6)
    packets[proto == 17] = np.minimum(packets[proto == 17], 4)
    size = np.array([s[3] for s in _SERVICES], dtype=float)[service]
    per_packet = np.clip(rng.lognormal(np.log(size), 0.5), 40, 1500)
    duration = np.where(packets == 1, 0, np.minimum(rng.lognormal(7.0, 2.0, n), 60_000))
    end = start_ms + np.cumsum(rng.exponential(1800.0 / flows_per_s, n)) + 200
    flags = np.array([f for f, _ in _TCP_FLAGS], dtype=np.uint8)[
        _pick(rng, [w for _, w in _TCP_FLAGS], n)
    ]

    client_port, peer_port = vds_port[client], np.where(external, 9, vds_port[server])

    def one_way(back: bool) -> np.ndarray:
        def pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (b, a) if back else (a, b)

        rec = np.zeros(n, dtype=V4_DTYPE)
        rec["src"], rec["dst"] = pair(address[client], peer)
        rec["in_if"], rec["out_if"] = pair(client_port, peer_port)
        rec["sport"], rec["dport"] = pair(ephemeral, port)
        rec["packets"] = (
            np.maximum(1, packets * (rng.random(n) * 0.6 + 0.7) // 1) if back else packets
        )
        rec["bytes"] = rec["packets"] * np.clip(per_packet * (1.6 if back else 0.5), 40, 1500) // 1
        rec["end"] = end + (rng.integers(0, 30, n) if back else 0)
        rec["start"] = rec["end"] - duration
        rec["proto"] = proto
        rec["flags"] = np.where(proto == 6, flags | (0x10 if back else 0), 0)
        rec["end_reason"] = rng.choice([1, 2, 3], n, p=[0.6, 0.25, 0.15])
        rec["tos"] = np.where(rng.random(n) < 0.95, 0, 0x20)
        rec["ttl"] = np.where(rng.random(n) < 0.3 if back else windows[client], 128, 64)
        rec["direction"] = int(back)
        rec["segment"] = np.where(rng.random(n) < 0.8, 0, 5000 + client % 16)
        rec["in_attr"] = np.where(external & back, 2, 1)
        rec["out_attr"] = np.where(external & (not back), 2, 1)
        return rec

    flows = np.concatenate([one_way(False), one_way(True)[rng.random(n) < 0.8]])
    # numpy's concatenate canonicalizes to native byte order: back to the wire's
    return flows[np.argsort(flows["end"], kind="stable")][:count].astype(V4_DTYPE)


def ipv6_records(flows: np.ndarray, share: float, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Split off ``share`` of the flows as IPv6 (addresses mapped into fd00::/8)."""
    rng = np.random.default_rng(seed)
    is_v6 = rng.random(len(flows)) < share
    v6 = np.zeros(int(is_v6.sum()), dtype=V6_DTYPE)
    for name in V4_DTYPE.names[2:]:
        v6[name] = flows[name][is_v6]
    for name in ("src", "dst"):
        raw = np.zeros((len(v6), 16), dtype=np.uint8)
        raw[:, 0] = 0xFD
        raw[:, 12:] = flows[name][is_v6].astype(">u4").view(np.uint8).reshape(-1, 4)
        v6[name] = raw.view("V16").reshape(-1)
    return flows[~is_v6], v6


def _template_set(template_id: int, fields: tuple) -> bytes:
    specs = [
        {"raw_id": eid | (ENTERPRISE_BIT if pen else 0), "length": length, "pen": pen or None}
        for eid, length, pen in fields
    ]
    record = TEMPLATE_RECORD.build(
        {"template_id": template_id, "field_count": len(specs), "fields": specs}
    )
    return SET_HEADER.build({"set_id": 2, "length": 4 + len(record)}) + record


def _message(body: bytes, sequence: int, export_time: int) -> bytes:
    header = {"version": 10, "length": 16 + len(body), "export_time": export_time,
              "sequence": sequence, "observation_domain": 0}  # fmt: skip
    return IPFIX_HEADER.build(header) + body


def build_datagrams(flows: np.ndarray, share_v6: float = 0.03) -> list[tuple[bytes, int]]:
    """(IPFIX message, receive time in ns): a template message first and every 2000
    messages, data messages of up to 20 (IPv4) or 14 (IPv6) records, each received
    100-400 ms after its last flow ended."""
    v4, v6 = ipv6_records(flows, share_v6)
    templates = _template_set(V4_TEMPLATE_ID, _V4_FIELDS) + _template_set(
        V6_TEMPLATE_ID, _V6_FIELDS
    )
    chunks: list[tuple[int, np.ndarray]] = []
    for template_id, records in ((V4_TEMPLATE_ID, v4), (V6_TEMPLATE_ID, v6)):
        per = (UDP_PAYLOAD_BYTES - 20) // records.dtype.itemsize
        chunks += [(template_id, records[i : i + per]) for i in range(0, len(records), per)]
    chunks.sort(key=lambda chunk: int(chunk[1]["end"][-1]))
    delays_ms = np.random.default_rng(3).integers(100, 400, len(chunks))
    messages: list[tuple[bytes, int]] = []
    sequence = 0
    for index, (template_id, records) in enumerate(chunks):
        received_ms = int(records["end"].max()) + int(delays_ms[index])
        if index % 2000 == 0:
            messages.append(
                (_message(templates, sequence, received_ms // 1000), received_ms * 10**6)
            )
        data = records.astype(V4_DTYPE if template_id == V4_TEMPLATE_ID else V6_DTYPE).tobytes()
        body = SET_HEADER.build({"set_id": template_id, "length": 4 + len(data)}) + data
        messages.append((_message(body, sequence, received_ms // 1000), received_ms * 10**6))
        sequence += len(records)
    return messages


# -- nfcapd ------------------------------------------------------------------------------

NAME: Final = "storage"
HELP: Final = "bytes per stored flow: flowcap Parquet vs nfcapd -y (LZ4) on vDS-like IPFIX"
NFCAPD_FLAGS: Final = {"lz4": "-y", "lzo": "-z", "none": None}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _udp_queue(port: int) -> int | None:
    """Bytes waiting in the receive queue of the UDP socket bound to ``port``."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    return None


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def send_paced(messages: list[tuple[bytes, int]], port: int, per_message_s: float) -> None:
    """Send one message every ``per_message_s`` on average, in bursts of 64."""
    begin = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for index, (payload, _) in enumerate(messages):
            sender.sendto(payload, ("127.0.0.1", port))
            if index % 64 == 63:
                ahead = begin + index * per_message_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)


def nfdump_totals(directory: Path) -> dict[str, int]:
    """Flows, packets and bytes of nfcapd's files, as ``nfdump -I`` counts them."""
    totals = {"flows": 0, "packets": 0, "bytes": 0}
    for path in sorted(directory.glob("nfcapd.2*")):
        out = subprocess.run(
            ["nfdump", "-r", str(path), "-I"], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in totals:
                totals[key.strip().lower()] += int(value)
    return totals


def feed_nfcapd(
    messages: list[tuple[bytes, int]],
    directory: Path,
    extra_flags: list[str],
    per_message_s: float,
    drain_timeout_s: float = 60,
) -> float:
    """Start ``nfcapd -w DIRECTORY`` on a free loopback port, send the datagrams paced,
    wait until its socket is drained, SIGTERM it (it then closes its file); return the
    sending seconds. The one nfcapd harness of the benchmarks."""
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_udp_port()
    command = ["nfcapd", "-w", str(directory), "-p", str(port), "-b", "127.0.0.1", *extra_flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not _wait_for(lambda: _udp_queue(port) is not None, 10):
            raise RuntimeError("nfcapd did not bind its port within 10 s")
        begin = time.monotonic()
        send_paced(messages, port, per_message_s)
        _wait_for(lambda: _udp_queue(port) == 0, drain_timeout_s)
        sent_s = time.monotonic() - begin
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return sent_s


def run_nfcapd(
    messages: list[tuple[bytes, int]], flows: int, compression: str, args: argparse.Namespace
) -> dict[str, Any]:
    """nfcapd with one compression on the datagrams: bytes per stored flow."""
    directory = args.workdir / f"nfcapd-{compression}"
    flags = ["-t", "60", "-B", str(args.socket_buffer)]
    if NFCAPD_FLAGS[compression]:
        flags.append(NFCAPD_FLAGS[compression])
    sent_s = feed_nfcapd(messages, directory, flags, flows / args.send_rate / len(messages), 30)
    size = sum(f.stat().st_size for f in directory.glob("nfcapd.2*"))
    totals = nfdump_totals(directory)
    return {
        "compression": compression,
        "bytes": size,
        "bytes_per_flow": size / max(totals["flows"], 1),
        "flows_stored": totals["flows"],
        "packets_stored": totals["packets"],
        "send_s": round(sent_s, 2),
    }


# -- flowcap -----------------------------------------------------------------------------


def run_flowcap(messages: list[tuple[bytes, int]], args: argparse.Namespace) -> dict[str, Any]:
    """Decode the same datagrams, flush once per second of receive time, write them
    through ``IntervalWriter`` (conversions inline, so the CPU time is all counted)."""
    decoder = FlowDecoder()
    writer = IntervalWriter(args.workdir / "flowcap", args.rotation, 0, 0, background=False)
    cpu = {"decode": 0.0, "storage": 0.0}
    paths: list[Path] = []

    def flush(received_s: float) -> None:
        begin = time.process_time()
        batches = [to_record_batch(b) for b in decoder.flush()]
        middle = time.process_time()
        for batch in batches:
            writer.append(batch, received_s)
        writer.sync()
        paths.extend(writer.rotate_due(received_s))
        cpu["decode"] += middle - begin
        cpu["storage"] += time.process_time() - middle

    flush_at_ns = messages[0][1] + 10**9
    for payload, received_ns in messages:
        if received_ns >= flush_at_ns:
            flush(flush_at_ns / 1e9)
            flush_at_ns = received_ns + 10**9
        begin = time.process_time()
        decoder.feed_datagram(payload, ("192.0.2.10", 2055), received_ns)
        cpu["decode"] += time.process_time() - begin
    flush(flush_at_ns / 1e9)
    begin = time.process_time()
    paths.extend(writer.close())
    cpu["storage"] += time.process_time() - begin
    stats, size = writer.stats, sum(p.stat().st_size for p in paths)
    flows = max(stats.rows_in_files, 1)
    tables = [pq.read_table(p) for p in paths]
    return {"bytes": size, "bytes_per_flow": size / flows, "flows_stored": stats.rows_in_files,
            "packets_stored": sum(int(pc.sum(t["packets"]).as_py()) for t in tables),
            "files": len(paths), "spool_bytes_per_flow": stats.bytes_appended / flows,
            "bytes_per_flow_unsorted": _unsorted_size(tables, args.workdir) / flows,
            "decode_cpu_s_per_million": cpu["decode"] / flows * 1e6,
            "storage_cpu_s_per_million": cpu["storage"] / flows * 1e6,
            "row_groups": row_group_report(paths)}  # fmt: skip


def _unsorted_size(tables: list[pa.Table], workdir: Path) -> int:
    """What the same files would take in receive order: the price of the time sort."""
    size = 0
    for table in tables:
        table = table.sort_by("time_received")
        pq.write_table(table, workdir / "unsorted.parquet", **parquet_options(table.schema))
        size += (workdir / "unsorted.parquet").stat().st_size
    return size


def row_group_report(paths: list[Path]) -> dict[str, Any]:
    """How well row-group statistics prune nfdump-style 60 s windows (flows with
    ``time_start`` at or after the window's start and ``time_end`` at or before its end):
    the mean share of rows in row groups that cannot be skipped, against the share that
    matches, over windows every 10 s."""
    groups, times = [], []
    for path in paths:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
        for index in range(file.metadata.num_row_groups):
            group = file.metadata.row_group(index)
            start = group.column(names.index("time_start")).statistics
            end = group.column(names.index("time_end")).statistics
            groups.append((start.max.timestamp(), end.min.timestamp(), group.num_rows))
        table = file.read(columns=["time_start", "time_end"])
        times.append(np.stack([pc.cast(table[c], pa.int64()).to_numpy() / 1e3 for c in
                               ("time_start", "time_end")]))  # fmt: skip
    starts, ends = np.concatenate(times, axis=1)
    total = sum(g[2] for g in groups)
    read, matching = [], []
    for low in np.arange(ends.min(), starts.max() - 60, 10.0):
        read.append(sum(g[2] for g in groups if g[0] >= low and g[1] <= low + 60) / total)
        matching.append(np.count_nonzero((starts >= low) & (ends <= low + 60)) / total)
    return {
        "count": len(groups),
        "rows": [g[2] for g in groups],
        "share_read_60s_window": round(float(np.mean(read)), 3) if read else None,
        "share_matching_60s_window": round(float(np.mean(matching)), 3) if read else None,
    }


# -- the subcommand ----------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, store both ways, compare; the results document."""
    begin_ms = BEGIN_MS
    print(f"bench storage: generating {args.flows} flows", file=sys.stderr)
    flows = generate_flows(args.flows, begin_ms, args.flow_rate, seed=args.seed)
    messages = build_datagrams(flows)
    expected_packets = int(flows["packets"].astype(np.uint64).sum())
    results: dict[str, Any] = {"flows": args.flows, "datagrams": len(messages),
                               "wire_bytes_per_flow": sum(len(m) for m, _ in messages) / args.flows,
                               "packets": expected_packets}  # fmt: skip
    print("bench storage: flowcap", file=sys.stderr)
    results["flowcap"] = run_flowcap(messages, args)
    results["nfcapd"] = {}
    if shutil.which("nfcapd") and shutil.which("nfdump"):
        for compression in args.nfcapd:
            print(f"bench storage: nfcapd ({compression})", file=sys.stderr)
            results["nfcapd"][compression] = run_nfcapd(messages, args.flows, compression, args)
    lz4 = results["nfcapd"].get("lz4")
    if lz4 and lz4["flows_stored"]:
        ratio = results["flowcap"]["bytes_per_flow"] / lz4["bytes_per_flow"]
        results["ratio_flowcap_to_nfcapd_lz4"] = round(ratio, 3)
    return results


def format_table(results: dict[str, Any]) -> str:
    rows = [("flowcap Parquet (zstd)", results["flowcap"])]
    rows += [(f"nfcapd ({c})", r) for c, r in results["nfcapd"].items()]
    lines = [f"{'store':26} {'flows stored':>13} {'bytes':>12} {'bytes/flow':>11}"]
    for label, r in rows:
        lost = "" if r["flows_stored"] == results["flows"] else "  (flows lost!)"
        lines.append(
            f"{label:26} {r['flows_stored']:>13,} {r['bytes']:>12,} {r['bytes_per_flow']:>11.2f}"
            + lost
        )
    flowcap, groups = results["flowcap"], results["flowcap"]["row_groups"]
    unsorted, spool = flowcap["bytes_per_flow_unsorted"], flowcap["spool_bytes_per_flow"]
    cpu = flowcap["storage_cpu_s_per_million"]
    lines.append(f"flowcap unsorted (receive order): {unsorted:.2f} bytes/flow; spool (LZ4 "
                 f"Arrow IPC): {spool:.1f}; storage CPU {cpu:.2f} s per million flows")  # fmt: skip
    if groups["share_read_60s_window"] is not None:
        lines.append(f"{groups['count']} row groups; a 60 s window reads "
                     f"{groups['share_read_60s_window']:.1%} of the rows, "
                     f"{groups['share_matching_60s_window']:.1%} match")  # fmt: skip
    if "ratio_flowcap_to_nfcapd_lz4" in results:
        lines.append(f"flowcap / nfcapd -y: {results['ratio_flowcap_to_nfcapd_lz4']:.2f}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flows", type=int, default=2_000_000, help="flows (default 2 M)")
    parser.add_argument("--flow-rate", type=float, default=10_000.0,
                        help="flows per second of (generated) traffic (default 10 k)")  # fmt: skip
    parser.add_argument("--send-rate", type=float, default=200_000.0,
                        help="flows per second sent to nfcapd (default 200 k)")  # fmt: skip
    parser.add_argument("--rotation", type=int, default=300, help="flowcap -t (default 300)")
    parser.add_argument("--nfcapd", nargs="*", default=["lz4"], choices=list(NFCAPD_FLAGS),
                        help="nfcapd compressions to compare (default lz4)")  # fmt: skip
    parser.add_argument("--socket-buffer", type=int, default=8 << 20, help="nfcapd -B")
    parser.add_argument("--seed", type=int, default=1, help="traffic RNG seed")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "storage.json",
                        help="results JSON (default bench/results/storage.json)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``python -m bench storage``: table on stdout, JSON to ``--output``; 1 if a store
    lost flows (the comparison is then not on the same flows)."""
    with tempfile.TemporaryDirectory(prefix="flowcap-bench-storage-") as workdir:
        args.workdir = Path(workdir)
        results = measure(args)
    write_json(args.output, {"benchmark": NAME, "machine": machine_info(None),
                             "settings": {k: str(v) for k, v in vars(args).items()
                                          if k not in ("workdir", "run")},
                             "results": results})  # fmt: skip
    print(format_table(results))
    print(f"bench storage: wrote {args.output}", file=sys.stderr)
    stores = [results["flowcap"], *results["nfcapd"].values()]
    same = all(r["flows_stored"] == args.flows for r in stores)
    return 0 if same and all(r["packets_stored"] == results["packets"] for r in stores) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_storage", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
