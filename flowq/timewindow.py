"""``-t WINDOW``: nfdump's time window syntax, and ISO-8601.

nfdump: ``YYYY/MM/DD.hh:mm:ss[-YYYY/MM/DD.hh:mm:ss]``, where the time of day may be cut
after any part (``2026/11/22``, ``2026/11/22.10``, ``2026/11/22.10:05``), read in local
time. ISO-8601: ``2026-11-22T10:05:00Z`` or an interval ``START/END`` (an offset or
``Z`` gives the zone, none means local time, like nfdump). A window with only a start is
open-ended.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

_NFDUMP: Final = re.compile(
    r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:\.(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?)?$"
)


class WindowError(ValueError):
    """A -t argument that is not a time window; the CLI prints it and exits 2."""


def _local(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.astimezone()


def parse_time(text: str) -> datetime:
    """One point in time, nfdump or ISO form; naive times are local, like nfdump's."""
    text = text.strip()
    match = _NFDUMP.match(text)
    if match:
        parts = [int(p) if p is not None else 0 for p in match.groups()]
        try:
            return _local(datetime(*parts))  # type: ignore[arg-type]
        except ValueError as error:
            raise WindowError(f"invalid time '{text}': {error}") from None
    try:
        return _local(datetime.fromisoformat(text.replace("z", "Z")))
    except ValueError:
        raise WindowError(
            f"invalid time '{text}' (expected YYYY/MM/DD.hh:mm:ss or ISO-8601)"
        ) from None


def parse_window(text: str) -> tuple[datetime, datetime | None]:
    """``START[-END]`` (nfdump) or ``START[/END]`` (ISO) -> aware datetimes."""
    text = text.strip()
    if _NFDUMP.match(text.split("-", 1)[0]):  # nfdump dates hold no '-'
        start_text, _, end_text = text.partition("-")
    else:  # ISO dates hold no '/': an ISO interval is START/END
        start_text, _, end_text = text.partition("/")
    start = parse_time(start_text)
    end = parse_time(end_text) if end_text else None
    if end is not None and end < start:
        raise WindowError(f"time window '{text}' ends before it starts")
    return start, end


def parse_interval(text: str) -> timedelta:
    """``--series`` step: ``30s``, ``5m``, ``1h``, ``1d`` (a bare number is seconds)."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise WindowError(f"invalid interval '{text}' (expected e.g. 30s, 5m, 1h, 1d)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * unit)
