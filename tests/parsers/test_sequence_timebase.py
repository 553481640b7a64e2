"""Export sequence accounting (``parsers/sequence.py``) and exporter clocks
(``parsers/timebase.py``): loss only when a gap outlives the reorder window, wraps at
2**32 everywhere, and every time conversion checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from parsers.elements import ElementKind
from parsers.sequence import MAX_PLAUSIBLE_GAP, REORDER_WINDOW, SEQUENCE_MODULUS, SequenceTracker
from parsers.timebase import (
    UNKNOWN_NS,
    ExportClock,
    TimeField,
    ntp_to_unix_ns,
    resolve_flow_times,
    time_field_to_unix_ns,
    uptime_since_init_to_unix_ns,
    uptime_to_unix_ns,
)

U32 = st.integers(0, SEQUENCE_MODULUS - 1)
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

# ======================================================================================
# SequenceTracker
# ======================================================================================


def observe_all(tracker: SequenceTracker, messages: list[tuple[int, int | None]]) -> int:
    return sum(tracker.observe(sequence, units) for sequence, units in messages)


def in_order(start: int, units: list[int]) -> list[tuple[int, int]]:
    messages, sequence = [], start
    for count in units:
        messages.append((sequence, count))
        sequence = (sequence + count) % SEQUENCE_MODULUS
    return messages


@given(U32, st.lists(st.integers(1, 30), min_size=1, max_size=200))
def test_in_order_stream_loses_nothing(start: int, units: list[int]) -> None:
    """Any start, including just below 2**32 so the stream wraps."""
    tracker = SequenceTracker()
    assert observe_all(tracker, in_order(start, units)) == 0
    assert (tracker.lost, tracker.pending, tracker.restarts, tracker.flush()) == (0, 0, 0, 0)


@given(
    st.integers(SEQUENCE_MODULUS - 19, SEQUENCE_MODULUS - 1),
    st.lists(st.integers(1, 5), min_size=20, max_size=40),
)
def test_stream_across_the_wrap_loses_nothing(start: int, units: list[int]) -> None:
    tracker = SequenceTracker()
    messages = in_order(start, units)
    assert any(s < start for s, _ in messages)  # it did wrap
    assert observe_all(tracker, messages) == 0
    assert tracker.flush() == 0


@given(U32, st.integers(1, 1000), st.integers(1, 30))
def test_gap_counts_only_after_the_reorder_window(start: int, missing: int, units: int) -> None:
    """The message that reveals a gap, then REORDER_WINDOW later messages that do not
    fill it: still only pending; the next message confirms it as lost."""
    tracker = SequenceTracker()
    assert tracker.observe(start, units) == 0
    sequence = (start + units + missing) % SEQUENCE_MODULUS  # `missing` units never arrive
    assert tracker.observe(sequence, units) == 0  # reveals the gap
    for _ in range(REORDER_WINDOW):
        sequence = (sequence + units) % SEQUENCE_MODULUS
        assert tracker.observe(sequence, units) == 0
    assert tracker.lost == 0
    assert tracker.pending == missing
    sequence = (sequence + units) % SEQUENCE_MODULUS
    assert tracker.observe(sequence, units) == missing
    assert (tracker.lost, tracker.pending, tracker.flush()) == (missing, 0, 0)


@given(U32, st.integers(1, 30))
def test_late_message_at_the_window_edge_still_fills_the_gap(start: int, units: int) -> None:
    tracker = SequenceTracker()
    tracker.observe(start, units)
    late = (start + units) % SEQUENCE_MODULUS
    sequence = (late + units) % SEQUENCE_MODULUS
    for _ in range(REORDER_WINDOW):  # the revealing message and the window but one
        assert tracker.observe(sequence, units) == 0
        sequence = (sequence + units) % SEQUENCE_MODULUS
    assert tracker.observe(late, units) == 0
    assert (tracker.pending, tracker.flush(), tracker.lost) == (0, 0, 0)


def test_gap_across_the_wrap_has_its_true_size() -> None:
    tracker = SequenceTracker()
    tracker.observe(SEQUENCE_MODULUS - 3, 1)  # expects 2**32 - 2
    tracker.observe(2, 1)  # 2**32 - 2, 2**32 - 1, 0, 1 are missing
    assert tracker.pending == 4
    assert tracker.flush() == 4


@given(
    U32,
    st.lists(st.integers(1, 20), min_size=2, max_size=150),
    st.data(),
)
def test_late_messages_fill_their_gaps(start: int, units: list[int], data: st.DataObject) -> None:
    """UDP reordering: every message arrives up to half a window late; nothing is lost."""
    messages = in_order(start, units)
    delays = data.draw(
        st.lists(
            st.integers(0, REORDER_WINDOW // 2), min_size=len(messages), max_size=len(messages)
        )
    )
    order = sorted(range(len(messages)), key=lambda i: i + delays[i])
    assume(order[0] == 0)  # the first message sets the expectation
    tracker = SequenceTracker()
    assert observe_all(tracker, [messages[i] for i in order]) == 0
    assert tracker.flush() == 0
    assert tracker.lost == 0


@given(U32, st.lists(st.integers(1, 5), min_size=3, max_size=60), st.data())
def test_lost_messages_are_counted_exactly(
    start: int, units: list[int], data: st.DataObject
) -> None:
    messages = in_order(start, units)
    dropped = data.draw(st.sets(st.integers(1, len(messages) - 2)))  # not the first / last
    tracker = SequenceTracker()
    lost = observe_all(tracker, [m for i, m in enumerate(messages) if i not in dropped])
    lost += tracker.flush()
    assert lost == sum(units[i] for i in dropped)


@given(U32, st.integers(MAX_PLAUSIBLE_GAP + 1, SEQUENCE_MODULUS // 2 - 1), st.booleans())
def test_restart_is_not_loss(start: int, jump: int, backwards: bool) -> None:
    tracker = SequenceTracker()
    tracker.observe(start, 1)
    restarted = (start + 1 + (-jump if backwards else jump)) % SEQUENCE_MODULUS
    assert tracker.observe(restarted, 1) == 0
    assert tracker.restarts == 1
    assert observe_all(tracker, in_order((restarted + 1) % SEQUENCE_MODULUS, [1] * 100)) == 0
    assert (tracker.lost, tracker.flush()) == (0, 0)


def test_restart_drops_open_gaps() -> None:
    tracker = SequenceTracker()
    tracker.observe(100, 1)
    tracker.observe(110, 1)  # 101..109 missing, pending
    assert tracker.pending == 9
    tracker.observe(50_000_000, 1)  # the exporter restarted: the old gap means nothing
    assert (tracker.pending, tracker.restarts) == (0, 1)
    assert tracker.flush() == 0


def test_duplicate_is_not_loss() -> None:
    tracker = SequenceTracker()
    assert observe_all(tracker, [(10, 2), (12, 2), (12, 2), (14, 2)]) == 0
    assert tracker.flush() == 0


@given(U32, st.lists(st.integers(0, 30), min_size=1, max_size=100), st.sampled_from([None, 0, 5]))
def test_ipfix_unknown_units_reset_the_expectation(
    start: int, units: list[int], unknown_at: int | None
) -> None:
    """An IPFIX message with a set for an unknown template has an unknown record count
    (units None): the next sequence number is then taken as it comes."""
    tracker = SequenceTracker()
    lost = 0
    sequence = start
    for index, count in enumerate(units):
        if index == unknown_at or index % 7 == 3:
            lost += tracker.observe(sequence, None)
            sequence = (sequence + count + 1000) % SEQUENCE_MODULUS  # we never knew how many
            continue
        lost += tracker.observe(sequence, count)
        sequence = (sequence + count) % SEQUENCE_MODULUS
    assert lost + tracker.flush() == 0


# --- NetFlow v9: exporters counting records instead of packets -----------------------


def v9_stream(start: int, records: list[int], counts_records: bool) -> list[tuple[int, int]]:
    messages, sequence = [], start
    for count in records:
        messages.append((sequence, count))
        sequence = (sequence + (count if counts_records else 1)) % SEQUENCE_MODULUS
    return messages


def observe_v9(tracker: SequenceTracker, messages: list[tuple[int, int]]) -> int:
    return sum(tracker.observe(sequence, 1, records) for sequence, records in messages)


@given(U32, st.lists(st.integers(1, 30), min_size=2, max_size=100))
def test_v9_counting_packets_loses_nothing(start: int, records: list[int]) -> None:
    tracker = SequenceTracker()
    assert observe_v9(tracker, v9_stream(start, records, counts_records=False)) == 0
    assert tracker.flush() == 0
    # packets of one record read the same either way: the tracker may stay undecided
    assert tracker.counts_records is False or set(records[:-1]) <= {1}


@given(U32, st.integers(2, 30), st.lists(st.integers(1, 30), min_size=1, max_size=100))
def test_v9_counting_records_is_detected_not_lost(
    start: int, first: int, records: list[int]
) -> None:
    """softflowd counts flows: sequence numbers advance by each packet's record count."""
    tracker = SequenceTracker()
    assert observe_v9(tracker, v9_stream(start, [first, *records], counts_records=True)) == 0
    assert tracker.flush() == 0
    assert tracker.counts_records is True


