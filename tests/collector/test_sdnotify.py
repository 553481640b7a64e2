"""sd_notify: the protocol on a real AF_UNIX datagram socket, and a real ``flowcapd``
telling it READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1, as systemd would
see them (the sender's pid from SCM_CREDENTIALS, as NotifyAccess=main checks it)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvloop

from collector.sdnotify import (
    Notifier,
    StatusLine,
    WorkerHeartbeats,
    keep_systemd_informed,
    notify_address,
    watchdog_timeout_s,
)
from tests.collector.exports import v5_datagrams
from tests.collector.harness import wait_for

WAIT_S = 30.0


@dataclass(frozen=True)
class Message:
    received_s: float
    pid: int
    fields: dict[str, str]


class NotifySocket:
    """What systemd binds for a Type=notify service: a datagram socket that learns the
    sender's pid of every message."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.env_value = address
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        space = socket.CMSG_SPACE(struct.calcsize("3i"))
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, space)
            except OSError:
                return
            pid = -1
            for level, kind, payload in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                    pid = struct.unpack("3i", payload[:12])[0]
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            with self._lock:
                self.messages.append(Message(time.monotonic(), pid, fields))

    def with_field(self, key: str, value: str | None = None) -> list[Message]:
        with self._lock:
            return [
                m
                for m in self.messages
                if key in m.fields and (value is None or m.fields[key] == value)
            ]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path):
    listener = NotifySocket(str(tmp_path / "notify"))
    yield listener
    listener.close()


@pytest.fixture
def abstract_notify_socket():
    listener = NotifySocket(f"@flowcap-test-{uuid.uuid4().hex}")
    yield listener
    listener.close()


# -- the protocol --------------------------------------------------------------------------


def test_notify_address_forms() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abstract/name") == "\0abstract/name"
    assert notify_address(None) is None and notify_address("") is None
    assert notify_address("vsock:2:1234") is None  # systemd 253+; not ours to speak


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # meant for another
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_only_for_the_process_it_names(environ: dict, expected: float | None) -> None:
    assert watchdog_timeout_s(environ, pid=4242) == expected


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "1000000"}, pid=1)
    assert not notifier.enabled and notifier.watchdog_period_s is None
    assert notifier.ready("x") is False and notifier.watchdog() is False


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_messages_reach_the_socket(request, kind: str) -> None:
    listener = request.getfixturevalue(
        "notify_socket" if kind == "path" else "abstract_notify_socket"
    )
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "2000000"}, pid=os.getpid()
    )
    assert notifier.watchdog_period_s == 1.0  # half the timeout
    assert notifier.ready("listening on\nhere")
    assert notifier.reloading() and notifier.stopping() and notifier.watchdog()
    wait_for(lambda: len(listener.messages) == 4, WAIT_S, "four messages")
    ready, reloading, stopping, ping = (m.fields for m in listener.messages)
    assert ready == {"READY": "1", "STATUS": "listening on here"}  # one line per field
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert stopping == {"STOPPING": "1"} and ping == {"WATCHDOG": "1"}
    assert {m.pid for m in listener.messages} == {os.getpid()}
    notifier.close()


def test_a_gone_socket_is_no_error(tmp_path: Path, caplog) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.ready() is False and notifier.watchdog() is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def test_status_line_rates() -> None:
    now, counts = [100.0], [(0, 0)]
    status = StatusLine("[::]:23456", lambda: counts[0], clock=lambda: now[0])
    assert status() == "listening on [::]:23456"
    now[0], counts[0] = 110.0, (50_000, 30)
    assert status() == "listening on [::]:23456; 5000 flows/s, 3 dropped datagrams/s"


def test_watchdog_pings_come_from_the_event_loop(notify_socket: NotifySocket) -> None:
    """While the loop is blocked no ping goes out: a hung collector gets restarted."""
    notifier = Notifier(notify_address(notify_socket.env_value), watchdog_timeout_s=0.1)

    async def main() -> None:
        task = asyncio.create_task(keep_systemd_informed(notifier, lambda: "status"))
        await asyncio.sleep(0.3)
        blocked_at = time.monotonic()
        time.sleep(0.6)  # the loop hangs (a stand-in for a stuck decode)
        blocked_until = time.monotonic()
        await asyncio.sleep(0.3)
        task.cancel()
        pings = [m.received_s for m in notify_socket.with_field("WATCHDOG")]
        assert not any(blocked_at + 0.06 < t < blocked_until - 0.01 for t in pings), pings

    uvloop.run(main())
    pings = notify_socket.with_field("WATCHDOG")
    assert len(pings) >= 4  # every 0.05 s while the loop ran
    notifier.close()


