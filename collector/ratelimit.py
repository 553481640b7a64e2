"""Logging that cannot flood: at most one line per (key, interval), with a count of
what was suppressed. Keys are (exporter, reason) pairs, so one noisy exporter does not
hide another."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Final

#: one line per key per this many seconds
LOG_INTERVAL_S: Final = 10.0
#: keys remembered; beyond this the table is reset (a spoofing sender cannot grow it)
MAX_KEYS: Final = 4096


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[Hashable, tuple[float, int]] = {}

    def _allow(self, key: Hashable) -> int | None:
        """None to suppress; else the number suppressed since the last line."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) >= MAX_KEYS:
            self._last.clear()
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]

    def _emit(self, level: int, key: Hashable, message: str, args: tuple, exc_info: bool) -> None:
        suppressed = self._allow(key)
        if suppressed is None:
            return
        if suppressed:
            message += " (%d similar suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args, exc_info=exc_info)

    def warning(self, key: Hashable, message: str, *args: object) -> None:
        self._emit(logging.WARNING, key, message, args, False)

    def exception(self, key: Hashable, message: str, *args: object) -> None:
        self._emit(logging.ERROR, key, message, args, True)
