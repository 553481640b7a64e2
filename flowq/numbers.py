"""nfdump's number forms: scaled counts (``1.2 M``), plain numbers (``-N``), rates and
durations, for one value or a whole column at once.

Everything here reproduces nfdump 1.7.1's C arithmetic, because users compare the two
outputs digit by digit:

- Scaling uses powers of 1000 (``M`` = 10^6, ``G`` = 10^9, ``T`` = 10^12) with one
  decimal (``%.1f``); below a million a number is printed whole. Fixed-width columns pad
  the scaled form to ``%5.1f M`` and small numbers to four characters (``%4.0f``), and
  the caller right-aligns the result in its column.
- Rates are C's ``(uint64_t)(count / (duration_ms / 1000.0))``: doubles, truncated
  toward zero; 0 when the duration is 0. Bits per second shift the byte count left by 3
  in 64 bits first, as nfdump does.
- Bytes per packet is an integer division truncated to 32 bits (nfdump's ``uint32_t
  Bpp``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MEGA: Final = 1000.0 * 1000.0
_GIGA: Final = _MEGA * 1000.0
_TERA: Final = _GIGA * 1000.0
_SCALES: Final = ((_TERA, "T"), (_GIGA, "G"), (_MEGA, "M"))
_U64_MASK: Final = (1 << 64) - 1
_MS_PER_DAY: Final = 86_400_000


def format_number(value: int, *, plain: bool, fixed_width: bool = False) -> str:
    """One count as nfdump prints it: ``1.5 M`` (or ``  1.5 M`` in a fixed-width
    column), the plain integer below 10^6 or with ``plain`` (``-N``)."""
    if plain:
        return str(value)
    number = float(value)
    for scale, unit in _SCALES:
        if number >= scale:
            return _scaled_pattern(unit, fixed_width) % (number / scale)
    return f"{number:4.0f}" if fixed_width else f"{number:.0f}"


def _scaled_pattern(unit: str, fixed_width: bool) -> str:
    """nfdump's ``%5.1f M`` / ``%.1f M`` (Python's % rounds like C's printf)."""
    return f"%5.1f {unit}" if fixed_width else f"%.1f {unit}"


def format_numbers(values: np.ndarray, *, plain: bool, fixed_width: bool = False) -> pa.Array:
    """``format_number`` over a column of counts (uint64), as an Arrow string array.

    Vectorized: the integer text comes from Arrow; only the scaled values (10^6 and
    more, a small share of most flow dumps) are formatted one by one.
    """
    counts = np.asarray(values, dtype=np.uint64)
    text = pc.cast(pa.array(counts, type=pa.uint64()), pa.string())
    if plain:
        return text
    if fixed_width:
        text = pc.utf8_lpad(text, width=4, padding=" ")
    big = counts >= np.uint64(1_000_000)
    if not big.any():
        return text
    numbers = counts[big].astype(np.float64)
    scaled = np.empty(len(numbers), dtype=object)
    upper = np.inf
    for scale, unit in _SCALES:
        in_unit = (numbers >= scale) & (numbers < upper)
        if in_unit.any():
            pattern = _scaled_pattern(unit, fixed_width)
            scaled[in_unit] = [pattern % v for v in (numbers[in_unit] / scale).tolist()]
        upper = scale
    return pc.replace_with_mask(text, pa.array(big), pa.array(scaled, type=pa.string()))


def per_second(counts: np.ndarray, duration_ms: np.ndarray) -> np.ndarray:
    """``count / seconds`` truncated to uint64; 0 where the duration is 0."""
    seconds = np.asarray(duration_ms, dtype=np.uint64).astype(np.float64) / 1000.0
    counts_f = np.asarray(counts, dtype=np.uint64).astype(np.float64)
    rate = np.zeros(len(counts_f), dtype=np.float64)
    np.divide(counts_f, seconds, out=rate, where=seconds > 0)
    return _truncate_to_u64(rate)


def bits_per_second(byte_counts: np.ndarray, duration_ms: np.ndarray) -> np.ndarray:
    """nfdump's bps: ``(bytes << 3) / seconds`` (the shift wraps in 64 bits, as in C)."""
    bits = np.left_shift(np.asarray(byte_counts, dtype=np.uint64), np.uint64(3))
    return per_second(bits, duration_ms)


def bytes_per_packet(byte_counts: np.ndarray, packet_counts: np.ndarray) -> np.ndarray:
    """nfdump's Bpp: ``bytes / packets`` in integers, truncated to 32 bits; 0 without
    packets."""
    byte_counts = np.asarray(byte_counts, dtype=np.uint64)
    packets = np.asarray(packet_counts, dtype=np.uint64)
    quotient = np.zeros(len(packets), dtype=np.uint64)
    np.floor_divide(byte_counts, packets, out=quotient, where=packets > 0)
    return quotient & np.uint64(0xFFFFFFFF)


def rate(count: int, duration_ms: int) -> int:
    """``per_second`` for one value (the summary line's averages)."""
    if duration_ms <= 0:
        return 0
    return _truncate_scalar(float(count & _U64_MASK) / (float(duration_ms) / 1000.0))


def bit_rate(byte_count: int, duration_ms: int) -> int:
    """``bits_per_second`` for one value."""
    return rate((byte_count << 3) & _U64_MASK, duration_ms)


def duration_texts(duration_ms: np.ndarray, *, plain: bool) -> pa.Array:
    """nfdump's ``%td`` column: ``    hh:mm:ss.mmm``, `` Nd hh:mm:ss.mmm`` past a day
    (16 characters until 100 days), or ``%16.3f`` seconds with ``plain``."""
    ms = np.asarray(duration_ms, dtype=np.int64)
    milli = _padded(ms % 1000, 3)
    if plain:
        whole = pc.cast(pa.array(ms // 1000), pa.string())
        return pc.utf8_lpad(pc.binary_join_element_wise(whole, milli, "."), width=16)
    days = ms // _MS_PER_DAY
    rest = ms % _MS_PER_DAY
    clock = pc.binary_join_element_wise(
        _padded(rest // 3_600_000, 2),
        _padded(rest // 60_000 % 60, 2),
        pc.binary_join_element_wise(_padded(rest // 1000 % 60, 2), milli, "."),
        ":",
    )
    if not days.any():
        return pc.binary_join_element_wise(pa.scalar("    "), clock, "")
    day_text = pc.binary_join_element_wise(
        pc.utf8_lpad(pc.cast(pa.array(days), pa.string()), width=2), pa.scalar("d "), ""
    )
    prefix = pc.if_else(pa.array(days > 0), day_text, pa.scalar("    "))
    return pc.binary_join_element_wise(prefix, clock, "")


def duration_text(duration_ms: int, *, plain: bool) -> str:
    """``duration_texts`` for one value."""
    return str(duration_texts(np.array([duration_ms], dtype=np.int64), plain=plain)[0])


def _padded(values: np.ndarray, width: int) -> pa.Array:
    text = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(text, width=width, padding="0")


def _truncate_to_u64(values: np.ndarray) -> np.ndarray:
    """C's double -> uint64_t conversion for the values nfdump can meet (0 <= v < 2^64)."""
    clipped = np.clip(np.trunc(values), 0.0, np.nextafter(2.0**64, 0.0))
    return clipped.astype(np.uint64)


def _truncate_scalar(value: float) -> int:
    return max(0, min(int(value), _U64_MASK))
