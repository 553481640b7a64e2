"""Telling systemd how flowcapd is doing: the sd_notify(3) protocol, with the stdlib.

A ``Type=notify`` unit starts the daemon with ``$NOTIFY_SOCKET`` (an AF_UNIX datagram
socket; a leading ``@`` names one in the abstract namespace) and waits for ``READY=1``
before it calls the start done. ``STATUS=`` is what ``systemctl status`` shows,
``RELOADING=1`` … ``READY=1`` brackets a reload, ``STOPPING=1`` announces a stop, and
with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` and kills a daemon that does not
send ``WATCHDOG=1`` within it. Without ``$NOTIFY_SOCKET`` every call here does nothing,
so the daemon never needs to ask whether it runs under systemd.

The watchdog is pinged from the loop whose health it vouches for: from each worker's
event loop with one process, and with ``--workers N`` from the parent only while every
worker's loop keeps reporting (``WorkerHeartbeats``). A hung loop stops the pings, and
systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

log = logging.getLogger("flowcapd")

#: ping at half the watchdog timeout, as sd_watchdog_enabled(3) recommends
WATCHDOG_PING_FRACTION: Final = 0.5
#: how often STATUS= (flows/s) is refreshed; `systemctl status` is read by people
STATUS_INTERVAL_S: Final = 10.0


def notify_address(value: str | None) -> str | None:
    """The socket address ``$NOTIFY_SOCKET`` names, as ``socket.sendto`` takes it, or
    None when unset or of a kind we do not speak (systemd 253+ also allows ``vsock:``)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace: no file, a leading NUL byte
    if value.startswith("/"):
        return value
    return None


def watchdog_timeout_s(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for *this* process, or None.

    ``$WATCHDOG_PID`` names the process meant to ping; a child that inherited the
    environment (a forked worker, a shell) must not ping on the service's behalf.
    """
    try:
        timeout_us = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if timeout_us <= 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid:
        try:
            if int(watchdog_pid) != pid:
                return None
        except ValueError:
            return None
    return timeout_us / 1_000_000


class Notifier:
    """One process's channel to systemd. Sends never block and never raise: systemd not
    listening is no reason for a collector to stop collecting."""

    def __init__(self, address: str | None, watchdog_timeout_s: float | None = None) -> None:
        self.address = address
        self.watchdog_timeout_s = watchdog_timeout_s if address is not None else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        environ = os.environ if environ is None else environ
        return cls(
            notify_address(environ.get("NOTIFY_SOCKET")),
            watchdog_timeout_s(environ, os.getpid() if pid is None else pid),
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_period_s(self) -> float | None:
        """How often to send WATCHDOG=1, or None when systemd does not watch us."""
        if self.watchdog_timeout_s is None:
            return None
        return self.watchdog_timeout_s * WATCHDOG_PING_FRACTION

    def send(self, *assignments: str) -> bool:
        """One datagram of newline-separated ``KEY=value`` lines; True if it was sent."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                    self._sock.setblocking(False)
                self._sock.sendto(message, self.address)
            except OSError as error:
                if not self._warned:  # once: a gone systemd must not flood the log
                    self._warned = True
                    log.warning("cannot notify systemd at %r: %s", self.address, error)
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status))

    def reloading(self) -> bool:
        # MONOTONIC_USEC: systemd 253+ (Type=notify-reload) matches it to the request
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.split("\n")),)  # one datagram line per field


class StatusLine:
    """``STATUS=`` text: where we listen and the rates since the last line."""

    def __init__(
        self,
        listening: str,
        counters: Callable[[], tuple[int, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``counters`` returns (flows decoded, datagrams dropped) totals so far."""
        self._listening = listening
        self._counters = counters
        self._clock = clock
        self._last: tuple[float, int, int] | None = None

    def __call__(self) -> str:
        now = self._clock()
        flows, dropped = self._counters()
        last, self._last = self._last, (now, flows, dropped)
        if last is None or now <= last[0]:
            return f"listening on {self._listening}"
        elapsed_s = now - last[0]
        return (
            f"listening on {self._listening}; {(flows - last[1]) / elapsed_s:.0f} flows/s, "
            f"{(dropped - last[2]) / elapsed_s:.0f} dropped datagrams/s"
        )


async def keep_systemd_informed(notifier: Notifier, status: Callable[[], str]) -> None:
    """Run on the worker's event loop until cancelled: WATCHDOG=1 every half timeout
    (only while this loop runs, which is the point) and STATUS= every few seconds."""
    if not notifier.enabled:
        return
    period_s = notifier.watchdog_period_s or STATUS_INTERVAL_S
    loop = asyncio.get_running_loop()
    next_status_s = loop.time() + STATUS_INTERVAL_S
    while True:
        if notifier.watchdog_period_s is not None:
            notifier.watchdog()
        if loop.time() >= next_status_s:
            notifier.status(status())
            next_status_s = loop.time() + STATUS_INTERVAL_S
        await asyncio.sleep(period_s)


class WorkerHeartbeats:
    """The parent's record of when each worker's event loop last spoke (its counter
    reports, sent from that loop). Any thread may call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last_s: dict[int, float] = {}
        self._reported: set[int] = set()

    def spawned(self, worker: int) -> None:
        """A (re)started worker gets a full timeout to start before it counts as hung."""
        with self._lock:
            self._last_s[worker] = self._clock()

    def beat(self, worker: int) -> None:
        with self._lock:
            self._last_s[worker] = self._clock()
            self._reported.add(worker)

    def all_reported(self, workers: int) -> bool:
        """Every worker has listened and reported at least once (READY=1 may go)."""
        with self._lock:
            return len(self._reported) >= workers

    def all_alive(self, max_silence_s: float) -> bool:
        now = self._clock()
        with self._lock:
            return all(now - last <= max_silence_s for last in self._last_s.values())


def notify_for_workers(
    notifier: Notifier,
    heartbeats: WorkerHeartbeats,
    workers: int,
    report_interval_s: float,
    status: Callable[[], str],
    stop: threading.Event,
) -> None:
    """The ``--workers N`` parent's thread: READY=1 once every worker listens, then
    WATCHDOG=1 only while every worker's loop reports. A worker silent for the watchdog
    timeout (at least three report intervals, for scheduling noise) withholds the pings.
    """
    while not heartbeats.all_reported(workers):
        if stop.wait(min(0.05, report_interval_s)):
            return
    notifier.ready(status())
    period_s = notifier.watchdog_period_s or STATUS_INTERVAL_S
    max_silence_s = max(notifier.watchdog_timeout_s or 0.0, 3 * report_interval_s)
    next_status_s = time.monotonic() + STATUS_INTERVAL_S
    while True:
        if notifier.watchdog_period_s is not None and heartbeats.all_alive(max_silence_s):
            notifier.watchdog()
        if time.monotonic() >= next_status_s:
            notifier.status(status())
            next_status_s = time.monotonic() + STATUS_INTERVAL_S
        if stop.wait(period_s):
            return
