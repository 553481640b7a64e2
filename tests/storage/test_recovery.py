"""Recovery: whatever moment a crash hit, every complete batch ends up in exactly one
readable Parquet file, and a recovery that is itself interrupted finishes later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import parquet_writer
from storage.naming import FileKind, FlowFileName, list_flow_files, subdir
from storage.recovery import recover, recover_spools
from storage.spool import SpoolWriter
from storage.summaries import summary_path_for
from tests.storage.synthetic import BASE_S, record_batches, row_set, write_spool

ROOT = Path(__file__).resolve().parents[2]


def spool_name(start: int = BASE_S, worker: int = 0, sequence: int = 0) -> FlowFileName:
    return FlowFileName(start, start + 300, worker, sequence, FileKind.SPOOL)


def stored_rows(base: Path) -> list[str]:
    files = list_flow_files(base, kinds=frozenset({FileKind.PARQUET}))
    return row_set(pq.read_table(f.path) for f in files)


def test_torn_spools_of_many_workers_and_layouts(tmp_path):
    batches = record_batches(5, 20)
    full = tmp_path / "full.spool"
    ends = write_spool(full, batches)
    data = full.read_bytes()
    base = tmp_path / "flows"
    cuts = sorted(
        {0, 10, ends[0] - 1, ends[0], ends[0] + 20, ends[2] + 1, len(data) - 1, len(data)}
    )
    expected = []
    for index, cut in enumerate(cuts):
        start = BASE_S + 300 * index
        path = base / subdir(start, index % 3) / spool_name(start, index % 2).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[:cut])
        complete = sum(1 for end in ends if end <= cut)
        expected += batches[:complete]
        # a crash during an earlier conversion leaves a temporary file beside it
        (path.parent / path.name.replace(".spool", ".parquet")).with_name(
            "." + path.name.replace(".spool", ".parquet") + ".tmp"
        ).write_bytes(b"PAR1 half")
    report = recover_spools(base)
    assert report.temps_removed == len(cuts)
    assert report.failed == [] and report.busy == []
    assert stored_rows(base) == row_set(expected)
    assert not [f for f in list_flow_files(base) if f.name.kind is FileKind.SPOOL]
    assert report.rows == len(expected) * 20
    assert report.torn_bytes == sum(cut - max([0] + [e for e in ends if e <= cut]) for cut in cuts)
    assert recover(base) == []  # idempotent
    assert stored_rows(base) == row_set(expected)


class Killed(BaseException):
    """Stands for SIGKILL at an injection point (not an Exception: nothing catches it)."""


@pytest.mark.parametrize("point", ["write_table", "publish", "after_publish", "remove"])
def test_recovery_killed_midway_finishes_without_duplicates(tmp_path, monkeypatch, point):
    batches = record_batches(4, 30)
    base = tmp_path / "flows"
    write_spool(base / spool_name().name, batches)

    def kill(*args: object, **kwargs: object) -> None:
        raise Killed

    if point == "write_table":
        monkeypatch.setattr(pq.ParquetWriter, "write_table", kill)
    elif point == "publish":
        monkeypatch.setattr(parquet_writer, "publish", kill)
    elif point == "after_publish":
        real = parquet_writer.publish

        def publish_then_die(temp: Path, path: Path) -> None:
            os.link(temp, path)  # linked, the temporary name not yet removed
            raise Killed

        monkeypatch.setattr(parquet_writer, "publish", publish_then_die)
        assert real is not None
    else:
        monkeypatch.setattr(parquet_writer, "_remove", kill)
    with pytest.raises(Killed):
        recover(base)
    monkeypatch.undo()
    recovered = recover(base)
    assert stored_rows(base) == row_set(batches)
    final = base / spool_name().as_kind(FileKind.PARQUET).name
    assert sorted(p.name for p in base.iterdir()) == [final.name, summary_path_for(final).name]
    assert len(recovered) == (0 if point in ("after_publish", "remove") else 1)


def test_parquet_wins_over_its_spool(tmp_path):
    batches = record_batches(2, 10)
    base = tmp_path / "flows"
    write_spool(base / spool_name().name, batches)
    final = base / spool_name().as_kind(FileKind.PARQUET).name
    pq.write_table(pa.Table.from_batches(batches[:1]), final)
    assert recover(base) == []
    assert sorted(p.name for p in base.iterdir()) == [final.name, summary_path_for(final).name]
    assert stored_rows(base) == row_set(batches[:1])


def test_live_spools_and_temporaries_are_left_alone(tmp_path):
    base = tmp_path / "flows"
    base.mkdir()
    live = SpoolWriter(base / spool_name(worker=1).name)
    live.append(record_batches(1, 5)[0])
    report = recover_spools(base)
    assert report.busy == [base / spool_name(worker=1).name]
    assert (base / spool_name(worker=1).name).exists()
    live.close()
    assert len(recover(base)) == 1


def test_damaged_spool_is_kept_aside(tmp_path):
    batches = record_batches(3, 10)
    base = tmp_path / "flows"
    path = base / spool_name().name
    ends = write_spool(path, batches)
    data = bytearray(path.read_bytes())
    data[ends[0] + 30] ^= 0xFF
    path.write_bytes(bytes(data))
    report = recover_spools(base)
    assert "CRC" in report.converted[0].problem
    assert stored_rows(base) == row_set(batches[:1])
    assert (base / (path.name + ".corrupt")).exists()


def test_empty_and_headless_spools_are_removed(tmp_path):
    base = tmp_path / "flows"
    base.mkdir()
    (base / spool_name(sequence=0).name).write_bytes(b"")
    (base / spool_name(sequence=1).name).write_bytes(b"FCS1\x00")
    assert recover(base) == []
    assert list(base.iterdir()) == []


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from storage.interval_writer import IntervalWriter
    from tests.storage.synthetic import BASE_S, record_batches

    writer = IntervalWriter(Path(sys.argv[1]), 60, 1, 0, background=True)
    for i, batch in enumerate(record_batches(400, 50, step_s=0.5)):
        writer.append(batch, BASE_S + i * 0.5)
        if i % 5 == 4:
            writer.sync()
            writer.rotate_due(BASE_S + i * 0.5)
            print(writer.stats.rows_synced, flush=True)
    """
)


@pytest.mark.parametrize("kill_after_lines", [3, 17, 31])
def test_kill_9_mid_write_then_recover(tmp_path, kill_after_lines):
    """A real writer process (background conversions included) killed with SIGKILL:
    what it had synced is all there after recovery, nothing twice."""
    base = tmp_path / "flows"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(base)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    synced = 0
    for _ in range(kill_after_lines):
        line = child.stdout.readline()
        if not line:
            break
        synced = int(line)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    recover(base)
    files = list_flow_files(base)
    assert all(f.name.kind is FileKind.PARQUET for f in files)
    rows = [pq.read_table(f.path) for f in files]
    stored = sum(t.num_rows for t in rows)
    assert stored >= synced > 0
    all_rows = row_set(rows)
    assert len(all_rows) == len(set(all_rows)) == stored  # no row twice
    expected = row_set(record_batches(400, 50, step_s=0.5)[: stored // 50])
    assert all_rows == expected  # exactly the first batches, in full
