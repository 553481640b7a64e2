"""``python -m bench ingest``: the receive path and whole collectors, flowcapd vs nfcapd.

Part 1, the receive path on uvloop: CPU per datagram of asyncio-dgram's ``await
recv()`` and of a ``DatagramProtocol`` callback (what ``collector/listener.py`` uses),
with a sender in another process. This is why the hot path is a protocol callback.

Part 2, whole daemons: the same vDS-like IPFIX datagrams (bench/datagrams.py) sent over
loopback at a fixed rate to ``flowcapd`` (1 and 2 workers) and to ``nfcapd -y``; for each,
flows stored vs sent and the collector's CPU seconds per million flows (from
/proc/PID/stat, worker processes included). Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import asyncio_dgram
import pyarrow.parquet as pq
import uvloop

from bench.datagrams import generate_ipfix_vds
from bench.environment import RESULTS_DIR, machine_info, write_json

NAME: Final = "ingest"
HELP: Final = "receive path (asyncio-dgram vs protocol) and flowcapd vs nfcapd, CPU per flow"
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
LISTENING = re.compile(r"listening on \S*:(\d+)")


# -- part 1: the receive path --------------------------------------------------------


def _send_process(port: int, count: int, payload: bytes, rate_per_s: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    started = time.perf_counter()
    for sent in range(count):
        while sent > (time.perf_counter() - started) * rate_per_s:
            pass
        sock.send(payload)
    sock.close()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _receive_with_dgram(sock: socket.socket, count: int) -> tuple[int, float]:
    stream = await asyncio_dgram.from_socket(sock)
    received, started = 0, _cpu_s()
    try:
        while received < count:
            await asyncio.wait_for(stream.recv(), 5)
            received += 1
    except TimeoutError:
        pass
    return received, _cpu_s() - started


async def _receive_with_protocol(sock: socket.socket, count: int) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"received": 0}

    class Counting(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            state["received"] += 1
            if state["received"] == count and not done.done():
                done.set_result(None)

    started = _cpu_s()
    transport, _ = await loop.create_datagram_endpoint(Counting, sock=sock)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done, 30)
    elapsed = _cpu_s() - started
    transport.close()
    return state["received"], elapsed


def measure_receive_path(count: int, rate_per_s: float) -> dict[str, Any]:
    payload = generate_ipfix_vds(1, seed=1).datagrams[0].payload
    results = {}
    for name, receiver in (("asyncio-dgram recv()", _receive_with_dgram),
                           ("DatagramProtocol callback", _receive_with_protocol)):  # fmt: skip
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sender = multiprocessing.get_context("spawn").Process(
            target=_send_process, args=(sock.getsockname()[1], count, payload, rate_per_s)
        )

        async def run(receiver=receiver, sock=sock, sender=sender) -> tuple[int, float]:  # noqa: ANN001
            sender.start()
            return await receiver(sock, count)

        received, cpu_s = uvloop.run(run())
        sender.join()
        sock.close()
        results[name] = {
            "datagrams": received,
            "cpu_us_per_datagram": round(cpu_s / max(received, 1) * 1e6, 2),
        }
    return results


# -- part 2: whole collectors --------------------------------------------------------


def _process_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children (flowcapd's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _send_all(payloads: list[bytes], port: int, rate_per_s: float) -> float:
    sender = multiprocessing.get_context("spawn").Process(
        target=_send_many, args=(payloads, port, rate_per_s)
    )
    started = time.perf_counter()
    sender.start()
    sender.join()
    return time.perf_counter() - started


def _send_many(payloads: list[bytes], port: int, rate_per_s: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    started = time.perf_counter()
    for sent, payload in enumerate(payloads):
        while sent > (time.perf_counter() - started) * rate_per_s:
            pass
        sock.send(payload)


def _send_and_stop(
    process: subprocess.Popen, payloads: list[bytes], port: int, rate_per_s: float, wait_s: float
) -> tuple[float, float]:
    """Send at the rate, then SIGTERM the receiver and wait for it: (seconds sending,
    the receiver's CPU seconds meanwhile)."""
    cpu_before = _process_cpu_s(process.pid)
    seconds = _send_all(payloads, port, rate_per_s)
    cpu_during = _process_cpu_s(process.pid) - cpu_before
    process.send_signal(signal.SIGTERM)
    process.wait(wait_s)
    return seconds, cpu_during


def run_flowcapd(payloads: list[bytes], rate_per_s: float, workers: int, workdir: Path) -> dict:
    flowcapd = Path(sys.executable).with_name("flowcapd")
    process = subprocess.Popen(
        [str(flowcapd), "-p", "0", "-l", str(workdir), "-t", "300", "--metrics", "off",
         "--workers", str(workers), "-B", str(64 << 20)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            match = LISTENING.search(line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            raise RuntimeError("flowcapd did not start")
        time.sleep(0.5 if workers > 1 else 0.1)  # forked workers bind before the log line
        seconds, cpu_during = _send_and_stop(process, payloads, port, rate_per_s, 120)
    finally:
        if process.poll() is None:
            process.kill()
    stored = sum(pq.ParquetFile(p).metadata.num_rows for p in workdir.rglob("*.parquet"))
    return {"stored": stored, "send_s": seconds, "cpu_s_while_receiving": cpu_during}


def run_nfcapd(payloads: list[bytes], rate_per_s: float, workdir: Path) -> dict | None:
    nfcapd, nfdump = shutil.which("nfcapd"), shutil.which("nfdump")
    if nfcapd is None or nfdump is None:
        return None
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [nfcapd, "-y", "-w", str(workdir), "-p", str(port), "-b", "127.0.0.1", "-t", "300",
         "-B", str(64 << 20)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _udp_bound(port):
            time.sleep(0.02)
        seconds, cpu_during = _send_and_stop(process, payloads, port, rate_per_s, 60)
    finally:
        if process.poll() is None:
            process.kill()
    stored = _nfdump_flow_count(nfdump, workdir)
    return {"stored": stored, "send_s": seconds, "cpu_s_while_receiving": cpu_during}


def _udp_bound(port: int) -> bool:
    hexport = f":{port:04X}"
    with contextlib.suppress(OSError):
        return any(
            hexport in line.split()[1]
            for line in Path("/proc/net/udp").read_text().splitlines()[1:]
        )
    return False


def _nfdump_flow_count(nfdump: str, workdir: Path) -> int:
    result = subprocess.run(
        [nfdump, "-R", str(workdir), "-I"], capture_output=True, text=True, check=False
    )
    match = re.search(r"Flows:\s*(\d+)", result.stdout)
    if match:
        return int(match.group(1))
    listing = subprocess.run(
        [nfdump, "-R", str(workdir), "-q", "-o", "csv"], capture_output=True, text=True, check=False
    )
    return sum(1 for line in listing.stdout.splitlines() if line and line[0].isdigit())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(None)}
    results["receive_path"] = measure_receive_path(args.receive_datagrams, args.receive_rate)
    scenario = generate_ipfix_vds(args.datagrams, seed=7)
    payloads = [d.payload for d in scenario.datagrams]
    flows = scenario.flows
    collectors: dict[str, Any] = {}
    for rate in args.rates:
        with tempfile.TemporaryDirectory(prefix="flowcap-ingest-") as scratch:
            root = Path(scratch)
            row: dict[str, Any] = {}
            for workers in (1, 2):
                result = run_flowcapd(payloads, rate, workers, root / f"flowcap{workers}")
                row[f"flowcapd --workers {workers}"] = result
            nf = run_nfcapd(payloads, rate, root / "nfcapd")
            if nf is not None:
                row["nfcapd -y"] = nf
            for result in row.values():
                result["flows_sent"] = flows
                result["loss_pct"] = round(100 * (1 - result["stored"] / flows), 3)
                result["cpu_s_per_million_flows"] = round(
                    result["cpu_s_while_receiving"] / flows * 1e6, 3
                )
            collectors[f"{int(rate)} datagrams/s ({int(rate * flows / len(payloads))} flows/s)"] = (
                row
            )
    results["collectors"] = collectors
    return results


def format_table(results: dict[str, Any]) -> str:
    lines = ["receive path on uvloop (CPU per datagram)"]
    for name, value in results["receive_path"].items():
        lines.append(
            f"  {name:28} {value['cpu_us_per_datagram']:8.2f} us  ({value['datagrams']} datagrams)"
        )
    lines.append("")
    lines.append(
        f"{'rate':38} {'collector':22} {'stored/sent':>18} {'loss %':>8} {'CPU s/M flows':>14}"
    )
    for rate, row in results["collectors"].items():
        for name, result in row.items():
            lines.append(
                f"{rate:38} {name:22} {result['stored']:>8}/{result['flows_sent']:<9} "
                f"{result['loss_pct']:>8} {result['cpu_s_per_million_flows']:>14}"
            )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datagrams", type=int, default=20_000, help="datagrams per run")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[5_000, 20_000],
        help="datagrams per second to send (default 5000 20000)",
    )
    parser.add_argument("--receive-datagrams", type=int, default=50_000)
    parser.add_argument("--receive-rate", type=float, default=20_000)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "ingest.json")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.datagrams, args.rates = 500, [2_000]
        args.receive_datagrams, args.receive_rate = 2_000, 5_000
    results = measure(args)
    print(format_table(results))
    write_json(args.output, results)
    print(f"bench ingest: wrote {args.output}", file=sys.stderr)
    return 0
