"""The crash-safe log of the interval being written: all spool framing lives here, with
the file primitives the other writers share (locks, directory fsync, temporary files).

A spool is a sequence of frames, one per appended record batch::

    magic "FCS1" | payload length (u64 LE) | CRC-32 of the payload (u32 LE) | payload

and the payload is a complete Arrow IPC stream (schema, one batch, end-of-stream), so
each frame stands alone: batches of different templates carry different schemas, and
a reader needs nothing but the frame. What a reader may rely on:

- After ``kill -9`` at any byte, every frame written completely reads back exactly; a
  torn last frame is detected (short, or CRC mismatch) and reading stops there.
- A failed append (ENOSPC, EIO) truncates the file back to the last complete frame
  before the error propagates, so the spool stays valid and the caller can retry the
  same batch without duplicating it. If even the truncation fails, the writer refuses
  further appends (``broken``); the caller starts a new spool.
- What ``sync()`` returned from is on disk (fsync of the file; the directory entry is
  fsynced when the spool is created).
- A spool being written holds an exclusive ``flock``; recovery skips locked spools, so
  a worker never finalizes another live worker's spool. The lock dies with the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import pyarrow as pa

from storage.naming import TEMP_SUFFIX

MAGIC: Final = b"FCS1"
FRAME_HEADER: Final = struct.Struct("<4sQI")
#: a frame longer than this is garbage, not a batch (a batch is ~1 s of one exporter)
MAX_FRAME_BYTES: Final = 1 << 32
#: LZ4 halves the spool for ~0.1 s of CPU per million flows (bench/bench_storage.py)
DEFAULT_COMPRESSION: Final = "lz4"


class SpoolBroken(OSError):
    """The spool could not be brought back to its last complete frame after a failed
    append; no more frames may be appended to it."""


def fsync_directory(directory: Path) -> None:
    """Make a created, renamed or removed directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_new_file(fd: int, path: Path) -> None:
    """Lock a file just created; fail if a recovery removed it before the lock held
    (it takes only unlocked files, so after this check the name is ours)."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    here, there = os.fstat(fd), os.stat(path)
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
        raise FileNotFoundError(errno.ENOENT, "removed while being created", str(path))


@contextlib.contextmanager
def locked_temp_file(path: Path) -> Iterator[tuple[Path, int]]:
    """(temporary path, fd) of a new file to be renamed ``path`` before the block ends:
    ``.NAME.tmp`` in the same directory, locked while the block runs (recovery removes
    only unlocked temporary files), removed if the block raises, closed after it. A
    stale one of that name (a crash, nobody holding its lock) is replaced;
    ``FileExistsError`` when a live process is writing it."""
    temp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    fd = _create_temp(temp)
    try:
        lock_new_file(fd, temp)
        yield temp, fd
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    finally:
        os.close(fd)


def _create_temp(temp: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(temp, flags, 0o644)
    except FileExistsError:
        stale = lock_existing(temp)
        if stale is None:
            raise  # a live process is writing it
        try:
            temp.unlink()
        finally:
            os.close(stale)
        return os.open(temp, flags, 0o644)


def encode_frame(
    batch: pa.RecordBatch, compression: str | None = DEFAULT_COMPRESSION
) -> list[bytes | pa.Buffer]:
    """The buffers of one frame (header, payload) for ``batch``."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)
    payload = sink.getvalue()
    header = FRAME_HEADER.pack(MAGIC, payload.size, zlib.crc32(payload))
    return [header, payload]


class SpoolWriter:
    """Appends record batches to a new spool file (which must not exist yet)."""

    def __init__(self, path: Path, compression: str | None = DEFAULT_COMPRESSION) -> None:
        self.path = path
        self.compression = compression
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd: int | None = os.open(path, flags, 0o644)
        try:
            lock_new_file(self._fd, path)
            fsync_directory(path.parent)
        except BaseException:
            self._release()
            raise
        self.size = 0  # bytes of complete frames
        self.rows = 0
        self.frames = 0
        self.synced_size = 0
        self.broken = False
        self._dirty = False  # a failed append may have left bytes after ``size``

    def append(self, batch: pa.RecordBatch) -> int:
        """Write one frame; return its size. On error the file is cut back first."""
        fd = self._require_open()
        self._restore()
        buffers = encode_frame(batch, self.compression)
        total = sum(len(b) if isinstance(b, bytes) else b.size for b in buffers)
        views = [memoryview(b) for b in buffers]
        written = 0
        self._dirty = True
        try:
            while written < total:
                written += _writev_from(fd, views, written)
        except OSError:
            self._restore(raise_broken=False)
            raise
        self._dirty = False
        self.size += total
        self.rows += batch.num_rows
        self.frames += 1
        return total

    def sync(self) -> None:
        """Flush what was appended to disk."""
        fd = self._require_open()
        if self.synced_size != self.size:
            os.fsync(fd)
            self.synced_size = self.size

    def close(self) -> None:
        """Sync and close (releases the lock). Idempotent."""
        if self._fd is None:
            return
        try:
            self._restore()
            self.sync()
        finally:
            self._release()

    def abandon(self) -> None:
        """Close without syncing (after an error the caller already reported)."""
        self._release()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError(f"spool {self.path} is closed")
        if self.broken:
            raise SpoolBroken(errno.EIO, "spool could not be truncated after a failed write",
                              str(self.path))  # fmt: skip
        return self._fd

    def _restore(self, raise_broken: bool = True) -> None:
        """Cut a torn frame off the end (``ftruncate`` frees space even on a full disk)."""
        if not self._dirty or self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self.size)
            self._dirty = False
        except OSError as error:
            self.broken = True
            if raise_broken:
                raise SpoolBroken(error.errno, f"cannot truncate: {error.strerror}",
                                  str(self.path)) from error  # fmt: skip

    def _release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _writev_from(fd: int, views: list[memoryview], offset: int) -> int:
    """One ``writev`` of the buffers' bytes from ``offset`` on; returns bytes written."""
    pending = []
    for view in views:
        if offset >= len(view):
            offset -= len(view)
            continue
        pending.append(view[offset:])
        offset = 0
    return os.writev(fd, pending)


