"""``python -m bench query``: flowq against nfdump on the same flows (issue 4, point 8).

Dataset: ``--flows`` vDS-like IPFIX flows from ``bench_storage``'s traffic model (3000
VMs with zipf-like popularity, well-known server ports with a large TCP 443 share,
both directions of most conversations, IPv4 and 3 % IPv6), their flow times spread
over ``--span-hours`` (default 3) so that ``-t 300`` files rotate. The same datagrams
are stored twice:

- by ``nfcapd -y -t 300`` (LZ4), fed over UDP on 127.0.0.1 at ``--send-rate`` flows
  per second, its flow and packet totals checked with ``nfdump -I``: a run where
  nfcapd lost flows is sent again, slower;
- by ``flowcapd --read DATAGRAMS.pcap -t 300``, the datagrams written as a pcap with
  their receive times (the same pipeline as the live daemon, files rotating on receive
  time), its row and packet totals read from the Parquet footers and columns.

nfcapd rotates on wall-clock receive time and flowcapd on the pcap's, so the file
counts differ; the stores hold the same flows. Both, and the pcap, are kept under
``bench/results/query-data/`` keyed by flows, seed and span (gitignored), so a rerun
only times the queries; when the code that writes flowcapd's files changed since (a
digest of ``parsers/``, ``collector/``, ``storage/``), the flowcap store is rewritten
from the pcap first.

Queries (the issue's list, ``TZ=UTC``, output to /dev/null, ``-N`` plain numbers): one
untimed run of each tool first, its output captured and compared (summary counts,
rows, top-N keys and values), which also warms the page cache; then ``--repeat`` timed
runs, wall time by ``time.perf_counter`` around the process, peak RSS of that process
by GNU ``/usr/bin/time``. The summary scan is nfdump's ``-o null``; while flowq has no
``-o null`` it runs ``-s proto -n 0`` instead (``NO_NULL_FORMAT``). Prints a table
(best of the runs) and writes ``bench/results/query.json`` (every run, medians, the
load average before each query, a digest of flowq's sources). Target: flowq >= 3x
faster than nfdump (median) on the statistics and filtered queries, no slower on the
full dump. Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import compileall
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import dpkt
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.bench_storage import (
    BEGIN_MS,
    build_datagrams,
    feed_nfcapd,
    generate_flows,
    nfdump_totals,
)
from bench.environment import REPO_ROOT, RESULTS_DIR, machine_info, write_json

NAME: Final = "query"
HELP: Final = "flowq vs nfdump query wall time and peak RSS on the same vDS-like IPFIX flows"
DATA_DIR: Final = RESULTS_DIR / "query-data"
#: bump when the dataset's making changes, so cached stores are rebuilt
DATASET_VERSION: Final = 2
#: the code that makes flowcapd's files (its digest is kept with the flowcap store)
WRITER_PACKAGES: Final = ("parsers", "collector", "storage")
#: the code that answers the queries (its digest goes into the results)
READER_PACKAGES: Final = ("flowq", "storage")
ROTATION_S: Final = 300
#: the exporter the pcap's datagrams come from, and where they go
EXPORTER: Final = ("192.0.2.10", 2055)
COLLECTOR: Final = ("127.0.0.1", 2055)
#: the filter of the selective and the filtered queries
SELECTIVE: Final = "proto tcp and dst port 443"
#: GNU time, for the peak RSS of exactly the measured program
TIME: Final = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None


# -- the dataset -------------------------------------------------------------------------


def write_pcap(messages: list[tuple[bytes, int]], path: Path) -> int:
    """The datagrams as Ethernet/IPv4/UDP frames with their receive times (ns pcap)."""
    source, target = socket.inet_aton(EXPORTER[0]), socket.inet_aton(COLLECTOR[0])
    size = 0
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
        for identification, (payload, received_ns) in enumerate(messages):
            udp = dpkt.udp.UDP(sport=EXPORTER[1], dport=COLLECTOR[1], data=payload)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(
                src=source,
                dst=target,
                p=dpkt.ip.IP_PROTO_UDP,
                ttl=64,
                id=identification & 0xFFFF,
                data=udp,
            )
            ip.len = len(ip)
            frame = bytes(dpkt.ethernet.Ethernet(data=ip, type=dpkt.ethernet.ETH_TYPE_IP))
            writer.writepkt(frame, ts=received_ns / 1e9)
            size += len(frame)
    return size


@dataclass(frozen=True, slots=True)
class Dataset:
    """Where the two stores of one dataset live."""

    root: Path

    @property
    def nfcapd(self) -> Path:
        return self.root / "nfcapd"

    @property
    def flowcap(self) -> Path:
        return self.root / "flowcap"

    @property
    def manifest(self) -> Path:
        return self.root / "dataset.json"

    @property
    def pcap(self) -> Path:
        """The datagrams with their receive times: flowcapd's input, kept so that the
        flowcap store can be rewritten when flowcapd changes."""
        return self.root / "datagrams.pcap"

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Dataset:
        span = f"{args.span_hours:g}h"
        return cls(args.data_dir / f"n{args.flows}-seed{args.seed}-{span}")

    def load(self, flows: int) -> dict[str, Any] | None:
        """The manifest of a complete dataset of ``flows`` flows, else None."""
        try:
            manifest = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("version") != DATASET_VERSION or manifest.get("flows") != flows:
            return None
        if not manifest.get("complete") or not self.pcap.is_file():
            return None
        return manifest


def flowcap_totals(directory: Path) -> dict[str, int]:
    """Rows and packets of flowcapd's Parquet files."""
    totals = {"flows": 0, "packets": 0, "bytes": 0, "files": 0}
    for path in sorted(directory.rglob("flowcap.*.parquet")):
        table = pq.read_table(path, columns=["packets", "bytes"])
        totals["flows"] += table.num_rows
        totals["packets"] += int(pc.sum(table["packets"]).as_py() or 0)
        totals["bytes"] += int(pc.sum(table["bytes"]).as_py() or 0)
        totals["files"] += 1
    return totals


