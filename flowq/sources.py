"""``flowq -r capture.pcap``: export captures decoded in memory, so a person can ask
"what is this exporter sending?" without running the collector.

A ``-r`` file is a capture unless it starts like a Parquet file (``PAR1``) or a flowcap
spool (``FCS1``): pcap, pcapng and raw datagram dumps go through ``parsers/`` exactly as
``flowcapd --read`` would, and come out as Arrow batches of the same schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pyarrow as pa

from storage.reader import ReadProblem
from storage.schema import FLOW_SCHEMA, to_record_batch

#: magic bytes of the files flowq reads as stored flows, not as captures
STORED_MAGICS: Final = (b"PAR1", b"FCS1")
FLUSH_EVERY_DATAGRAMS: Final = 4096
RAW_EXPORTER: Final = ("192.0.2.1", 2055)


def is_capture(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head not in STORED_MAGICS and path.suffix not in (".parquet", ".spool")


class CaptureInput:
    """One capture file and what went wrong reading it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[ReadProblem] = []
        self.dropped = 0


def _projected(batch: pa.RecordBatch, columns: list[str] | None) -> pa.RecordBatch:
    if columns is None:
        return batch
    arrays = [
        batch.column(name) if name in batch.schema.names
        else pa.nulls(batch.num_rows, FLOW_SCHEMA.field(name).type)
        for name in columns
    ]  # fmt: skip
    return pa.RecordBatch.from_arrays(
        arrays, schema=pa.schema([FLOW_SCHEMA.field(n) for n in columns])
    )


def capture_batches(capture: CaptureInput, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """Flows of a capture file as record batches (``columns`` projected, or all present).

    The decoder is imported here, not at module level: it (and dpkt) costs ~75 ms of
    start-up that queries over stored files should not pay.
    """
    from parsers.capture import CaptureError, read_capture
    from parsers.decoder import FlowDecoder
    from parsers.errors import ParseError

    data = capture.path.read_bytes()
    decoder = FlowDecoder()
    now_ns = time.time_ns()
    datagrams = 0

    def flush() -> Iterator[pa.RecordBatch]:
        for batch in decoder.flush():
            yield _projected(to_record_batch(batch), columns)

    try:
        for datagram in read_capture(data, raw_source=RAW_EXPORTER):
            try:
                decoder.feed_datagram(
                    datagram.payload, datagram.source, datagram.captured_at_ns or now_ns
                )
            except ParseError:
                capture.dropped += 1
            datagrams += 1
            if datagrams % FLUSH_EVERY_DATAGRAMS == 0:
                yield from flush()
    except CaptureError as error:
        capture.problems.append(ReadProblem(capture.path, f"capture cut short: {error}"))
    yield from flush()
    if capture.dropped:
        capture.problems.append(
            ReadProblem(capture.path, f"{capture.dropped} malformed datagrams dropped")
        )
