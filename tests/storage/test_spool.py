"""The spool: every complete frame survives any crash point; failed appends leave it
valid; damage stops the reader and is reported."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pytest

from storage import spool as spool_module
from storage.spool import FRAME_HEADER, SpoolBroken, SpoolWriter, lock_existing, read_spool
from tests.storage.full_disk import fill
from tests.storage.synthetic import record_batches

SPOOL_NAME = "flowcap.202511220830-202511220835.0.0.spool"


def write_spool(path: Path, batches: list[pa.RecordBatch]) -> list[int]:
    """Write ``batches``; return the file offset after each frame."""
    ends = []
    with SpoolWriter(path) as writer:
        for batch in batches:
            writer.append(batch)
            ends.append(writer.size)
        writer.sync()
    return ends


def test_round_trip_with_varying_schemas(tmp_path):
    batches = record_batches(6, 50)
    assert len({b.schema for b in batches}) == 3
    path = tmp_path / SPOOL_NAME
    write_spool(path, batches)
    reader = read_spool(path)
    back = list(reader)
    assert len(back) == 6
    assert all(
        a.equals(b) and a.schema.equals(b.schema) for a, b in zip(back, batches, strict=True)
    )
    assert (reader.frames, reader.rows, reader.trailing_bytes, reader.torn) == (6, 300, 0, False)
    assert [s.names for s in read_spool(path).schemas()] == [b.schema.names for b in batches]


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_compressions(tmp_path, compression):
    batches = record_batches(3, 20)
    path = tmp_path / SPOOL_NAME
    with SpoolWriter(path, compression) as writer:
        for batch in batches:
            writer.append(batch)
    assert [b.num_rows for b in read_spool(path)] == [20, 20, 20]


def small_batches() -> list[pa.RecordBatch]:
    """Three batches of two schemas, small enough to cut a spool at every byte."""
    return [
        pa.record_batch({"time_start": pa.array([1, 2], pa.timestamp("ms", tz="UTC"))}),
        pa.record_batch({"proto": pa.array([6], pa.uint8()), "bytes": pa.array([9], pa.uint64())}),
        pa.record_batch({"time_start": pa.array([3], pa.timestamp("ms", tz="UTC"))}),
    ]


def test_kill_at_every_byte_keeps_exactly_the_complete_frames(tmp_path):
    batches = small_batches()
    full = tmp_path / "full.spool"
    with SpoolWriter(full, compression=None) as writer:
        ends = [writer.append(batch) for batch in batches]
    ends = [sum(ends[: i + 1]) for i in range(len(ends))]
    data = full.read_bytes()
    assert ends[-1] == len(data)
    cut = tmp_path / SPOOL_NAME
    cut.write_bytes(data)
    for offset in range(len(data), -1, -1):
        os.truncate(cut, offset)
        reader = read_spool(cut)
        back = list(reader)
        complete = sum(1 for end in ends if end <= offset)
        assert len(back) == complete, offset
        assert all(a.equals(b) for a, b in zip(back, batches, strict=False))
        boundary = ends[complete - 1] if complete else 0
        assert reader.valid_bytes == boundary
        assert reader.trailing_bytes == offset - boundary
        assert reader.torn == (offset != boundary)
        assert reader.problem is None


@pytest.mark.parametrize("where", ["payload", "magic"])
def test_damage_in_the_middle_stops_there_and_is_reported(tmp_path, where):
    batches = record_batches(4, 10)
    path = tmp_path / SPOOL_NAME
    ends = write_spool(path, batches)
    data = bytearray(path.read_bytes())
    position = ends[1] + (FRAME_HEADER.size + 40 if where == "payload" else 0)
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = read_spool(path)
    assert len(list(reader)) == 2
    assert reader.valid_bytes == ends[1]
    assert reader.trailing_bytes == len(data) - ends[1]
    assert not reader.torn
    assert ("CRC" if where == "payload" else "bad frame header") in reader.problem


def _failing_writev(monkeypatch, fail_after_bytes: int) -> None:
    """Let ``writev`` write ``fail_after_bytes`` more bytes, then fail with ENOSPC."""
    budget = [fail_after_bytes]
    real = os.writev

    def writev(fd: int, buffers: list) -> int:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        first = memoryview(buffers[0])[: budget[0]]
        budget[0] -= len(first)
        return real(fd, [first])

    monkeypatch.setattr(spool_module.os, "writev", writev)


@pytest.mark.parametrize("partial", [0, 7, 16, 100])
def test_failed_append_truncates_back_and_retry_works(tmp_path, monkeypatch, partial):
    batches = record_batches(3, 10)
    path = tmp_path / SPOOL_NAME
    writer = SpoolWriter(path)
    writer.append(batches[0])
    good = writer.size
    _failing_writev(monkeypatch, partial)
    with pytest.raises(OSError) as raised:
        writer.append(batches[1])
    assert raised.value.errno == errno.ENOSPC
    assert path.stat().st_size == good
    assert [b.num_rows for b in read_spool(path)] == [10]
    monkeypatch.undo()
    writer.append(batches[1])  # the caller retries the same batch
    writer.append(batches[2])
    writer.close()
    back = list(read_spool(path))
    assert all(a.equals(b) for a, b in zip(back, batches, strict=True))


def test_failed_truncation_breaks_the_writer(tmp_path, monkeypatch):
    path = tmp_path / SPOOL_NAME
    writer = SpoolWriter(path)
    batches = record_batches(2, 10)
    writer.append(batches[0])
    _failing_writev(monkeypatch, 20)
    monkeypatch.setattr(spool_module.os, "ftruncate", _raise_eio)
    with pytest.raises(OSError):
        writer.append(batches[1])
    assert writer.broken
    with pytest.raises(SpoolBroken):
        writer.append(batches[1])
    writer.abandon()
    monkeypatch.undo()
    reader = read_spool(path)
    assert [b.num_rows for b in reader] == [10]  # the complete frame is still readable
    assert reader.torn


def _raise_eio(fd: int, size: int) -> None:
    raise OSError(errno.EIO, "Input/output error")


def test_live_spool_is_locked(tmp_path):
    path = tmp_path / SPOOL_NAME
    writer = SpoolWriter(path)
    assert lock_existing(path) is None
    writer.close()
    fd = lock_existing(path)
    assert fd is not None
    os.close(fd)
    assert lock_existing(tmp_path / "missing.spool") is None


def test_full_disk_keeps_the_spool_valid(tiny_fs):
    path = tiny_fs / SPOOL_NAME
    batches = record_batches(3, 60)
    writer = SpoolWriter(path, compression=None)
    writer.append(batches[0])
    filler = fill(tiny_fs)
    with pytest.raises(OSError) as raised:
        writer.append(batches[1])
    assert raised.value.errno == errno.ENOSPC
    assert [b.num_rows for b in read_spool(path)] == [60]
    filler.unlink()
    writer.append(batches[1])
    writer.append(batches[2])
    writer.close()
    back = list(read_spool(path))
    assert all(a.equals(b) for a, b in zip(back, batches, strict=True))
