"""RecordWriter streams: each batch is written when it arrives and nothing is kept, so
memory stays flat over any number of batches (``flowq -R big_dir | head``)."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pyarrow as pa
import pytest

from flowq.output import RecordWriter, parse_output_format

BATCHES = 1000
ROWS = 100


class CountingSink(io.TextIOBase):
    """A stdout that keeps nothing: counts characters and lines, remembers the tail."""

    def __init__(self) -> None:
        self.chars = 0
        self.lines = 0
        self.tail = ""

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.lines += text.count("\n")
        self.tail = (self.tail + text)[-64:]
        return len(text)


def _batch(rows: int) -> pa.RecordBatch:
    rng = np.random.default_rng(3)
    start = 1_795_860_300_000 + rng.integers(0, 300_000, rows)
    return pa.RecordBatch.from_pydict(
        {
            "time_start": pa.array(start, pa.timestamp("ms", tz="UTC")),
            "time_end": pa.array(
                start + rng.integers(0, 60_000, rows), pa.timestamp("ms", tz="UTC")
            ),
            "proto": pa.array(rng.choice([1, 6, 17], rows).astype(np.uint8)),
            "src_addr": pa.array(rng.integers(0, 2**32, rows, dtype=np.uint32)),
            "dst_addr": pa.array(rng.integers(0, 2**32, rows, dtype=np.uint32)),
            "src_port": pa.array(rng.integers(0, 65536, rows).astype(np.uint16)),
            "dst_port": pa.array(rng.integers(0, 65536, rows).astype(np.uint16)),
            "packets": pa.array(rng.integers(1, 10**7, rows, dtype=np.uint64)),
            "bytes": pa.array(rng.integers(1, 10**10, rows, dtype=np.uint64)),
        }
    )


@pytest.mark.parametrize("fmt_text", ["line", "csv", "json"])
def test_memory_stays_flat_over_1000_batches(fmt_text: str) -> None:
    batch = _batch(ROWS)
    sink = CountingSink()
    writer = RecordWriter(
        parse_output_format(fmt_text), sink, utc=True, plain_numbers=False, quiet=True
    )
    writer.write_header()
    writer.write_batch(batch)
    assert sink.lines >= ROWS - 1  # written at once, not held until finish()
    for index in range(1, BATCHES):
        writer.write_batch(batch)
        if index == 100:
            python_base = sys.getallocatedblocks()
            arrow_base = pa.total_allocated_bytes()
    python_end = sys.getallocatedblocks()
    arrow_end = pa.total_allocated_bytes()
    writer.finish()
    # 900 batches more (about 10 MB of text) leave nothing behind: a few hundred Python
    # memory blocks at most (caches warming up), no Arrow memory at all
    assert python_end - python_base < 500
    assert arrow_end - arrow_base < 64 * 1024
    assert writer.rows_written == BATCHES * ROWS
    if fmt_text == "json":
        assert sink.tail.endswith("}\n]\n")
        assert sink.lines == BATCHES * ROWS + 2
    else:
        assert sink.lines == BATCHES * ROWS


def test_json_array_spanning_batches_parses() -> None:
    out = io.StringIO()
    writer = RecordWriter(
        parse_output_format("json"), out, utc=True, plain_numbers=False, quiet=False
    )
    writer.write_header()
    for _ in range(3):
        writer.write_batch(_batch(5))
    writer.write_batch(_batch(0))
    writer.finish()
    assert len(json.loads(out.getvalue())) == 15
