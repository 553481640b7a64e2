"""Templates persisted across restarts: one JSON snapshot per worker, written
atomically (temporary file, fsync, rename, directory fsync) so a crash leaves either
the old or the new snapshot, never a torn one.

At start every worker loads every worker's snapshot: the kernel's SO_REUSEPORT hash
may send an exporter to another worker after a restart, and templates of exporters a
worker never sees cost only memory within the template limits.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from parsers.decoder import FlowDecoder
from parsers.state_snapshot import restore, snapshot
from storage.spool import fsync_directory

log = logging.getLogger("flowcapd")


def snapshot_path(state_dir: Path, worker: int) -> Path:
    return state_dir / f"templates.w{worker}.json"


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def save_templates(decoder_snapshot: dict, state_dir: Path, worker: int) -> None:
    """Write a snapshot taken on the event loop (``snapshot(decoder)``) to disk."""
    write_atomically(snapshot_path(state_dir, worker), json.dumps(decoder_snapshot).encode())


def load_templates(decoder: FlowDecoder, state_dir: Path) -> int:
    """Restore every worker's snapshot; a bad file is logged and skipped."""
    restored = 0
    for path in sorted(state_dir.glob("templates.w*.json")):
        try:
            restored += restore(decoder, json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("template snapshot %s unusable, ignored: %s", path, error)
        except Exception as error:  # e.g. a limit hit: start without those templates
            log.warning("template snapshot %s not restored: %s", path, error)
    return restored


__all__ = ["load_templates", "save_templates", "snapshot", "write_atomically"]
