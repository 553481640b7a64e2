"""Retention, like nfexpire: which finished flow files to delete, and deleting them.

All the retention rules live here; ``flowcapd`` applies them after each rotation (on its
storage thread) and ``flowcapd expire`` applies them once.

What a caller may rely on:
- Only finished Parquet flow files (``storage.naming`` names, any ``-S`` layout) are
  deleted, whole, each with its ``.summary`` side file (``storage.summaries``), which
  counts toward the size. Spools, temporary files (``.NAME.tmp``), dot directories
  (``.flowcapd`` state) and every file whose name is not ours are never deleted.
- Files of an interval that has not ended by ``now`` (the current interval, SIGHUP's
  early files included) are never deleted, whatever the policy says.
- Age: a file goes when its interval *ended* more than ``max_age_s`` before ``now``.
- Size: the total of our files below the directory (finished files, their summaries
  and the live spools: what the flows take on disk) is brought to at most
  ``max_size_bytes`` by deleting the oldest finished files first; it may stay above
  when what is left is protected. Sizes are apparent sizes (``st_size``).
- "Oldest" is by the interval in the file's name (end, then start), never by mtime, so
  a recovered or copied file keeps its place; ties go by worker, file number, path.
- Sub-directories emptied by a deletion are removed (``-S`` layouts), up to but not
  including the flow directory, except those the daemon may be about to write in.
- Nothing raises for a single file: one that vanished (another worker or ``flowcapd
  expire`` deleted it first) is counted in ``vanished``, one that cannot be deleted is
  reported in ``problems`` and the rest goes on.

Units follow nfexpire: ages ``w d H M`` (a plain number is hours; ``h``/``m`` in lower
case are hours/minutes too, ``s`` seconds; parts add up: ``1w2d``); sizes ``K M G T`` in
powers of 1024 with an optional ``B`` (any case; ``1.5T`` allowed; a plain number is
bytes).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Final

from storage.naming import SUBDIR_FORMATS, FileKind, FlowFileName, subdir, walk_flow_files
from storage.summaries import summary_path_text

#: nfexpire's time units (its ``H`` and ``M``; lower case taken as the same, so in an age
#: ``m`` is minutes, never months) and ``s`` for seconds
SECONDS_PER_UNIT: Final = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
#: nfexpire's size units, powers of 1024
BYTES_PER_UNIT: Final = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
#: a hundred years: a longer age is a typo, and larger values overflow datetime users
MAX_AGE_S: Final = 100 * 365 * 86_400

_DURATION_PART = re.compile(r"(\d+)([wdhms]?)", re.IGNORECASE)
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmgt]?)b?", re.IGNORECASE)


class RetentionValueError(ValueError):
    """A duration or size that cannot be read; the message is one line for the user."""


def parse_duration(text: str) -> int:
    """Seconds of an nfexpire-style age: ``30d``, ``12h``/``12H``, ``90m``/``90M``,
    ``2w``, ``1w2d3H15M``; a trailing plain number is hours (``48``), as in nfexpire."""
    spec = text.strip()
    total_s = 0
    position = 0
    while position < len(spec):
        match = _DURATION_PART.match(spec, position)
        if match is None:
            break
        unit = match[2].lower()
        if not unit and match.end() != len(spec):
            break  # "12x": only the last part may leave out its unit
        total_s += int(match[1]) * SECONDS_PER_UNIT[unit or "h"]
        position = match.end()
    if not spec or position != len(spec):
        raise RetentionValueError(
            f"{text!r} is not a duration (e.g. 30d, 12h, 90m, 2w, 1w2d; a plain number is hours)"
        )
    if not 0 < total_s <= MAX_AGE_S:
        raise RetentionValueError(f"{text!r} must be more than 0 and at most 100 years")
    return total_s


def parse_size(text: str) -> int:
    """Bytes of an nfexpire-style size: ``500G``, ``1.5T``, ``100M``, ``10K``, ``10KB``,
    ``4096`` (powers of 1024; rounded down to whole bytes)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise RetentionValueError(
            f"{text!r} is not a size (e.g. 500G, 1.5T, 100M, 10K, or bytes; powers of 1024)"
        )
    size_bytes = int(Fraction(match[1]) * BYTES_PER_UNIT[match[2].lower()])
    if size_bytes <= 0:
        raise RetentionValueError(f"{text!r} must be at least one byte")
    return size_bytes


