"""Fixtures for the interop tests: real exporters and collectors from Debian.

- ``traffic_pcaps``: small captures of ordinary traffic written here with dpkt (TCP
  sessions with handshakes and FINs, UDP request/response, ICMP echo and unreachable,
  among a few hosts; one IPv4-only for NetFlow v5, one IPv4 + IPv6), each with the
  packet and IP-byte totals it holds.
- ``interop_tools``: skips the test when softflowd, nfcapd or nfdump is missing.
- ``run_process``: starts a long-running program (flowcapd, nfcapd), reads its output on
  a thread so a test can wait for a line, and in teardown stops whatever is still
  running — by its own pid, never by name.

``.ci/run`` installs the Debian tools as root.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest

#: the captures start here (2023-11-14 22:13:20 UTC); softflowd -a times flows by them
CAPTURE_START_S = 1_700_000_000.0


@pytest.fixture
def interop_tools() -> None:
    """Skip the test unless softflowd, nfcapd and nfdump are on PATH."""
    missing = [name for name in ("softflowd", "nfcapd", "nfdump") if shutil.which(name) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (Debian packages softflowd, nfdump; "
            ".ci/run installs them as root)"
        )


# -- captures --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrafficPcap:
    path: Path
    packets: int  # IP packets in the capture
    ip_bytes: int  # their IP total lengths (IPv6: 40 + payload length)
    has_ipv6: bool
    first_s: float  # the first and last packet's capture time
    last_s: float


class _CaptureBuilder:
    """Packets of made-up conversations, sorted by time at the end."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.packets: list[tuple[float, bytes, int]] = []  # (time, frame, IP length)

    def add(self, t_s: float, src: str, dst: str, proto: int, l4: dpkt.Packet) -> None:
        body = bytes(l4)
        if ":" in src:
            ip: dpkt.Packet = dpkt.ip6.IP6(
                src=socket.inet_pton(socket.AF_INET6, src),
                dst=socket.inet_pton(socket.AF_INET6, dst),
                nxt=proto,
                hlim=64,
                plen=len(body),
                data=l4,
            )
            ip_length, ether_type = 40 + len(body), dpkt.ethernet.ETH_TYPE_IP6
        else:
            ip = dpkt.ip.IP(
                src=socket.inet_aton(src),
                dst=socket.inet_aton(dst),
                p=proto,
                ttl=64,
                len=20 + len(body),
                id=self.rng.randrange(65536),
                data=l4,
            )
            ip_length, ether_type = 20 + len(body), dpkt.ethernet.ETH_TYPE_IP
        frame = dpkt.ethernet.Ethernet(
            src=b"\x02\x00\x00\x00\x00\x01",
            dst=b"\x02\x00\x00\x00\x00\x02",
            type=ether_type,
            data=ip,
        )
        self.packets.append((t_s, bytes(frame), ip_length))

    def tcp_session(self, t_s: float, client: str, server: str, dport: int, data: int) -> None:
        sport = self.rng.randrange(32768, 61000)
        steps = [
            (True, dpkt.tcp.TH_SYN, 0),
            (False, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, 0),
            (True, dpkt.tcp.TH_ACK, 0),
        ]
        for _ in range(data):
            forward = self.rng.random() < 0.4
            steps.append((forward, dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, self.rng.randrange(1, 1400)))
        steps += [
            (True, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, 0),
            (False, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, 0),
            (True, dpkt.tcp.TH_ACK, 0),
        ]
        for forward, flags, size in steps:
            t_s += self.rng.uniform(0.002, 0.25)
            src, dst, sp, dp = (
                (client, server, sport, dport) if forward else (server, client, dport, sport)
            )
            self.add(
                t_s, src, dst, 6, dpkt.tcp.TCP(sport=sp, dport=dp, flags=flags, data=b"\x17" * size)
            )

    def udp_exchange(self, t_s: float, client: str, server: str, dport: int, rounds: int) -> None:
        sport = self.rng.randrange(32768, 61000)
        for _ in range(rounds):
            for forward in (True, False):
                t_s += self.rng.uniform(0.001, 0.3)
                size = self.rng.randrange(20, 500)
                src, dst, sp, dp = (
                    (client, server, sport, dport) if forward else (server, client, dport, sport)
                )
                self.add(
                    t_s,
                    src,
                    dst,
                    17,
                    dpkt.udp.UDP(sport=sp, dport=dp, ulen=8 + size, data=b"\x01" * size),
                )

    def icmp_echo(self, t_s: float, client: str, server: str, count: int) -> None:
        v6 = ":" in client
        proto, request, reply = (58, 128, 129) if v6 else (1, 8, 0)
        module = dpkt.icmp6.ICMP6 if v6 else dpkt.icmp.ICMP
        ident = self.rng.randrange(65536)
        for seq in range(count):
            for src, dst, kind in ((client, server, request), (server, client, reply)):
                t_s += self.rng.uniform(0.001, 0.3)
                echo = module.Echo(id=ident, seq=seq, data=b"\x08" * 56)
                self.add(t_s, src, dst, proto, module(type=kind, code=0, data=echo))

    def icmp_unreachable(self, t_s: float, router: str, host: str) -> None:
        """Port unreachable (type 3 code 3; ICMPv6 1/4), quoting a UDP packet."""
        v6 = ":" in router
        quoted = b"\x45" + b"\x00" * 27
        if v6:
            message = dpkt.icmp6.ICMP6(type=1, code=4, data=b"\x00" * 4 + quoted)
            self.add(t_s, router, host, 58, message)
        else:
            message = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=quoted))
            self.add(t_s, router, host, 1, message)

    def write(self, path: Path, has_ipv6: bool) -> TrafficPcap:
        self.packets.sort(key=lambda packet: packet[0])
        with path.open("wb") as file:
            writer = dpkt.pcap.Writer(file, linktype=dpkt.pcap.DLT_EN10MB)
            for t_s, frame, _ in self.packets:
                writer.writepkt(frame, ts=t_s)
        return TrafficPcap(
            path,
            len(self.packets),
            sum(p[2] for p in self.packets),
            has_ipv6,
            self.packets[0][0],
            self.packets[-1][0],
        )


