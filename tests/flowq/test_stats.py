"""Statistics and aggregation on hand-made batches: what each key reads (zero-fill, the
ICMP port rule), partial groups merged across batches, -A prefixes and carried fields,
-b / -B bidirectional rows, and the nfdump layouts of their text output (headers taken
from nfdump 1.7.1's own output)."""

from __future__ import annotations

import io
import ipaddress
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from flowq import stats
from flowq.aggregate import (
    Aggregator,
    BidirAggregator,
    parse_keys,
    server_side_first,
)
from flowq.output import parse_output_format
from flowq.stats import (
    StatAccumulator,
    StatError,
    StatSpec,
    icmp_dst_port,
    parse_stats,
    record_order_values,
)
from flowq.table_output import aggregate_layout, write_statistic
from storage.schema import FLOW_SCHEMA

T0 = 1_795_860_300_000


def batch(**columns: list[Any]) -> pa.RecordBatch:
    """A batch with FLOW_SCHEMA's types; addresses as text go to X or X6."""
    arrays: dict[str, list[Any]] = {}
    rows = len(next(iter(columns.values())))
    for name, values in columns.items():
        if name in ("src_addr", "dst_addr", "next_hop", "exporter"):
            arrays[name] = [_v4(v) for v in values]
            arrays[name + "6"] = [_v6(v) for v in values]
        elif name in ("time_start", "time_end"):
            arrays[name] = [T0 + v for v in values]
        else:
            arrays[name] = values
    fields = [FLOW_SCHEMA.field(name) for name in arrays]
    return pa.RecordBatch.from_arrays(
        [pa.array(arrays[f.name], f.type) for f in fields], schema=pa.schema(fields)
    ).slice(0, rows)


def _v4(text: str | None) -> int | None:
    if text is None or ":" in text:
        return None
    return int(ipaddress.IPv4Address(text))


def _v6(text: str | None) -> bytes | None:
    if text is None or ":" not in text:
        return None
    return ipaddress.IPv6Address(text).packed


def rows(table: pa.Table, *names: str) -> list[tuple[Any, ...]]:
    return list(zip(*(table[name].to_pylist() for name in names), strict=True))


# -- -s parsing and keys --------------------------------------------------------------------


def test_several_orders_come_in_nfdumps_order() -> None:
    assert parse_stats("srcip/bytes/flows") == [StatSpec("srcip", "flows"),
                                                StatSpec("srcip", "bytes")]  # fmt: skip
    assert parse_stats("DSTPORT:p") == [StatSpec("dstport", "flows", by_proto=True)]
    assert StatSpec("ip", by_proto=True).key_names == ["addr", "addr6", "proto"]
    assert StatSpec("proto", by_proto=True).key_names == ["proto"]
    with pytest.raises(StatError, match="unknown order 'speed'"):
        parse_stats("srcip/speed")
    with pytest.raises(StatError, match="unknown statistic 'colour'"):
        parse_stats("colour")


def test_icmp_destination_port_is_type_and_code() -> None:
    """icmp_type_code, else icmp_type/icmp_code, else the exported port; the port
    for other protocols; 0 when nothing was sent."""
    flows = batch(
        proto=[1, 58, 1, 1, 6, 17],
        dst_port=[0, 0, 0x0303, None, 443, None],
        icmp_type_code=[0x0800, None, None, None, 0x0800, None],
        icmp_type=[None, 128, None, None, None, None],
        icmp_code=[None, 0, None, None, None, None],
    )
    assert icmp_dst_port(flows).to_pylist() == [2048, 32768, 0x0303, 0, 443, 0]
    assert icmp_dst_port(batch(dst_port=[None, 80])).to_pylist() == [0, 80]