def format_bytes(size_bytes: int) -> str:
    """``1.5 GiB``: for log lines and the expire command's summary."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    value = size_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Either limit, or both; None: no limit of that kind (nfcapd's default: keep all)."""

    max_age_s: int | None = None
    max_size_bytes: int | None = None

    @property
    def enabled(self) -> bool:
        return self.max_age_s is not None or self.max_size_bytes is not None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One of our files below the flow directory, with its size when listed."""

    path: Path
    name: FlowFileName
    size_bytes: int
    summary_bytes: int | None = None  # None: no summary side file

    @property
    def summary_path(self) -> Path | None:
        if self.summary_bytes is None:
            return None
        return Path(summary_path_text(os.fspath(self.path)))

    @property
    def total_bytes(self) -> int:
        return self.size_bytes + (self.summary_bytes or 0)

    @property
    def age_key(self) -> tuple[int, int, int, int, str]:
        """Oldest first: by the interval in the name, then worker, file number, path."""
        name = self.name
        return (name.interval_end_s, name.interval_start_s, name.worker, name.sequence,
                str(self.path))  # fmt: skip


def list_stored_files(root: Path) -> list[StoredFile]:
    """Our files below ``root`` (finished files with their summaries, and spools),
    oldest first. A file that vanishes while listed is left out. Raises ``OSError``
    when ``root`` itself cannot be read."""
    os.scandir(root).close()  # a missing or unreadable root is the caller's error
    found = []
    for item in walk_flow_files(root):
        # plain strings and os.stat: this runs over every file (a year of 5-minute
        # files is ~100,000), and Path objects cost more than the system calls
        path_text = os.fspath(item.path)
        try:
            size_bytes = os.stat(path_text).st_size
        except FileNotFoundError:
            continue
        summary_bytes = None
        if item.name.kind is FileKind.PARQUET:
            with contextlib.suppress(FileNotFoundError):
                summary_bytes = os.stat(summary_path_text(path_text)).st_size
        found.append(StoredFile(item.path, item.name, size_bytes, summary_bytes))
    return sorted(found, key=lambda f: f.age_key)


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What a policy deletes from a listing at ``now_s``, oldest first."""

    now_s: float
    doomed: tuple[StoredFile, ...]
    listed_bytes: int

    @property
    def bytes_to_free(self) -> int:
        return sum(f.total_bytes for f in self.doomed)

    @property
    def remaining_bytes(self) -> int:
        return self.listed_bytes - self.bytes_to_free


def plan_retention(
    files: Iterable[StoredFile], policy: RetentionPolicy, now_s: float
) -> RetentionPlan:
    """Pure: the files ``policy`` deletes at ``now_s`` (see the module's rules)."""
    listed = list(files)
    listed_bytes = sum(f.total_bytes for f in listed)
    candidates = sorted(
        (f for f in listed if f.name.kind is FileKind.PARQUET and f.name.interval_end_s <= now_s),
        key=lambda f: f.age_key,
    )
    doomed: dict[Path, StoredFile] = {}
    if policy.max_age_s is not None:
        cutoff_s = now_s - policy.max_age_s
        doomed = {f.path: f for f in candidates if f.name.interval_end_s < cutoff_s}
    if policy.max_size_bytes is not None:
        remaining = listed_bytes - sum(f.total_bytes for f in doomed.values())
        for candidate in candidates:
            if remaining <= policy.max_size_bytes:
                break
            if candidate.path not in doomed:
                doomed[candidate.path] = candidate
                remaining -= candidate.total_bytes
    ordered = tuple(sorted(doomed.values(), key=lambda f: f.age_key))
    return RetentionPlan(now_s, ordered, listed_bytes)


@dataclass(frozen=True, slots=True)
class RetentionProblem:
    path: Path
    message: str


@dataclass(slots=True)
class RetentionResult:
    """What one run did (or, for a dry run, would do)."""

    files_deleted: int = 0  # flow files; a summary is part of its flow file
    bytes_deleted: int = 0  # flow files and their summaries
    remaining_bytes: int = 0  # of our files below the directory, after the run
    directories_removed: int = 0
    vanished: int = 0  # deleted by someone else meanwhile
    deleted: list[Path] = field(default_factory=list)  # every path removed, summaries too
    problems: list[RetentionProblem] = field(default_factory=list)


