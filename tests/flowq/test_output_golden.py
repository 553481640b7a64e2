"""Every ``-o`` format on the fixed dataset, byte for byte against ``tests/golden/``
(UTC times, as with ``TZ=UTC``), and the machine formats read back into the values
they came from."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import Callable
from datetime import datetime

import pyarrow as pa
import pytest

from flowq.output import (
    RECORD_FIELDS,
    RecordWriter,
    Summary,
    parse_output_format,
    write_summary,
)
from flowq.output_text import ADDRESS_COLUMNS, TOKENS

GoldenCheck = Callable[[str, str], None]

ALL_TOKENS_FMT = "fmt:" + " ".join(f"%{name}" for name in TOKENS) + " <end"
TEXT_FORMATS = {
    "line": "line",
    "long": "long",
    "extended": "extended",
    "fmt": ALL_TOKENS_FMT,
}


def render(
    fmt_text: str,
    batches: list[pa.RecordBatch],
    *,
    plain: bool = False,
    quiet: bool = False,
    utc: bool = True,
) -> str:
    """What flowq prints: header, records and, for text formats, the summary lines."""
    fmt = parse_output_format(fmt_text)
    out = io.StringIO()
    writer = RecordWriter(fmt, out, utc=utc, plain_numbers=plain, quiet=quiet)
    writer.write_header()
    summary = Summary()
    for batch in batches:
        writer.write_batch(batch)
        summary.add_processed(batch)
        summary.add_passed(batch)
    writer.finish()
    if fmt.prints_summary and not quiet:
        write_summary(out, summary, plain_numbers=plain, utc=utc)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(TEXT_FORMATS))
def test_text_format_golden(name: str, output_flows, golden: GoldenCheck) -> None:
    golden(f"output_{name}.txt", render(TEXT_FORMATS[name], output_flows))


@pytest.mark.parametrize("name", sorted(TEXT_FORMATS))
def test_text_format_plain_numbers_golden(name: str, output_flows, golden: GoldenCheck) -> None:
    golden(f"output_{name}_plain.txt", render(TEXT_FORMATS[name], output_flows, plain=True))


@pytest.mark.parametrize("name", ["csv", "json", "ndjson"])
def test_machine_format_golden(name: str, output_flows, golden: GoldenCheck) -> None:
    golden(f"output_{name}.txt", render(name, output_flows))


def test_text_lines_are_one_per_flow_and_line_is_the_default_width(output_flows) -> None:
    text = render("line", output_flows, quiet=True)
    lines = text.splitlines()
    assert len(lines) == sum(b.num_rows for b in output_flows)
    # IPv4 rows keep nfdump's fixed width; IPv6 addresses may overflow it
    assert {len(line) for line in lines[:6]} == {len(lines[0])}


def test_quiet_prints_only_records(output_flows) -> None:
    rows = sum(b.num_rows for b in output_flows)
    for name in ("line", "long", "extended", ALL_TOKENS_FMT):
        assert len(render(name, output_flows, quiet=True).splitlines()) == rows
    assert len(render("csv", output_flows, quiet=True).splitlines()) == rows
    assert len(json.loads(render("json", output_flows, quiet=True))) == rows
    assert len(render("ndjson", output_flows, quiet=True).splitlines()) == rows


def test_empty_result(output_flows) -> None:
    empty = [output_flows[0].slice(0, 0)]
    line = render("line", empty).splitlines()
    assert line[0].startswith("Date first seen")
    assert line[1] == "No matching flows"
    assert line[2].startswith("Summary: total flows: 0, total bytes: 0, total packets: 0,")
    assert line[3] == "Time window: <unknown>"
    assert render("line", empty, quiet=True) == "No matching flows\n"
    assert render("csv", empty) == ",".join(RECORD_FIELDS) + "\n"
    assert render("csv", empty, quiet=True) == ""
    assert json.loads(render("json", empty)) == []
    assert render("json", empty, quiet=True) == "[\n]\n"
    assert render("ndjson", empty) == ""


# -- read back -----------------------------------------------------------------------------


def _expected_rows(batches: list[pa.RecordBatch]) -> list[dict[str, object]]:
    """The input rows in the contract's value forms (the reference for read-back)."""
    rows = []
    for batch in batches:
        for row in batch.to_pylist():
            expected: dict[str, object] = {}
            for name in RECORD_FIELDS:
                value = row.get(name)
                if name in ADDRESS_COLUMNS:
                    v4, v6 = row.get(name), row.get(ADDRESS_COLUMNS[name])
                    value = (
                        str(ipaddress.IPv4Address(v4))
                        if v4 is not None
                        else str(ipaddress.IPv6Address(v6))
                        if v6 is not None
                        else None
                    )
                elif isinstance(value, datetime):
                    value = int(value.timestamp() * 1000)
                expected[name] = value
            rows.append(expected)
    return rows


def _normalised(name: str, value: object) -> object:
    """A value read from CSV/JSON in the reference's form (times as ms)."""
    if value is None or value == "":
        return None
    if name.startswith("time_"):
        assert isinstance(value, str) and value.endswith("Z") and len(value) == 24, value
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    if name in ADDRESS_COLUMNS:
        return str(ipaddress.ip_address(str(value)))
    return int(value) if isinstance(value, str) else value


def test_csv_reads_back_to_the_input(output_flows) -> None:
    reader = csv.DictReader(io.StringIO(render("csv", output_flows)))
    assert tuple(reader.fieldnames or ()) == RECORD_FIELDS
    got = [{k: _normalised(k, v) for k, v in row.items()} for row in reader]
    assert got == _expected_rows(output_flows)


@pytest.mark.parametrize("name", ["json", "ndjson"])
def test_json_reads_back_to_the_input(name: str, output_flows) -> None:
    text = render(name, output_flows)
    objects = json.loads(text) if name == "json" else [json.loads(x) for x in text.splitlines()]
    assert all(tuple(o) == RECORD_FIELDS for o in objects)
    assert all(isinstance(o["proto"], int) for o in objects)
    got = [{k: _normalised(k, v) for k, v in o.items()} for o in objects]
    assert got == _expected_rows(output_flows)


def test_json_and_csv_agree_on_every_value(output_flows) -> None:
    from_csv = list(csv.DictReader(io.StringIO(render("csv", output_flows))))
    from_json = json.loads(render("json", output_flows))
    for csv_row, json_row in zip(from_csv, from_json, strict=True):
        for key, value in json_row.items():
            assert csv_row[key] == ("" if value is None else str(value)), key


def test_json_batches_join_into_one_array(output_flows) -> None:
    single = [output_flows[0].slice(i, 1) for i in range(output_flows[0].num_rows)]
    assert render("json", single) == render("json", [output_flows[0]])
