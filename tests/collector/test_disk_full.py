"""Disk full and unwritable directories: flowcapd keeps receiving, keeps the flows in
memory, counts and logs the failures, and writes every flow exactly once when the disk
takes writes again (issue 3, point 5).

The end-to-end tests run the ``flowcapd`` program on a small tmpfs of its own (needs
root: they skip otherwise) with real UDP on 127.0.0.1, read the state from the
Prometheus endpoint (``flowcap_storage_write_errors_total``,
``flowcap_storage_backlog_rows``, ``flowcap_flows_written_total``) and the log, and
check the files after SIGTERM: each numbered flow sent is stored once. Every wait is on
a condition with a deadline; the daemon's retry backoff (1 s, doubling) sets how long
the recovery takes.

A read-only remount fails while a file is open for writing (EBUSY), so the mid-run
read-only case first closes the spool with SIGHUP and waits for its conversion.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.storage_thread import BatchQueue, StorageThread
from parsers import netflow_v5
from parsers.decoder import FlowDecoder
from storage.interval_writer import IntervalWriter
from storage.naming import interval_dir
from storage.reader import scan
from storage.schema import to_record_batch
from tests.storage.full_disk import fill

EXPORT_TIME_S = 1_763_800_000  # the exporter's clock (flow times), not the receive time


# -- fixtures: a small file system of our own, and flowcapd on it -----------------------


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount_tmpfs("size=256k")`` mounts a tmpfs for this test (root only; skips
    where mounting is not allowed) and unmounts it afterwards, whatever happened."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)])
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or 'mount failed'}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        if run(["umount", str(point)]).returncode != 0:
            run(["umount", "-l", str(point)])


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)


def remount(point: Path, mode: str, timeout_s: float = 10.0) -> None:
    """``mount -o remount,ro|rw``; a read-only remount is refused (busy) while a file is
    open for writing, so it is retried until the daemon's conversion thread let go."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = run(["mount", "-o", f"remount,{mode}", str(point)])
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"remount,{mode} {point}: {done.stderr.strip()}")
        time.sleep(0.05)


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s: {what()}")
        time.sleep(0.05)