@given(U32, st.integers(2, 30), st.lists(st.integers(1, 30), min_size=4, max_size=60), st.data())
def test_v9_counting_records_still_counts_real_loss(
    start: int, first: int, records: list[int], data: st.DataObject
) -> None:
    messages = v9_stream(start, [first, *records], counts_records=True)
    dropped = data.draw(st.sets(st.integers(2, len(messages) - 2), max_size=5))
    tracker = SequenceTracker()
    lost = observe_v9(tracker, [m for i, m in enumerate(messages) if i not in dropped])
    assert lost + tracker.flush() == sum(messages[i][1] for i in dropped)


def test_v9_softflowd_example_starting_with_one_record() -> None:
    """The example of the module docstring: sequence 0, 1, 4, 5, 8 for packets of
    1, 3, 1, 3 records."""
    tracker = SequenceTracker()
    lost = observe_v9(tracker, [(0, 1), (1, 3), (4, 1), (5, 3), (8, 1)])
    assert lost + tracker.flush() == 0


# ======================================================================================
# timebase
# ======================================================================================

EXPORT_NS = st.integers(10**18, 2 * 10**18)
#: event ages relative to the header (ms), either side, within half the 32-bit wrap
AGES_MS = st.integers(-(2**31) + 1, 2**31 - 1)


