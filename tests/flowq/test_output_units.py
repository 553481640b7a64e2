"""The pieces of flowq's output: number scaling, rates, durations, flags, format parsing,
value texts and the summary's bookkeeping."""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowq.flags import FLAG_BITS, flags_text, flags_texts
from flowq.numbers import (
    bits_per_second,
    bytes_per_packet,
    duration_text,
    duration_texts,
    format_number,
    format_numbers,
    per_second,
)
from flowq.output import (
    FormatKind,
    ProcessTimes,
    RecordWriter,
    Summary,
    parse_output_format,
    write_summary,
)
from flowq.output_machine import (
    RECORD_EXTRA_FIELDS,
    RECORD_FIELDS,
    csv_block,
    csv_cells,
    csv_parts,
    field_values,
    iso_times,
    json_values,
)
from flowq.output_text import (
    ADDRESS_COLUMNS,
    TOKEN_READS,
    TextLayout,
    address_texts,
    protocol_name,
    time_text,
    time_texts,
)
from storage.schema import FLOW_SCHEMA

#: the contract's "Field names (core)" paragraph, as written there
CONTRACT_CORE_TEXT = (
    "time_start, time_end, proto, src_addr, src_port, dst_addr, dst_port, tcp_flags, tos, "
    "packets, bytes, in_if, out_if, src_as, dst_as, src_mask, dst_mask, next_hop, exporter, "
    "observation_domain, time_received, sampling_interval"
)
CONTRACT_CORE_FIELDS = tuple(CONTRACT_CORE_TEXT.split(", "))
T0_MS = 1_795_860_300_123  # 2026-11-28 10:05:00.123 UTC


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "plain", "fixed", "text"),
    [
        (0, False, False, "0"),
        (0, False, True, "   0"),
        (999_999, False, False, "999999"),
        (999_999, False, True, "999999"),
        (1_000_000, False, False, "1.0 M"),
        (1_000_000, False, True, "  1.0 M"),
        (1_050_000, False, False, "1.1 M"),  # 1.05 is 1.0500000000000000444 as a double
        (999_950_000, False, True, "1000.0 M"),
        (1_000_000_000, False, False, "1.0 G"),
        (1_500_000_000_000, False, True, "  1.5 T"),
        (2**64 - 1, False, False, "18446744.1 T"),
        (2**64 - 1, True, False, "18446744073709551615"),
        (1_234_567, True, True, "1234567"),
    ],
)
def test_format_number(value: int, plain: bool, fixed: bool, text: str) -> None:
    assert format_number(value, plain=plain, fixed_width=fixed) == text


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("plain", [False, True])
def test_format_numbers_is_format_number_per_value(plain: bool, fixed: bool) -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.integers(0, 2**63, 300, dtype=np.uint64)
            >> rng.integers(0, 63, 300).astype(np.uint64),
            np.array([0, 999_999, 1_000_000, 10**9 - 1, 10**9, 10**12, 2**64 - 1], np.uint64),
        ]
    )
    expected = [format_number(int(v), plain=plain, fixed_width=fixed) for v in values]
    assert format_numbers(values, plain=plain, fixed_width=fixed).to_pylist() == expected


def test_rates_truncate_like_c() -> None:
    byte_counts = np.array([5000, 400, 60, 1_000_000, 2**61 + 1, 0], np.uint64)
    packets = np.array([10, 3, 1, 999_999, 2, 0], np.uint64)
    duration_ms = np.array([1500, 2000, 0, 7, 1000, 10], np.uint64)
    assert per_second(packets, duration_ms).tolist() == [6, 1, 0, 142_857_000, 2, 0]
    # (2**61 + 1) << 3 wraps to 8 in 64 bits, as in nfdump's C
    assert bits_per_second(byte_counts, duration_ms).tolist() == [
        26666,
        1600,
        0,
        1_142_857_142,
        8,
        0,
    ]
    assert bytes_per_packet(byte_counts, packets).tolist() == [
        500,
        133,
        60,
        1,
        (2**61 + 1) // 2 & 0xFFFFFFFF,
        0,
    ]


@pytest.mark.parametrize(
    ("ms", "plain", "text"),
    [
        (0, False, "    00:00:00.000"),
        (1500, False, "    00:00:01.500"),
        (3_600_000 * 23 + 59 * 60_000 + 59_999, False, "    23:59:59.999"),
        (86_400_000, False, " 1d 00:00:00.000"),
        (123 * 86_400_000 + 1, False, "123d 00:00:00.001"),
        (0, True, "           0.000"),
        (90_061_001, True, "       90061.001"),
    ],
)
def test_duration(ms: int, plain: bool, text: str) -> None:
    assert duration_text(ms, plain=plain) == text
    assert duration_texts(np.array([ms, 0]), plain=plain)[0].as_py() == text