@dataclass
class Flowcapd:
    """The daemon we started: its UDP port, metrics endpoint and log file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    port: int
    metrics_port: int
    flow_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """Every sample, keyed ``name`` or ``name{label=value}``."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def storage_state(self) -> dict[str, int]:
        samples = self.metrics()
        return {
            "datagrams": int(samples["flowcap_packets_received_total{version=5}"]),
            "decoded": int(samples["flowcap_flows_decoded_total"]),
            "written": int(samples["flowcap_flows_written_total"]),
            "backlog": int(samples["flowcap_storage_backlog_rows"]),
            "write_errors": int(samples["flowcap_storage_write_errors_total"]),
            "queue_dropped": int(samples["flowcap_flows_queue_dropped_total"]),
        }

    def send(self, datagrams: list[bytes]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for datagram in datagrams:
                sender.sendto(datagram, ("127.0.0.1", self.port))

    def wait_state(self, condition: Callable[[dict[str, int]], bool], timeout_s: float) -> dict:
        states: list[dict[str, int]] = []

        def check() -> bool:
            states.append(self.storage_state())
            return condition(states[-1])

        wait_until(check, timeout_s, lambda: f"last state {states[-1:]}; log:\n{self.log()}")
        return states[-1]

    def stop(self) -> str:
        """SIGTERM (to our pid); the daemon writes and finalizes everything, exits 0."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=90)
        assert code == 0, self.log()
        return self.log()


@pytest.fixture
def start_flowcapd(
    tmp_path: Path, mount_tmpfs: Callable[[str], Path]
) -> Iterator[Callable[[Path], Flowcapd]]:
    """Start flowcapd writing to ``flow_dir``; killed (by pid) at teardown if still
    running, before the tmpfs is unmounted (this fixture depends on that one)."""
    started: list[subprocess.Popen[bytes]] = []
    program = Path(sys.executable).with_name("flowcapd")

    def start_once(flow_dir: Path) -> Flowcapd:
        log_path = tmp_path / f"flowcapd-{len(started)}.log"
        metrics_port = _free_tcp_port()
        command = [
            str(program) if program.exists() else "flowcapd",
            "-p",
            "0",
            "-b",
            "127.0.0.1",
            "-l",
            str(flow_dir),
            "-t",
            "60",
            "--metrics",
            f"127.0.0.1:{metrics_port}",
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        daemon = Flowcapd(process, log_path, 0, metrics_port, flow_dir)
        wait_until(
            lambda: "listening on" in daemon.log() or process.poll() is not None, 15, daemon.log
        )
        assert process.poll() is None, daemon.log()
        listening = re.search(r"listening on 127\.0\.0\.1:(\d+)", daemon.log())
        assert listening, daemon.log()
        daemon.port = int(listening.group(1))
        return daemon

    def start(flow_dir: Path) -> Flowcapd:
        for _ in range(3):  # the metrics port is probed: another program may take it first
            daemon = start_once(flow_dir)
            if "metrics endpoint" not in daemon.log():
                return daemon
            daemon.process.kill()
            daemon.process.wait()
        raise AssertionError("no free port for the metrics endpoint:\n" + daemon.log())

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


# -- numbered flows --------------------------------------------------------------------


def v5_datagrams(first_id: int, count: int) -> list[bytes]:
    """NetFlow v5 datagrams of 30 flows; flow ``i`` has ``i + 1`` packets (its number
    can be read back from what is stored) and a source address and port of its own."""
    datagrams = []
    for start in range(first_id, first_id + count, netflow_v5.MAX_RECORDS):
        ids = range(start, min(start + netflow_v5.MAX_RECORDS, first_id + count))
        header = netflow_v5.V5_HEADER.build(
            {
                "version": 5,
                "count": len(ids),
                "sys_uptime_ms": 3_600_000,
                "unix_secs": EXPORT_TIME_S,
                "unix_nsecs": 0,
                "flow_sequence": start,
                "engine_type": 0,
                "engine_id": 0,
                "sampling": 0,
            }
        )
        records = b"".join(
            netflow_v5.V5_RECORD.build(
                {
                    "src_addr": (10 << 24) | (77 << 16) | i,
                    "dst_addr": 0xC0000201,
                    "next_hop": 0,
                    "in_if": 1,
                    "out_if": 2,
                    "packets": i + 1,
                    "bytes": 64 * (i + 1),
                    "first_uptime_ms": 3_500_000,
                    "last_uptime_ms": 3_599_000,
                    "src_port": 1024 + i % 60000,
                    "dst_port": 443,
                    "pad1": 0,
                    "tcp_flags": 0x1B,
                    "proto": 6,
                    "tos": 0,
                    "src_as": 0,
                    "dst_as": 0,
                    "src_mask": 24,
                    "dst_mask": 24,
                    "pad2": 0,
                }
            )
            for i in ids
        )
        datagrams.append(header + records)
    return datagrams


def stored_flow_ids(flow_dir: Path) -> list[int]:
    """The numbers of the stored flows, sorted (a flow stored twice appears twice)."""
    problems: list[object] = []
    batches = list(scan([flow_dir], ["packets", "src_addr"], on_problem=problems.append))
    assert not problems, problems
    table = pa.Table.from_batches(batches) if batches else None
    if table is None:
        return []
    ids = [p - 1 for p in table.column("packets").to_pylist()]
    addresses = [a & 0xFFFF for a in table.column("src_addr").to_pylist()]
    assert ids == addresses  # the rows are the flows sent, not mixed up
    return sorted(ids)


def flow_files(flow_dir: Path) -> list[str]:
    return sorted(p.name for p in flow_dir.rglob("*") if p.is_file() and ".flowcapd" not in p.parts)


def _no_write_error_yet(log: str) -> None:
    assert "cannot write flows" not in log, log


# -- the daemon on a full disk ---------------------------------------------------------


def test_disk_full_keeps_receiving_and_stores_every_flow_once_when_space_returns(
    mount_tmpfs: Callable[[str], Path], start_flowcapd: Callable[[Path], Flowcapd]
) -> None:
    disk = mount_tmpfs("size=256k")
    daemon = start_flowcapd(disk / "flows")
    daemon.send(v5_datagrams(0, 60))
    daemon.wait_state(lambda s: s["written"] == 60, 15)
    _no_write_error_yet(daemon.log())

    filler = fill(disk)
    # more than a page of spool: the open spool's last page cannot take it all
    daemon.send(v5_datagrams(60, 600))
    full = daemon.wait_state(
        lambda s: (
            s["datagrams"] == 22
            and s["decoded"] == 660
            and s["write_errors"] >= 1
            and s["written"] + s["backlog"] == 660
        ),
        20,
    )
    assert full["backlog"] > 0
    # still full: the daemon keeps receiving and holds the new flows too
    daemon.send(v5_datagrams(660, 240))
    still_full = daemon.wait_state(
        lambda s: (
            s["datagrams"] == 30 and s["decoded"] == 900 and s["written"] + s["backlog"] == 900
        ),
        20,
    )
    assert still_full["backlog"] >= 240 and still_full["queue_dropped"] == 0
    assert "cannot write flows" in daemon.log()
    assert "keeping" in daemon.log() and "in memory" in daemon.log()

    filler.unlink()  # space returns: written at the next retry (backoff from 1 s, doubling)
    done = daemon.wait_state(lambda s: s["written"] == 900 and s["backlog"] == 0, 90)
    assert done["queue_dropped"] == 0
    log = daemon.stop()
    assert "writing flows again" in log
    assert "flows lost" not in log
    assert stored_flow_ids(daemon.flow_dir) == list(range(900))  # each exactly once
    assert all(name.endswith((".parquet", ".summary")) for name in flow_files(daemon.flow_dir))


def test_sigterm_on_a_full_disk_keeps_retrying_and_stores_every_flow_once(
    mount_tmpfs: Callable[[str], Path], start_flowcapd: Callable[[Path], Flowcapd]
) -> None:
    """SIGTERM while flows wait in memory: the daemon keeps retrying for a while before
    it gives up; space returning in that time means nothing is lost."""
    disk = mount_tmpfs("size=256k")
    daemon = start_flowcapd(disk / "flows")
    daemon.send(v5_datagrams(0, 60))
    daemon.wait_state(lambda s: s["written"] == 60, 15)
    filler = fill(disk)
    daemon.send(v5_datagrams(60, 600))
    daemon.wait_state(lambda s: s["decoded"] == 660 and s["backlog"] > 0, 20)

    daemon.process.send_signal(signal.SIGTERM)

    def failed_while_stopping() -> bool:
        _, stopping, after = daemon.log().partition(" INFO stopping")
        return bool(stopping) and "cannot write flows" in after

    wait_until(failed_while_stopping, 20, daemon.log)
    assert daemon.process.poll() is None  # still retrying
    filler.unlink()
    assert daemon.process.wait(timeout=60) == 0, daemon.log()
    log = daemon.log()
    assert "flows lost" not in log
    assert re.search(r"stopped: 22 datagrams, 660 flows decoded, 660 written", log), log
    assert stored_flow_ids(daemon.flow_dir) == list(range(660))
    assert all(name.endswith((".parquet", ".summary")) for name in flow_files(daemon.flow_dir))


def test_rotation_on_a_full_disk_converts_the_spool_once_space_returns(
    mount_tmpfs: Callable[[str], Path], start_flowcapd: Callable[[Path], Flowcapd]
) -> None:
    """SIGHUP while the disk is full: the spool cannot become Parquet (the temporary
    file hits ENOSPC); it stays, the failure counts, and the conversion is retried."""
    disk = mount_tmpfs("size=256k")
    daemon = start_flowcapd(disk / "flows")
    daemon.send(v5_datagrams(0, 300))
    daemon.wait_state(lambda s: s["written"] == 300, 15)
    filler = fill(disk)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_state(lambda s: s["write_errors"] >= 1, 20)
    assert [n for n in flow_files(daemon.flow_dir) if n.endswith(".spool")], "spool kept"
    assert not [n for n in flow_files(daemon.flow_dir) if n.endswith(".parquet")]
    daemon.send(v5_datagrams(300, 150))
    daemon.wait_state(lambda s: s["decoded"] == 450 and s["written"] + s["backlog"] == 450, 20)

    filler.unlink()
    daemon.wait_state(lambda s: s["written"] == 450 and s["backlog"] == 0, 90)
    wait_until(
        lambda: any(n.endswith(".0.0.parquet") for n in flow_files(daemon.flow_dir)),
        60,
        lambda: f"the rotated spool was not converted: {flow_files(daemon.flow_dir)}",
    )
    daemon.stop()
    assert stored_flow_ids(daemon.flow_dir) == list(range(450))
    assert all(name.endswith((".parquet", ".summary")) for name in flow_files(daemon.flow_dir))


def test_read_only_mid_run_then_writable_stores_every_flow_once(
    mount_tmpfs: Callable[[str], Path], start_flowcapd: Callable[[Path], Flowcapd]
) -> None:
    disk = mount_tmpfs("size=1m")
    daemon = start_flowcapd(disk / "flows")
    daemon.send(v5_datagrams(0, 90))
    daemon.wait_state(lambda s: s["written"] == 90, 15)
    # SIGHUP closes the spool; once it is Parquet nothing is open for writing
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: (
            (names := flow_files(daemon.flow_dir)) != []
            and all(n.endswith((".parquet", ".summary")) for n in names)
        ),
        15,
        lambda: str(flow_files(daemon.flow_dir)),
    )
    remount(disk, "ro")

    daemon.send(v5_datagrams(90, 300))
    unwritable = daemon.wait_state(
        lambda s: (
            s["datagrams"] == 13
            and s["decoded"] == 390
            and s["write_errors"] >= 1
            and s["backlog"] == 300
        ),
        20,
    )
    assert unwritable["written"] == 90
    assert "Read-only file system" in daemon.log()

    remount(disk, "rw")
    daemon.wait_state(lambda s: s["written"] == 390 and s["backlog"] == 0, 90)
    log = daemon.stop()
    assert "writing flows again" in log
    assert stored_flow_ids(daemon.flow_dir) == list(range(390))
    assert all(name.endswith((".parquet", ".summary")) for name in flow_files(daemon.flow_dir))


def test_read_only_at_start_then_writable_stores_every_flow_once(
    mount_tmpfs: Callable[[str], Path], start_flowcapd: Callable[[Path], Flowcapd]
) -> None:
    disk = mount_tmpfs("size=1m,ro")
    daemon = start_flowcapd(disk / "flows")  # the directory cannot even be created
    assert "cannot create" in daemon.log()
    daemon.send(v5_datagrams(0, 150))
    unwritable = daemon.wait_state(
        lambda s: s["decoded"] == 150 and s["write_errors"] >= 1 and s["backlog"] == 150, 20
    )
    assert unwritable["written"] == 0

    remount(disk, "rw")
    daemon.wait_state(lambda s: s["written"] == 150 and s["backlog"] == 0, 90)
    daemon.stop()
    assert stored_flow_ids(daemon.flow_dir) == list(range(150))


# -- the storage thread: a batch across two intervals, one of them unwritable ----------


def test_batch_across_intervals_is_stored_once_when_one_interval_cannot_be_written(
    tmp_path: Path,
) -> None:
    """A batch holding flows received in two intervals is appended in two parts. When
    the first part is stored and the second fails (its new spool or sub-directory
    cannot be created: a full disk, a read-only or unwritable directory), the retry
    must not append the first part again.

    The second interval's hour directory (``-S 2``) is blocked by a file of that name.
    """
    rotation_s = 60
    boundary_s = 1_763_805_600  # 2025-11-22 10:00:00 UTC: a new hour, a new -S 2 directory
    decoder = FlowDecoder()
    before, after = v5_datagrams(0, 30), v5_datagrams(30, 30)
    decoder.feed_datagram(before[0], ("192.0.2.9", 2055), (boundary_s - 1) * 10**9)
    decoder.feed_datagram(after[0], ("192.0.2.9", 2055), (boundary_s + 1) * 10**9)
    (batch,) = [to_record_batch(b) for b in decoder.flush()]
    assert batch.num_rows == 60

    base = tmp_path / "flows"
    blocked = interval_dir(base, boundary_s, 2)
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"")  # a file where the hour directory should be
    writer = IntervalWriter(base, rotation_s, subdir_layout=2, background=False)
    queue = BatchQueue()
    thread = StorageThread(queue, writer, rotation_s, flush_interval_s=0.05)
    thread.start()
    try:
        assert queue.put(batch)
        wait_until(lambda: thread.stats.write_errors >= 1, 10, lambda: str(thread.stats))
        blocked.unlink()
    finally:
        queue.close()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert thread.stats.backlog_rows == 0
    assert stored_flow_ids(base) == list(range(60))