def test_uptime_wrap_softflowd_example() -> None:
    """first=4294967295, header uptime 3381: 3382 ms before the export."""
    export = np.array([1430591888 * NS_PER_S + 280328000], dtype=np.int64)
    got = uptime_to_unix_ns(export, np.array([3381]), np.array([0xFFFFFFFF]))
    assert got.tolist() == [export[0] - 3382 * NS_PER_MS]
    got = uptime_to_unix_ns(export, np.array([3381]), np.array([2577]))
    assert got.tolist() == [export[0] - 804 * NS_PER_MS]


@given(st.lists(st.tuples(EXPORT_NS, U32, AGES_MS), min_size=1, max_size=50))
def test_uptime_to_unix_ns_across_the_wrap(rows: list[tuple[int, int, int]]) -> None:
    export = np.array([r[0] for r in rows], dtype=np.int64)
    header = np.array([r[1] for r in rows], dtype=np.int64)
    event = np.array([(r[1] - r[2]) % 2**32 for r in rows], dtype=np.uint32)
    got = uptime_to_unix_ns(export, header, event)
    assert got.dtype == np.int64
    assert got.tolist() == [r[0] - r[2] * NS_PER_MS for r in rows]


NTP_1970 = 2_208_988_800  # NTP seconds of 1970-01-01T00:00:00Z
NTP_2000 = 0xBC17C200  # 3155673600: 2000-01-01T00:00:00Z = Unix 946684800


@pytest.mark.parametrize(
    ("ntp", "micro", "expected_ns"),
    [
        (NTP_1970 << 32, False, 0),
        (NTP_1970 << 32, True, 0),
        ((NTP_1970 << 32) | 0x80000000, False, 500_000_000),  # half a second
        ((NTP_1970 << 32) | 0x80000000, True, 500_000_000),
        ((NTP_1970 << 32) | 0x40000000, False, 250_000_000),
        (NTP_2000 << 32, False, 946_684_800 * NS_PER_S),
        ((NTP_2000 << 32) | 1, False, 946_684_800 * NS_PER_S),  # 0.23 ns: floor
        ((NTP_2000 << 32) | 0xFFFFFFFF, False, 946_684_800 * NS_PER_S + 999_999_999),
        # microseconds ignore the fraction's 11 low bits (RFC 7011 §6.1.9):
        # 0xFFFFF800 / 2**32 s = 999999.523... µs
        ((NTP_2000 << 32) | 0xFFFFFFFF, True, 946_684_800 * NS_PER_S + 999_999_523),
        ((NTP_2000 << 32) | 0x000007FF, True, 946_684_800 * NS_PER_S),
        ((NTP_2000 << 32) | 0x00000800, True, 946_684_800 * NS_PER_S + 476),  # 2**11 / 2**32 s
        # 0xFFFFFFFF seconds: 2036-02-07T06:28:15Z, the end of NTP era 0
        ((0xFFFFFFFF << 32), False, (0xFFFFFFFF - NTP_1970) * NS_PER_S),
    ],
)
def test_ntp_to_unix_ns_known_values(ntp: int, micro: bool, expected_ns: int) -> None:
    assert ntp_to_unix_ns(np.array([ntp], dtype=np.uint64), micro).tolist() == [expected_ns]
    assert expected_ns == 0 or expected_ns // NS_PER_S == (ntp >> 32) - NTP_1970


