"""Property: on generated flows (IPv4 and IPv6 mixed, nulls, VMware columns) and
filters generated from the grammar, the compiled Arrow expression selects exactly the
rows the slow reference evaluator accepts, in memory and through a Parquet scan with
statistics (row-group pruning must not change answers). Any text at all either parses
or raises FilterError."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowq.filter_ast import ADDRESS_FIELDS, QUANTITIES, Node, Not
from flowq.filter_compile import compile_filter, filter_columns
from flowq.filter_lexer import FilterError
from flowq.filter_parser import parse_filter
from flowq.filter_reference import evaluate_reference
from storage.schema import FLOW_SCHEMA

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)
TIMES = [T0 + timedelta(milliseconds=ms) for ms in (0, 1, 999, 1000, 60_000, 3_600_000)]
MACS = [bytes([0, 0x11, 0x22, 0x33, 0x44, n]) for n in (0x55, 0x56)]
V4 = ["0.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.1.5", "10.255.255.255", "192.168.1.1",
      "255.255.255.255", "128.0.0.1"]  # fmt: skip
V6 = ["::", "::1", "2001:db8::1", "2001:db8::2", "2001:db8:8000::1", "fe80::1", "ff02::1",
      "7fff:ffff::1", "8000::"]  # fmt: skip
NETS = ["10.0.0.0/8", "10.0.0.0/24", "10.0.0.0/31", "0.0.0.0/0", "128.0.0.0/1",
        "192.168.0.0/16", "2001:db8::/32", "2001:db8::/33", "2001:db8:8000::/34", "::/0",
        "fe80::/10", "ff00::/8", "8000::/1", "10.0.0.2/32", "2001:db8::2/128"]  # fmt: skip
NETMASKS = ["10.0.0.0 255.0.0.0", "10.0.0.1 255.0.0.255", "192.168.1.0 255.255.255.0"]
NUMBERS = [0, 1, 2, 3, 8, 22, 53, 80, 135, 255, 443, 771, 1000, 2048, 4789, 65535]
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "gre": 47}

MAC_COLUMNS = ("in_src_mac", "in_dst_mac", "out_src_mac", "out_dst_mac")
COLUMNS = sorted(
    {name for name, q in QUANTITIES.items() if not q.derived}
    | {c for pair in ADDRESS_FIELDS.values() for c in pair[:2]}
    | {"dst_port", "icmp_type_code", "icmp_type", "icmp_code", "flows", "layer2_segment_id"}
    | {"time_start", "time_end", "packets", "bytes", *MAC_COLUMNS}
)
ADDRESS_COLUMNS = {c for pair in ADDRESS_FIELDS.values() for c in pair[:2]}
SCHEMA = pa.schema([FLOW_SCHEMA.field(c) for c in COLUMNS] + [pa.field("row", pa.int64())])


def _value(rnd: random.Random, column: str, null_rate: float) -> object:
    if rnd.random() < null_rate:
        return None
    arrow_type = FLOW_SCHEMA.field(column).type
    if column in MAC_COLUMNS:
        return rnd.choice(MACS)
    if arrow_type == pa.timestamp("ms", tz="UTC"):
        return rnd.choice(TIMES)
    if column == "proto":
        return rnd.choice([1, 6, 17, 58, 47, 0])
    if column == "layer2_segment_id":
        return rnd.choice([5001, (1 << 56) | 5001, 80, 0])
    top = (1 << arrow_type.bit_width) - 1
    if rnd.random() < 0.15:
        return rnd.randint(0, top)
    return rnd.choice([n for n in NUMBERS if n <= top] + [top])


def make_rows(seed: int, count: int) -> list[dict]:
    """Flows from a seed: drawing ~90 columns per row through hypothesis costs ~60 ms an
    example; the seed keeps failures reproducible, and the filters still shrink."""
    rnd = random.Random(seed)
    null_rate = rnd.choice([0.0, 0.3, 0.7])
    rows = []
    for _ in range(count):
        row = {c: _value(rnd, c, null_rate) for c in COLUMNS if c not in ADDRESS_COLUMNS}
        for v4_column, v6_column, _ in ADDRESS_FIELDS.values():
            family = rnd.choice([4, 4, 6, None])
            v4 = int(ipaddress.IPv4Address(rnd.choice(V4))) if family == 4 else None
            v6 = ipaddress.IPv6Address(rnd.choice(V6)).packed if family == 6 else None
            row[v4_column], row[v6_column] = v4, v6
        rows.append(row)
    return rows


ROWS = st.builds(make_rows, st.integers(0, 2**32 - 1), st.integers(0, 24))


def _case(word: str) -> st.SearchStrategy:
    return st.sampled_from([word, word.upper(), word.capitalize()])


def _words(*parts: str | st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(*(st.just(p) if isinstance(p, str) else p for p in parts)).map(
        lambda items: " ".join(i for i in items if i)
    )


CMP = st.sampled_from(["", "=", "==", "eq", "<", "lt", ">", "gt", "<=", "le", ">=", "ge"])
SIDES = st.sampled_from(["", "src", "dst", "src or dst", "dst and src"])
NUMBER = st.sampled_from(NUMBERS).map(str) | st.sampled_from(["1k", "0x50", "2K", "080"])
ADDRESS = st.sampled_from(V4 + V6)
NETWORK = st.sampled_from(NETS + NETMASKS)
TIME = st.sampled_from(TIMES).map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z") | (
    st.sampled_from(["-30m", "now", "now-1h", "-29m"])
)
LIST_ITEM = st.sampled_from(V4 + V6 + [n for n in NETS])
ADDRESS_LIST = st.lists(LIST_ITEM, min_size=1, max_size=14).map(
    lambda xs: "[" + ", ".join(xs) + "]"
)
NUMBER_LIST = st.lists(NUMBER, min_size=1, max_size=5).map(lambda xs: "[ " + " ".join(xs) + " ]")
ADDRESS_FIELD = st.sampled_from(["next ip", "bgpnext ip", "router ip", "exporter ip"])

PRIMITIVES = st.one_of(
    st.sampled_from(["any", "ipv4", "ipv6", "inet", "inet6"]),
    _words(_case("proto"), st.sampled_from([*PROTOS, "6", "17", "0"])),
    _words(SIDES, _case("ip"), ADDRESS),
    _words(SIDES, "host", ADDRESS),
    _words(SIDES, "ip in", ADDRESS_LIST),
    _words(SIDES, "net", NETWORK),
    _words(SIDES, "port", CMP, NUMBER),
    _words(SIDES, "port in", NUMBER_LIST),
    _words(st.sampled_from(["icmp-type", "icmp-code"]), CMP, NUMBER),
    _words(st.sampled_from(["", "in", "out"]), "if", NUMBER),
    _words(st.sampled_from(["", "src", "dst", "prev", "next", "src and dst"]), "as", CMP, NUMBER),
    _words(SIDES, "as in", NUMBER_LIST),
    _words(SIDES, st.sampled_from(["mask", "vlan"]), NUMBER),
    _words(st.sampled_from(["", "src", "dst"]), "tos", CMP, NUMBER),
    _words(ADDRESS_FIELD, ADDRESS),
    _words("next ip in", ADDRESS_LIST),
    _words(SIDES, st.sampled_from(["xip", "nip"]), ADDRESS),
    _words(SIDES, "xport", CMP, NUMBER),
    _words("flags", st.sampled_from(["S", "A", "SA", "F", "X", "RP", "U", "EC", "s"])),
    _words("flags", CMP, NUMBER),
    _words(st.sampled_from(["", "in", "out"]), st.sampled_from(["packets", "bytes"]), CMP, NUMBER),
    _words(st.sampled_from(["flows", "duration", "pps", "bps", "bpp"]), CMP, NUMBER),
    _words(st.sampled_from(["first seen", "last seen"]), CMP, TIME),
    _words(
        st.sampled_from(
            [
                *("observation domain id", "observation point id", "engine-type", "engine-id"),
                *("nfversion", "fwdstat", "ingress vrf", "egress vrf", "vni", "vxlan role"),
            ]
        ),
        CMP,
        NUMBER,
    ),
    _words("flowdir", st.sampled_from(["0", "1", "2", "ingress", "egress"])),
    _words(st.sampled_from(["", "in", "out", "src", "dst", "in src", "out dst"]), "mac",
           st.sampled_from(["00:11:22:33:44:55", "0:11:22:33:44:56", "ff:ff:ff:ff:ff:ff"])),
    _words("tenant", SIDES, "ip", ADDRESS),
    _words("tenant", SIDES, "ip in", ADDRESS_LIST),
    _words("tenant", SIDES, "net", st.sampled_from(NETS)),
    _words("tenant", SIDES, "port", CMP, NUMBER),
    _words("tenant proto", st.sampled_from(list(PROTOS))),
)  # fmt: skip


def _combine(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(children, st.sampled_from(["and", "AND", "&&"]), children).map(" ".join),
        st.tuples(children, st.sampled_from(["or", "Or", "||"]), children).map(" ".join),
        st.tuples(st.sampled_from(["not ", "NOT ", "!"]), children).map("".join),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"{c} # comment\n"),
    )


FILTERS = st.recursive(PRIMITIVES, _combine, max_leaves=6)


def _table(rows: list[dict]) -> pa.Table:
    data = {c: [row.get(c) for row in rows] for c in COLUMNS}
    data["row"] = list(range(len(rows)))
    return pa.table(data, schema=SCHEMA)


def _parse(text: str) -> Node:
    """The generator draws numbers for any field; out of a field's range is no case."""
    try:
        return parse_filter(text)
    except FilterError as error:
        assume("out of range" not in error.message)
        raise


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, text=FILTERS)
def test_compiled_filter_agrees_with_reference(rows: list[dict], text: str) -> None:
    table = _table(rows)
    node = _parse(text)
    assert filter_columns(node) <= set(COLUMNS)
    # the reference sees what Arrow holds (to_pylist), not the generator's values
    flowing = table.to_pylist()
    expected = [i for i, row in enumerate(flowing) if evaluate_reference(node, row, NOW)]
    assert table.filter(compile_filter(node, now=NOW))["row"].to_pylist() == expected
    inverted = table.filter(compile_filter(Not(node), now=NOW))["row"].to_pylist()
    assert inverted == [i for i in range(len(rows)) if i not in expected]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(rows=st.builds(make_rows, st.integers(0, 2**32 - 1), st.integers(1, 40)), text=FILTERS)