@dataclass(slots=True)
class SpoolReader:
    """Iterates the complete frames of a spool; afterwards says where and why it stopped.

    ``trailing_bytes`` are the bytes after the last complete frame: a torn last frame
    (``torn``: the file ends inside it, what a crash leaves) or a damaged one
    (``problem`` says what). A live spool often reads torn: its writer is mid-frame.
    """

    path: Path
    valid_bytes: int = 0
    trailing_bytes: int = 0
    frames: int = 0
    rows: int = 0
    torn: bool = False
    problem: str | None = None
    _size: int = field(default=0, repr=False)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        with open(self.path, "rb") as file:
            for payload, end in self._frames(file, validate=True):
                try:
                    batches = list(pa.ipc.open_stream(payload))
                except (pa.ArrowInvalid, OSError) as error:
                    self._stop(f"frame {self.frames}: not an Arrow stream ({error})")
                    return
                self.frames += 1
                self.valid_bytes = end
                for batch in batches:
                    self.rows += batch.num_rows
                    yield batch

    def schemas(self) -> Iterator[pa.Schema]:
        """The schema of each complete frame, reading only frame heads (no CRC check:
        a damaged frame may add a column that then reads as nulls)."""
        with open(self.path, "rb") as file:
            for head, end in self._frames(file, validate=False):
                try:
                    schema = pa.ipc.read_schema(pa.py_buffer(head))
                except (pa.ArrowInvalid, OSError) as error:
                    self._stop(f"frame {self.frames}: no Arrow schema ({error})")
                    return
                self.frames += 1
                self.valid_bytes = end
                yield schema

    def _frames(self, file: BinaryIO, validate: bool) -> Iterator[tuple[bytes, int]]:
        """(payload, or its schema message; end offset) of each frame that is whole."""
        self.valid_bytes = self.frames = self.rows = self.trailing_bytes = 0
        self.torn, self.problem = False, None
        self._size = os.fstat(file.fileno()).st_size
        position = 0
        while position < self._size:
            header = file.read(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                break
            magic, length, crc = FRAME_HEADER.unpack(header)
            if magic != MAGIC or length > MAX_FRAME_BYTES:
                return self._stop(f"frame {self.frames} at byte {position}: bad frame header")
            end = position + FRAME_HEADER.size + length
            if end > self._size:
                break
            if validate:
                payload = file.read(length)
                if len(payload) < length:
                    break
                if zlib.crc32(payload) != crc:
                    return self._stop(f"frame {self.frames} at byte {position}: CRC mismatch")
                yield payload, end
            else:
                yield _schema_message(file, length), end
                file.seek(end)
            position = end
        self._stop(None)

    def _stop(self, problem: str | None) -> None:
        self.trailing_bytes = self._size - self.valid_bytes
        self.torn = problem is None and self.trailing_bytes > 0
        self.problem = problem


_CONTINUATION: Final = b"\xff\xff\xff\xff"


def _schema_message(file: BinaryIO, payload_length: int) -> bytes:
    """The IPC stream's first message (its schema), without reading the batch."""
    prefix = file.read(min(8, payload_length))
    if prefix[:4] == _CONTINUATION and len(prefix) == 8:
        (length,) = struct.unpack("<i", prefix[4:])
        return prefix + file.read(max(0, min(length, payload_length - 8)))
    return prefix  # not a stream this version writes: read_schema will say so


def read_spool(path: Path) -> SpoolReader:
    """``for batch in read_spool(path)``; the reader's fields then tell the tail."""
    return SpoolReader(path)


def lock_existing(path: Path, blocking: bool = False) -> int | None:
    """An fd holding the exclusive lock of an existing spool or temporary file, or None
    when another live process holds it (or the file is gone). The caller closes the fd.

    After locking, the path must still name the locked file: a finalizer that ran in
    between may have removed it (then None).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        here = os.fstat(fd)
        there = os.stat(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
        os.close(fd)
        return None
    return fd