def test_worker_heartbeats() -> None:
    now = [0.0]
    beats = WorkerHeartbeats(clock=lambda: now[0])
    beats.spawned(0)
    beats.spawned(1)
    assert not beats.all_reported(2) and beats.all_alive(3.0)
    beats.beat(0)
    now[0] = 2.0
    beats.beat(1)
    assert beats.all_reported(2)
    now[0] = 4.0
    assert not beats.all_alive(3.0)  # worker 0 silent for 4 s
    beats.spawned(0)  # restarted: a fresh grace period
    assert beats.all_alive(3.0)


# -- a real flowcapd -----------------------------------------------------------------------

_LISTENING = re.compile(r"listening on (\S+?)[: ]")


def _start(flowcapd, tmp_path: Path, monkeypatch, listener: NotifySocket, *args: str,
           watchdog_usec: int | None = None):  # fmt: skip
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if watchdog_usec is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_usec))
    return flowcapd.start(tmp_path / "flows", "-b", "127.0.0.1", *args)


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_watchdog_stopping(
    tmp_path: Path, flowcapd, exporters, monkeypatch, notify_socket: NotifySocket, workers: int
) -> None:
    daemon = _start(
        flowcapd, tmp_path, monkeypatch, notify_socket, "--workers", str(workers),
        watchdog_usec=600_000,
    )  # fmt: skip
    ready = wait_for(lambda: notify_socket.with_field("READY"), WAIT_S, "READY=1")[0]
    # sent once it listens: the status names the port the listening line names
    assert f"listening on 127.0.0.1:{daemon.port}" in ready.fields["STATUS"]
    assert ready.pid == daemon.pid  # the main process, as NotifyAccess=main wants
    if workers > 1:
        assert len(daemon.worker_pids()) == workers
    exporters("127.0.0.1").send(v5_datagrams(0, 2), daemon.target)
    wait_for(lambda: daemon.metric("flowcap_flows_written_total") == 60, WAIT_S, "60 flows")
    wait_for(lambda: len(notify_socket.with_field("WATCHDOG", "1")) >= 4, WAIT_S, "watchdog pings")
    assert {m.pid for m in notify_socket.with_field("WATCHDOG")} == {daemon.pid}

    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.stderr
    stopping = notify_socket.with_field("STOPPING", "1")
    assert len(stopping) == 1 and stopping[0].pid == daemon.pid
    assert len(notify_socket.with_field("READY")) == 1


def test_abstract_socket_and_reload_bracket(
    tmp_path: Path, flowcapd, monkeypatch, abstract_notify_socket: NotifySocket
) -> None:
    """``@name`` sockets work; SIGHUP is RELOADING=1 then READY=1; no watchdog unless
    systemd asked for one."""
    listener = abstract_notify_socket
    daemon = _start(flowcapd, tmp_path, monkeypatch, listener)
    wait_for(lambda: listener.with_field("READY"), WAIT_S, "READY=1")
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: len(listener.with_field("READY")) == 2, WAIT_S, "READY=1 after reload")
    reloading = listener.with_field("RELOADING", "1")
    assert len(reloading) == 1
    assert reloading[0].received_s <= listener.with_field("READY")[1].received_s
    assert daemon.stop() == 0, daemon.stderr
    assert listener.with_field("STOPPING", "1") and not listener.with_field("WATCHDOG")


def test_a_hung_worker_stops_the_watchdog_pings(
    tmp_path: Path, flowcapd, monkeypatch, notify_socket: NotifySocket
) -> None:
    """``--workers 2``: the parent pings only while every worker's loop reports; a
    stopped worker (SIGSTOP, a stand-in for a hung loop) silences it, and the pings
    resume when the worker does."""
    daemon = _start(
        flowcapd, tmp_path, monkeypatch, notify_socket, "--workers", "2", watchdog_usec=400_000
    )
    wait_for(lambda: len(notify_socket.with_field("WATCHDOG")) >= 2, WAIT_S, "pings")
    worker = daemon.worker_pids()[0]
    os.kill(worker, signal.SIGSTOP)
    try:
        # pings every 0.2 s; after 3 report intervals of silence they stop: wait for a
        # gap ten times the ping period, which only a withheld ping explains
        def silent() -> bool:
            pings = notify_socket.with_field("WATCHDOG")
            return time.monotonic() - pings[-1].received_s > 2.0

        wait_for(silent, WAIT_S, "the pings to stop")
        silenced = len(notify_socket.with_field("WATCHDOG"))
    finally:
        os.kill(worker, signal.SIGCONT)
    wait_for(lambda: len(notify_socket.with_field("WATCHDOG")) > silenced, WAIT_S, "pings again")
    assert daemon.stop() == 0, daemon.stderr