def test_fields_not_sent_count_as_zero() -> None:
    """nfdump zero-fills: a flow without AS counts under AS 0, without an address under
    0.0.0.0; a batch without the column at all does too."""
    accumulator = StatAccumulator(StatSpec("srcas"))
    accumulator.add(batch(src_as=[None, 0, 65000], packets=[1, 2, 3], bytes=[10, 20, 30]))
    accumulator.add(batch(packets=[4], bytes=[40]))
    assert rows(accumulator.result(0), "src_as", "flows", "packets") == [
        (0, 3, 7), (65000, 1, 3)]  # fmt: skip
    addresses = StatAccumulator(StatSpec("srcip"))
    addresses.add(batch(src_addr=["10.0.0.1", None, "2001:db8::1"], packets=[1, 1, 1],
                        bytes=[1, 1, 1]))  # fmt: skip
    keys = set(rows(addresses.result(0), "src_addr", "src_addr6"))
    v6 = ipaddress.IPv6Address("2001:db8::1").packed
    assert keys == {(0, None), (0x0A000001, None), (None, v6)}


def test_both_sides_count_each_flow_twice() -> None:
    accumulator = StatAccumulator(StatSpec("port", "bytes"))
    accumulator.add(batch(src_port=[53, 40000], dst_port=[40000, 53], proto=[17, 17],
                          packets=[1, 1], bytes=[100, 60]))  # fmt: skip
    assert rows(accumulator.result(0), "port", "flows", "bytes") == [(53, 2, 160),
                                                                     (40000, 2, 160)]  # fmt: skip


def test_split_by_protocol() -> None:
    accumulator = StatAccumulator(StatSpec("dstport", by_proto=True))
    accumulator.add(batch(dst_port=[53, 53, 53], proto=[17, 17, 6], packets=[1, 1, 1],
                          bytes=[1, 1, 1]))  # fmt: skip
    assert rows(accumulator.result(0), "dst_port", "proto", "flows") == [(53, 17, 2), (53, 6, 1)]


def test_partial_groups_merge_to_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    parts = [
        batch(src_addr=[f"10.0.0.{v}" for v in rng.integers(0, 20, 50)],
              packets=rng.integers(1, 9, 50).tolist(), bytes=rng.integers(1, 999, 50).tolist(),
              time_start=rng.integers(0, 9999, 50).tolist(),
              time_end=rng.integers(10_000, 20_000, 50).tolist())
        for _ in range(12)
    ]  # fmt: skip
    whole = StatAccumulator(StatSpec("srcip", "bytes"))
    whole.add(pa.Table.from_batches(parts).combine_chunks().to_batches()[0])
    monkeypatch.setattr(stats, "MERGE_ROWS", 7)  # merge again and again
    merged = StatAccumulator(StatSpec("srcip", "bytes"))
    for part in parts:
        merged.add(part)
    assert merged.result(0).equals(whole.result(0))
    assert merged.result(5).equals(whole.result(5))


def test_record_order_values_as_nfdump() -> None:
    flows = batch(packets=[10, 3], out_packets=[5, None], bytes=[1000, 90], out_bytes=[0, None],
                  time_start=[0, 0], time_end=[2000, 0])  # fmt: skip
    table = pa.Table.from_batches([flows])
    assert record_order_values(table, "packets").to_pylist() == [15, 3]
    assert record_order_values(table, "pps").to_pylist() == [7, 0]  # 1000 * 15 / 2000
    assert record_order_values(table, "bps").to_pylist() == [4000, 0]
    assert record_order_values(table, "bpp").to_pylist() == [66, 30]
    assert record_order_values(table, "flows").to_pylist() == [1, 1]


# -- -A -------------------------------------------------------------------------------------


def test_aggregation_keys() -> None:
    assert [k.columns for k in parse_keys("srcip, dstport,proto")] == [
        ("src_addr", "src_addr6"), ("dst_port",), ("proto",)]  # fmt: skip
    net = parse_keys("srcip4/24")[0]
    assert (net.ipv4_prefix, net.ipv6_prefix, net.token) == (24, 128, "sa")
    assert (parse_keys("dstnet/16/48")[0].ipv6_prefix) == 48
    with pytest.raises(StatError, match="same field"):
        parse_keys("srcip,srcnet/24")
    with pytest.raises(StatError, match="prefix out of range"):
        parse_keys("srcnet/33")
    with pytest.raises(StatError, match="unknown aggregation key 'colour'"):
        parse_keys("colour")


