"""Export sequence numbers: how many records the exporters say we never received.

Each version counts something else (RFC 3954 §5.1, RFC 7011 §3.1): NetFlow v5 counts
flows, v9 counts export packets, IPFIX counts data records, each per exporter and
observation domain / source id. UDP reorders, so a gap is only counted as lost once
``REORDER_WINDOW`` later messages have arrived without filling it; a jump backwards or
forwards by more than ``MAX_PLAUSIBLE_GAP`` is an exporter restart, not a loss.

Some v9 exporters count flows instead of packets (softflowd: sequence 0, 1, 4, 5, 8
for packets of 1, 3, 1, 3 records). Given both unit counts, a v9 stream learns which
one its exporter uses from the first two messages instead of reporting false losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

SEQUENCE_MODULUS: Final = 1 << 32
#: Messages a gap waits to be filled by a late datagram before it counts as lost.
REORDER_WINDOW: Final = 64
#: A forward jump larger than this is a restart or a counter reset, not a loss (a
#: 10 Gb/s vDS exports ~10^6 records/s; losing a million in one gap means the stream
#: restarted).
MAX_PLAUSIBLE_GAP: Final = 1_000_000


@dataclass(slots=True)
class SequenceTracker:
    """One (exporter, version, domain) stream of sequence numbers."""

    expected: int | None = None
    lost: int = 0  # confirmed
    restarts: int = 0
    messages: int = 0
    #: open gaps: [first missing, end) in sequence units, with the message index seen
    gaps: list[list[int]] = field(default_factory=list)
    #: v9 only: None until known, then whether the exporter counts records, not packets
    counts_records: bool | None = None
    _previous: tuple[int, int] | None = None  # (sequence, records) of the last message

    def observe(self, sequence: int, units: int | None, records: int | None = None) -> int:
        """Record a message with ``sequence`` carrying ``units`` (flows, 1 packet, or
        data records; None if unknown, e.g. an IPFIX set whose template is missing).
        ``records`` (v9 only) is its record count, for exporters that count records.

        Returns the records newly confirmed lost.
        """
        if records is not None:
            units = self._v9_units(sequence, records)
        self.messages += 1
        newly_lost = self._confirm_old_gaps()
        if self.expected is None:
            self.expected = None if units is None else (sequence + units) % SEQUENCE_MODULUS
            return newly_lost
        distance = (sequence - self.expected) % SEQUENCE_MODULUS
        if distance == 0:
            pass
        elif distance < SEQUENCE_MODULUS // 2:  # ahead: a gap
            if distance > MAX_PLAUSIBLE_GAP:
                self._restart()
            else:
                self.gaps.append([self.expected, sequence, self.messages])
        else:  # behind: late, duplicate, or a restart
            behind = SEQUENCE_MODULUS - distance
            if behind > MAX_PLAUSIBLE_GAP:
                self._restart()
            else:
                self._fill(sequence, 1 if units is None else max(units, 1))
                return newly_lost  # a late message does not move the expectation
        self.expected = None if units is None else (sequence + units) % SEQUENCE_MODULUS
        return newly_lost

    def _v9_units(self, sequence: int, records: int) -> int | None:
        previous, self._previous = self._previous, (sequence, records)
        if self.counts_records is None and previous is not None:
            step = (sequence - previous[0]) % SEQUENCE_MODULUS
            # after a 1-record packet a step of 1 fits both readings: stay undecided
            if previous[1] != 1:
                if step == previous[1]:
                    self.counts_records = True
                    self.expected = sequence
                elif step == 1:
                    self.counts_records = False
        if self.counts_records is None:
            if records == 1:
                return 1  # both readings advance by one
            self.expected = None  # not known yet: do not guess a loss
            return None
        return records if self.counts_records else 1

    def _restart(self) -> None:
        self.restarts += 1
        self.gaps.clear()

    def _fill(self, sequence: int, units: int) -> None:
        """A late message covers [sequence, sequence + units) of some open gaps."""
        remaining: list[list[int]] = []
        for first, stop, seen in self.gaps:
            # offsets relative to the gap start, so wrap-around needs no special case
            size = (stop - first) % SEQUENCE_MODULUS
            into = (sequence - first) % SEQUENCE_MODULUS
            before = (first - sequence) % SEQUENCE_MODULUS
            if into < size:
                lo, hi = into, min(size, into + units)
            elif before < units:
                lo, hi = 0, min(size, units - before)
            else:
                remaining.append([first, stop, seen])
                continue
            if lo > 0:
                remaining.append([first, (first + lo) % SEQUENCE_MODULUS, seen])
            if hi < size:
                remaining.append([(first + hi) % SEQUENCE_MODULUS, stop, seen])
        self.gaps = remaining

    def _confirm_old_gaps(self) -> int:
        if not self.gaps:
            return 0
        confirmed = 0
        keep: list[list[int]] = []
        for gap in self.gaps:
            if self.messages - gap[2] > REORDER_WINDOW:
                confirmed += (gap[1] - gap[0]) % SEQUENCE_MODULUS
            else:
                keep.append(gap)
        self.gaps = keep
        self.lost += confirmed
        return confirmed

    def flush(self) -> int:
        """Confirm every open gap now (end of a capture file); return newly lost."""
        confirmed = sum((stop - first) % SEQUENCE_MODULUS for first, stop, _ in self.gaps)
        self.gaps.clear()
        self.lost += confirmed
        return confirmed

    @property
    def pending(self) -> int:
        """Records missing but still within the reorder window."""
        return sum((stop - first) % SEQUENCE_MODULUS for first, stop, _ in self.gaps)
