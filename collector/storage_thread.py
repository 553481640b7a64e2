"""The storage thread: the only place flowcapd touches the disk while running.

The event loop puts Arrow batches into a bounded ``BatchQueue``; this thread appends
them to the current interval's spool, fsyncs about once per flush interval, rotates
finished intervals into Parquet, and runs small file tasks (template persistence).
When the disk is full or the directory unwritable it keeps the batches in memory (up
to ``MAX_BACKLOG_ROWS``), logs, counts, and retries with backoff; once the backlog is
full the queue fills and the receive side counts what it had to drop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from collector.worker_stats import write_histogram
from storage.interval_writer import IntervalWriter, StorageUnavailable
from storage.retention import RetentionPolicy, apply_retention, problem_lines, summary_line

log = logging.getLogger("flowcapd")

#: flows waiting in the queue for the storage thread (about 1 GB of Arrow at most)
MAX_QUEUED_ROWS: Final = 4_000_000
#: flows kept in memory while the disk refuses writes
MAX_BACKLOG_ROWS: Final = 8_000_000
RETRY_INITIAL_S: Final = 1.0
RETRY_MAX_S: Final = 30.0

Task = Callable[[], None]


class BatchQueue:
    """Bounded by rows; ``put`` never blocks (the event loop calls it)."""

    def __init__(self, max_rows: int = MAX_QUEUED_ROWS) -> None:
        self._items: deque[pa.RecordBatch] = deque()
        self._rows = 0
        self._max_rows = max_rows
        self._ready = threading.Condition()
        self._closed = False

    def put(self, batch: pa.RecordBatch) -> bool:
        with self._ready:
            if self._rows + batch.num_rows > self._max_rows or self._closed:
                return False
            self._items.append(batch)
            self._rows += batch.num_rows
            self._ready.notify()
            return True

    def get(self, timeout_s: float) -> pa.RecordBatch | None:
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout_s)
            if not self._items:
                return None
            batch = self._items.popleft()
            self._rows -= batch.num_rows
            return batch

    def close(self) -> None:
        """No more puts; the consumer drains what is left, then sees ``closed``."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def rows(self) -> int:
        return self._rows

    def __len__(self) -> int:
        return len(self._items)


def split_by_interval(batch: pa.RecordBatch, rotation_s: int) -> list[tuple[float, pa.RecordBatch]]:
    """Parts of a batch by the rotation interval of each row's receive time."""
    if batch.num_rows == 0:  # nothing to store (and no min() of an empty column)
        return []
    received = batch.column("time_received").cast(pa.int64()).to_numpy(zero_copy_only=False)
    interval_ms = rotation_s * 1000
    index = received // interval_ms
    first, last = int(index.min()), int(index.max())
    if first == last:
        return [(first * rotation_s, batch)]
    parts = []
    for value in np.unique(index).tolist():
        parts.append((value * rotation_s, batch.filter(pa.array(index == value))))
    return parts


@dataclass(slots=True)
class StorageStats:
    rows_appended: int = 0
    rows_written: int = 0  # durably: appended and fsynced
    write_errors: int = 0
    backlog_rows: int = 0
    unexpected_errors: int = 0
    rows_lost: int = 0  # still unwritten when shutdown gave up
    retention_files_deleted: int = 0  # --max-age / --max-size, after rotations
    retention_bytes_deleted: int = 0


