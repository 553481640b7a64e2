"""One flowcapd worker: a UDP socket, an event loop (uvloop), a decoder, a bounded queue
and a storage thread (``FlowCollector``, ``run_worker``).

``flowcapd`` runs one in its own process, or ``--workers N`` of them forked by
``collector.daemon`` onto sockets sharing the port. A worker handles SIGTERM/SIGINT
(drain, write, finalize, exit 0) and SIGHUP (reload the settings that can change,
rotate) on its loop, pings systemd's watchdog from that loop, and with ``--workers N``
reports its counters to the parent about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from collector.config import Config, ConfigError, reload_config
from collector.listener import (
    DatagramReceiver,
    bound_address,
    close_quietly,
    drain_socket,
    open_udp_socket,
    receive_buffer_bytes,
)
from collector.logformat import set_log_level
from collector.metrics import serve_metrics, socket_inode
from collector.pipeline import ReceivePipeline
from collector.sdnotify import (
    Notifier,
    StatusLine,
    keep_systemd_informed,
)
from collector.storage_thread import BatchQueue, StorageThread
from collector.template_store import load_templates, save_templates, snapshot
from collector.worker_stats import StatsSnapshot, worker_snapshot
from parsers.decoder import FlowDecoder
from storage.interval_writer import IntervalWriter
from storage.recovery import recover

log = logging.getLogger("flowcapd")

#: decode what is staged this often (flows reach the spool within about this + the
#: flush interval)
DECODE_FLUSH_INTERVAL_S: Final = 0.25
#: housekeeping: expire held sets, persist changed templates
HOUSEKEEPING_INTERVAL_S: Final = 1.0
TEMPLATE_SAVE_INTERVAL_S: Final = 10.0
#: workers report their counters to the parent this often (``--workers N``)
REPORT_INTERVAL_S: Final = 1.0
#: the signals flowcapd handles; blocked from before a worker is forked until its loop
#: handles them, so one sent right after start waits instead of killing the worker
HANDLED_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def announce_line(message: str, *args: object) -> None:
    """Lines the operator and tests rely on (the bound port with ``-p 0``): logged at
    INFO, or at the configured level when that is higher, so they always show."""
    log.log(max(logging.INFO, log.getEffectiveLevel()), message, *args)


def format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class FlowCollector:
    """One receiving worker: socket -> decoder -> storage thread."""

    def __init__(self, config: Config, sock: socket.socket | None = None, worker: int = 0) -> None:
        self.config = config
        self.worker = worker
        self._sock = sock
        self._drain_sock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self.decoder = FlowDecoder()
        self.queue = BatchQueue()
        self.pipeline = ReceivePipeline(self.decoder, self.queue, config.allowed_networks)
        self.writer = IntervalWriter(
            config.flow_dir, config.rotation_interval_s, config.subdir_layout, worker
        )
        self.storage = StorageThread(
            self.queue,
            self.writer,
            config.rotation_interval_s,
            config.flush_interval_s,
            on_written=self._written_from_thread,
            retention=config.retention,
        )
        self.flows_written = 0
        self._written_changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: list[asyncio.Task] = []
        self._template_mark: tuple[int, int, int] | None = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Bind (unless given a socket), restore templates, start receiving."""
        self._loop = asyncio.get_running_loop()
        self._written_changed = asyncio.Event()
        restored = load_templates(self.decoder, self.config.state_dir)
        if restored:
            log.info("restored %d templates from %s", restored, self.config.state_dir)
        self._template_mark = self._template_state()
        if self._sock is None:
            self._sock = open_udp_socket(
                self.config.bind, self.config.port, self.config.socket_buffer_bytes
            )
        self._drain_sock = self._sock.dup()
        self._address = bound_address(self._sock)
        self.storage.start()
        self._transport, _ = await self._loop.create_datagram_endpoint(
            lambda: DatagramReceiver(self.pipeline.on_datagram, self._on_socket_error),
            sock=self._sock,
        )
        self._tasks = [
            asyncio.create_task(self._every(DECODE_FLUSH_INTERVAL_S, self.pipeline.flush)),
            asyncio.create_task(self._every(HOUSEKEEPING_INTERVAL_S, self._housekeeping)),
        ]
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) bound; still known after ``stop`` closed the socket."""
        if self._address is None:
            raise RuntimeError("the collector has not started")
        return self._address

    async def stop(self) -> None:
        """Stop receiving, drain the socket, write and finalize everything."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._transport is not None:
            self._transport.close()
            await asyncio.sleep(0)
        if self._drain_sock is not None:
            drained = drain_socket(self._drain_sock, self.pipeline.on_datagram)
            if drained:
                log.info("read %d datagrams queued at shutdown", drained)
            close_quietly(self._drain_sock)
        self.pipeline.flush()
        self._save_templates(force=True)
        self.queue.close()
        await asyncio.get_running_loop().run_in_executor(None, self.storage.join)
        for path in self.storage.finished_files:
            log.info("wrote %s", path)
        log.info(
            "stopped: %d datagrams, %d flows decoded, %d written, dropped %s",
            self.pipeline.stats.datagrams,
            self.decoder.stats.flow_records,
            self.storage.stats.rows_written,
            dict(self.pipeline.stats.dropped) or "none",
        )

    def stats_snapshot(self) -> StatsSnapshot:
        """Every number as plain data, for the metrics endpoint (any thread may call)."""
        return worker_snapshot(self.pipeline, self.storage)

    def receive_buffer_bytes(self) -> int:
        sock = self._drain_sock or self._sock
        return receive_buffer_bytes(sock) if sock is not None else 0

    def socket_inodes(self) -> list[int]:
        sock = self._drain_sock or self._sock
        return [socket_inode(sock.fileno())] if sock is not None and sock.fileno() >= 0 else []

    def apply_config(self, config: Config) -> None:
        """A reloaded config: the allow list applies to the next datagram; the rest of
        what changed waits for a restart (``reload_config`` says which)."""
        self.config = config
        self.pipeline.set_allowed(config.allowed_networks)

    def rotate(self) -> None:
        """SIGHUP: decode what is staged and close the current interval's files."""
        self.pipeline.flush()
        self.storage.request_rotation()

    # -- waiting, for tests and the parent -------------------------------------------

    def _written_from_thread(self, rows: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._add_written, rows)

    def _add_written(self, rows: int) -> None:
        self.flows_written += rows
        assert self._written_changed is not None
        self._written_changed.set()

    async def wait_flows_written(self, count: int) -> int:
        """Return once at least ``count`` flows are durably in the spool."""
        assert self._written_changed is not None
        while self.flows_written < count:
            self._written_changed.clear()
            await self._written_changed.wait()
        return self.flows_written

    # -- timers ----------------------------------------------------------------------

    async def _every(self, interval_s: float, action: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            action()

    def _housekeeping(self) -> None:
        self.decoder.expire(time.time_ns())
        self._save_templates(force=False)

    def _template_state(self) -> tuple[int, int, int]:
        stats = self.decoder.templates.stats
        return (stats.templates_learned, stats.templates_redefined, stats.templates_withdrawn)

    def _save_templates(self, force: bool) -> None:
        mark = self._template_state()
        if mark == self._template_mark and not force:
            return
        self._template_mark = mark
        data = snapshot(self.decoder)
        state_dir, worker = self.config.state_dir, self.worker

        def save() -> None:
            try:
                save_templates(data, state_dir, worker)
            except OSError as error:
                log.warning("cannot persist templates to %s: %s", state_dir, error)

        if self.storage.is_alive():
            self.storage.submit(save)
        else:
            save()

    def _on_socket_error(self, error: OSError) -> None:
        log.warning("socket error: %s", error)


# -- running -------------------------------------------------------------------------


def recover_spools(flow_dir: Path) -> None:
    """Turn the spools a dead process left into Parquet (spools of live workers are
    locked, and skipped)."""
    try:
        for path in recover(flow_dir):
            log.info("recovered %s", path)
    except OSError as error:
        log.error("recovering spools in %s failed: %s", flow_dir, error)


async def _report_to_parent(collector: FlowCollector, report: socket.socket) -> None:
    """Send this worker's counters to the parent once a second.

    A plain non-blocking ``send``, not asyncio-dgram: the report socket is one end of
    a connected socketpair, and ``asyncio_dgram.from_socket`` on a connected socket
    sets ``transport._address``, which uvloop's UDPTransport does not have (the task
    died at once, the parent's metrics stayed at zero and the worker exited 1). A
    report is a few hundred bytes once a second; one the kernel cannot queue is
    dropped, and the next carries the same counters."""
    report.setblocking(False)
    while True:
        _send_report(collector, report)
        await asyncio.sleep(REPORT_INTERVAL_S)


def _send_report(collector: FlowCollector, report: socket.socket) -> None:
    message = {"worker": collector.worker, "stats": collector.stats_snapshot()}
    with contextlib.suppress(OSError):
        report.send(json.dumps(message).encode())


async def run_worker(
    config: Config,
    sock: socket.socket | None,
    worker: int,
    announce: bool,
    report: socket.socket | None = None,
    restarted: bool = False,
    notifier: Notifier | None = None,
) -> int:
    """One worker's life. ``notifier`` only in the one-process daemon (it is systemd's
    main process); forked workers are vouched for by their parent."""
    collector = FlowCollector(config, sock, worker)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    systemd = notifier or Notifier(None)
    status: StatusLine | None = None

    def on_hangup() -> None:
        nonlocal config
        systemd.reloading()
        # a forked worker applies the file quietly: its parent read it too and logs once
        config, reloaded = reload_settings(config, log_outcome=report is None)
        if reloaded:
            collector.apply_config(config)
            if report is not None:
                log.info("worker %d: reloaded settings applied", worker)
        collector.rotate()
        systemd.ready(status() if status is not None else None)

    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)  # blocked by a forking parent
    host, port = await collector.start()
    if restarted:  # the predecessor's spool: on the storage thread, off the receive path
        collector.storage.submit(lambda: recover_spools(config.flow_dir))
    reporter = None
    if report is not None:
        reporter = asyncio.create_task(_report_to_parent(collector, report))
    elif config.metrics_address is not None:
        start_metrics(
            config.metrics_address,
            collector.stats_snapshot,
            collector.socket_inodes,
            1,
            config.flow_dir,
        )
    if announce:
        announce_line(
            "listening on %s:%d (receive buffer %d bytes, flows in %s)",
            format_host(host),
            port,
            collector.receive_buffer_bytes(),
            config.flow_dir,
        )
    informer = None
    if systemd.enabled:
        status = StatusLine(
            f"{format_host(host)}:{port}", lambda: worker_progress(collector.stats_snapshot())
        )
        systemd.ready(status())
        informer = asyncio.create_task(keep_systemd_informed(systemd, status))
    await stopping.wait()
    systemd.stopping()
    log.info("stopping")
    await collector.stop()
    if informer is not None:
        informer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await informer
    lost = collector.storage.stats.rows_lost
    if report is not None and reporter is not None:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        _send_report(collector, report)  # the final counters: the parent's totals include the drain
    return 1 if lost else 0  # flows the disk never took: the operator must know


