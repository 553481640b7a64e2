"""The collector's end-to-end harness: a ``flowcapd`` subprocess on port 0, exporters
on real UDP sockets, the metrics endpoint, and what is on disk.

Synchronisation is on conditions only: the daemon's ``listening on HOST:PORT`` and
``metrics on http://…`` lines, files and spool rows on disk, scraped counters, or the
process's exit after a signal. Every wait has a deadline, so a broken daemon fails the
test instead of hanging it. Only processes a test started are signalled, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncio_dgram
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from storage.spool import read_spool

FLOWCAPD = Path(sys.executable).with_name("flowcapd")
#: the contract: listening within 2 s (plus room for a loaded 2-core CI box to start
#: Python, asserted separately where it matters)
START_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 60.0
#: the receive buffer the subprocess tests ask for (root may force it past rmem_max)
RECEIVE_BUFFER = str(64 * 1024 * 1024)

_LISTENING = re.compile(r"listening on \[?([0-9a-fA-F:.]+)\]?:(\d+)")
_METRICS = re.compile(r"metrics on http://\[?([0-9a-fA-F:.]+)\]?:(\d+)/metrics")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``.

    This waits for a state, it does not guess a duration: it returns as soon as the
    state is reached, and the deadline only bounds a broken run.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# -- the daemon ------------------------------------------------------------------------------


@dataclass
class Daemon:
    """One ``flowcapd`` process and what it said on stderr."""

    process: subprocess.Popen
    args: list[str]
    lines: list[str] = field(default_factory=list)
    host: str = ""
    port: int = 0
    metrics_port: int | None = None
    started_at: float = 0.0
    listening_after_s: float = 0.0
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def target(self) -> tuple[str, int]:
        """Where exporters send: loopback of the family the daemon bound."""
        if self.host in ("::", "0.0.0.0"):
            return ("127.0.0.1", self.port)
        return (self.host, self.port)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_line(self, pattern: str | re.Pattern, timeout_s: float = START_TIMEOUT_S) -> re.Match:
        """The first stderr line matching ``pattern`` (waiting for it to be written)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if self._closed:
                    pytest.fail(f"flowcapd exited before {regex.pattern!r}:\n{self.stderr}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no {regex.pattern!r} within {timeout_s} s:\n{self.stderr}")
                self._changed.wait(remaining)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_exit(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"flowcapd {self.pid} did not exit within {timeout_s} s:\n{self.stderr}")
        with self._changed:  # every line it wrote is read once stderr closes
            if not self._changed.wait_for(lambda: self._closed, 10):
                pytest.fail(f"flowcapd {self.pid} exited, its stderr is still open: a worker lives")
        return code

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        """Signal and wait for the exit code."""
        self.send_signal(signum)
        return self.wait_exit(timeout_s)

    def cpu_seconds(self) -> float:
        """CPU time the process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # after "pid (comm)": state is field 0, utime 11, stime 12 (proc(5) fields 14, 15)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def worker_pids(self) -> list[int]:
        """The forked workers (``--workers N``): live children of this process."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    # "pid (comm) state ppid ...": comm may hold spaces, so split after ")"
                    fields = stat.rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.pid and fields[0] != "Z":
                        children.append(int(entry.name))
        return sorted(children)

    def kill9(self) -> None:
        self.send_signal(signal.SIGKILL)
        self.process.wait(EXIT_TIMEOUT_S)

    # -- metrics ---------------------------------------------------------------------------

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the metrics endpoint: (name, sorted labels) -> value."""
        assert self.metrics_port is not None, "started without --metrics"
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        return self.scrape().get((name, tuple(sorted(labels.items()))), 0.0)


class DaemonFactory:
    """Starts ``flowcapd`` processes for one test and kills what is left at teardown."""

    def __init__(self) -> None:
        self.started: list[Daemon] = []

    def start(
        self,
        flow_dir: Path | None,
        *args: str,
        metrics: bool = True,
        port: str | None = "0",
        wait_listening: bool = True,
    ) -> Daemon:
        argv = [str(FLOWCAPD)]
        if port is not None:
            argv += ["-p", port]
        if flow_dir is not None:
            argv += ["-l", str(flow_dir)]
        argv += ["--metrics", "127.0.0.1:0" if metrics else "off"]
        argv += list(args)
        return self.run(argv, wait_listening=wait_listening, metrics=metrics)

    def run(
        self, argv: Sequence[str], wait_listening: bool = True, metrics: bool = False
    ) -> Daemon:
        started_at = time.monotonic()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        daemon = Daemon(process, list(argv), started_at=started_at)
        self.started.append(daemon)
        threading.Thread(target=daemon._read_stderr, daemon=True).start()
        if wait_listening:
            match = daemon.wait_line(_LISTENING)
            daemon.listening_after_s = time.monotonic() - started_at
            daemon.host, daemon.port = match[1], int(match[2])
            if metrics:
                daemon.metrics_port = int(daemon.wait_line(_METRICS)[2])
        return daemon

    def cleanup(self) -> None:
        for daemon in self.started:
            if daemon.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(daemon.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.process.wait(30)
            # forked workers outlive a SIGKILLed parent (and a parent that died before
            # it forwarded a signal): find them by their command line, ours to the letter
            for pid in _processes_running(daemon.args):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for stream in (daemon.process.stdout, daemon.process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _processes_running(argv: Sequence[str]) -> list[int]:
    """Live processes started with exactly ``argv`` (a daemon and its forked workers;
    the arguments hold the test's own temporary directory), from /proc."""
    wanted = [os.fsencode(a) for a in argv[1:]]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            if cmdline[-len(wanted) :] == wanted and any(b"flowcapd" in c for c in cmdline):
                found.append(int(entry.name))
    return found


# -- exporters ---------------------------------------------------------------------------------


class UdpExporter:
    """A sending socket with a known source address (the exporter's identity)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.address: tuple[str, int] = self.sock.getsockname()[:2]

    def send(self, payloads: Iterable[bytes], target: tuple[str, int]) -> int:
        """Blocking sends, as fast as the socket takes them."""
        sent = 0
        for payload in payloads:
            self.sock.sendto(payload, target)
            sent += 1
        return sent

    async def send_async(self, payloads: Iterable[bytes], target: tuple[str, int]) -> int:
        """The same over asyncio-dgram, for a collector on this process's loop (it must
        get to read while we send). The socket is used unconnected: asyncio-dgram
        cannot wrap a connected socket on uvloop."""
        stream = await asyncio_dgram.from_socket(self.sock.dup())
        sent = 0
        try:
            for payload in payloads:
                await stream.send(payload, target)
                sent += 1
                if sent % 32 == 0:
                    await asyncio.sleep(0)
        finally:
            stream.close()
        return sent

    def close(self) -> None:
        self.sock.close()


def flow_files(flow_dir: Path, suffix: str = ".parquet") -> list[Path]:
    """Flow files (not temporary ones) below ``flow_dir``, sorted by name."""
    return sorted(p for p in flow_dir.rglob(f"flowcap.*{suffix}") if not p.name.startswith("."))


def spools(flow_dir: Path) -> list[Path]:
    return flow_files(flow_dir, ".spool")


def temporary_files(flow_dir: Path) -> list[Path]:
    """Half-written Parquet files (``.NAME.tmp``) below ``flow_dir``."""
    return sorted(p for p in flow_dir.rglob(".flowcap.*.tmp"))


def assert_finished(flow_dir: Path) -> None:
    """Every interval finalized: no spool, no temporary file, every Parquet readable."""
    assert spools(flow_dir) == []
    assert temporary_files(flow_dir) == []
    for path in flow_files(flow_dir):
        pq.read_table(path)  # raises on a damaged file


DAY_S = 86_400


def one_day_interval() -> str:
    """``-t`` for tests that need their flows in one interval: a day, unless the day
    ends within two minutes (then the test cannot know which files to expect)."""
    if DAY_S - time.time() % DAY_S < 120:
        pytest.skip("too close to midnight UTC: the interval would rotate by time")
    return str(DAY_S)


def spool_rows(flow_dir: Path) -> int:
    """Rows in the complete frames of every live spool (what a crash now would keep)."""
    rows = 0
    for path in spools(flow_dir):
        reader = read_spool(path)
        with contextlib.suppress(FileNotFoundError):  # converted meanwhile
            for _ in reader:
                pass
        rows += reader.rows
    return rows


_RECEIVE_BUFFER = re.compile(r"receive buffer (\d+) bytes")
#: kernel memory one full-size datagram (~1.4 kB) takes in a socket's receive queue,
#: counted generously (skb overhead, page rounding)
QUEUED_DATAGRAM_BYTES = 4096


def datagram_budget(daemon: Daemon, wanted: int) -> int:
    """How many full-size datagrams to send at once without the kernel dropping any:
    ``wanted``, or fewer when the receive buffer granted is smaller (unprivileged runs
    are capped by net.core.rmem_max)."""
    granted = int(daemon.wait_line(_RECEIVE_BUFFER)[1])
    return max(1, min(wanted, granted // QUEUED_DATAGRAM_BYTES))
