"""Synthetic flows for the storage tests: parser batches of a few template shapes,
spools of them, and row-level comparison of what went in with what comes out."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from parsers.events import FlowBatch, VarBinary
from storage.schema import to_record_batch
from storage.spool import SpoolWriter

NS = 1_000_000_000
BASE_S = 1_763_800_200  # 2025-11-22 08:30:00 UTC, a multiple of 300


def flow_batch(rows: int, t0_s: float, seed: int, shape: int = 0) -> FlowBatch:
    """``rows`` flows ending around ``t0_s``; ``shape`` picks the template: 0 IPv4 core,
    1 IPv6 with VMware columns, 2 IPv4 with a string column and raw extra fields."""
    rng = np.random.default_rng(seed)
    end_ns = (t0_s * NS + rng.integers(0, NS, rows)).astype(np.int64)
    columns: dict = {
        "time_start": end_ns - rng.integers(0, 60 * NS, rows),
        "time_end": end_ns,
        "time_received": np.full(rows, int(t0_s * NS) + NS, dtype=np.int64),
        "proto": rng.choice(np.array([6, 17], dtype=np.uint8), rows),
        "src_port": rng.integers(1024, 65535, rows).astype(np.uint16),
        "dst_port": rng.choice(np.array([53, 80, 443], dtype=np.uint16), rows),
        "packets": rng.integers(1, 1000, rows).astype(np.uint64),
        "bytes": rng.integers(40, 10**6, rows).astype(np.uint64),
        "exporter": np.full(rows, 0x0A000001, dtype=np.uint32),
    }
    if shape == 1:
        columns["src_addr6"] = rng.integers(0, 256, (rows, 16)).astype(np.uint8)
        columns["dst_addr6"] = rng.integers(0, 256, (rows, 16)).astype(np.uint8)
        columns["tenant_src_port"] = rng.integers(0, 65535, rows).astype(np.uint16)
        columns["vxlan_export_role"] = np.ones(rows, dtype=np.uint8)
    else:
        columns["src_addr"] = rng.integers(0x0A000000, 0x0A00FFFF, rows).astype(np.uint32)
        columns["dst_addr"] = rng.integers(0, 2**32, rows).astype(np.uint32)
    extra = []
    if shape == 2:
        names = [f"vm-{i}".encode() for i in rng.integers(0, 50, rows)]
        columns["vm_uuid"] = _var_binary(names)
        extra = [("9999:1", rng.integers(0, 256, (rows, 2)).astype(np.uint8))]
    return FlowBatch(rows, columns, extra)


def _var_binary(values: list[bytes]) -> VarBinary:
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(v) for v in values])
    return VarBinary(offsets, np.frombuffer(b"".join(values), dtype=np.uint8).copy())


def record_batches(count: int, rows: int, t0_s: float = BASE_S, step_s: float = 1.0,
                   seed: int = 0) -> list[pa.RecordBatch]:  # fmt: skip
    """``count`` record batches of rotating shapes, one ``step_s`` apart."""
    return [
        to_record_batch(flow_batch(rows, t0_s + i * step_s, seed + i, shape=i % 3))
        for i in range(count)
    ]


def write_spool(path: Path, batches: list[pa.RecordBatch]) -> list[int]:
    """A closed spool of ``batches``; the file size after each frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with SpoolWriter(path) as writer:
        ends = []
        for batch in batches:
            writer.append(batch)
            ends.append(writer.size)
    return ends


def row_set(batches: Iterable[pa.RecordBatch | pa.Table]) -> list[str]:
    """The rows as a sorted list of canonical strings, null columns left out, so that
    a file holding the union of columns compares equal to the batches written."""
    rows = []
    for batch in batches:
        for row in batch.to_pylist():
            rows.append(repr(sorted((k, v) for k, v in row.items() if v is not None)))
    return sorted(rows)