def write_traffic_pcap(path: Path, with_ipv6: bool, seed: int = 7) -> TrafficPcap:
    """About 600-800 packets over ~5 s of capture time: sessions longer than softflowd's
    ``maxlife=1`` are split into several flows, the rest are flushed at the end."""
    builder = _CaptureBuilder(seed)
    rng = builder.rng
    hosts = [f"10.20.0.{i}" for i in range(1, 6)] + ["192.0.2.80", "198.51.100.7"]
    hosts6 = [f"2001:db8:20::{i:x}" for i in range(1, 5)] + ["2001:db8:ff::53"]
    families = [hosts, hosts6] if with_ipv6 else [hosts]
    for _ in range(80):
        family = rng.choice(families)
        client, server = rng.sample(family, 2)
        t_s = CAPTURE_START_S + rng.uniform(0.0, 4.0)
        kind = rng.random()
        if kind < 0.45:
            builder.tcp_session(
                t_s, client, server, rng.choice((22, 80, 443, 8443)), rng.randrange(0, 12)
            )
        elif kind < 0.8:
            builder.udp_exchange(
                t_s, client, server, rng.choice((53, 123, 514, 5353)), rng.randrange(1, 5)
            )
        else:
            builder.icmp_echo(t_s, client, server, rng.randrange(1, 5))
    for family in families:
        builder.icmp_unreachable(CAPTURE_START_S + rng.uniform(0.0, 4.0), family[0], family[1])
    return builder.write(path, with_ipv6)


@pytest.fixture(scope="session")
def traffic_pcaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrafficPcap]:
    directory = tmp_path_factory.mktemp("pcaps")
    return {
        "ipv4": write_traffic_pcap(directory / "ipv4.pcap", with_ipv6=False),
        "dual": write_traffic_pcap(directory / "dual.pcap", with_ipv6=True),
    }


# -- processes -------------------------------------------------------------------------


@dataclass
class RunningProcess:
    """A started program whose combined stdout/stderr is collected line by line."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None
    _eof: bool = False

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout_s: float = 15.0) -> re.Match[str]:
        """The first output line matching ``pattern``, once it is printed."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := regex.search(line))), None)

        with self._changed:
            done = self._changed.wait_for(lambda: found() is not None or self._eof, timeout_s)
            match = found()
        if match is None:
            state = "exited" if self.process.poll() is not None else "still running"
            raise AssertionError(
                f"no line matching {pattern!r} within {timeout_s} s (process {state}, "
                f"waited={done}); output:\n" + "\n".join(self.lines)
            )
        return match

    def output(self) -> str:
        """Everything printed, once the process exited (the reader has finished)."""
        if self._reader is not None:
            self._reader.join(timeout=10)
        with self._changed:
            return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.process.pid


@pytest.fixture
def run_process() -> Iterator[Callable[..., RunningProcess]]:
    """Start programs for one test; those still running at teardown are killed by pid."""
    started: list[RunningProcess] = []

    def start(command: list[str], **kwargs: object) -> RunningProcess:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            **kwargs,  # type: ignore[arg-type]
        )
        running = RunningProcess(process)
        running._reader = threading.Thread(target=running._read, daemon=True)
        running._reader.start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()  # Popen.kill: SIGKILL to this pid only
        running.process.wait(timeout=10)
        if running.process.stdout is not None:
            running.process.stdout.close()
