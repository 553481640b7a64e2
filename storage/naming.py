"""File names and directory layout of stored flows: the only place that knows them.

A file holds the flows *received* in one aligned interval of the rotation (``-t``)::

    flowcap.202611221005-202611221010.0.3.parquet    finished interval (worker 0, file 3)
    flowcap.202611221005-202611221010.0.4.spool      the interval being written now
    .flowcap.202611221005-202611221010.0.4.parquet.tmp   a Parquet file being written

- Times are UTC, ``YYYYMMDDhhmm`` (``YYYYMMDDhhmmss`` when the rotation is not a whole
  number of minutes). The name carries the interval's start *and* end, so a reader can
  prune files by time from their names alone, whatever ``-t`` was when they were
  written.
- ``<worker>`` is the receiving process (``--workers``); ``<n>`` counts the files of one
  worker in one interval. A restart, an early rotation (SIGHUP) or a late batch starts
  the next ``n``, so no file is ever written twice or overwritten.
- The spool and the Parquet file of one ``(interval, worker, n)`` share the name but for
  the suffix: when both exist, the Parquet file is complete and the spool is obsolete.
- Names starting with ``.`` are temporary; readers skip them.
- ``-S N`` sub-directories use nfcapd's numbers (nfdump ``src/lib/flist.c``,
  ``subdir_def``), computed in UTC like the names.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

PREFIX: Final = "flowcap"
TEMP_SUFFIX: Final = ".tmp"

#: nfcapd's ``-S`` layouts, by number (nfdump src/lib/flist.c ``subdir_def``)
SUBDIR_FORMATS: Final = (
    "",
    "%Y/%m/%d",
    "%Y/%m/%d/%H",
    "%Y/%W/%u",
    "%Y/%W/%u/%H",
    "%Y/%j",
    "%Y/%j/%H",
    "%Y-%m-%d",
    "%Y-%m-%d/%H",
)

_NAME = re.compile(
    r"^flowcap\.(?P<start>\d{12}|\d{14})-(?P<end>\d{12}|\d{14})"
    r"\.(?P<worker>\d{1,6})\.(?P<n>\d{1,9})\.(?P<kind>parquet|spool)$"
)


class FileKind(StrEnum):
    """What a flow file holds: a finished interval, or the log of one being written."""

    PARQUET = "parquet"
    SPOOL = "spool"


@dataclass(frozen=True, slots=True, order=True)
class FlowFileName:
    """The facts a flow file's name carries. Ordering is by time, then worker, then n."""

    interval_start_s: int
    interval_end_s: int
    worker: int
    sequence: int
    kind: FileKind

    @property
    def name(self) -> str:
        seconds = self.interval_start_s % 60 != 0 or self.interval_end_s % 60 != 0
        start = format_stamp(self.interval_start_s, seconds)
        end = format_stamp(self.interval_end_s, seconds)
        return f"{PREFIX}.{start}-{end}.{self.worker}.{self.sequence}.{self.kind}"

    @property
    def temp_name(self) -> str:
        """Where the file is written before it is renamed (dot: readers skip it)."""
        return f".{self.name}{TEMP_SUFFIX}"

    def as_kind(self, kind: FileKind) -> FlowFileName:
        return replace(self, kind=kind)

    def overlaps(self, start_s: float | None, end_s: float | None) -> bool:
        """Whether the interval meets ``[start_s, end_s]`` (None: unbounded)."""
        if start_s is not None and self.interval_end_s <= start_s:
            return False
        return end_s is None or self.interval_start_s <= end_s