# -- flags and protocols ---------------------------------------------------------------------


def test_flags() -> None:
    assert flags_text(0x1B) == "...AP.SF"
    assert flags_text(0x02) == "......S."
    assert flags_text(0xFF) == "CEUAPRSF"
    assert flags_text(0) == "........"
    assert FLAG_BITS["S"] == 0x02 and FLAG_BITS["C"] == 0x80
    texts = flags_texts(np.array([0x1B, 0x1B, 0x112]), np.array([6, 17, 6]))
    assert texts.to_pylist() == ["...AP.SF", "........", "...A..S."]


def test_protocol_names() -> None:
    assert [protocol_name(p) for p in (0, 1, 6, 17, 58, 94, 137, 138, 255)] == [
        "0",
        "ICMP",
        "TCP",
        "UDP",
        "ICMP6",
        "OS",
        "MPLS",
        "138",
        "255",
    ]
    assert protocol_name(6, plain=True) == "6"


# -- format parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("line", FormatKind.LINE),
        ("LONG", FormatKind.LONG),
        ("extended", FormatKind.EXTENDED),
        ("csv", FormatKind.CSV),
        ("Json", FormatKind.JSON),
        ("ndjson", FormatKind.NDJSON),
        ("fmt:%ts %sa", FormatKind.FMT),
        ("FMT:%ts", FormatKind.FMT),
    ],
)
def test_parse_output_format(text: str, kind: FormatKind) -> None:
    fmt = parse_output_format(text)
    assert fmt.kind is kind
    assert fmt.is_text == (kind not in (FormatKind.CSV, FormatKind.JSON, FormatKind.NDJSON))
    assert fmt.prints_summary == fmt.is_text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lines", "unknown output format 'lines'"),
        ("pipe", "unknown output format 'pipe'"),
        ("fmt:", "empty fmt: format"),
        ("fmt:%ts %xyz", "unknown fmt token '%xyz' at column 5"),
        ("fmt:%tsr", "unknown fmt token '%tsr' at column 1"),
        ("fmt:%", "unknown fmt token '%' at column 1"),
        ("fmt:%line %xx", "unknown fmt token '%xx' at column 7"),
    ],
)
def test_parse_output_format_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_output_format(text)


def test_fmt_headers_as_nfdump() -> None:
    # nfdump 1.7.1: nfdump -o 'fmt:%ts %sa' prints this header
    assert TextLayout.parse("%ts %sa").header() == "Date first seen              Src IP Addr"
    assert TextLayout.parse("%pr|%in").header() == "Proto  Input"
    line = parse_output_format("line").layout
    assert line is not None
    assert TextLayout.parse("%line").pieces == line.pieces
    assert TextLayout.parse("%line %ra").pieces[: len(line.pieces)] == line.pieces
    assert (
        TextLayout.parse("%ts:%te").header()
        == "Date first seen        " + " " + "Date last seen         "
    )


def test_literal_only_fmt() -> None:
    out = io.StringIO()
    writer = RecordWriter(
        parse_output_format("fmt:flow!"), out, utc=True, plain_numbers=False, quiet=True
    )
    writer.write_batch(pa.RecordBatch.from_pydict({"proto": pa.array([6, 17], pa.uint8())}))
    assert out.getvalue() == "flow!\nflow!\n"


# -- value texts ---------------------------------------------------------------------------


def test_address_texts_merge_ipv4_and_ipv6() -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "src_addr": pa.array([0x0A000001, None, None, 0xFFFFFFFF], pa.uint32()),
            "src_addr6": pa.array(
                [None, ipaddress.IPv6Address("2001:db8::1").packed, None, None], pa.binary(16)
            ),
        }
    )
    assert address_texts(batch, "src_addr").to_pylist() == [
        "10.0.0.1",
        "2001:db8::1",
        None,
        "255.255.255.255",
    ]
    assert address_texts(batch, "dst_addr").to_pylist() == [None] * 4
    assert ADDRESS_COLUMNS["tenant_src_addr"] == "tenant_src_addr6"
    assert ADDRESS_COLUMNS["exporter"] == "exporter6"


@pytest.fixture
def new_york() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_time_texts_local_and_utc(new_york: None) -> None:
    ms = np.array([T0_MS, 0, T0_MS - 120 * 86_400_000])  # November (EST), July (EDT)
    assert time_texts(ms, utc=True).to_pylist() == [
        "2026-11-28 10:05:00.123",
        "0000-00-00 00:00:00.000",
        "2026-07-31 10:05:00.123",
    ]
    assert time_texts(ms, utc=False).to_pylist() == [
        "2026-11-28 05:05:00.123",
        "0000-00-00 00:00:00.000",
        "2026-07-31 06:05:00.123",
    ]
    assert time_text(T0_MS, utc=False) == "2026-11-28 05:05:00.123"


