"""File names, intervals and nfcapd's -S layouts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.naming import (
    SUBDIR_FORMATS,
    FileKind,
    FlowFileName,
    interval_start,
    list_flow_files,
    next_sequence,
    parse_name,
    parse_temp_name,
    subdir,
    walk_flow_files,
)

T = 1_763_804_700  # 2025-11-22 09:45:00 UTC, a Saturday


@given(
    start=st.integers(0, 4_000_000_000),
    rotation=st.sampled_from([2, 30, 60, 300, 3600, 86400]),
    worker=st.integers(0, 999),
    sequence=st.integers(0, 10**6),
    kind=st.sampled_from(list(FileKind)),
)
def test_names_round_trip(start, rotation, worker, sequence, kind):
    begin = interval_start(start, rotation)
    name = FlowFileName(begin, begin + rotation, worker, sequence, kind)
    assert parse_name(name.name) == name
    assert parse_temp_name(name.temp_name) == name
    assert parse_name(name.temp_name) is None  # readers skip temporary files
    assert name.temp_name.startswith(".")


def test_name_format():
    name = FlowFileName(T, T + 300, 0, 3, FileKind.PARQUET)
    assert name.name == "flowcap.202511220945-202511220950.0.3.parquet"
    seconds = FlowFileName(T + 10, T + 20, 2, 0, FileKind.SPOOL)
    assert seconds.name == "flowcap.20251122094510-20251122094520.2.0.spool"


@pytest.mark.parametrize(
    "name",
    [
        "nfcapd.202511220945",
        "flowcap.202511220945-202511220950.0.3.parquet.tmp",
        "flowcap.202513220945-202511220950.0.3.parquet",  # month 13
        "flowcap.202511220950-202511220945.0.3.parquet",  # ends before it starts
        "flowcap.202511220945-202511220950.0.parquet",
        "flowcap.202511220945-202511220950.0.3.csv",
        "flowcap.202511220945-202511220950.x.3.spool",
    ],
)
def test_foreign_names(name):
    assert parse_name(name) is None


def test_intervals_are_aligned():
    assert interval_start(T + 299.9, 300) == T
    assert interval_start(T + 300, 300) == T + 300
    assert interval_start(T + 59, 60) == T
    with pytest.raises(ValueError):
        interval_start(T, 0)


def test_subdir_layouts_match_nfcapd():
    expected = ["", "2025/11/22", "2025/11/22/09", "2025/46/6", "2025/46/6/09",
                "2025/326", "2025/326/09", "2025-11-22", "2025-11-22/09"]  # fmt: skip
    assert [str(subdir(T, n)) if n else "" for n in range(9)] == expected
    # the formats are nfdump's (flist.c subdir_def), evaluated in UTC
    for number, fmt in enumerate(SUBDIR_FORMATS[1:], 1):
        assert str(subdir(T, number)) == time.strftime(
            fmt.replace("%F", "%Y-%m-%d"), time.gmtime(T)
        )
    with pytest.raises(ValueError):
        subdir(T, 9)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_listing_prunes_by_name_and_skips_temporary(tmp_path):
    for hour in range(4):
        start = T + hour * 3600
        name = FlowFileName(start, start + 3600, 0, 0, FileKind.PARQUET)
        _touch(tmp_path / subdir(start, 2) / name.name)
        _touch(tmp_path / subdir(start, 2) / name.temp_name)
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / ".hidden" / FlowFileName(T, T + 60, 0, 0, FileKind.PARQUET).name)
    everything = list_flow_files(tmp_path)
    assert [f.name.interval_start_s for f in everything] == [T + h * 3600 for h in range(4)]
    window = list_flow_files(tmp_path, T + 3600 + 10, T + 7200 + 10)
    assert [f.name.interval_start_s for f in window] == [T + 3600, T + 7200]
    assert len(list(walk_flow_files(tmp_path, include_temp=True))) == 8
    (tmp_path / "2025" / "loop").symlink_to(tmp_path)  # followed, but only once
    assert len(list(walk_flow_files(tmp_path))) == 4


def test_next_sequence_sees_every_kind(tmp_path):
    assert next_sequence(tmp_path / "missing", T, 0) == 0
    _touch(tmp_path / FlowFileName(T, T + 300, 0, 0, FileKind.PARQUET).name)
    _touch(tmp_path / FlowFileName(T, T + 300, 0, 1, FileKind.SPOOL).name)
    _touch(tmp_path / FlowFileName(T, T + 60, 0, 2, FileKind.PARQUET).temp_name)  # other -t
    _touch(tmp_path / FlowFileName(T, T + 300, 1, 7, FileKind.PARQUET).name)  # other worker
    assert next_sequence(tmp_path, T, 0) == 3
    assert next_sequence(tmp_path, T, 1) == 8
    assert next_sequence(tmp_path, T + 300, 0) == 0