def reload_settings(running: Config, log_outcome: bool) -> tuple[Config, bool]:
    """SIGHUP: read ``--config`` again and set the log level; return the config now in
    force and whether the file was read. The caller hands the allow list to its
    pipeline. A bad file leaves ``running`` in force, with one error line (never an
    exit: a typo in a reload must not stop the collection)."""
    if running.config_file is None:
        return running, False
    try:
        outcome = reload_config(running)
    except ConfigError as error:
        if log_outcome:
            log.error("reload failed, keeping the running settings: %s", error)
        return running, False
    set_log_level(outcome.config.log_level)
    if log_outcome:
        for key in outcome.needs_restart:
            log.warning("needs a restart: %s", key)
        log.info(
            "reloaded %s: allow %s, log level %s",
            running.config_file,
            " ".join(outcome.config.allow) or "all",
            outcome.config.log_level,
        )
    return outcome.config, True


def worker_progress(stats: StatsSnapshot) -> tuple[int, int]:
    """(flows decoded, datagrams dropped) so far, for the STATUS= rates."""
    dropped = stats.get("dropped") or {}
    return int(stats.get("flows_decoded", 0)), int(sum(dropped.values()))


def start_metrics(
    address: tuple[str, int],
    snapshot: Callable[[], StatsSnapshot],
    socket_inodes: Callable[[], list[int]],
    workers: int,
    flow_dir: Path,
) -> None:
    """Serve the scrape endpoint and log where: with port 0 (``--metrics ADDR:0``) the
    kernel picks the port, and the log line is how a test or an operator finds it."""
    try:
        server, _ = serve_metrics(address, snapshot, socket_inodes, workers, flow_dir)
    except OSError as error:
        log.error("metrics endpoint %s:%d: %s", format_host(address[0]), address[1], error)
        return
    host, port = server.server_address[:2]  # type: ignore[attr-defined]
    announce_line("metrics on http://%s:%d/metrics", format_host(host), port)