def test_prefixes_vni_and_order() -> None:
    aggregator = Aggregator(parse_keys("srcnet/16/32,vni"))
    aggregator.add(batch(
        src_addr=["10.1.2.3", "10.1.9.9", "2001:db8:1::1", "2001:db8:2::1"],
        layer2_segment_id=[(1 << 56) | 5001, 5001, None, 7],
        packets=[1, 2, 3, 4], bytes=[10, 20, 30, 40], time_start=[5, 1, 2, 3],
        time_end=[6, 7, 8, 9],
    ))  # fmt: skip
    result = aggregator.result(None, 0)  # earliest first
    assert rows(result, "vni", "flows", "packets") == [(5001, 2, 3), (0, 1, 3), (7, 1, 4)]
    assert result["src_addr"].to_pylist() == [0x0A010000, None, None]
    assert result["src_addr6"].to_pylist()[1] == ipaddress.IPv6Address("2001:db8::").packed
    by_bytes = aggregator.result("bytes", 2)
    assert by_bytes["bytes"].to_pylist() == [40, 30]


def test_5tuple_rows_or_flags_and_carry_the_smallest_other_field() -> None:
    aggregator = Aggregator(parse_keys("srcip,dstip,srcport,dstport,proto"), with_flags=True,
                            carry=["tos", "src_as"])  # fmt: skip
    same = {"src_addr": ["10.0.0.1"] * 2, "dst_addr": ["10.0.0.2"] * 2, "src_port": [1, 1],
            "dst_port": [80, 80], "proto": [6, 6]}  # fmt: skip
    aggregator.add(batch(**same, tcp_flags=[0x02, 0x10], tos=[8, 4], packets=[1, 1],
                         bytes=[60, 60], out_packets=[None, 2], out_bytes=[None, 80]))  # fmt: skip
    (row,) = aggregator.result(None, 0).to_pylist()
    assert (row["tcp_flags"], row["tos"], row["src_as"]) == (0x12, 4, None)
    assert (row["flows"], row["packets"], row["out_packets"], row["bpp"]) == (2, 2, 2, 50)


# -- -b / -B --------------------------------------------------------------------------------


def conversation() -> pa.RecordBatch:
    return batch(
        src_addr=["10.0.0.9", "10.0.0.1", "10.0.0.9", "10.0.0.1", "10.0.0.2", "2001:db8::b",
                  "2001:db8::a"],
        dst_addr=["10.0.0.1", "10.0.0.9", "10.0.0.1", "10.0.0.9", "10.0.0.1", "2001:db8::a",
                  "2001:db8::b"],
        src_port=[443, 50000, 443, 0, 0, 53, 40000],
        dst_port=[50000, 443, 50000, 0, 0, 40000, 53],
        proto=[6, 6, 6, 1, 1, 17, 17],
        tcp_flags=[0x12, 0x02, 0x11, 0, 0, 0, 0],
        packets=[5, 4, 1, 2, 3, 1, 1], bytes=[500, 400, 100, 20, 30, 300, 60],
        out_packets=[None, None, 7, None, None, None, None],
        out_bytes=[None, None, 700, None, None, None, None],
        time_start=[10, 20, 30, 0, 1, 100, 100], time_end=[40, 50, 60, 5, 6, 101, 101],
    )  # fmt: skip