def test_iso_times_are_utc_with_milliseconds(new_york: None) -> None:
    times = pa.array([T0_MS, None, 0], pa.timestamp("ms", tz="UTC"))
    assert iso_times(times).to_pylist() == [
        "2026-11-28T10:05:00.123Z",
        None,
        "1970-01-01T00:00:00.000Z",
    ]


def test_record_fields_follow_the_contract() -> None:
    assert RECORD_FIELDS[: len(CONTRACT_CORE_FIELDS)] == CONTRACT_CORE_FIELDS
    assert all(name in FLOW_SCHEMA.names for name in RECORD_EXTRA_FIELDS)
    assert len(set(RECORD_FIELDS)) == len(RECORD_FIELDS)


def test_csv_and_json_escape_free_text() -> None:
    text = pa.array(["a,b", 'say "hi"', "plain", None, "line\nbreak"])
    assert csv_cells(text).to_pylist() == ['"a,b"', '"say ""hi"""', "plain", "", '"line\nbreak"']
    values = json_values(text).to_pylist()
    assert [json.loads(v) for v in values] == ["a,b", 'say "hi"', "plain", None, "line\nbreak"]
    assert json_values(pa.array([1, None], pa.uint64())).to_pylist() == ["1", "null"]
    assert csv_cells(pa.array([b"\x00\xff"], pa.binary())).to_pylist() == ["00ff"]


@pytest.mark.parametrize("free_text", ["plain", "a,b", 'say "hi"', "two\nlines"])
def test_csv_block_is_the_joined_cells(free_text: str) -> None:
    """Arrow's CSV writer (no cell needs quotes) and the compute-kernel join (one does)
    give the same bytes: addresses of both families, nulls, times, binary as hex."""
    batch = pa.RecordBatch.from_pydict({
        "time_start": pa.array([1_763_800_000_123, None, 5], pa.timestamp("ms", tz="UTC")),
        "proto": pa.array([6, 17, None], pa.uint8()),
        "src_addr": pa.array([0x0A000001, None, 0x0A000001], pa.uint32()),
        "src_addr6": pa.array([None, bytes.fromhex("20010db8" + "0" * 23 + "1"), None],
                              pa.binary(16)),
        "bytes": pa.array([2**64 - 1, 0, 7], pa.uint64()),
        "note": pa.array([free_text, None, "x"], pa.string()),
        "mac": pa.array([b"\x00\xff", None, b""], pa.binary()),
    })  # fmt: skip
    fields = ["time_start", "proto", "src_addr", "bytes", "note", "mac", "dst_port"]
    lines = pc.binary_join_element_wise(*csv_parts(batch, fields), "").to_pylist()
    expected = "".join(f"{line}\n" for line in lines)
    assert csv_block(batch, fields).decode() == expected
    assert expected.startswith("2025-11-22T08:26:40.123Z,6,10.0.0.1,18446744073709551615,")
    assert ",2001:db8::1,0,,," in expected  # the IPv6 row; a missing column is empty


def test_field_values_of_a_missing_column_are_null() -> None:
    batch = pa.RecordBatch.from_pydict({"proto": pa.array([6], pa.uint8())})
    assert field_values(batch, "time_start").to_pylist() == [None]
    assert field_values(batch, "src_addr").to_pylist() == [None]
    assert field_values(batch, "packets").to_pylist() == [None]


# -- summary -------------------------------------------------------------------------------


def _flows(
    starts: list[int],
    ends: list[int],
    packets: list[int],
    byte_counts: list[int],
    flows: list[int | None] | None = None,
) -> pa.RecordBatch:
    ms = pa.timestamp("ms", tz="UTC")
    columns = {
        "time_start": pa.array(starts, ms),
        "time_end": pa.array(ends, ms),
        "packets": pa.array(packets, pa.uint64()),
        "bytes": pa.array(byte_counts, pa.uint64()),
    }
    if flows is not None:
        columns["flows"] = pa.array(flows, pa.uint64())
    return pa.RecordBatch.from_pydict(columns)


def _summary_text(summary: Summary, plain: bool = False) -> str:
    out = io.StringIO()
    write_summary(out, summary, plain_numbers=plain, utc=True)
    return out.getvalue()


