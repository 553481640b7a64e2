"""Received flows -> one spool per interval -> one Parquet file per spool: the API the
collector's writer thread calls. All state of the files being written lives here.

Rules a caller may rely on:
- A batch goes to the interval holding the ``received_at_s`` the caller gives (like
  nfcapd, receive time decides, not flow time). An interval's spool is closed once a
  batch received ``grace_s`` after its end arrives, or ``rotate_due`` sees that time
  pass; a batch for an interval already closed starts a new file of that interval.
- Closed spools are converted to Parquet on a background thread (the conversion costs
  ~0.7 s of CPU per million flows, so it must not stall the appends), one at a time,
  oldest first. ``rotate_due`` / ``rotate_now`` / ``close`` return the files finished
  since the last call.
- Every error of the file system (ENOSPC, EACCES, EROFS, EIO) surfaces as
  ``StorageUnavailable``. Nothing is half-done: a failed ``append`` wrote nothing (the
  caller keeps the batch and retries it), a failed conversion leaves its spool, retried
  with backoff by later calls. Rows are never written twice nor lost.
- ``sync`` makes every appended row durable; ``WriterStats.rows_synced`` counts them
  (``flowcap_flows_written_total``).
- ``take_conversion_seconds`` hands over how long each Parquet conversion took (the
  collector's write-latency histogram; measured here, on the thread that converts).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa

from storage.naming import FileKind, FlowFileName, interval_dir, interval_start, next_sequence
from storage.parquet_writer import ROW_GROUP_ROWS, SpoolConversion, convert_spool
from storage.spool import DEFAULT_COMPRESSION, SpoolWriter

#: a batch received this long after an interval ended may still belong to it (queues)
ROTATION_GRACE_S: Final = 1.0
#: waits between attempts to convert a spool after a failure
RETRY_BACKOFF_S: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
#: conversion times kept until the caller takes them (the newest win beyond this)
MAX_CONVERSION_TIMES: Final = 1024

Conversion = tuple[SpoolConversion | None, float]  # (result, seconds it took)


class StorageUnavailable(OSError):
    """The file system refused (full, read-only, permissions, I/O error). The data is
    where it was before the call (the caller's batch, a spool): retry later."""


def _unavailable(error: OSError, doing: str) -> StorageUnavailable:
    message = f"{doing}: {error.strerror or error}"
    return StorageUnavailable(error.errno, message, error.filename)


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A consistent snapshot; read from any thread (metrics scrape)."""

    rows_appended: int
    bytes_appended: int
    rows_synced: int
    files_written: int
    rows_in_files: int
    bytes_in_files: int
    backlog_rows: int  # appended, not yet in a Parquet file
    backlog_bytes: int  # their spool bytes
    open_spools: int
    spools_waiting: int  # closed, waiting for (or in) conversion
    failures: int
    last_error: str | None


@dataclass(slots=True)
class _Spool:
    name: FlowFileName
    path: Path
    writer: SpoolWriter  # closed once the spool waits for conversion
    rows: int = 0
    bytes: int = 0
    synced_rows: int = 0


class IntervalWriter:
    """Writes one worker's flows below ``base_dir`` in intervals of ``rotation_s``."""

    def __init__(
        self,
        base_dir: Path,
        rotation_s: int,
        subdir_layout: int = 0,
        worker: int = 0,
        clock: Callable[[], float] | None = None,
        *,
        spool_compression: str | None = DEFAULT_COMPRESSION,
        rows_per_group: int = ROW_GROUP_ROWS,
        grace_s: float = ROTATION_GRACE_S,
        background: bool = True,
    ) -> None:
        interval_start(0, rotation_s)  # validates
        interval_dir(base_dir, 0, subdir_layout)  # validates
        self.base_dir = base_dir
        self.rotation_s = rotation_s
        self.subdir_layout = subdir_layout
        self.worker = worker
        self.clock = clock or time.time
        self.spool_compression = spool_compression
        self.rows_per_group = rows_per_group
        self.grace_s = grace_s
        self._executor = ThreadPoolExecutor(1, "flowcap-finalize") if background else None
        self._lock = threading.Lock()
        self._open: dict[int, _Spool] = {}
        self._waiting: deque[_Spool] = deque()
        self._converting: tuple[_Spool, Future[Conversion]] | None = None
        self._conversion_seconds: deque[float] = deque(maxlen=MAX_CONVERSION_TIMES)
        self._finished: list[Path] = []
        self._last_sequence: dict[int, int] = {}
        self._error: BaseException | None = None
        self._failures_in_row = 0
        self._retry_at = 0.0
        self._closed = False
        self._counts = dict.fromkeys(
            ("rows_appended", "bytes_appended", "rows_synced", "files_written",
             "rows_in_files", "bytes_in_files", "failures"), 0)  # fmt: skip
        self._last_error: str | None = None

    # -- the writer thread's calls ---------------------------------------------------

    def append(self, batch: pa.RecordBatch, received_at_s: float) -> None:
        """Append ``batch`` to the spool of its interval (durable after ``sync``)."""
        if self._closed:
            raise ValueError("IntervalWriter is closed")
        if batch.num_rows == 0:
            return
        self._close_ended(received_at_s - self.grace_s)
        start = interval_start(received_at_s, self.rotation_s)
        spool = self._open.get(start) or self._open_spool(start)
        try:
            written = spool.writer.append(batch)
        except OSError as error:
            self._count_failure(error)
            if spool.writer.broken:
                self._retire(spool, close=False)
            raise _unavailable(error, f"appending to {spool.path}") from error
        with self._lock:
            spool.rows += batch.num_rows
            spool.bytes += written
            self._counts["rows_appended"] += batch.num_rows
            self._counts["bytes_appended"] += written
        # a conversion failure is raised by the next rotate call, never here: the
        # batch is stored, and an error would make the caller append it again
        self._progress(wait=False, force=False, raise_failure=False)

    def sync(self) -> None:
        """fsync every open spool: what was appended survives a crash from now on."""
        for spool in list(self._open.values()):
            try:
                spool.writer.sync()
            except OSError as error:
                self._count_failure(error)
                raise _unavailable(error, f"syncing {spool.path}") from error
            self._mark_synced(spool)

    def rotate_due(self, now_s: float | None = None) -> list[Path]:
        """Close the intervals that ended (``grace_s`` ago) and return finished files."""
        now = self.clock() if now_s is None else now_s
        self._close_ended(now - self.grace_s)
        self._progress(wait=False, force=False)
        return self._take_finished()

    def rotate_now(self, wait: bool = False) -> list[Path]:
        """Close every open spool now (SIGHUP); the next batch starts new files."""
        for spool in list(self._open.values()):
            self._retire(spool)
        self._progress(wait=wait, force=True)
        return self._take_finished()

    def close(self) -> list[Path]:
        """Finalize everything (SIGTERM): every spool closed and converted. On
        ``StorageUnavailable`` the state is kept and ``close`` may be called again."""
        for spool in list(self._open.values()):
            self._retire(spool)
        self._progress(wait=True, force=True)
        finished = self._take_finished()
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        return finished

    def take_conversion_seconds(self) -> list[float]:
        """How long each Parquet conversion finished since the last call took."""
        with self._lock:
            taken = list(self._conversion_seconds)
            self._conversion_seconds.clear()
        return taken

    @property
    def stats(self) -> WriterStats:
        with self._lock:
            pending = list(self._open.values()) + list(self._waiting)
            if self._converting is not None:
                pending.append(self._converting[0])
            return WriterStats(
                **self._counts,
                backlog_rows=sum(s.rows for s in pending),
                backlog_bytes=sum(s.bytes for s in pending),
                open_spools=len(self._open),
                spools_waiting=len(pending) - len(self._open),
                last_error=self._last_error,
            )

    # -- spools ------------------------------------------------------------------------

    def _open_spool(self, start: int) -> _Spool:
        directory = interval_dir(self.base_dir, start, self.subdir_layout)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            sequence = max(
                next_sequence(directory, start, self.worker),
                self._last_sequence.get(start, -1) + 1,
            )
            name = FlowFileName(start, start + self.rotation_s, self.worker, sequence,
                                FileKind.SPOOL)  # fmt: skip
            path = directory / name.name
            writer = SpoolWriter(path, self.spool_compression)
        except OSError as error:
            self._count_failure(error)
            raise _unavailable(error, f"creating a spool in {directory}") from error
        self._last_sequence[start] = sequence
        spool = _Spool(name, path, writer)
        with self._lock:
            self._open[start] = spool
        return spool

    def _close_ended(self, before_s: float) -> None:
        for _, spool in sorted(self._open.items()):
            if spool.name.interval_end_s <= before_s:
                self._retire(spool)

    def _retire(self, spool: _Spool, close: bool = True) -> None:
        """Close a spool and queue it for conversion, even when closing fails (fsync):
        its complete frames are valid and convert like any other's."""
        failure: OSError | None = None
        if close:
            try:
                spool.writer.close()
                self._mark_synced(spool)
            except OSError as error:  # its complete frames still convert
                failure = error
        spool.writer.abandon()
        with self._lock:
            del self._open[spool.name.interval_start_s]
            self._waiting.append(spool)
        if failure is not None:
            self._count_failure(failure)
            raise _unavailable(failure, f"closing {spool.path}") from failure

    def _mark_synced(self, spool: _Spool) -> None:
        with self._lock:
            self._counts["rows_synced"] += spool.rows - spool.synced_rows
            spool.synced_rows = spool.rows

    # -- conversions -------------------------------------------------------------------

    def _progress(self, wait: bool, force: bool, raise_failure: bool = True) -> None:
        """Collect finished conversions, start the next; raise a failure once."""
        while True:
            if self._converting is not None:
                spool, future = self._converting
                if not (wait or future.done()):
                    break
                with self._lock:
                    self._converting = None
                try:
                    result, seconds = future.result()
                except Exception as error:  # re-raised by _raise_failure, typed
                    self._conversion_failed(spool, error)
                    break
                self._converted(spool, result)
                with self._lock:
                    self._conversion_seconds.append(seconds)
            if not self._waiting or (not force and self.clock() < self._retry_at):
                break
            self._start(self._waiting[0])
        if raise_failure:
            self._raise_failure()

    def _start(self, spool: _Spool) -> None:
        future: Future[Conversion]
        if self._executor is not None:
            future = self._executor.submit(_timed_conversion, spool.path, self.rows_per_group)
        else:
            future = Future()
            try:
                future.set_result(_timed_conversion(spool.path, self.rows_per_group))
            except Exception as error:  # handed on like the executor would
                future.set_exception(error)
        with self._lock:
            self._waiting.popleft()
            self._converting = (spool, future)

    def _converted(self, spool: _Spool, result: SpoolConversion | None) -> None:
        self._failures_in_row = 0
        self._retry_at = 0.0
        self._mark_synced(spool)  # a broken spool's rows are durable once in Parquet
        with self._lock:
            if result is not None and result.parquet is not None:
                self._finished.append(result.parquet)
                self._counts["files_written"] += 1
                self._counts["rows_in_files"] += spool.rows
                self._counts["bytes_in_files"] += _size(result.parquet)

    def _conversion_failed(self, spool: _Spool, error: BaseException) -> None:
        with self._lock:
            self._waiting.appendleft(spool)
        delay = RETRY_BACKOFF_S[min(self._failures_in_row, len(RETRY_BACKOFF_S) - 1)]
        self._failures_in_row += 1
        self._retry_at = self.clock() + delay
        if isinstance(error, OSError):
            self._count_failure(error)
            error = _unavailable(error, f"converting {spool.path}")
        self._error = error

    def _raise_failure(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _count_failure(self, error: OSError) -> None:
        with self._lock:
            self._counts["failures"] += 1
            self._last_error = str(error)

    def _take_finished(self) -> list[Path]:
        with self._lock:
            finished, self._finished = self._finished, []
        return finished


def _timed_conversion(spool: Path, rows_per_group: int) -> Conversion:
    started_s = time.perf_counter()
    result = convert_spool(spool, rows_per_group)  # looked up now: tests replace it
    return result, time.perf_counter() - started_s


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