def test_bidirectional_rows_join_tcp_and_udp_only() -> None:
    aggregator = BidirAggregator(guess_direction=False, with_flags=True)
    aggregator.add(conversation())
    table = aggregator.result(None, 0)
    got = rows(table, "src_port", "dst_port", "proto", "flows", "packets", "bytes", "out_packets",
               "out_bytes", "tcp_flags")  # fmt: skip
    assert got == [
        (0, 0, 1, 1, 2, 20, 0, 0, 0),  # ICMP either way: never joined
        (0, 0, 1, 1, 3, 30, 0, 0, 0),
        # the server's record started first: the row reads 443 -> 50000; the biflow
        # record (out 7 / 700) counts its reverse direction the other way
        (443, 50000, 6, 3, 6, 600, 11, 1100, 0x13),
        # started together: read from the lower endpoint
        (40000, 53, 17, 2, 1, 60, 1, 300, 0),
    ]
    assert table["src_addr6"].to_pylist()[-1] == ipaddress.IPv6Address("2001:db8::a").packed


def test_guessed_direction_puts_the_client_first() -> None:
    aggregator = BidirAggregator(guess_direction=True)
    aggregator.add(conversation())
    got = rows(aggregator.result(None, 0), "src_port", "dst_port", "packets", "out_packets")
    assert (50000, 443, 11, 6) in got and (40000, 53, 1, 1) in got


@pytest.mark.parametrize(
    ("proto", "sport", "dport", "server_first"),
    [(6, 443, 50000, True), (6, 50000, 443, False), (17, 1023, 1024, True),
     (6, 30000, 40000, True), (6, 40000, 50000, True), (6, 50000, 60000, False),
     (6, 22, 80, False), (1, 0, 2048, False)],
)  # fmt: skip
def test_direction_guess_follows_nfdump(proto: int, sport: int, dport: int,
                                        server_first: bool) -> None:  # fmt: skip
    """nfdump's NeedSwap: the source port is below 1024, 32768 or 49152 while the
    destination's is not (TCP and UDP only)."""
    result = server_side_first(np.array([proto]), np.array([sport]), np.array([dport]))
    assert bool(result[0]) is server_first


def test_empty_results_have_their_columns() -> None:
    assert BidirAggregator(guess_direction=False).result("bytes", 0).num_rows == 0
    assert Aggregator(parse_keys("srcip")).result(None, 0).num_rows == 0
    assert StatAccumulator(StatSpec("ip")).result(10).num_rows == 0


# -- text layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "header"),
    [  # nfdump 1.7.1 -A KEYS headers
        ("srcip,dstport", "Date first seen             Duration           Src IP Addr Dst Pt"
                          "   Packets    Bytes      bps    Bpp Flows"),
        ("dstport,srcip", "Date first seen             Duration      Dst Pt      Src IP Addr"
                          "   Packets    Bytes      bps    Bpp Flows"),
        ("srcas,inif,tos,router", "Date first seen             Duration      Src AS  Input Tos"
                                  "        Router IP   Packets    Bytes      bps    Bpp Flows"),
        ("proto", "Date first seen             Duration      Proto   Packets    Bytes      bps"
                  "    Bpp Flows"),
    ],
)  # fmt: skip
def test_aggregate_header_as_nfdump(keys: str, header: str) -> None:
    layout = aggregate_layout(parse_keys(keys), bidir=False).layout
    assert layout is not None and layout.header() == header


def test_bidirectional_header_as_nfdump() -> None:
    layout = aggregate_layout(None, bidir=True).layout
    assert layout is not None and layout.header() == (
        "Date first seen             Duration     Proto      Src IP Addr:Port           Dst IP"
        " Addr:Port   Out Pkt   In Pkt Out Byte  In Byte Flows"
    )


