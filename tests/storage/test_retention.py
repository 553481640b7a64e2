"""Retention (storage/retention.py): nfexpire's units, the pure choice of what to delete,
and the deletion itself on real files (summaries, -S layouts, foreign files, errors)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.naming import FileKind, FlowFileName, interval_dir, subdir
from storage.retention import (
    RetentionPolicy,
    RetentionValueError,
    StoredFile,
    apply_retention,
    execute_plan,
    list_stored_files,
    live_directories,
    parse_duration,
    parse_size,
    plan_retention,
    summary_line,
)

NOW = 1_763_805_000  # 2025-11-22 09:50:00 UTC
H, D, W = 3600, 86_400, 7 * 86_400
KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * D),
        ("12h", 12 * H),
        ("12H", 12 * H),
        ("90m", 90 * 60),  # minutes, never months
        ("90M", 90 * 60),
        ("2w", 2 * W),
        ("48", 48 * H),  # nfexpire: a plain number is hours
        ("1w2d3H15M", W + 2 * D + 3 * H + 15 * 60),
        ("1d12", D + 12 * H),
        ("45s", 45),
        (" 7d ", 7 * D),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "d", "1x", "12h5x", "1.5d", "-1d", "0", "0d0h", "m30", "1 d", "30y", "5000000w"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(RetentionValueError, match=r"duration|more than 0"):
        parse_duration(text)


@given(parts=st.lists(st.tuples(st.integers(0, 500), st.sampled_from("wdhmsWDHMS")), min_size=1))
def test_parse_duration_adds_its_parts(parts: list[tuple[int, str]]) -> None:
    unit_s = {"w": W, "d": D, "h": H, "m": 60, "s": 1}
    expected = sum(count * unit_s[unit.lower()] for count, unit in parts)
    text = "".join(f"{count}{unit}" for count, unit in parts)
    if 0 < expected <= 100 * 365 * D:
        assert parse_duration(text) == expected
    else:
        with pytest.raises(RetentionValueError):
            parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500G", 500 * GIB),
        ("1.5T", int(1.5 * TIB)),
        ("100M", 100 * MIB),
        ("100m", 100 * MIB),  # in a size m is mega
        ("10K", 10 * KIB),
        ("10KB", 10 * KIB),
        ("10kb", 10 * KIB),
        ("4096", 4096),
        ("4096B", 4096),
        ("0.5K", 512),
        (".5M", 512 * KIB),
        ("1.0001K", 1024),  # rounded down to whole bytes
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "10X", "0", "0.0001", "-1K", "1.5.5G", "10KBB", "1 0K"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(RetentionValueError, match=r"size|at least"):
        parse_size(text)


# -- choosing (pure) ----------------------------------------------------------------------------


def stored(
    end_s: int,
    size: int = 100,
    summary: int = 0,
    worker: int = 0,
    sequence: int = 0,
    rotation_s: int = 300,
    kind: FileKind = FileKind.PARQUET,
    directory: str = "/flows",
) -> StoredFile:
    name = FlowFileName(end_s - rotation_s, end_s, worker, sequence, kind)
    has_summary = summary and kind is FileKind.PARQUET
    return StoredFile(Path(directory) / name.name, name, size, summary if has_summary else None)


def doomed_ends(files: list[StoredFile], policy: RetentionPolicy, now: float = NOW) -> list[int]:
    return [f.name.interval_end_s for f in plan_retention(files, policy, now).doomed]


def test_age_deletes_intervals_that_ended_before_now_minus_max_age() -> None:
    files = [stored(NOW - k * 300) for k in range(0, 10)]  # ended 0 … 45 min ago
    policy = RetentionPolicy(max_age_s=20 * 60)
    # ended 25 … 45 min ago; the one that ended exactly 20 min ago is not older than that
    assert doomed_ends(files, policy) == [NOW - k * 300 for k in (9, 8, 7, 6, 5)]


def test_size_deletes_oldest_first_until_within_limit() -> None:
    files = [stored(NOW - k * 300, size=100) for k in range(1, 11)]  # 1000 bytes
    plan = plan_retention(files, RetentionPolicy(max_size_bytes=650), NOW)
    assert [f.name.interval_end_s for f in plan.doomed] == [NOW - k * 300 for k in (10, 9, 8, 7)]
    assert (plan.bytes_to_free, plan.remaining_bytes) == (400, 600)
    assert plan_retention(files, RetentionPolicy(max_size_bytes=1000), NOW).doomed == ()


def test_size_counts_summaries_and_spools_but_deletes_no_spool() -> None:
    spool = stored(NOW + 300, size=500, kind=FileKind.SPOOL)  # the interval being written
    old_spool = stored(NOW - 10 * D, size=50, kind=FileKind.SPOOL)  # a dead worker's, for recovery
    files = [stored(NOW - k * 300, size=100, summary=20) for k in range(1, 4)] + [spool, old_spool]
    plan = plan_retention(files, RetentionPolicy(max_size_bytes=700), NOW)
    # 3 * 120 + 550 = 910: two files with their summaries must go
    assert [f.name.interval_end_s for f in plan.doomed] == [NOW - 900, NOW - 600]
    assert plan.bytes_to_free == 240 and plan.remaining_bytes == 670
    assert all(f.name.kind is FileKind.PARQUET for f in plan.doomed)
    everything = plan_retention(files, RetentionPolicy(max_size_bytes=1), NOW)
    assert spool not in everything.doomed and old_spool not in everything.doomed
    assert everything.remaining_bytes == 550  # above the limit: what is left is protected


def test_both_limits_delete_what_either_deletes() -> None:
    files = [stored(NOW - k * H, size=100) for k in range(1, 7)]  # ended 1 … 6 h ago
    age, size = RetentionPolicy(max_age_s=4 * H + 1), RetentionPolicy(max_size_bytes=300)
    both = RetentionPolicy(max_age_s=4 * H + 1, max_size_bytes=300)
    assert doomed_ends(files, age) == [NOW - 6 * H, NOW - 5 * H]
    assert doomed_ends(files, size) == [NOW - k * H for k in (6, 5, 4)]
    assert doomed_ends(files, both) == doomed_ends(files, size)
    assert doomed_ends(files, RetentionPolicy(max_age_s=90 * 60, max_size_bytes=10_000)) == [
        NOW - k * H for k in (6, 5, 4, 3, 2)
    ]


def test_current_interval_is_never_deleted() -> None:
    current = [stored(NOW + 200, size=10**6, sequence=n) for n in range(2)]  # SIGHUP'd files
    ended = stored(NOW, size=10)  # ended right now: no longer current
    files = [*current, ended]
    assert doomed_ends(files, RetentionPolicy(max_size_bytes=1)) == [NOW]
    assert doomed_ends(files, RetentionPolicy(max_age_s=1), now=NOW + 5) == [NOW]
    # a file from the future (clock stepped back) is not deleted either
    future = stored(NOW + 10 * D)
    assert doomed_ends([future], RetentionPolicy(max_size_bytes=1, max_age_s=1)) == []


def test_order_is_by_interval_in_name_not_listing_or_mtime() -> None:
    files = [stored(NOW - 300), stored(NOW - 900), stored(NOW - 600)]
    assert doomed_ends(files, RetentionPolicy(max_size_bytes=100)) == [NOW - 900, NOW - 600]
    # -t changed: an hour file that ended earlier goes before a 5 min file that started earlier
    long_file = stored(NOW - 2 * H, rotation_s=H)
    short_file = stored(NOW - H - 300, rotation_s=300)
    hour_late = stored(NOW - H, rotation_s=H)
    assert doomed_ends([hour_late, short_file, long_file], RetentionPolicy(max_size_bytes=100)) == [
        NOW - 2 * H,
        NOW - H - 300,
    ]


def test_ties_go_by_worker_then_file_number_then_path() -> None:
    same = [
        stored(NOW - 600, worker=1, sequence=0),
        stored(NOW - 600, worker=0, sequence=1),
        stored(NOW - 600, worker=0, sequence=0, directory="/flows/b"),
        stored(NOW - 600, worker=0, sequence=0, directory="/flows/a"),
    ]
    plan = plan_retention(same, RetentionPolicy(max_size_bytes=150), NOW)
    assert [(f.name.worker, f.name.sequence, f.path.parent.name) for f in plan.doomed] == [
        (0, 0, "a"),
        (0, 0, "b"),
        (0, 1, "flows"),
    ]
    assert plan_retention(list(reversed(same)), RetentionPolicy(max_size_bytes=150), NOW) == plan


listings = st.lists(
    st.builds(
        stored,
        end_s=st.integers(NOW - 30 * D, NOW + 600).map(lambda t: t - t % 60),
        size=st.integers(0, 10_000),
        summary=st.integers(0, 500),
        worker=st.integers(0, 3),
        sequence=st.integers(0, 3),
        rotation_s=st.sampled_from([60, 300, 3600]),
        kind=st.sampled_from(list(FileKind)),
    ),
    max_size=40,
    unique_by=lambda f: f.path,
)


@given(
    files=listings,
    max_age_s=st.none() | st.integers(1, 40 * D),
    max_size=st.none() | st.integers(1, 300_000),
)
def test_plan_properties(
    files: list[StoredFile], max_age_s: int | None, max_size: int | None
) -> None:
    policy = RetentionPolicy(max_age_s, max_size)
    plan = plan_retention(files, policy, NOW)
    doomed = set(plan.doomed)
    candidates = [
        f for f in files if f.name.kind is FileKind.PARQUET and f.name.interval_end_s <= NOW
    ]
    assert doomed <= set(candidates)  # only finished files of ended intervals
    assert list(plan.doomed) == sorted(plan.doomed, key=lambda f: f.age_key)
    assert plan.remaining_bytes == sum(f.total_bytes for f in files if f not in doomed)
    aged = {
        f for f in candidates if max_age_s is not None and f.name.interval_end_s < NOW - max_age_s
    }
    assert aged <= doomed
    by_size = doomed - aged
    if max_size is None:
        assert not by_size
    else:
        # within the limit, unless every candidate is gone
        assert plan.remaining_bytes <= max_size or doomed == set(candidates)
        kept = [f for f in candidates if f not in doomed]
        for chosen in by_size:  # oldest first: nothing kept is older than a file sized out
            assert all(chosen.age_key < f.age_key for f in kept)
        if by_size:  # and no more than needed: keeping the newest one would exceed it
            newest = max(by_size, key=lambda f: f.age_key)
            assert plan.remaining_bytes + newest.total_bytes > max_size


# -- deleting (real files) ----------------------------------------------------------------------


def make_file(
    root: Path,
    end_s: int,
    size: int = 1000,
    summary: int | None = 100,
    layout: int = 0,
    worker: int = 0,
    sequence: int = 0,
    rotation_s: int = 300,
    kind: FileKind = FileKind.PARQUET,
) -> Path:
    name = FlowFileName(end_s - rotation_s, end_s, worker, sequence, kind)
    directory = interval_dir(root, name.interval_start_s, layout)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name.name
    path.write_bytes(b"p" * size)
    if summary is not None and kind is FileKind.PARQUET:
        path.with_suffix(".summary").write_bytes(b"s" * summary)
    return path


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_listing_finds_ours_with_summaries_and_nothing_else(tmp_path: Path) -> None:
    old = make_file(tmp_path, NOW - 10 * D, layout=1)
    spool = make_file(tmp_path, NOW + 200, kind=FileKind.SPOOL, size=77)
    no_summary = make_file(tmp_path, NOW - 5 * D, summary=None)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / old.name.replace(".parquet", ".summary.x")).write_text("x")
    listed = list_stored_files(tmp_path)
    assert [f.path for f in listed] == [old, no_summary, spool]
    assert [(f.size_bytes, f.summary_bytes) for f in listed] == [
        (1000, 100),
        (1000, None),
        (77, None),
    ]
    assert listed[0].summary_path == old.with_suffix(".summary")
    assert listed[1].summary_path is None


@pytest.mark.parametrize("layout", [0, 1, 2, 3, 7, 8])
def test_age_deletes_files_summaries_and_emptied_subdirectories(
    tmp_path: Path, layout: int
) -> None:
    old = [make_file(tmp_path, NOW - d * D, layout=layout) for d in (12, 11, 10)]
    recent = make_file(tmp_path, NOW - 300, layout=layout)
    current = make_file(tmp_path, NOW + 200, layout=layout, sequence=0)
    spool = make_file(tmp_path, NOW + 200, layout=layout, sequence=1, kind=FileKind.SPOOL)
    before = all_files(tmp_path)

    result = apply_retention(tmp_path, RetentionPolicy(max_age_s=7 * D), NOW)

    assert (result.files_deleted, result.bytes_deleted) == (3, 3 * 1100)
    assert result.remaining_bytes == 2 * 1100 + 1000  # two files with summaries, the spool
    assert result.problems == [] and result.vanished == 0
    gone = {p for f in old for p in (f, f.with_suffix(".summary"))}
    assert set(result.deleted) == gone
    assert all_files(tmp_path) == before - gone
    assert recent.exists() and current.exists() and spool.exists()
    for path in old:  # the old intervals' -S directories went with them, the root stays
        if layout:
            assert not path.parent.exists()
            top = tmp_path / subdir(NOW - 12 * D - 300, layout).parts[0]
            assert top.exists() == (top in recent.parents)
    assert tmp_path.is_dir()


def test_size_limit_on_disk(tmp_path: Path) -> None:
    files = [make_file(tmp_path, NOW - k * 300, size=1000, summary=24) for k in range(6, 0, -1)]
    make_file(tmp_path, NOW + 100, kind=FileKind.SPOOL, size=500)
    result = apply_retention(tmp_path, RetentionPolicy(max_size_bytes=3 * KIB), NOW)
    # 6 * 1024 + 500 = 6644 > 3072: delete 4 oldest -> 2548
    assert (result.files_deleted, result.bytes_deleted, result.remaining_bytes) == (4, 4096, 2548)
    assert [p.exists() for p in files] == [False] * 4 + [True] * 2
    assert summary_line(result) == "deleted 4 files (4.0 KiB freed, 2.5 KiB left)"


def test_dry_run_reports_and_deletes_nothing(tmp_path: Path) -> None:
    old = make_file(tmp_path, NOW - 10 * D, layout=2)
    before = all_files(tmp_path)
    result = apply_retention(tmp_path, RetentionPolicy(max_age_s=D), NOW, dry_run=True)
    assert (result.files_deleted, result.bytes_deleted, result.remaining_bytes) == (1, 1100, 0)
    assert result.deleted == [old.with_suffix(".summary"), old]  # as deleted: summary first
    assert all_files(tmp_path) == before
    assert summary_line(result, dry_run=True).startswith("would delete 1 file (1.1 KiB to free")


def test_foreign_temporary_and_state_files_are_untouched(tmp_path: Path) -> None:
    ancient = NOW - 400 * D
    name = FlowFileName(ancient - 300, ancient, 0, 0, FileKind.PARQUET)
    state = tmp_path / ".flowcapd"
    state.mkdir()
    (state / name.name).write_bytes(b"in a dot directory: not a flow file of ours")
    (state / "templates.0.json").write_text("{}")
    foreign = [
        tmp_path / name.temp_name,  # a Parquet file being written
        tmp_path / f".{name.name.replace('.parquet', '.summary')}.tmp",
        tmp_path / "nfcapd.202001010000",
        tmp_path / "flowcap.2020-01-01.parquet",
        tmp_path / f"{name.name}.corrupt",
        tmp_path / name.name.replace(".parquet", ".summary"),  # a summary without its file
        tmp_path / "2020" / "01" / "notes.txt",
    ]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 4096)
    old_spool = make_file(tmp_path, ancient, kind=FileKind.SPOOL)  # recovery's, not ours to drop
    before = all_files(tmp_path)
    result = apply_retention(tmp_path, RetentionPolicy(max_age_s=1, max_size_bytes=1), NOW)
    assert result.files_deleted == 0 and result.deleted == [] and result.problems == []
    assert all_files(tmp_path) == before and old_spool.exists()
    assert result.remaining_bytes == 1000  # only the spool is ours


def test_file_vanishing_meanwhile_is_counted_not_raised(tmp_path: Path) -> None:
    first, second = (make_file(tmp_path, NOW - d * D) for d in (9, 8))
    plan = plan_retention(list_stored_files(tmp_path), RetentionPolicy(max_age_s=D), NOW)
    first.unlink()  # another worker (or flowcapd expire) got there first
    first.with_suffix(".summary").unlink()
    result = execute_plan(tmp_path, plan)
    assert (result.files_deleted, result.vanished, result.bytes_deleted) == (1, 1, 1100)
    assert result.problems == [] and not second.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root deletes from read-only directories")
def test_permission_denied_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    locked = make_file(tmp_path, NOW - 9 * D, layout=1)
    other = make_file(tmp_path, NOW - 3 * D, layout=1)
    locked.parent.chmod(0o500)
    try:
        result = apply_retention(tmp_path, RetentionPolicy(max_age_s=D), NOW)
    finally:
        locked.parent.chmod(0o700)
    assert [p.path for p in result.problems] == [locked.with_suffix(".summary")]
    assert "ermission" in result.problems[0].message
    assert locked.exists() and not other.exists()
    assert (result.files_deleted, result.bytes_deleted) == (1, 1100)


def test_a_file_that_cannot_be_unlinked_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    """The same as the permission case, where root runs the suite: a directory now sits
    where the planned flow file was (unlink gives EISDIR); its summary is gone."""
    first, second = (make_file(tmp_path, NOW - d * D) for d in (9, 8))
    plan = plan_retention(list_stored_files(tmp_path), RetentionPolicy(max_age_s=D), NOW)
    first.unlink()
    (first / "inside").mkdir(parents=True)
    result = execute_plan(tmp_path, plan)
    assert [p.path for p in result.problems] == [first]
    assert first.is_dir() and not second.exists()
    assert not first.with_suffix(".summary").exists()  # the cache went, its bytes counted
    assert (result.files_deleted, result.bytes_deleted, result.vanished) == (1, 1200, 0)
    assert result.remaining_bytes == 2200 - 1200


def test_missing_directory_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    result = apply_retention(tmp_path / "nope", RetentionPolicy(max_age_s=D), NOW)
    assert result.files_deleted == 0
    assert [p.path for p in result.problems] == [tmp_path / "nope"]
    assert apply_retention(tmp_path / "nope", RetentionPolicy(), NOW).problems == []  # off


def test_directories_the_daemon_may_write_in_are_kept(tmp_path: Path) -> None:
    """An old file in today's -S 1 directory (a size limit) goes; the directory stays,
    a spool may be about to be created in it."""
    today = NOW - NOW % D
    early = make_file(tmp_path, today + 300, layout=1)
    assert early.parent in live_directories(tmp_path, NOW)
    result = apply_retention(tmp_path, RetentionPolicy(max_size_bytes=1), NOW)
    assert result.files_deleted == 1 and not early.exists()
    assert early.parent.is_dir() and result.directories_removed == 0
