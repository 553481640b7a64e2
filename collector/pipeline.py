"""Datagram -> decoder -> Arrow batches -> the storage queue.

Runs on the event loop thread: ``on_datagram`` is called for every datagram and must
stay cheap (the decoder's walk only stages sets); ``flush`` decodes everything staged
in one vectorized pass per template and hands Arrow batches to the bounded queue the
storage thread drains. A full queue drops the batch and counts its flows, never
silently and never blocking the loop.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

from collector.ratelimit import RateLimitedLog
from collector.storage_thread import BatchQueue
from collector.worker_stats import ExporterLabels, decode_histogram
from parsers.decoder import VERSIONS as EXPORT_VERSIONS
from parsers.decoder import FlowDecoder, export_version
from parsers.errors import ParseError
from storage.schema import to_record_batch

log = logging.getLogger("flowcapd")

#: allow-list decisions remembered per source address (bounded)
MAX_ALLOW_CACHE: Final = 65536
INTERNAL_ERROR: Final = "internal_error"
NOT_ALLOWED: Final = "not_allowed"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class PipelineStats:
    """Receive-side counters, read by metrics and the summary log."""

    datagrams: int = 0
    received_by_version: Counter[str] = field(default_factory=Counter)  # "5", "9", "10", "other"
    dropped: Counter[str] = field(default_factory=Counter)  # by reason label
    flows_queue_dropped: int = 0
    batches_queued: int = 0


def _normalized(host: str) -> str:
    if host.startswith("::ffff:") and "." in host:
        return host[7:]  # dual-stack socket: IPv4 exporter as a mapped address
    return host


class ReceivePipeline:
    """The per-worker receive path: allow-list, decode, batch, enqueue."""

    def __init__(
        self,
        decoder: FlowDecoder,
        queue: BatchQueue,
        allowed: tuple[Network, ...] = (),
        clock_ns: Callable[[], int] = time.time_ns,
        timer_s: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.decoder = decoder
        self.queue = queue
        self.stats = PipelineStats()
        #: seconds per flush that decoded something (idle flushes would only bury the
        #: real ones under four zero-length observations a second)
        self.decode_seconds = decode_histogram()
        #: which exporter addresses this worker reports under their own label
        self.exporter_labels = ExporterLabels()
        self._timer_s = timer_s
        self._allowed = allowed
        self._allow_cache: dict[str, bool] = {}
        self._clock_ns = clock_ns
        self._log = RateLimitedLog(log)

    def set_allowed(self, allowed: tuple[Network, ...]) -> None:
        """Replace the allow list (SIGHUP reload)."""
        self._allowed = allowed
        self._allow_cache.clear()

    def _is_allowed(self, host: str) -> bool:
        decision = self._allow_cache.get(host)
        if decision is None:
            try:
                address = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                decision = False
            else:
                decision = any(address in network for network in self._allowed)
            if len(self._allow_cache) >= MAX_ALLOW_CACHE:
                self._allow_cache.clear()
            self._allow_cache[host] = decision
        return decision

    def on_datagram(
        self, data: bytes, addr: tuple[str, int], received_at_ns: int | None = None
    ) -> None:
        """One datagram from the socket (or a capture file). Never raises."""
        self.stats.datagrams += 1
        version = export_version(data)
        label = str(version) if version in EXPORT_VERSIONS else "other"
        self.stats.received_by_version[label] += 1
        host = _normalized(addr[0])
        if self._allowed and not self._is_allowed(host):
            self.stats.dropped[NOT_ALLOWED] += 1
            self._log.warning(
                (host, NOT_ALLOWED), "exporter %s:%d is not allowed: dropped", host, addr[1]
            )
            return
        try:
            self.decoder.feed_datagram(
                data,
                (host, addr[1]),
                received_at_ns if received_at_ns is not None else self._clock_ns(),
            )
        except ParseError as error:
            self.stats.dropped[error.reason.value] += 1
            self._log.warning(
                (host, error.reason.value),
                "exporter %s:%d: datagram dropped (%s): %s",
                host,
                addr[1],
                error.reason,
                error,
            )
        except Exception:  # the safety net: the daemon never dies of its input
            self.stats.dropped[INTERNAL_ERROR] += 1
            self._log.exception(
                (host, INTERNAL_ERROR), "exporter %s:%d: decoder bug", host, addr[1]
            )

    def flush(self) -> int:
        """Decode what is staged and queue it for storage; return the flows queued."""
        started_s = self._timer_s()
        try:
            batches = [to_record_batch(batch) for batch in self.decoder.flush()]
        except Exception:
            self.stats.dropped[INTERNAL_ERROR] += 1
            self._log.exception(("flush", INTERNAL_ERROR), "decoding a batch failed")
            return 0
        if batches:
            self.decode_seconds.observe(self._timer_s() - started_s)
        queued = 0
        for batch in batches:
            queued += self.enqueue(batch)
        return queued

    def enqueue(self, batch: pa.RecordBatch) -> int:
        if self.queue.put(batch):
            self.stats.batches_queued += 1
            return batch.num_rows
        self.stats.flows_queue_dropped += batch.num_rows
        self._log.warning(("queue", "full"), "storage queue full: %d flows dropped", batch.num_rows)
        return 0