def test_statistic_shares_print_as_nfdump() -> None:
    """``(%4.1f)``: ``( 0.0)``, ``(11.5)``, ``(100.0)`` and over 100 for two-sided
    statistics (``-s as`` counting AS 0 on both sides of a flow)."""
    accumulator = StatAccumulator(StatSpec("as"))
    accumulator.add(batch(src_as=[0, 0, 7], dst_as=[0, 0, 0], packets=[1, 1, 1],
                          bytes=[1, 1, 1], time_start=[0, 0, 0], time_end=[1, 1, 1]))  # fmt: skip
    out = io.StringIO()
    write_statistic(out, accumulator.spec, accumulator.result(10), (3, 3, 3),
                    parse_output_format("line"), limit=10, utc=True, plain=False,
                    quiet=True)  # fmt: skip
    first, second, blank = out.getvalue().split("\n")[:3]
    assert first.endswith(" any                   0        5(166.7)        5(166.7)"
                          "        5(166.7)     5000    40000     1")  # fmt: skip
    assert second.endswith("7        1(33.3)        1(33.3)        1(33.3)     1000     8000     1")
    assert blank == ""


# -- packed integer keys -------------------------------------------------------------------


def _sorted_rows(table: pa.Table) -> list[tuple]:
    names = sorted(table.column_names)
    rows = zip(*(table[name].to_pylist() for name in names), strict=True)
    return sorted(rows, key=lambda row: tuple((v is None, v) for v in row))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "keys",
    [
        ["src_addr", "src_addr6", "dst_addr", "dst_addr6"],  # 64 bits: packed
        ["src_addr", "src_addr6", "src_port", "proto"],  # with nulls: 32+1 + 16+1 + 8
        ["src_addr", "dst_addr", "src_port"],  # 80 bits: two words
        ["src_addr", "src_addr6", "dst_addr", "dst_addr6", "src_port", "dst_port", "proto"],
        ["src_port", "dst_port"],
        ["src_addr", "src_addr6"],  # one integer key and its twin
    ],
)
def test_packed_grouping_gives_the_same_groups(keys: list[str], seed: int) -> None:
    """``GroupAccumulator`` packs integer keys into one uint64 where it can; whatever
    the keys, nulls and IPv6 rows (none, some, all), added in pieces and regrouped or
    not, the groups are those of one plain group_by."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 400))
    v6_share = [0.0, 0.2, 1.0][seed % 3]
    null_share = [0.0, 0.1][seed % 2]

    def integer(name: str, pool: int) -> pa.Array:
        kind = FLOW_SCHEMA.field(name).type
        values = rng.integers(0, pool, rows) * (2**kind.bit_width // pool)
        return pa.array(values, kind, mask=rng.random(rows) < null_share)

    is_v6 = rng.random(rows) < v6_share
    v4_null = is_v6 if seed % 4 else None  # else IPv6 rows carry an IPv4 value too
    columns = {
        "src_addr": pa.array(rng.integers(0, 6, rows) << 24, pa.uint32(), mask=v4_null),
        "dst_addr": pa.array(rng.integers(0, 5, rows) + 2**31, pa.uint32(), mask=v4_null),
        "src_port": integer("src_port", 7),
        "dst_port": integer("dst_port", 3),
        "proto": integer("proto", 4),
        "bytes": pa.array(rng.integers(0, 1000, rows), pa.uint64()),
        "packets": pa.array(rng.integers(0, 10, rows), pa.uint64()),
    }
    for side in ("src", "dst"):
        words = [bytes([side == "src", int(v)]) + bytes(14) for v in rng.integers(0, 3, rows)]
        columns[f"{side}_addr6"] = pa.array(
            [w if v6 else None for w, v6 in zip(words, is_v6, strict=True)], pa.binary(16)
        )
    table = pa.table({name: columns[name] for name in [*keys, "bytes", "packets"]})
    aggregations = [("bytes", "sum"), ("packets", "max")]
    plain = stats._group_plain(table, keys, aggregations)
    for merge_rows in (10, 10**6):  # regrouped many times, or once at the end
        accumulator = stats.GroupAccumulator(keys, aggregations)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stats, "MERGE_ROWS", merge_rows)
            for start in range(0, rows, 37):
                accumulator.add(table.slice(start, 37))
            packed = accumulator.result()
        assert packed is not None
        assert packed.schema == plain.schema
        assert _sorted_rows(packed) == _sorted_rows(plain)
