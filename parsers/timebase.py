"""Every conversion from an exporter's clock to absolute UTC, vectorized.

All results are int64 nanoseconds since 1970-01-01 UTC. sysUpTime arithmetic wraps
like the exporter's 32-bit millisecond counter: the difference between the header's
uptime and a flow's uptime is taken modulo 2**32 and read as signed, so a flow that
started just before the counter wrapped (softflowd: first=4294967295, header
uptime 3381) lands 3.382 s before the export, not 49 days later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from parsers.elements import ElementKind

NS_PER_S: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000
NS_PER_US: Final = 1_000
#: seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 7011 §6.1.9
NTP_UNIX_OFFSET_S: Final = 2_208_988_800
UPTIME_WRAP_MS: Final = 1 << 32
#: marks "system init time unknown" in per-record arrays
UNKNOWN_NS: Final = np.iinfo(np.int64).min


def uptime_difference_ms(later_ms: np.ndarray, earlier_ms: np.ndarray) -> np.ndarray:
    """``later - earlier`` of two sysUpTime stamps in ms: modulo 2**32, read as signed
    (int64), so a difference across the counter's wrap stays small."""
    later = np.asarray(later_ms, dtype=np.int64).astype(np.uint32)
    earlier = np.asarray(earlier_ms, dtype=np.int64).astype(np.uint32)
    return (later - earlier).view(np.int32).astype(np.int64)


def uptime_to_unix_ns(
    export_unix_ns: np.ndarray, header_uptime_ms: np.ndarray, event_uptime_ms: np.ndarray
) -> np.ndarray:
    """Absolute time of an event stamped with the exporter's sysUpTime (v5, v9).

    The export header says "at ``header_uptime_ms`` it was ``export_unix_ns``"; the event
    happened ``header - event`` ms earlier, modulo 2**32, signed (events slightly after
    the header time, seen on Cisco, stay slightly after it).
    """
    delta_ms = uptime_difference_ms(header_uptime_ms, event_uptime_ms)
    return np.asarray(export_unix_ns, dtype=np.int64) - delta_ms * NS_PER_MS


def uptime_since_init_to_unix_ns(
    system_init_ns: np.ndarray, event_uptime_ms: np.ndarray, export_unix_ns: np.ndarray
) -> np.ndarray:
    """Absolute time of an IPFIX flowStart/EndSysUpTime given systemInitTimeMilliseconds.

    The 32-bit uptime wraps every 49.7 days; the number of wraps is the one that puts
    the event closest before the export time.
    """
    base = (
        np.asarray(system_init_ns, dtype=np.int64)
        + np.asarray(event_uptime_ms, dtype=np.int64) * NS_PER_MS
    )
    wrap_ns = UPTIME_WRAP_MS * NS_PER_MS
    wraps = np.floor_divide(
        np.asarray(export_unix_ns, dtype=np.int64) - base + wrap_ns // 2, wrap_ns
    )
    return base + np.maximum(wraps, 0) * wrap_ns


def ntp_to_unix_ns(ntp: np.ndarray, microsecond_precision: bool) -> np.ndarray:
    """dateTimeMicroseconds / dateTimeNanoseconds (RFC 7011 §6.1.9-10): NTP 64-bit
    timestamps, 32-bit seconds since 1900 and a 32-bit binary fraction. For
    microseconds the fraction's 11 low bits are ignored."""
    values = np.asarray(ntp, dtype=np.uint64)
    seconds = (values >> np.uint64(32)).astype(np.int64) - NTP_UNIX_OFFSET_S
    fraction = values & np.uint64(0xFFFFFFFF)
    if microsecond_precision:
        fraction &= np.uint64(0xFFFFF800)
    fraction_ns = ((fraction * np.uint64(NS_PER_S)) >> np.uint64(32)).astype(np.int64)
    return seconds * NS_PER_S + fraction_ns


def absolute_to_unix_ns(kind: ElementKind, values: np.ndarray) -> np.ndarray:
    """An absolute dateTime* element as ns since 1970."""
    if kind is ElementKind.DATETIME_SECONDS:
        return np.asarray(values, dtype=np.int64) * NS_PER_S
    if kind is ElementKind.DATETIME_MILLISECONDS:
        return np.asarray(values, dtype=np.int64) * NS_PER_MS
    if kind is ElementKind.DATETIME_MICROSECONDS:
        return ntp_to_unix_ns(values, microsecond_precision=True)
    if kind is ElementKind.DATETIME_NANOSECONDS:
        return ntp_to_unix_ns(values, microsecond_precision=False)
    raise ValueError(f"{kind} is not an absolute time")