def test_parquet_scan_with_statistics_agrees(tmp_path: Path, rows: list[dict], text: str) -> None:
    path = tmp_path / "flows.parquet"
    table = _table(rows)
    pq.write_table(table, path, row_group_size=4)  # min/max statistics per 4 rows
    node = _parse(text)
    expected = [i for i, row in enumerate(table.to_pylist()) if evaluate_reference(node, row, NOW)]
    scanned = ds.dataset(path, schema=SCHEMA).to_table(
        columns=["row"], filter=compile_filter(node, now=NOW)
    )
    assert sorted(scanned["row"].to_pylist()) == expected


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab01:./[]()!=<>&|,# \nsrcdtpoinyvl-xk")), max_size=40
    )
)
def test_any_text_parses_or_raises_filter_error(text: str) -> None:
    try:
        node = parse_filter(text)
    except FilterError as error:
        assert 0 <= error.position <= len(text)
        rendered = error.render(text)
        assert rendered.startswith("flowq: filter error at ")
        assert rendered.endswith("^")
        return
    compile_filter(node, now=NOW)


@settings(max_examples=200, deadline=None)
@given(text=FILTERS)
def test_generated_filters_parse_case_insensitively(text: str) -> None:
    assert _parse(text.upper()) == _parse(text.lower())


@settings(max_examples=300, deadline=None)
@given(
    text=FILTERS, cut=st.tuples(st.integers(0, 200), st.integers(0, 20)), junk=st.text(max_size=3)
)
def test_damaged_filters_parse_or_raise_filter_error(
    text: str, cut: tuple[int, int], junk: str
) -> None:
    """A valid filter with a piece cut out and junk put in: a FilterError pointing into
    the text, or a filter that compiles; never another exception."""
    start = min(cut[0], len(text))
    damaged = text[:start] + junk + text[start + cut[1] :]
    try:
        node = parse_filter(damaged)
    except FilterError as error:
        assert 0 <= error.position <= len(damaged)
        return
    compile_filter(node, now=NOW)
