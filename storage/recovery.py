"""Startup recovery: whatever a crash left below the flow directory becomes readable.

- Every spool (any worker, any interval, any ``-S`` layout, complete or torn) becomes
  its Parquet file (same name but the suffix; nothing is ever overwritten), then the
  spool is removed. Its complete frames are all kept; a torn last frame (the batch
  being written when the process died) is dropped and counted.
- When both a spool and its Parquet file exist, the Parquet file is complete (it only
  appears by an atomic link after fsync), so the spool is just removed: a recovery
  killed at any point and run again finishes the job without duplicating a row.
- Stale temporary files (``.NAME.tmp``) are removed.
- Spools and temporary files locked by a live process (another worker writing) are
  left alone, so recovery may run while other workers write.
- A spool damaged in the middle (not just torn at its end) is renamed
  ``NAME.spool.corrupt`` after its readable frames are saved, for inspection.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from storage.interval_writer import StorageUnavailable
from storage.naming import FileKind, walk_flow_files
from storage.parquet_writer import ROW_GROUP_ROWS, SpoolConversion, convert_spool
from storage.spool import fsync_directory, lock_existing


@dataclass(slots=True)
class RecoveryReport:
    """What one recovery run did (for the daemon's log lines and tests)."""

    converted: list[SpoolConversion] = field(default_factory=list)
    spools_removed: int = 0  # their Parquet file existed already, or they were empty
    temps_removed: int = 0
    busy: list[Path] = field(default_factory=list)  # locked by a live process
    failed: list[tuple[Path, OSError]] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [c.parquet for c in self.converted if c.parquet is not None and not c.already_done]

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.converted)

    @property
    def torn_bytes(self) -> int:
        return sum(c.trailing_bytes for c in self.converted)


def recover_spools(base_dir: Path, rows_per_group: int = ROW_GROUP_ROWS) -> RecoveryReport:
    """Recover everything below ``base_dir``; errors are collected, not raised."""
    report = RecoveryReport()
    found = sorted(walk_flow_files(base_dir, include_temp=True), key=lambda f: f.name)
    for item in found:
        if item.is_temp:
            _remove_stale_temp(item.path, report)
    for item in found:
        if item.is_temp or item.name.kind is not FileKind.SPOOL:
            continue
        try:
            result = convert_spool(item.path, rows_per_group, source="recovery")
        except OSError as error:
            report.failed.append((item.path, error))
            continue
        if result is None:
            if item.path.exists():
                report.busy.append(item.path)
        elif result.already_done or result.parquet is None:
            report.spools_removed += 1
            if result.parquet is None:
                report.converted.append(result)
        else:
            report.converted.append(result)
    return report


def recover(base_dir: Path) -> list[Path]:
    """The Parquet files recovered from spools below ``base_dir``.

    Raises ``StorageUnavailable`` (after doing all it could) when a spool could not be
    converted: it stays, and the next call retries it.
    """
    report = recover_spools(base_dir)
    if report.failed:
        path, error = report.failed[0]
        message = f"cannot recover {len(report.failed)} spool(s), first {path}: {error}"
        raise StorageUnavailable(error.errno, message, str(path)) from error
    return report.files


def _remove_stale_temp(path: Path, report: RecoveryReport) -> None:
    fd = lock_existing(path)
    if fd is None:
        return  # being written by a live process, or gone
    try:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_directory(path.parent)
            report.temps_removed += 1
    except OSError as error:
        report.failed.append((path, error))
    finally:
        os.close(fd)