class StorageThread(threading.Thread):
    """Drains the queue into an ``IntervalWriter`` until the queue is closed."""

    def __init__(
        self,
        queue: BatchQueue,
        writer: IntervalWriter,
        rotation_s: int,
        flush_interval_s: float,
        on_written: Callable[[int], None] = lambda rows: None,
        clock: Callable[[], float] = time.time,
        max_backlog_rows: int = MAX_BACKLOG_ROWS,
        retention: RetentionPolicy | None = None,
    ) -> None:
        super().__init__(name="flowcapd-storage", daemon=True)
        self.queue = queue
        self.writer = writer
        self.stats = StorageStats()
        self._rotation_s = rotation_s
        self._flush_interval_s = flush_interval_s
        self._on_written = on_written
        self._clock = clock
        self._max_backlog_rows = max_backlog_rows
        self._retention = retention
        #: seconds per spool append, fsync and Parquet conversion (``stage`` label)
        self.write_seconds = write_histogram()
        # (interval start, part of a batch): a batch is split by receive interval when
        # it arrives, and each part leaves the backlog once appended, so a retry never
        # appends again a part that was stored before another part failed
        self._backlog: deque[tuple[float, pa.RecordBatch]] = deque()
        self._tasks: deque[Task] = deque()
        self._retry_at = 0.0
        self._retry_delay_s = RETRY_INITIAL_S
        self._unsynced_rows = 0
        self._rotate_now = threading.Event()
        self.finished_files: list[str] = []

    def submit(self, task: Task) -> None:
        """Run ``task`` on this thread (small file jobs such as template snapshots)."""
        self._tasks.append(task)
        self.queue.wake()

    def request_rotation(self) -> None:
        """SIGHUP: close the current interval's files now."""
        self._rotate_now.set()
        self.queue.wake()

    def run(self) -> None:
        next_sync = self._clock() + self._flush_interval_s
        while True:
            try:
                next_sync = self._step(next_sync)
            except Exception:  # a bug must not stop the writing for good
                self.stats.unexpected_errors += 1
                log.exception("storage thread: unexpected error; retrying")
                time.sleep(RETRY_INITIAL_S)
            if self.queue.closed and len(self.queue) == 0:
                break
        self._finish()

    def _step(self, next_sync: float) -> float:
        """One round: take a batch, write what can be written, sync, rotate."""
        if len(self._backlog) == 0 or self.stats.backlog_rows < self._max_backlog_rows:
            batch = self.queue.get(timeout_s=min(0.2, self._flush_interval_s))
            if batch is not None:
                self._backlog.extend(split_by_interval(batch, self._rotation_s))
                self.stats.backlog_rows += batch.num_rows
        else:
            time.sleep(0.05)
        now = self._clock()
        self._write_backlog(now)
        self._run_tasks()
        if now >= next_sync:
            self._sync()
            next_sync = now + self._flush_interval_s
            self._rotate(lambda: self.writer.rotate_due(now), now)
        if self._rotate_now.is_set():
            self._rotate_now.clear()
            self._sync()
            self._rotate(self.writer.rotate_now, now)
        self._observe_conversions()
        return next_sync

    def _finish(self) -> None:
        deadline = self._clock() + RETRY_MAX_S
        while self._backlog and self._clock() < deadline:
            self._retry_at = 0.0
            self._write_backlog(self._clock())
            if self._backlog:
                time.sleep(RETRY_INITIAL_S)
        if self._backlog:
            self.stats.rows_lost = self.stats.backlog_rows
            log.error(
                "disk still refuses writes at shutdown: %d flows lost", self.stats.backlog_rows
            )
        self._sync()
        self._run_tasks()
        files = self._guard(self.writer.close)
        if files:
            self.finished_files.extend(str(f) for f in files)
        self._observe_conversions()

    def _write_backlog(self, now: float) -> None:
        if not self._backlog or now < self._retry_at:
            return
        while self._backlog:
            interval_start_s, part = self._backlog[0]
            started_s = time.perf_counter()
            try:
                self.writer.append(part, interval_start_s)
            except StorageUnavailable as error:
                self.stats.write_errors += 1
                log.error(
                    "cannot write flows (%s); keeping %d in memory, retrying in %.0f s",
                    error,
                    self.stats.backlog_rows,
                    self._retry_delay_s,
                )
                self._retry_at = now + self._retry_delay_s
                self._retry_delay_s = min(self._retry_delay_s * 2, RETRY_MAX_S)
                return
            self.write_seconds.labels("append").observe(time.perf_counter() - started_s)
            self._backlog.popleft()
            self.stats.backlog_rows -= part.num_rows
            self.stats.rows_appended += part.num_rows
            self._unsynced_rows += part.num_rows
        if self._retry_delay_s != RETRY_INITIAL_S:
            log.info("writing flows again")
        self._retry_delay_s = RETRY_INITIAL_S

    def _sync(self) -> None:
        if not self._unsynced_rows:
            return
        started_s = time.perf_counter()
        if self._guard(self.writer.sync) is False:
            return
        self.write_seconds.labels("fsync").observe(time.perf_counter() - started_s)
        rows, self._unsynced_rows = self._unsynced_rows, 0
        self.stats.rows_written += rows
        self._on_written(rows)

    def _rotate(self, rotation: Callable[[], object], now: float) -> None:
        """Run one of the writer's rotations; the files it finished (conversions that
        completed meanwhile) are logged at shutdown, and retention runs after them."""
        files = self._guard(rotation)
        if files:
            self.finished_files.extend(str(f) for f in files)
            self._expire(now)

    def _expire(self, now: float) -> None:
        """Retention after a rotation, like nfcapd's ``-e``: here on the storage thread
        (a directory walk, never on the receive path); failures are logged, not raised."""
        if self._retention is None:
            return
        result = apply_retention(self.writer.base_dir, self._retention, now)
        self.stats.retention_files_deleted += result.files_deleted
        self.stats.retention_bytes_deleted += result.bytes_deleted
        if result.files_deleted:
            log.info("retention: %s", summary_line(result))
        if result.problems:  # one line per rotation, however many files refuse
            more = len(result.problems) - 1
            first = problem_lines(result.problems)[0]
            log.warning("retention: %s%s", first, f" (and {more} more)" if more else "")

    def _observe_conversions(self) -> None:
        """Parquet conversions run on the writer's own thread; it keeps their times."""
        parquet = self.write_seconds.labels("parquet")
        for seconds in self.writer.take_conversion_seconds():
            parquet.observe(seconds)

    def _run_tasks(self) -> None:
        while self._tasks:
            task = self._tasks.popleft()
            try:
                task()
            except Exception:
                log.exception("storage task failed")

    def _guard(self, action: Callable[[], object]) -> object:
        try:
            return action()
        except StorageUnavailable as error:
            self.stats.write_errors += 1
            log.error("storage: %s", error)
            return False
