"""How flowcapd's log lines look: one line per event, on stderr, in the form the reader
of that stderr wants.

- On a terminal or in a file: ``2026-11-22 10:05:00,123 flowcapd[42] WARNING …``.
- Under systemd (``$INVOCATION_ID`` set, or stderr is the stream ``$JOURNAL_STREAM``
  names): no timestamp, journald adds its own; instead the sd-daemon(3) priority
  prefix ``<4>``, which journald strips and records as the entry's PRIORITY, so
  ``journalctl -p warning`` works. The level name stays, for whoever greps.

A traceback is folded into the same line (`` | `` between its lines): journald makes one
entry per line, and only the first would carry the priority.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Final, TextIO

#: logging level -> syslog priority (sd-daemon.h: SD_ERR "<3>" … SD_DEBUG "<7>")
SYSLOG_PRIORITY: Final = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
TERMINAL_FORMAT: Final = "%(asctime)s flowcapd[%(process)d] %(levelname)s %(message)s"
JOURNAL_FORMAT: Final = "<%(priority)d>%(levelname)s %(message)s"
LINE_JOIN: Final = " | "


def stream_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """``$JOURNAL_STREAM`` is ``DEVICE:INODE`` of the stream systemd connected to the
    journal; it only counts if that is still our stream (a shell started from a service
    inherits the variable, not the stream)."""
    value = environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        status = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


def under_systemd(environ: Mapping[str, str], stream: TextIO) -> bool:
    """Started by systemd (it sets ``$INVOCATION_ID`` for every unit) or writing to the
    journal: journald, syslog and kmsg all read the ``<N>`` prefix."""
    return bool(environ.get("INVOCATION_ID")) or stream_is_journal(environ, stream)


class OneLineFormatter(logging.Formatter):
    """Folds every record, traceback included, into one line; adds ``priority``."""

    def format(self, record: logging.LogRecord) -> str:
        record.priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        if "\n" in text:
            text = LINE_JOIN.join(line for line in text.splitlines() if line.strip())
        return text


def setup_logging(
    level: str, environ: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> None:
    """Configure the root logger (replacing what was there) for ``level``."""
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    fmt = JOURNAL_FORMAT if under_systemd(environ, stream) else TERMINAL_FORMAT
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def set_log_level(level: str) -> None:
    """A reload's new level, for every logger that inherits the root's."""
    logging.getLogger().setLevel(level.upper())