def store_with_nfcapd(
    messages: list[tuple[bytes, int]], flows: int, directory: Path, send_rate: float
) -> dict[str, Any]:
    """``nfcapd -y -t 300`` fed the datagrams paced, then its flow count."""
    flags = ["-y", "-t", str(ROTATION_S), "-B", str(64 << 20)]
    sent_s = feed_nfcapd(messages, directory, flags, flows / send_rate / len(messages))
    totals = nfdump_totals(directory)
    totals["files"] = len(list(directory.glob("nfcapd.2*")))
    return {"send_s": round(sent_s, 2), "send_rate_flows_per_s": send_rate, **totals}


def feed_flowcapd(pcap: Path, directory: Path) -> dict[str, Any]:
    """``flowcapd --read DATAGRAMS.pcap -l DIR -t 300``: the daemon's pipeline, offline."""
    flowcapd = Path(sys.executable).with_name("flowcapd")
    begin = time.perf_counter()
    done = subprocess.run(
        [
            str(flowcapd),
            "--read",
            str(pcap),
            "-l",
            str(directory),
            "-t",
            str(ROTATION_S),
            "--metrics",
            "off",
            "--log-level",
            "warning",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - begin
    if done.returncode != 0:
        raise RuntimeError(f"flowcapd --read failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"read_s": round(elapsed, 2), **flowcap_totals(directory)}


def source_digest(packages: tuple[str, ...]) -> str:
    """SHA-256 (16 hex digits) of the Python sources of ``packages``: which code made
    the flowcap store (``WRITER_PACKAGES``; other code: the store is rewritten from the
    kept pcap) and which code answered the queries (``READER_PACKAGES``)."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _generate(args: argparse.Namespace) -> tuple[list[tuple[bytes, int]], dict[str, Any]]:
    """The datagrams (deterministic in flows, seed and span) and what they carry."""
    span_s = args.span_hours * 3600
    _progress(f"generating {args.flows:,} flows over {args.span_hours:g} h (seed {args.seed})")
    begin = time.perf_counter()
    # generate_flows spreads conversations (1.75 flows each) at 1800 / rate ms apart
    flows = generate_flows(args.flows, BEGIN_MS, args.flows / span_s * 1.03, seed=args.seed)
    facts = {
        "flows": len(flows),
        "packets": int(flows["packets"].astype(np.uint64).sum()),
        "bytes": int(flows["bytes"].astype(np.uint64).sum()),
        "flow_times_utc_ms": [int(flows["start"].min()), int(flows["end"].max())],
    }
    messages = build_datagrams(flows)
    facts["datagrams"] = len(messages)
    facts["generate_s"] = round(time.perf_counter() - begin, 2)
    _progress(f"{len(messages):,} datagrams in {facts['generate_s']:.1f} s")
    return messages, facts


def build_flowcap_store(dataset: Dataset) -> dict[str, Any]:
    """(Re)write the flowcap store from the kept pcap."""
    if dataset.flowcap.exists():
        shutil.rmtree(dataset.flowcap)
    _progress("flowcapd --read")
    digest = source_digest(WRITER_PACKAGES)
    return {**feed_flowcapd(dataset.pcap, dataset.flowcap), "writer_source": digest,
            "bytes_on_disk": _disk_bytes(dataset.flowcap)}  # fmt: skip


def build_dataset(args: argparse.Namespace, dataset: Dataset) -> dict[str, Any]:
    """Generate the datagrams, keep them as a pcap, store them with flowcapd and nfcapd;
    the manifest (``complete`` when both stores hold every generated flow)."""
    if dataset.root.exists():
        shutil.rmtree(dataset.root)
    dataset.root.mkdir(parents=True)
    messages, facts = _generate(args)
    begin = time.perf_counter()
    pcap_bytes = write_pcap(messages, dataset.pcap)
    pcap_s = round(time.perf_counter() - begin, 2)
    _progress(f"pcap of {pcap_bytes / 1e6:,.0f} MB in {pcap_s:.1f} s")
    flowcap = build_flowcap_store(dataset)
    rate = args.send_rate
    for attempt in range(3):
        _progress(f"nfcapd over UDP at {rate:,.0f} flows/s")
        if dataset.nfcapd.exists():
            shutil.rmtree(dataset.nfcapd)
        nfcapd = store_with_nfcapd(messages, facts["flows"], dataset.nfcapd, rate)
        nfcapd["attempt"] = attempt + 1
        if nfcapd["flows"] == facts["flows"]:
            break
        _progress(f"nfcapd stored {nfcapd['flows']:,} of {facts['flows']:,} flows: again, slower")
        rate /= 2
    nfcapd["bytes_on_disk"] = _disk_bytes(dataset.nfcapd)
    expected = {key: facts[key] for key in ("flows", "packets", "bytes")}
    manifest = {
        "version": DATASET_VERSION,
        "flows": args.flows,
        "seed": args.seed,
        "span_hours": args.span_hours,
        "datagrams": facts["datagrams"],
        "expected": expected,
        "flow_times_utc_ms": facts["flow_times_utc_ms"],
        "generate_s": facts["generate_s"],
        "pcap_bytes": pcap_bytes,
        "pcap_write_s": pcap_s,
        "flowcap": flowcap,
        "nfcapd": nfcapd,
    }
    return _finish_manifest(dataset, manifest)


def refresh_flowcap_store(dataset: Dataset, manifest: dict[str, Any]) -> dict[str, Any]:
    """The writer code changed since the flowcap store was made: make it again."""
    _progress("flowcapd's code changed since the flowcap store was written: rewriting it")
    manifest["flowcap"] = build_flowcap_store(dataset)
    return _finish_manifest(dataset, manifest)


def _finish_manifest(dataset: Dataset, manifest: dict[str, Any]) -> dict[str, Any]:
    expected = manifest["expected"]
    same = all(
        manifest[store][key] == expected[key]
        for store in ("flowcap", "nfcapd")
        for key in ("flows", "packets", "bytes")
    )
    manifest["complete"] = same
    write_json(dataset.manifest, manifest)
    if not same:
        raise RuntimeError(f"the stores do not hold the generated flows: {manifest}")
    return manifest


def _disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _progress(message: str) -> None:
    print(f"bench query: {message}", file=sys.stderr, flush=True)


# -- the queries -------------------------------------------------------------------------


#: flowq's spelling of the summary scan while it has no ``-o null``: the smallest
#: statistic over the whole store (4 rows) with its summary lines
NO_NULL_FORMAT: Final = ("-s", "proto", "-n", "0")


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """One of the issue's queries, as both tools spell it.

    ``kind``: "statistic" and "filtered" must be 3x faster, "dump" no slower. ``check``
    says what of the two outputs is compared: "summary" (the summary line), "rows"
    (records printed), "top" (the top-N rows' keys and counts), "aggregate" (rows and
    the leading aggregates).
    """

    name: str
    description: str
    kind: str
    check: str
    nfdump: tuple[str, ...]
    flowq: tuple[str, ...]

    @property
    def target(self) -> float:
        return 1.0 if self.kind == "dump" else 3.0


QUERIES: Final = (
    # nfdump's '-o null': no records, the summary; flowq without it: see NO_NULL_FORMAT
    QuerySpec(
        "summary", "full scan with summary", "statistic", "summary", ("-o", "null"), ("-o", "null")
    ),
    QuerySpec(
        "filter-csv",
        f"'{SELECTIVE}' as csv",
        "filtered",
        "rows",
        ("-o", "csv", SELECTIVE),
        ("-o", "csv", SELECTIVE),
    ),
    QuerySpec(
        "top-srcip-bytes",
        "top-10 src IP by bytes",
        "statistic",
        "top",
        ("-s", "srcip/bytes", "-n", "10"),
        ("-s", "srcip/bytes", "-n", "10"),
    ),
    QuerySpec(
        "top-dstport",
        "top-10 dst port (flows)",
        "statistic",
        "top",
        ("-s", "dstport", "-n", "10"),
        ("-s", "dstport", "-n", "10"),
    ),
    QuerySpec(
        "filtered-top",
        f"top-10 dst IP by bytes of '{SELECTIVE}'",
        "filtered",
        "top",
        ("-s", "dstip/bytes", "-n", "10", SELECTIVE),
        ("-s", "dstip/bytes", "-n", "10", SELECTIVE),
    ),
    QuerySpec(
        "aggregate",
        "-A srcip,dstip -O bytes",
        "statistic",
        "aggregate",
        ("-A", "srcip,dstip", "-O", "bytes"),
        ("-A", "srcip,dstip", "-O", "bytes"),
    ),
    QuerySpec("dump-csv", "everything as csv", "dump", "rows", ("-o", "csv"), ("-o", "csv")),
)

_SUMMARY = re.compile(rb"Summary: total flows: (\d+), total bytes: (\d+), total packets: (\d+)")
_CSV_SUMMARY = re.compile(rb"^Summary\nflows,bytes,packets[^\n]*\n(\d+),(\d+),(\d+)", re.M)
_RECORD_LINE = re.compile(rb"^\d{4}-\d\d-\d\d[ T]")
_STAT_VALUE = re.compile(rb"(\d+)\(\s*[\d.]+\)")
#: lines kept from the start of an output for the checks (top-N, leading aggregates)
_HEAD_LINES: Final = 64
#: lines kept from the end: the summary (nfdump prints up to 5 lines of it)
_TAIL_LINES: Final = 8


@dataclass(slots=True)
class Output:
    """What a verification run printed, in the measure the checks need."""

    records: int = 0  # lines starting with a date: records, aggregates, top-N rows
    head: list[bytes] | None = None
    tail: bytes = b""

    def summary(self) -> dict[str, int] | None:
        for pattern in (_SUMMARY, _CSV_SUMMARY):
            match = pattern.search(self.tail)
            if match:
                flows, octets, packets = (int(g) for g in match.groups())
                return {"flows": flows, "bytes": octets, "packets": packets}
        return None

    def top_rows(self) -> list[tuple[str, int, int, int]]:
        """(key, flows, packets, bytes) of the rows of a ``-s`` statistic."""
        rows = []
        for line in self.head or []:
            if not _RECORD_LINE.match(line):
                continue
            values = list(_STAT_VALUE.finditer(line))
            if len(values) < 3:
                continue
            key = line[: values[0].start()].split()[-1].decode()
            rows.append((key, *(int(v.group(1)) for v in values[:3])))
        return rows

    def aggregate_rows(self, count: int) -> list[tuple[str, str, int, int, int]]:
        """(src, dst, packets, bytes, flows) of the first ``count`` aggregates."""
        rows = []
        for line in self.head or []:
            if _RECORD_LINE.match(line) and len(rows) < count:
                fields = line.split()
                src, dst, packets, octets = fields[3:7]
                rows.append(
                    (src.decode(), dst.decode(), int(packets), int(octets), int(fields[-1]))
                )
        return rows


def _consume(stream: Any, output: Output) -> None:
    head: list[bytes] = []
    tail: deque[bytes] = deque(maxlen=_TAIL_LINES)
    records = 0
    for line in stream:
        if _RECORD_LINE.match(line):
            records += 1
        if len(head) < _HEAD_LINES:
            head.append(line)
        tail.append(line)
    output.records, output.head, output.tail = records, head, b"".join(tail)


@dataclass(slots=True)
class Run:
    wall_s: float
    max_rss_mb: float
    returncode: int
    stderr: str


def run_once(command: list[str], output: Output | None, timeout_s: float) -> Run:
    """Run ``command`` with TZ=UTC; stdout to /dev/null, or consumed into ``output``.

    Wall time is from spawn to reap. Peak RSS comes from GNU ``/usr/bin/time -f %M``
    (which forks the command from a small process); without it, from ``os.wait4``,
    which also counts the pages of this Python process the child had between fork and
    exec (about 90 MB: an overstatement for small queries)."""
    env = {**os.environ, "TZ": "UTC"}
    stdout = subprocess.PIPE if output is not None else subprocess.DEVNULL
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile() as rss:
        wrapped = [TIME, "-f", "%M", "-o", rss.name, *command] if TIME else command
        begin = time.perf_counter()
        process = subprocess.Popen(wrapped, stdout=stdout, stderr=errors, env=env)
        reader = None
        if output is not None:
            reader = threading.Thread(target=_consume, args=(process.stdout, output), daemon=True)
            reader.start()
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - begin
        process.returncode = os.waitstatus_to_exitcode(status)
        if reader is not None:
            reader.join()
            process.stdout.close()  # type: ignore[union-attr]
        errors.seek(0)
        message = errors.read().decode(errors="replace")[-2000:]
        max_rss_kb = usage.ru_maxrss
        if TIME:
            reported = rss.read().decode().split()
            # GNU time prints 'Command exited with non-zero status N' before the number
            max_rss_kb = int(reported[-1]) if reported and reported[-1].isdigit() else 0
    return Run(wall, max_rss_kb / 1024, process.returncode, message)


FLOWQ: Final = str(Path(sys.executable).with_name("flowq"))


@functools.cache
def flowq_has_null_format() -> bool:
    """Whether flowq takes ``-o null`` (asked on an empty directory)."""
    with tempfile.TemporaryDirectory() as empty:
        done = subprocess.run([FLOWQ, "-R", empty, "-o", "null"], capture_output=True,
                              text=True, check=False, env={**os.environ, "TZ": "UTC"})  # fmt: skip
    return not (done.returncode == 2 and "null" in done.stderr)


def _commands(spec: QuerySpec, dataset: Dataset) -> dict[str, list[str]]:
    flowq = spec.flowq
    if "null" in flowq and not flowq_has_null_format():
        flowq = NO_NULL_FORMAT
    return {
        "nfdump": ["nfdump", "-R", str(dataset.nfcapd), "-N", *spec.nfdump],
        "flowq": [FLOWQ, "-R", str(dataset.flowcap), "-N", *flowq],
    }


def scan_floor_command(spec: QuerySpec, dataset: Dataset) -> list[str]:
    """``bench.scan_floor`` for the query: its imports and its scan, no work after."""
    return [sys.executable, "-m", "bench.scan_floor", "-R", str(dataset.flowcap), *spec.flowq]


def compare(spec: QuerySpec, outputs: dict[str, Output], flows: int) -> dict[str, Any]:
    """Do the two answers agree? ``agree`` plus the facts compared."""
    nf, fq = outputs["nfdump"], outputs["flowq"]
    facts: dict[str, Any] = {"nfdump_summary": nf.summary(), "flowq_summary": fq.summary()}
    problems = []
    both = facts["nfdump_summary"] and facts["flowq_summary"]
    if both and facts["nfdump_summary"] != facts["flowq_summary"]:
        problems.append("summary counts differ")
    if spec.check == "summary":
        if not (facts["nfdump_summary"] and facts["flowq_summary"]):
            problems.append("a summary line is missing")
        elif facts["flowq_summary"]["flows"] != flows:
            problems.append(f"summary flows {facts['flowq_summary']['flows']} != {flows}")
    elif spec.check == "rows":
        facts["nfdump_rows"], facts["flowq_rows"] = nf.records, fq.records
        if nf.records != fq.records:
            problems.append(f"rows differ: nfdump {nf.records}, flowq {fq.records}")
        if spec.name == "dump-csv" and fq.records != flows:
            problems.append(f"flowq printed {fq.records} of {flows} flows")
    elif spec.check == "top":
        facts["nfdump_top"], facts["flowq_top"] = nf.top_rows(), fq.top_rows()
        if facts["nfdump_top"] != facts["flowq_top"]:
            problems.append("top-N rows differ")
        if not facts["flowq_top"]:
            problems.append("no top-N rows")
    elif spec.check == "aggregate":
        facts["nfdump_rows"], facts["flowq_rows"] = nf.records, fq.records
        facts["nfdump_first"], facts["flowq_first"] = nf.aggregate_rows(5), fq.aggregate_rows(5)
        if nf.records != fq.records:
            problems.append(f"aggregates differ: nfdump {nf.records}, flowq {fq.records}")
        if facts["nfdump_first"] != facts["flowq_first"]:
            problems.append("leading aggregates differ")
    flows_seen = {tool: (o.summary() or {}).get("flows") for tool, o in outputs.items()}
    if spec.check == "rows":
        flows_seen = {tool: o.records for tool, o in outputs.items()}
    facts["flows_seen"] = flows_seen
    facts["problems"] = problems
    facts["agree"] = not problems
    return facts


def measure_query(
    spec: QuerySpec, dataset: Dataset, repeat: int, flows: int, timeout_s: float
) -> dict[str, Any]:
    commands = _commands(spec, dataset)
    result: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "kind": spec.kind,
        "target_ratio": spec.target,
        # other work on the machine skews a query's numbers: how much there was
        "load_average_1m_before": round(os.getloadavg()[0], 2),
    }
    outputs = {}
    for tool, command in commands.items():
        output = Output()
        # untimed: the answer to check, and a warm page cache for the timed runs
        check = run_once(command, output, timeout_s)
        outputs[tool] = output
        runs = [run_once(command, None, timeout_s) for _ in range(repeat)]
        walls = [r.wall_s for r in runs]
        failed = [r for r in (check, *runs) if r.returncode != 0]
        result[tool] = {
            "command": command,
            "runs_s": [round(w, 4) for w in walls],
            "best_s": round(min(walls), 4),
            "median_s": round(statistics.median(walls), 4),
            "max_rss_mb": round(max(r.max_rss_mb for r in (check, *runs)), 1),
            "check_run_s": round(check.wall_s, 4),
            "error": f"exit {failed[0].returncode}: {failed[0].stderr}" if failed else None,
        }
    if spec.kind == "filtered":  # the flows must be read: how long reading alone takes
        floor = [run_once(scan_floor_command(spec, dataset), None, timeout_s)
                 for _ in range(repeat)]  # fmt: skip
        result["scan_floor"] = {
            "runs_s": [round(r.wall_s, 4) for r in floor],
            "median_s": round(statistics.median(r.wall_s for r in floor), 4),
            "error": next((f"exit {r.returncode}: {r.stderr}" for r in floor if r.returncode),
                          None),
        }  # fmt: skip
    result["ratio_best"] = round(result["nfdump"]["best_s"] / result["flowq"]["best_s"], 3)
    result["ratio_median"] = round(result["nfdump"]["median_s"] / result["flowq"]["median_s"], 3)
    result["target_met"] = result["ratio_median"] >= spec.target
    result["answers"] = compare(spec, outputs, flows)
    return result


# -- the subcommand ----------------------------------------------------------------------


def format_table(results: dict[str, Any]) -> str:
    data = results["dataset"]
    lines = [
        f"{data['flows']:,} flows; nfcapd -y: {data['nfcapd']['files']} files, "
        f"{data['nfcapd']['bytes_on_disk'] / 1e6:,.0f} MB; flowcapd: {data['flowcap']['files']} "
        f"files, {data['flowcap']['bytes_on_disk'] / 1e6:,.0f} MB; best / median of "
        f"{results['repeat']}, TZ=UTC, output to /dev/null",
        f"{'query':17} {'nfdump s':>9} {'flowq s':>9} {'ratio':>7} {'target':>7} "
        f"{'nfdump MB':>10} {'flowq MB':>9}  {'met':3}  same answer",
    ]
    for q in results["queries"]:
        nf, fq, answers = q["nfdump"], q["flowq"], q["answers"]
        same = "yes" if answers["agree"] else "NO: " + "; ".join(answers["problems"])
        errors = [f"{t}: {q[t]['error']}" for t in ("nfdump", "flowq") if q[t]["error"]]
        if errors:
            same += "  (" + "; ".join(e.splitlines()[0] for e in errors) + ")"
        lines.append(
            f"{q['name']:17} {nf['best_s']:>9.3f} {fq['best_s']:>9.3f} {q['ratio_best']:>6.2f}x "
            f"{'>=' + format(q['target_ratio'], 'g') + 'x':>7} {nf['max_rss_mb']:>10,.0f} "
            f"{fq['max_rss_mb']:>9,.0f}  {'yes' if q['target_met'] else 'NO ':3}  {same}"
        )
    lines.append("ratio = nfdump s / flowq s (best); 'met' judges the median ratio")
    for q in results["queries"]:
        if "scan_floor" in q:
            floor = q["scan_floor"]["median_s"]
            lines.append(
                f"{q['name']}: reading its flows alone (imports + Arrow scan, no output) "
                f"takes {floor:.3f} s, nfdump's median / 3 is {q['nfdump']['median_s'] / 3:.3f} s"
            )
    for q in results["queries"]:
        nfdump_args, flowq_args = q["nfdump"]["command"][4:], q["flowq"]["command"][4:]
        if nfdump_args != flowq_args:
            lines.append(
                f"{q['name']}: nfdump {' '.join(nfdump_args)}, flowq {' '.join(flowq_args)}"
            )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flows", type=int, default=10_000_000, help="flows in the dataset (default 10 M)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per query (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="200 k flows, 1 run: a smoke test, not a measurement"
    )
    parser.add_argument("--seed", type=int, default=1, help="traffic RNG seed")
    parser.add_argument(
        "--span-hours", type=float, default=3.0, help="hours the flow times cover (default 3)"
    )
    parser.add_argument(
        "--send-rate",
        type=float,
        default=200_000.0,
        help="flows per second sent to nfcapd (default 200 k; halved on loss)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="dataset cache (default bench/results/query-data)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild a cached dataset")
    parser.add_argument(
        "--only", nargs="+", choices=[q.name for q in QUERIES], help="run only these queries"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds one query run may take (default 3600)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "query.json",
        help="results JSON (default bench/results/query.json)",
    )


def run(args: argparse.Namespace) -> int:
    """``python -m bench query``: table on stdout, JSON to ``--output``. Exit 1 when a
    tool is missing, a store lost flows or a query run failed; differing answers are
    reported (table, JSON ``answers``), as are missed targets: speed is not asserted."""
    if args.quick:
        args.flows, args.repeat = min(args.flows, 200_000), 1
    for tool in ("nfcapd", "nfdump"):
        if shutil.which(tool) is None:
            print(f"bench query: {tool} not found: nothing to compare against", file=sys.stderr)
            return 1
    dataset = Dataset.for_args(args)
    manifest = None if args.rebuild else dataset.load(args.flows)
    if manifest is None:
        begin = time.perf_counter()
        manifest = build_dataset(args, dataset)
        manifest["build_s"] = round(time.perf_counter() - begin, 1)
        write_json(dataset.manifest, manifest)
        _progress(f"dataset built in {manifest['build_s']:.0f} s: {dataset.root}")
    else:
        _progress(f"cached dataset {dataset.root}")
        if manifest["flowcap"].get("writer_source") != source_digest(WRITER_PACKAGES):
            manifest = refresh_flowcap_store(dataset, manifest)
    compile_readers()
    queries = [q for q in QUERIES if not args.only or q.name in args.only]
    measured = []
    for spec in queries:
        _progress(f"{spec.name}: {spec.description}")
        measured.append(measure_query(spec, dataset, args.repeat, args.flows, args.timeout))
    results = {"repeat": args.repeat, "dataset": manifest, "queries": measured}
    settings = {k: str(v) for k, v in vars(args).items() if k != "run"}
    write_json(
        args.output,
        {
            "benchmark": NAME,
            "machine": machine_info(None),
            "tools": _versions(),
            "settings": settings,
            "results": results,
        },
    )
    print(format_table(results))
    _progress(f"wrote {args.output}")
    failed = any(q[t]["error"] for q in measured for t in ("nfdump", "flowq"))
    return 1 if failed else 0


def compile_readers() -> None:
    """Byte-compile flowq's code first, as pip does for an installed package: with
    PYTHONDONTWRITEBYTECODE set (or a read-only checkout) every timed run would
    otherwise compile the sources again (~50 ms), which no installed flowq does."""
    for package in (*READER_PACKAGES, "parsers"):
        compileall.compile_dir(REPO_ROOT / package, quiet=1)


def _versions() -> dict[str, Any]:
    done = subprocess.run(["nfdump", "-V"], capture_output=True, text=True, check=False)
    return {
        "nfdump": done.stdout.strip() or done.stderr.strip(),
        # flowq changes under this benchmark: which sources answered
        "flowq_source": source_digest(READER_PACKAGES),
        "flowq_has_null_format": flowq_has_null_format(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_query", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