@given(st.lists(st.integers(0, (2**32 - NTP_1970) * NS_PER_S - 1), min_size=1, max_size=20))
def test_ntp_nanoseconds_round_trip(times_ns: list[int]) -> None:
    """A time written with its fraction rounded up reads back to the nanosecond."""
    encoded = []
    for t in times_ns:
        seconds, nanos = divmod(t, NS_PER_S)
        fraction = -((-nanos << 32) // NS_PER_S)
        encoded.append(((seconds + NTP_1970) << 32) | fraction)
    got = ntp_to_unix_ns(np.array(encoded, dtype=np.uint64), microsecond_precision=False)
    assert got.tolist() == times_ns


WRAP_NS = 2**32 * NS_PER_MS


@given(
    st.lists(
        st.tuples(
            st.integers(10**18, 2 * 10**18),  # the exporter's boot (system init) time
            st.integers(0, 20),  # full uptime wraps since boot
            st.integers(0, 2**32 - 1),  # uptime within the current wrap
            st.integers(-(2**31) + 1, 2**31 - 1),  # export time minus event time, ms
        ),
        min_size=1,
        max_size=20,
    )
)
def test_uptime_since_init_counts_wraps(rows: list[tuple[int, int, int, int]]) -> None:
    """IPFIX flowStartSysUpTime with systemInitTimeMilliseconds: the event is boot +
    uptime + k wraps, the k putting it nearest the export time."""
    init = np.array([r[0] for r in rows], dtype=np.int64)
    uptime = np.array([r[2] for r in rows], dtype=np.int64)
    event = [r[0] + r[1] * WRAP_NS + r[2] * NS_PER_MS for r in rows]
    export = np.array(
        [e + r[3] * NS_PER_MS for e, r in zip(event, rows, strict=True)], dtype=np.int64
    )
    assert uptime_since_init_to_unix_ns(init, uptime, export).tolist() == event


def test_uptime_since_init_before_any_wrap() -> None:
    init = 1_600_000_000_000 * NS_PER_MS
    got = uptime_since_init_to_unix_ns(
        np.array([init]), np.array([5_000]), np.array([init + 6_000 * NS_PER_MS])
    )
    assert got.tolist() == [init + 5_000 * NS_PER_MS]


# --- resolve_flow_times: what each template's evidence gives -------------------------

EXPORT = 1_600_000_000 * NS_PER_S


def clock(rows: int = 1, uptime: int | None = None, init: int | None = None) -> ExportClock:
    return ExportClock(
        np.full(rows, EXPORT, dtype=np.int64),
        None if uptime is None else np.full(rows, uptime, dtype=np.int64),
        None if init is None else np.full(rows, init, dtype=np.int64),
    )


def ms_field(values_ms: list[int]) -> TimeField:
    return TimeField(ElementKind.DATETIME_MILLISECONDS, np.array(values_ms, dtype=np.uint64))


def duration(values: list[int], micro: bool = False) -> TimeField:
    kind = ElementKind.DURATION_MICROSECONDS if micro else ElementKind.DURATION_MILLISECONDS
    return TimeField(kind, np.array(values, dtype=np.uint64))


T0_MS = 1_599_999_000_000


def test_start_and_end() -> None:
    start, end = resolve_flow_times(ms_field([T0_MS]), ms_field([T0_MS + 7]), None, None, clock())
    assert (start.tolist(), end.tolist()) == ([T0_MS * NS_PER_MS], [(T0_MS + 7) * NS_PER_MS])


@pytest.mark.parametrize("micro", [False, True])
def test_start_and_duration(micro: bool) -> None:
    start, end = resolve_flow_times(
        ms_field([T0_MS, T0_MS]), None, duration([0, 1500], micro), None, clock(2)
    )
    scale = 1_000 if micro else NS_PER_MS
    assert start.tolist() == [T0_MS * NS_PER_MS] * 2
    assert end.tolist() == [T0_MS * NS_PER_MS, T0_MS * NS_PER_MS + 1500 * scale]


def test_end_and_duration() -> None:
    start, end = resolve_flow_times(None, ms_field([T0_MS]), duration([250]), None, clock())
    assert start.tolist() == [(T0_MS - 250) * NS_PER_MS]
    assert end.tolist() == [T0_MS * NS_PER_MS]


def test_only_a_start_is_also_the_end() -> None:
    start, end = resolve_flow_times(ms_field([T0_MS]), None, None, None, clock())
    assert start.tolist() == end.tolist() == [T0_MS * NS_PER_MS]


def test_only_an_end_is_also_the_start() -> None:
    start, end = resolve_flow_times(None, ms_field([T0_MS]), None, None, clock())
    assert start.tolist() == end.tolist() == [T0_MS * NS_PER_MS]


def test_neither_takes_the_observation_time() -> None:
    observed = np.array([T0_MS * NS_PER_MS + 5], dtype=np.int64)
    start, end = resolve_flow_times(None, None, None, observed, clock())
    assert start.tolist() == end.tolist() == [T0_MS * NS_PER_MS + 5]
    # a duration without start or end does not move the observation time
    start, end = resolve_flow_times(None, None, duration([9]), observed, clock())
    assert start.tolist() == end.tolist() == [T0_MS * NS_PER_MS + 5]


def test_neither_takes_the_export_time() -> None:
    start, end = resolve_flow_times(None, None, None, None, clock(3))
    assert start.tolist() == end.tolist() == [EXPORT] * 3


def test_ipfix_uptime_without_init_keeps_the_span_and_ends_at_export() -> None:
    """No systemInitTimeMilliseconds known: the flow's duration survives, anchored so
    that it ends at the export time (also across the 32-bit wrap)."""
    start = TimeField(
        ElementKind.SYSUPTIME_MILLISECONDS, np.array([1000, 0xFFFFFF00], dtype=np.uint64)
    )
    end = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, np.array([3500, 0x100], dtype=np.uint64))
    got_start, got_end = resolve_flow_times(start, end, None, None, clock(2))
    assert got_end.tolist() == [EXPORT, EXPORT]
    assert got_start.tolist() == [EXPORT - 2500 * NS_PER_MS, EXPORT - 0x200 * NS_PER_MS]