def interval_start(t_s: float, rotation_s: int) -> int:
    """Start of the aligned interval holding ``t_s`` (``:00, :05, …`` for 300 s)."""
    if rotation_s < 1:
        raise ValueError(f"rotation interval must be at least 1 s, not {rotation_s}")
    whole = int(t_s // 1)
    return whole - whole % rotation_s


def format_stamp(t_s: int, seconds: bool = False) -> str:
    return time.strftime("%Y%m%d%H%M%S" if seconds else "%Y%m%d%H%M", time.gmtime(t_s))


def parse_stamp(stamp: str) -> int:
    """UTC seconds of a ``YYYYMMDDhhmm[ss]`` stamp; ValueError when it is not one.

    By slicing, not ``strptime`` (3x slower, and two stamps per name): listing a year
    of 5-minute files for retention or ``flowq -R`` parses ~200,000 of them."""
    if len(stamp) not in (12, 14) or not (stamp.isascii() and stamp.isdigit()):
        raise ValueError(f"not a YYYYMMDDhhmm[ss] stamp: {stamp!r}")
    seconds = int(stamp[12:]) if len(stamp) == 14 else 0
    moment = datetime.datetime(  # ValueError: month 13, hour 24, …
        int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]), int(stamp[10:12]),
        seconds, tzinfo=datetime.UTC,
    )  # fmt: skip
    return int(moment.timestamp())


def parse_name(name: str) -> FlowFileName | None:
    """The facts of a flow file name, or None if it is not one (temporary names too)."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        start, end = parse_stamp(match["start"]), parse_stamp(match["end"])
    except ValueError:
        return None
    if end <= start:
        return None
    kind = FileKind(match["kind"])
    return FlowFileName(start, end, int(match["worker"]), int(match["n"]), kind)


def parse_temp_name(name: str) -> FlowFileName | None:
    """The final name's facts of a temporary name (``.NAME.tmp``), or None."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    return parse_name(name[1 : -len(TEMP_SUFFIX)])


def subdir(interval_start_s: int, layout: int) -> Path:
    """The ``-S`` sub-directory of an interval, relative to the base directory."""
    if not 0 <= layout < len(SUBDIR_FORMATS):
        raise ValueError(f"sub-directory layout must be 0..{len(SUBDIR_FORMATS) - 1}")
    fmt = SUBDIR_FORMATS[layout]
    return Path(time.strftime(fmt, time.gmtime(interval_start_s))) if fmt else Path()


def interval_dir(base_dir: Path, interval_start_s: int, layout: int) -> Path:
    return base_dir / subdir(interval_start_s, layout)


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A flow file found on disk; ``is_temp`` for a temporary (being written, or stale)."""

    path: Path
    name: FlowFileName
    is_temp: bool = False


def walk_flow_files(root: Path, include_temp: bool = False) -> Iterator[FoundFile]:
    """Every flow file below ``root`` (any depth, any ``-S``), by name alone.

    Directories starting with ``.`` are skipped, symbolic links to directories followed
    (each directory once); nothing is opened. Order is the directory listing's: sort
    when order matters.
    """
    yield from _walk(root, include_temp, set())


def _walk(directory: Path, include_temp: bool, seen: set[tuple[int, int]]) -> Iterator[FoundFile]:
    try:
        identity = os.stat(directory)
        if (identity.st_dev, identity.st_ino) in seen:
            return
        seen.add((identity.st_dev, identity.st_ino))
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            if not entry.name.startswith("."):
                yield from _walk(Path(entry.path), include_temp, seen)
            continue
        name = parse_name(entry.name)
        if name is not None:
            yield FoundFile(Path(entry.path), name)
        elif include_temp:
            name = parse_temp_name(entry.name)
            if name is not None:
                yield FoundFile(Path(entry.path), name, is_temp=True)


def list_flow_files(
    root: Path,
    start_s: float | None = None,
    end_s: float | None = None,
    kinds: frozenset[FileKind] = frozenset(FileKind),
) -> list[FoundFile]:
    """Flow files below ``root`` whose interval meets ``[start_s, end_s]``, sorted by
    (interval, worker, n, kind): pruned by name, no file opened."""
    found = [
        f for f in walk_flow_files(root) if f.name.kind in kinds and f.name.overlaps(start_s, end_s)
    ]
    return sorted(found, key=lambda f: (f.name, str(f.path)))


def next_sequence(directory: Path, interval_start_s: int, worker: int) -> int:
    """The first ``n`` no file of this worker and interval uses in ``directory``
    (finished, spool or temporary; whatever the rotation was when they were written)."""
    highest = -1
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for entry in names:
        name = parse_name(entry) or parse_temp_name(entry)
        if name is not None and name.interval_start_s == interval_start_s and name.worker == worker:
            highest = max(highest, name.sequence)
    return highest + 1