def execute_plan(root: Path, plan: RetentionPlan, dry_run: bool = False) -> RetentionResult:
    """Delete the plan's files (summary first: a flow file left without its summary is
    still read right, by a scan) and the directories they leave empty."""
    result = RetentionResult()
    emptied: set[Path] = set()
    for doomed in plan.doomed:
        if dry_run:
            flow_deleted, freed = True, doomed.total_bytes
            result.deleted += [p for p in (doomed.summary_path, doomed.path) if p is not None]
        else:
            flow_deleted, freed = _delete_one(doomed, result)
        result.bytes_deleted += freed
        if flow_deleted:
            result.files_deleted += 1
            emptied.add(doomed.path.parent)
    result.remaining_bytes = plan.listed_bytes - result.bytes_deleted
    if emptied and not dry_run:
        result.directories_removed = _remove_empty_dirs(root, emptied, plan.now_s)
    return result


def _delete_one(doomed: StoredFile, result: RetentionResult) -> tuple[bool, int]:
    """(whether the flow file was deleted, bytes freed). A summary that went while its
    flow file did not still freed its bytes (it is a cache: readers scan without it)."""
    freed = 0
    summary_path = doomed.summary_path
    if summary_path is not None:
        try:
            summary_path.unlink()
            freed += doomed.summary_bytes or 0
            result.deleted.append(summary_path)
        except FileNotFoundError:
            pass
        except OSError as error:  # keep the flow file: it is the summary's reference
            result.problems.append(RetentionProblem(summary_path, _reason(error)))
            return False, 0
    try:
        doomed.path.unlink()
    except FileNotFoundError:
        result.vanished += 1
        return False, freed
    except OSError as error:
        result.problems.append(RetentionProblem(doomed.path, _reason(error)))
        return False, freed
    result.deleted.append(doomed.path)
    return True, freed + doomed.size_bytes


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def live_directories(root: Path, now_s: float) -> set[Path]:
    """The ``-S`` directories (of every layout) the daemon may be about to create a
    spool in at ``now_s``, and their parents: removing one of these between its
    ``mkdir`` and the spool's creation would fail that write."""
    live = set()
    for layout in range(1, len(SUBDIR_FORMATS)):
        directory = root / subdir(int(now_s), layout)
        live.add(directory)
        live.update(directory.parents)
    return live


def _remove_empty_dirs(root: Path, directories: Iterable[Path], now_s: float) -> int:
    """rmdir each directory and its parents below ``root`` while they are empty."""
    keep = live_directories(root, now_s) | {root}
    removed = 0
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        while directory not in keep and root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (or gone, or not ours to remove): stop climbing
                break
            removed += 1
            directory = directory.parent
    return removed


def apply_retention(
    root: Path, policy: RetentionPolicy, now_s: float, dry_run: bool = False
) -> RetentionResult:
    """List, plan and delete in one call; never raises (an unreadable ``root`` is a
    problem in the result)."""
    if not policy.enabled:
        return RetentionResult()
    try:
        files = list_stored_files(root)
    except OSError as error:
        return RetentionResult(problems=[RetentionProblem(root, _reason(error))])
    return execute_plan(root, plan_retention(files, policy, now_s), dry_run)


def summary_line(result: RetentionResult, dry_run: bool = False) -> str:
    """``deleted 3 files (1.5 GiB freed, 9.8 GiB left)``: the line the daemon logs and
    ``flowcapd expire`` prints."""
    verb = "would delete" if dry_run else "deleted"
    plural = "" if result.files_deleted == 1 else "s"
    line = (
        f"{verb} {result.files_deleted} file{plural} ({format_bytes(result.bytes_deleted)} "
        f"{'to free' if dry_run else 'freed'}, {format_bytes(result.remaining_bytes)} left)"
    )
    if result.directories_removed:
        line += f", removed {result.directories_removed} empty directories"
    return line


def problem_lines(problems: Sequence[RetentionProblem]) -> list[str]:
    return [f"cannot delete {problem.path}: {problem.message}" for problem in problems]