def test_ipfix_uptime_with_init_known_for_some_rows() -> None:
    init = T0_MS * NS_PER_MS
    clock_ = ExportClock(
        np.full(2, EXPORT, dtype=np.int64), None, np.array([init, UNKNOWN_NS], dtype=np.int64)
    )
    start = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, np.array([100, 100], dtype=np.uint64))
    end = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, np.array([400, 400], dtype=np.uint64))
    got_start, got_end = resolve_flow_times(start, end, None, None, clock_)
    assert got_start.tolist() == [init + 100 * NS_PER_MS, EXPORT - 300 * NS_PER_MS]
    assert got_end.tolist() == [init + 400 * NS_PER_MS, EXPORT]


def test_v9_uptime_uses_the_header() -> None:
    start = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, np.array([0xFFFFFFFF], dtype=np.uint64))
    got_start, got_end = resolve_flow_times(start, None, duration([10]), None, clock(uptime=3381))
    assert got_start.tolist() == [EXPORT - 3382 * NS_PER_MS]
    assert got_end.tolist() == [EXPORT - 3372 * NS_PER_MS]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (ElementKind.DATETIME_SECONDS, 1_600_000_000, 1_600_000_000 * NS_PER_S),
        (ElementKind.DATETIME_MILLISECONDS, 1_600_000_000_123, 1_600_000_000_123 * NS_PER_MS),
        (ElementKind.DELTA_MICROSECONDS, 1_500_000, EXPORT - 1_500_000_000),
        (ElementKind.DATETIME_NANOSECONDS, (NTP_2000 << 32) | 0x80000000, 946_684_800_500_000_000),
        (ElementKind.DATETIME_MICROSECONDS, (NTP_2000 << 32) | 0x80000000, 946_684_800_500_000_000),
    ],
)
def test_time_field_kinds(kind: ElementKind, value: int, expected: int) -> None:
    field = TimeField(kind, np.array([value], dtype=np.uint64))
    converted, known = time_field_to_unix_ns(field, clock())
    assert converted.tolist() == [expected]
    assert known.tolist() == [True]


def test_ipfix_uptime_without_init_is_unknown() -> None:
    field = TimeField(ElementKind.SYSUPTIME_MILLISECONDS, np.array([5], dtype=np.uint64))
    _, known = time_field_to_unix_ns(field, clock())
    assert known.tolist() == [False]
    _, known = time_field_to_unix_ns(field, clock(init=UNKNOWN_NS))
    assert known.tolist() == [False]
