"""``flowcapd --read FILE...``: the receive pipeline over capture files (pcap, pcapng,
raw export dumps), written as the daemon writes, then exit."""

from __future__ import annotations

import logging
import time

from collector.config import Config
from collector.pipeline import ReceivePipeline
from collector.storage_thread import BatchQueue, split_by_interval
from collector.template_store import load_templates, save_templates, snapshot
from parsers.capture import CaptureError, read_capture
from parsers.decoder import FlowDecoder
from storage.interval_writer import IntervalWriter, StorageUnavailable

log = logging.getLogger("flowcapd")


def run_offline(config: Config) -> int:
    """``--read FILE...``: the same pipeline over capture files, then exit."""
    decoder = FlowDecoder()
    load_templates(decoder, config.state_dir)
    queue = BatchQueue(max_rows=1 << 62)
    pipeline = ReceivePipeline(decoder, queue, config.allowed_networks)
    writer = IntervalWriter(config.flow_dir, config.rotation_interval_s, config.subdir_layout, 0)
    rotation_ns = config.rotation_interval_s * 1_000_000_000
    status = 0
    written = 0

    def drain(now_s: float) -> None:
        nonlocal written
        pipeline.flush()
        while (batch := queue.get(0)) is not None:
            for interval_start_s, part in split_by_interval(batch, config.rotation_interval_s):
                writer.append(part, interval_start_s)
                written += part.num_rows
        writer.sync()
        writer.rotate_due(now_s)

    for path in config.read:
        try:
            data = path.read_bytes()
        except OSError as error:
            log.error("%s: %s", path, error.strerror or error)
            status = 1
            continue
        now_ns = time.time_ns()
        interval = None
        count = 0
        try:
            for datagram in read_capture(data, raw_source=("192.0.2.1", 2055)):
                received = datagram.captured_at_ns or now_ns
                if interval is not None and received // rotation_ns != interval:
                    drain(interval * config.rotation_interval_s)
                interval = received // rotation_ns
                pipeline.on_datagram(datagram.payload, datagram.source, received)
                count += 1
                if count % 4096 == 0:
                    drain(received / 1e9)
        except CaptureError as error:
            log.error("%s: %s", path, error)
            status = 1
        drain(0)
    try:
        files = writer.close()
    except StorageUnavailable as error:
        log.error("cannot write flows: %s", error)
        return 1
    save_templates(snapshot(decoder), config.state_dir, 0)
    for path in files:
        log.info("wrote %s", path)
    log.info(
        "read %d datagrams: %d flows written, dropped %s",
        pipeline.stats.datagrams,
        written,
        dict(pipeline.stats.dropped) or "none",
    )
    return status
