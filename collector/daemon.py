"""flowcapd: the entry point, and the parent of ``--workers N``.

One worker (``collector.worker``) owns a UDP socket, an event loop (uvloop), a decoder,
a bounded queue and a storage thread. ``--workers N`` forks N of them onto N sockets
bound to one port with SO_REUSEPORT; the parent keeps the sockets, forwards signals and
restarts a worker that dies (its socket, and what the kernel queued on it, survive).

Signals: SIGTERM/SIGINT stop receiving, read what the kernel already queued, decode,
write and finalize every file, exit 0. SIGHUP reads ``--config`` again (the allow list
and log level apply at once, in every worker) and closes the current interval's files
early. ``kill -9`` loses at most the last flush interval; the next start recovers
every spool into Parquet before listening.

Under systemd (``Type=notify``) the daemon says READY=1 once every worker listens,
pings the watchdog from the loops that do the work, and brackets reloads and stops
(``collector.sdnotify``). ``--read FILE...`` runs ``collector.offline`` instead;
``flowcapd expire`` runs ``collector.expire_command``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Final

import uvloop

from collector.config import Config, ConfigError, load_config
from collector.listener import (
    bound_address,
    close_quietly,
    open_udp_socket,
)
from collector.logformat import setup_logging
from collector.metrics import socket_inode
from collector.offline import run_offline
from collector.sdnotify import (
    Notifier,
    StatusLine,
    WorkerHeartbeats,
    notify_for_workers,
)
from collector.worker import (
    HANDLED_SIGNALS,
    REPORT_INTERVAL_S,
    announce_line,
    format_host,
    recover_spools,
    reload_settings,
    run_worker,
    start_metrics,
    worker_progress,
)
from collector.worker_stats import WorkerReports

log = logging.getLogger("flowcapd")

#: prctl(2) option: the signal a process gets when its parent dies (Linux)
PR_SET_PDEATHSIG: Final = 1


def _stop_with_parent(parent: int) -> None:
    """Ask for SIGTERM when the parent dies, even of ``kill -9``: a worker otherwise
    lives on as an orphan holding the port and its spool, beside the next start's
    workers. SIGTERM makes it drain, write and finalize like any stop."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: nothing to ask for
        return
    if os.getppid() != parent:  # it died before the request
        os.kill(os.getpid(), signal.SIGTERM)  # pending until the loop handles it


def _run_forked_workers(config: Config, notifier: Notifier | None = None) -> int:
    """The parent of ``--workers N``: holds the sockets, forks the workers, forwards
    signals, restarts a worker that dies, and is systemd's main process."""
    systemd = notifier or Notifier(None)
    first = open_udp_socket(config.bind, config.port, config.socket_buffer_bytes, reuse_port=True)
    host, port = bound_address(first)
    sockets = [first] + [
        open_udp_socket(config.bind, port, config.socket_buffer_bytes, reuse_port=True)
        for _ in range(config.workers - 1)
    ]
    children: dict[int, int] = {}
    reports_in, reports_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    reports = WorkerReports()
    heartbeats = WorkerHeartbeats()
    informer_stop = threading.Event()
    stopping = False
    current = config  # what SIGHUP reloaded; a restarted worker starts with it

    def spawn(worker: int, restarted: bool = False) -> None:
        # the child inherits the blocked signals and unblocks them once its loop handles
        # them: a SIGTERM sent just after start otherwise killed a worker still starting
        # (exit 1, and nobody read what the kernel had queued on its socket)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        parent = os.getpid()
        pid = os.fork()
        if pid != 0:
            # known to ``forward`` before a signal can run it; a stop that came while
            # it was forked (a worker restarted during shutdown) is passed on here
            children[pid] = worker
            heartbeats.spawned(worker)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            if stopping:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            return
        code = 1
        try:
            _stop_with_parent(parent)
            for index, other in enumerate(sockets):
                if index != worker:
                    close_quietly(other)
            close_quietly(reports_in)
            code = uvloop.run(
                run_worker(
                    current,
                    sockets[worker],
                    worker,
                    announce=False,
                    report=reports_out,
                    restarted=restarted,
                )
            )
        except BaseException:
            log.exception("worker %d failed", worker)
        finally:
            logging.shutdown()
            os._exit(code)

    # until ``forward`` is installed a signal would kill the parent and orphan the workers
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    for worker in range(config.workers):
        spawn(worker)
    threading.Thread(
        target=_collect_reports,
        args=(reports_in, reports, heartbeats),
        name="flowcapd-reports",
        daemon=True,
    ).start()
    if config.metrics_address is not None:
        inodes = [socket_inode(sock.fileno()) for sock in sockets]
        start_metrics(
            config.metrics_address, reports.total, lambda: inodes, config.workers, config.flow_dir
        )
    announce_line(
        "listening on %s:%d (%d workers, flows in %s)",
        format_host(host),
        port,
        config.workers,
        config.flow_dir,
    )

    status_line = StatusLine(
        f"{format_host(host)}:{port} ({config.workers} workers)",
        lambda: worker_progress(reports.total()),
    )
    if systemd.enabled:
        threading.Thread(
            target=notify_for_workers,
            args=(
                systemd,
                heartbeats,
                config.workers,
                REPORT_INTERVAL_S,
                status_line,
                informer_stop,
            ),
            name="flowcapd-sdnotify",
            daemon=True,
        ).start()

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping, current
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            informer_stop.set()
            systemd.stopping()
        elif signum == signal.SIGHUP:
            systemd.reloading()
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if signum == signal.SIGHUP:  # each worker reads the file too, and applies it
            current, _ = reload_settings(current, log_outcome=True)
            if not stopping:
                systemd.ready(status_line())

    for signum in HANDLED_SIGNALS:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        worker = children.pop(pid, None)
        if worker is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:
            status = status or (0 if code == 0 else 1)
        else:
            log.error("worker %d exited with %d; restarting it", worker, code)
            reports.retire(worker)
            spawn(worker, restarted=True)
    informer_stop.set()
    for sock in sockets:
        close_quietly(sock)
    return status


def _collect_reports(
    reports_in: socket.socket, reports: WorkerReports, heartbeats: WorkerHeartbeats
) -> None:
    """Parent thread: keep each worker's latest counters for the metrics endpoint; a
    report is also the worker's heartbeat (it comes from the worker's event loop)."""
    while True:
        try:
            data = reports_in.recv(1 << 20)
            message = json.loads(data)
            reports.update(int(message["worker"]), message["stats"])
            heartbeats.beat(int(message["worker"]))
        except OSError:
            return
        except (ValueError, KeyError, TypeError):
            continue


def main(argv: Sequence[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else list(argv))[:1] == ["expire"]:
        from collector.expire_command import main as expire_main  # flowcapd expire …

        return expire_main(list(sys.argv[2:] if argv is None else argv[1:]))
    try:
        config = load_config(argv)
    except ConfigError as error:
        print(f"flowcapd: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    try:
        config.flow_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.error(
            "cannot create %s: %s (flows stay in memory until it works)", config.flow_dir, error
        )
    if config.read:
        return run_offline(config)
    recover_spools(config.flow_dir)
    notifier = Notifier.from_environment()  # a no-op unless systemd started us
    try:
        if config.workers > 1:
            return _run_forked_workers(config, notifier)
        sock = open_udp_socket(config.bind, config.port, config.socket_buffer_bytes)
    except OSError as error:
        print(
            f"flowcapd: cannot listen on UDP port {config.port}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 1
    return uvloop.run(run_worker(config, sock, 0, announce=True, notifier=notifier))


if __name__ == "__main__":
    sys.exit(main())