def test_summary_adds_up_batches() -> None:
    first = _flows([T0_MS, T0_MS + 1000], [T0_MS + 500, T0_MS + 5000], [2, 1], [329, 100])
    second = _flows([T0_MS - 2000], [T0_MS], [3], [4_000_000], flows=[None])
    summary, other = Summary(), Summary()
    for batch in (first, second):
        summary.add_passed(batch)
        summary.add_processed(batch)
    other.add_passed(pa.Table.from_batches([first]).to_batches()[0])
    part = Summary()
    part.add_passed(second)
    other.merge(part)
    assert (summary.flows, summary.packets, summary.bytes) == (3, 6, 4_000_429)
    assert (summary.first_ms, summary.last_ms) == (T0_MS - 2000, T0_MS + 5000)
    assert (other.flows, other.packets, other.bytes) == (3, 6, 4_000_429)
    # 7 s span: 4000429 * 8 / 7 = 4571918.857, 6 / 7 = 0.857, 4000429 / 6 = 666738.17
    assert _summary_text(summary).splitlines() == [
        "Summary: total flows: 3, total bytes: 4.0 M, total packets: 6, avg bps: 4.6 M, "
        "avg pps: 0, avg bpp: 666738",
        "Time window: 2026-11-28 10:04:58 - 2026-11-28 10:05:05",
        "Total flows processed: 3, passed: 3, Blocks skipped: 0, Bytes read: 0",
    ]
    assert "avg bps: 4571918," in _summary_text(summary, plain=True)


def test_summary_flow_counts_and_zero_span() -> None:
    summary = Summary()
    summary.add_passed(_flows([T0_MS, T0_MS], [T0_MS, T0_MS], [1, 1], [229, 229], [5, 0]))
    assert summary.flows == 6  # a record without a flow count is one flow
    # nfdump: without a time span every average is 0, bytes per packet too
    assert _summary_text(summary).startswith(
        "Summary: total flows: 6, total bytes: 458, total packets: 2, avg bps: 0, avg pps: 0, "
        "avg bpp: 0\n"
    )


def test_summary_window_clip_and_times() -> None:
    summary = Summary(records_processed=34, blocks_skipped=1, bytes_read=4284)
    assert "Time window: <unknown>\n" in _summary_text(summary)
    summary.add_window(T0_MS, T0_MS + 3_600_000)
    summary.add_window(T0_MS - 1000, None)
    summary.clip_window(T0_MS + 60_000, None)
    summary.times = ProcessTimes(sys_s=0.0, user_s=0.0017, wall_s=0.0015, runtime_s=0.0016)
    assert _summary_text(summary).splitlines()[1:] == [
        "Time window: 2026-11-28 10:06:00 - 2026-11-28 11:05:00",
        "Total flows processed: 34, passed: 0, Blocks skipped: 1, Bytes read: 4284",
        "Sys: 0.0000s User: 0.0017s Wall: 0.0015s flows/second: 22666.7 Runtime: 0.0016s",
    ]


def _every_token_column_batch(rows: int = 64) -> pa.RecordBatch:
    """Non-null, varied values in every column a token can read (ICMP and IPv6 rows
    included), so a token reading a column outside its ``TOKEN_READS`` shows it."""
    rng = np.random.default_rng(5)
    columns: dict[str, pa.Array] = {}
    for field in FLOW_SCHEMA:  # every column, not only those TOKEN_READS names
        name, kind = field.name, field.type
        if pa.types.is_timestamp(kind):
            values = 1_763_800_000_000 + rng.integers(0, 600_000, rows)
            columns[name] = pa.array(values, pa.int64()).cast(kind)
        elif pa.types.is_fixed_size_binary(kind):
            width = kind.byte_width
            columns[name] = pa.array(
                [bytes(rng.integers(0, 256, width, dtype=np.uint8)) if i % 3 == 0 else None
                 for i in range(rows)], kind)  # fmt: skip
        elif pa.types.is_integer(kind):
            top = min(2**kind.bit_width, 2**31)
            columns[name] = pa.array(rng.integers(1, top, rows), pa.int64()).cast(kind)
    columns["proto"] = pa.array(rng.choice([1, 6, 17, 58], rows), pa.uint8())
    return pa.RecordBatch.from_pydict(columns)


@pytest.mark.parametrize("token", sorted(TOKEN_READS))
def test_each_token_reads_only_its_columns(token: str) -> None:
    """A record dump reads the columns of its layout's tokens only: each token renders
    the same from those columns as from all of them."""
    batch = _every_token_column_batch()
    layout = TextLayout.parse(f"%{token}")
    assert layout.reads == list(TOKEN_READS[token])
    narrow = batch.select([name for name in layout.reads if name in batch.schema.names])
    for plain in (False, True):
        assert layout.render(narrow, utc=True, plain=plain).to_pylist() == (
            layout.render(batch, utc=True, plain=plain).to_pylist()
        )