@dataclass(frozen=True, slots=True)
class TimeField:
    """The raw values of one time element of a batch, with how to read them."""

    kind: ElementKind
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class ExportClock:
    """Per-record clock context from the export message headers.

    ``header_uptime_ms`` is the header's sysUpTime (v5/v9) or None (IPFIX, which has
    none); ``system_init_ns`` is the exporter's systemInitTimeMilliseconds where known
    (``UNKNOWN_NS`` elsewhere), from an options record or the data record itself.
    """

    export_ns: np.ndarray
    header_uptime_ms: np.ndarray | None
    system_init_ns: np.ndarray | None


def time_field_to_unix_ns(field: TimeField, clock: ExportClock) -> tuple[np.ndarray, np.ndarray]:
    """(times, known mask). Unknown only for IPFIX uptimes without a system init time."""
    kind = field.kind
    known = np.ones(len(field.values), dtype=bool)
    if kind is ElementKind.SYSUPTIME_MILLISECONDS:
        if clock.header_uptime_ms is not None:
            return uptime_to_unix_ns(clock.export_ns, clock.header_uptime_ms, field.values), known
        init = clock.system_init_ns
        if init is None:
            return np.zeros(len(field.values), dtype=np.int64), ~known
        known = init != UNKNOWN_NS
        safe_init = np.where(known, init, 0)
        return uptime_since_init_to_unix_ns(safe_init, field.values, clock.export_ns), known
    if kind is ElementKind.DELTA_MICROSECONDS:
        return clock.export_ns - np.asarray(field.values, dtype=np.int64) * NS_PER_US, known
    return absolute_to_unix_ns(kind, field.values), known


def _duration_ns(field: TimeField) -> np.ndarray:
    scale = NS_PER_MS if field.kind is ElementKind.DURATION_MILLISECONDS else NS_PER_US
    return np.asarray(field.values, dtype=np.int64) * scale


def resolve_flow_times(
    start: TimeField | None,
    end: TimeField | None,
    duration: TimeField | None,
    observation_ns: np.ndarray | None,
    clock: ExportClock,
) -> tuple[np.ndarray, np.ndarray]:
    """(time_start, time_end) in ns for a batch, from whatever the template carries.

    Order of evidence: the start/end elements; a missing one from the other and the
    flow duration (161/162), else equal to the other; neither: the observation time
    (NSEL 323), else the export time. IPFIX sysUpTime values without a known system
    init time keep their duration and are anchored so the flow ends at export time.
    """
    export_ns = np.asarray(clock.export_ns, dtype=np.int64)
    rows = len(export_ns)
    start_ns = end_ns = None
    start_known = end_known = np.zeros(rows, dtype=bool)
    if start is not None:
        start_ns, start_known = time_field_to_unix_ns(start, clock)
    if end is not None:
        end_ns, end_known = time_field_to_unix_ns(end, clock)
    if (
        start is not None
        and end is not None
        and start.kind is ElementKind.SYSUPTIME_MILLISECONDS
        and end.kind is ElementKind.SYSUPTIME_MILLISECONDS
    ):
        unanchored = ~(start_known & end_known)
        if unanchored.any():
            span = uptime_difference_ms(end.values, start.values) * NS_PER_MS
            end_ns = np.where(unanchored, export_ns, end_ns)
            start_ns = np.where(unanchored, export_ns - span, start_ns)
            start_known = end_known = np.ones(rows, dtype=bool)
    fallback = observation_ns if observation_ns is not None else export_ns
    duration_ns = _duration_ns(duration) if duration is not None else None
    if start_ns is None:
        start_ns, start_known = np.array(fallback, dtype=np.int64), np.zeros(rows, dtype=bool)
    if end_ns is None:
        end_ns, end_known = np.array(fallback, dtype=np.int64), np.zeros(rows, dtype=bool)
    if duration_ns is not None:
        start_ns = np.where(~start_known & end_known, end_ns - duration_ns, start_ns)
        end_ns = np.where(~end_known & start_known, start_ns + duration_ns, end_ns)
    else:
        start_ns = np.where(~start_known & end_known, end_ns, start_ns)
        end_ns = np.where(~end_known & start_known, start_ns, end_ns)
    neither = ~start_known & ~end_known
    if neither.any():
        start_ns = np.where(neither, fallback, start_ns)
        end_ns = np.where(neither, fallback, end_ns)
    return start_ns.astype(np.int64, copy=False), end_ns.astype(np.int64, copy=False)
