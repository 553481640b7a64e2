"""The interval writer: aligned rotation, -S layouts, restarts that never overwrite,
and storage errors that lose and duplicate nothing."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from storage import interval_writer as interval_module
from storage import spool as spool_module
from storage.interval_writer import IntervalWriter, StorageUnavailable
from storage.naming import FileKind, list_flow_files, parse_name
from tests.storage.full_disk import fill
from tests.storage.synthetic import BASE_S, record_batches, row_set


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def finished(base: Path) -> list[Path]:
    return [f.path for f in list_flow_files(base, kinds=frozenset({FileKind.PARQUET}))]


def rows_of(paths: list[Path]) -> list[str]:
    return row_set(pq.read_table(p) for p in paths)


@pytest.fixture(params=[False, True], ids=["inline", "background"])
def background(request) -> bool:
    return request.param


def test_rotation_at_aligned_boundaries(tmp_path, background):
    clock = Clock(BASE_S + 10)
    writer = IntervalWriter(tmp_path, 60, 0, 3, clock, background=background)
    batches = record_batches(6, 20)
    times = [BASE_S + 10, BASE_S + 59.5, BASE_S + 60.2, BASE_S + 61.5, BASE_S + 125, BASE_S + 130]
    for batch, received in zip(batches, times, strict=True):
        writer.append(batch, received)
    # the batch at +61.5 closed the first interval; the one at +125 the second
    done = writer.rotate_now(wait=True)
    assert len(done) == 3
    names = [parse_name(p.name) for p in finished(tmp_path)]
    assert [(n.interval_start_s, n.interval_end_s, n.worker, n.sequence) for n in names] == [
        (BASE_S, BASE_S + 60, 3, 0),
        (BASE_S + 60, BASE_S + 120, 3, 0),
        (BASE_S + 120, BASE_S + 180, 3, 0),
    ]
    per_file = [pq.read_metadata(p).num_rows for p in finished(tmp_path)]
    assert per_file == [40, 40, 40]
    assert writer.close() == []
    assert rows_of(finished(tmp_path)) == row_set(batches)
    stats = writer.stats
    assert (stats.rows_appended, stats.rows_in_files, stats.files_written) == (120, 120, 3)
    assert (stats.backlog_rows, stats.open_spools, stats.spools_waiting) == (0, 0, 0)


def test_rotate_due_closes_ended_intervals_after_grace(tmp_path):
    clock = Clock(BASE_S)
    writer = IntervalWriter(tmp_path, 300, 0, 0, clock, background=False)
    writer.append(record_batches(1, 10)[0], BASE_S + 5)
    assert writer.rotate_due(BASE_S + 300.5) == []  # within the grace
    assert writer.stats.open_spools == 1
    done = writer.rotate_due(BASE_S + 301.5)
    assert [p.name for p in done] == ["flowcap.202511220830-202511220835.0.0.parquet"]
    writer.close()


@pytest.mark.parametrize("layout", [1, 2, 8])
def test_subdirectory_layouts(tmp_path, layout):
    writer = IntervalWriter(tmp_path, 300, layout, 0, Clock(BASE_S), background=False)
    writer.append(record_batches(1, 5)[0], BASE_S + 1)
    [path] = writer.close()
    expected = {1: "2025/11/22", 2: "2025/11/22/08", 8: "2025-11-22/08"}[layout]
    assert path.parent == tmp_path / expected


def test_restart_in_the_same_interval_never_overwrites(tmp_path):
    batches = record_batches(3, 10)
    first = IntervalWriter(tmp_path, 300, 0, 0, Clock(BASE_S), background=False)
    first.append(batches[0], BASE_S + 1)
    first.close()
    crashed = IntervalWriter(tmp_path, 300, 0, 0, Clock(BASE_S), background=False)
    crashed.append(batches[1], BASE_S + 2)
    crashed.sync()  # ... and the process dies: its spool stays, unconverted
    for spool in crashed._open.values():
        spool.writer.abandon()
    second = IntervalWriter(tmp_path, 300, 0, 0, Clock(BASE_S), background=False)
    second.append(batches[2], BASE_S + 3)
    second.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "flowcap.202511220830-202511220835.0.0.parquet",
        "flowcap.202511220830-202511220835.0.0.summary",  # storage/summaries.py
        "flowcap.202511220830-202511220835.0.1.spool",
        "flowcap.202511220830-202511220835.0.2.parquet",
        "flowcap.202511220830-202511220835.0.2.summary",
    ]
    assert rows_of(finished(tmp_path)) == row_set([batches[0], batches[2]])


def test_late_batch_and_sighup_start_new_files(tmp_path):
    batches = record_batches(4, 10)
    writer = IntervalWriter(tmp_path, 60, 0, 0, Clock(BASE_S), background=False)
    writer.append(batches[0], BASE_S + 1)
    writer.append(batches[1], BASE_S + 62)  # closes the first interval
    writer.append(batches[2], BASE_S + 30)  # late: its own interval, a new file
    writer.rotate_now(wait=True)  # SIGHUP
    writer.append(batches[3], BASE_S + 63)
    writer.close()
    keys = [(n.interval_start_s - BASE_S, n.sequence) for n in
            (parse_name(p.name) for p in finished(tmp_path))]  # fmt: skip
    assert keys == [(0, 0), (0, 1), (60, 0), (60, 1)]
    assert rows_of(finished(tmp_path)) == row_set(batches)


def _failing(monkeypatch, target: object, name: str, times: int) -> list[int]:
    calls = [0]
    real = getattr(target, name)

    def failing(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] <= times:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)
    return calls


def test_failed_append_raises_typed_and_retry_stores_once(tmp_path, monkeypatch):
    batches = record_batches(2, 10)
    writer = IntervalWriter(tmp_path, 300, 0, 0, Clock(BASE_S), background=False)
    writer.append(batches[0], BASE_S + 1)
    _failing(monkeypatch, spool_module.os, "writev", 1)
    with pytest.raises(StorageUnavailable) as raised:
        writer.append(batches[1], BASE_S + 2)
    assert raised.value.errno == errno.ENOSPC
    assert writer.stats.failures == 1
    writer.append(batches[1], BASE_S + 2)  # the caller's retry
    writer.sync()
    assert writer.stats.rows_synced == 20
    writer.close()
    assert rows_of(finished(tmp_path)) == row_set(batches)


def test_failed_spool_creation_is_typed(tmp_path, monkeypatch):
    writer = IntervalWriter(tmp_path, 300, 0, 0, Clock(BASE_S), background=False)
    _failing(monkeypatch, interval_module, "SpoolWriter", 1)
    batch = record_batches(1, 10)[0]
    with pytest.raises(StorageUnavailable):
        writer.append(batch, BASE_S + 1)
    writer.append(batch, BASE_S + 1)
    assert len(writer.close()) == 1


def test_failed_conversion_keeps_the_spool_and_retries(tmp_path, monkeypatch, background):
    clock = Clock(BASE_S + 1)
    batches = record_batches(2, 10)
    writer = IntervalWriter(tmp_path, 60, 0, 0, clock, background=background)
    writer.append(batches[0], BASE_S + 1)
    calls = _failing(monkeypatch, interval_module, "convert_spool", 1)
    with pytest.raises(StorageUnavailable):
        writer.rotate_now(wait=True)
    assert [p.suffix for p in tmp_path.iterdir()] == [".spool"]
    assert writer.stats.backlog_rows == 10 and writer.stats.spools_waiting == 1
    writer.append(batches[1], BASE_S + 70)
    clock.now = BASE_S + 72.5  # after the first backoff
    writer.rotate_now(wait=True)
    assert calls[0] == 3
    writer.close()
    assert rows_of(finished(tmp_path)) == row_set(batches)
    assert not any(p.suffix == ".spool" for p in tmp_path.iterdir())


def test_close_failure_can_be_retried(tmp_path, monkeypatch):
    writer = IntervalWriter(tmp_path, 60, 0, 0, Clock(BASE_S), background=False)
    batch = record_batches(1, 10)[0]
    writer.append(batch, BASE_S + 1)
    _failing(monkeypatch, interval_module, "convert_spool", 1)
    with pytest.raises(StorageUnavailable):
        writer.close()
    assert len(writer.close()) == 1
    with pytest.raises(ValueError):
        writer.append(batch, BASE_S + 2)


def test_full_disk_then_space_returns(tiny_fs):
    clock = Clock(BASE_S)
    batches = record_batches(3, 40)
    writer = IntervalWriter(tiny_fs, 60, 0, 0, clock, background=False, spool_compression=None)
    writer.append(batches[0], BASE_S + 1)
    filler = fill(tiny_fs)
    with pytest.raises(StorageUnavailable):
        writer.append(batches[1], BASE_S + 2)
    with pytest.raises(StorageUnavailable):  # Parquet does not fit either
        writer.rotate_now(wait=True)
    assert not any(p.name.endswith(".tmp") for p in tiny_fs.iterdir())
    os.unlink(filler)
    clock.now = BASE_S + 100
    writer.append(batches[1], BASE_S + 2)
    writer.append(batches[2], BASE_S + 3)
    writer.close()
    assert rows_of(finished(tiny_fs)) == row_set(batches)
    assert writer.stats.rows_in_files == 120


def test_background_failure_never_fails_an_append(tmp_path, monkeypatch):
    """An append that raised must mean "not stored" (the caller appends it again), so a
    conversion failure is reported by the rotate calls only."""
    clock = Clock(BASE_S + 1)
    batches = record_batches(3, 10)
    writer = IntervalWriter(tmp_path, 60, 0, 0, clock, background=True)
    writer.append(batches[0], BASE_S + 1)
    release = threading.Event()
    real = interval_module.convert_spool

    def convert_later(*args: object) -> object:
        release.wait(10)
        monkeypatch.setattr(interval_module, "convert_spool", real)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(interval_module, "convert_spool", convert_later)
    writer.rotate_now(wait=False)
    release.set()
    writer._executor.submit(lambda: None).result()  # the failed conversion has finished
    writer.append(batches[1], BASE_S + 2)
    with pytest.raises(StorageUnavailable):
        writer.rotate_due(BASE_S + 2)
    writer.append(batches[2], BASE_S + 3)
    writer.close()
    assert rows_of(finished(tmp_path)) == row_set(batches)


def test_failed_fsync_at_rotation_still_converts(tmp_path, monkeypatch):
    batches = record_batches(2, 10)
    writer = IntervalWriter(tmp_path, 60, 0, 0, Clock(BASE_S), background=False)
    writer.append(batches[0], BASE_S + 1)
    _failing(monkeypatch, spool_module.os, "fsync", 1)
    with pytest.raises(StorageUnavailable):
        writer.rotate_now(wait=True)
    writer.append(batches[1], BASE_S + 2)
    writer.close()
    assert rows_of(finished(tmp_path)) == row_set(batches)
    assert writer.stats.rows_synced == 20
