"""Corpus conformance: every group of the shared real-device corpus decodes to the
record counts and field values its sources state (``expected.json``), every batch
converts to the storage schema, and nothing but ``ParseError`` ever escapes.

Counts come from the source tool where it counts what we count, else from tshark's
flow/options split. Where our decoder legitimately decodes a different number,
``COUNT_OVERRIDES`` says so, one reason per group, with the byte-level evidence.

Field values are matched by content, not by index: batches come out one per template,
so the stream order of the sources is not ours. Expected keys are IANA names mapped with
``elements.by_name``; keys we cannot or must not compare are in ``SKIPPED_KEYS`` (each
with its reason), and a key that is in neither fails the test.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import math
import re
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pytest

from parsers import elements
from parsers.decoder import FlowDecoder
from parsers.elements import ElementKind
from parsers.errors import ParseError
from parsers.events import FlowBatch, VarBinary
from parsers.json_rows import flow_rows
from storage.schema import FLOW_SCHEMA, to_record_batch
from tests.corpus import (
    RECEIVED_AT_NS,
    corpus_dir,
    expected,
    file_datagrams,
    file_names,
    group,
    group_ids,
)

pytestmark = pytest.mark.corpus

NO_CORPUS = f"shared corpus not found at {corpus_dir()}"
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


# --- expected record counts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    flows: int
    options: int
    reason: str


#: Groups where we decode a different number than the source or tshark; each reason was
#: checked by walking the flowsets of the datagrams (set ids, lengths, record sizes).
COUNT_OVERRIDES: dict[str, Override] = {
    # (a) concatenated messages in one raw file, split by parsers.capture
    "logstash/Netflow 5 valid 01": Override(
        30,
        0,
        "(a) netflow5.dat is 12 concatenated v5 messages (120, 216x3, 120x8 bytes; header "
        "counts 2,4,4,4,2x8 = 30); logstash's 2 is the first message only "
        "(expected.json files[..].if_split_into_messages_tshark: 30)",
    ),
    "logstash/IPFIX": Override(
        12,
        1,
        "(a) ipfix.dat is 3 concatenated IPFIX messages (484 + 64 + 240 bytes): 6 flows + 1 "
        "options, 1 flow, 5 flows; logstash's 7 is the first message only "
        "(if_split_into_messages_tshark: 12 + 1)",
    ),
    "graylog/netflow-v9-1.dat": Override(
        6,
        0,
        "(a)+(c) 2 concatenated v9 messages; message 0 (header count 2 = its two template "
        "records) also carries flowset 1024 of 84 bytes = 2 records of 39 bytes + 2 pad "
        "after the templates, message 1 has 4 records; tshark (split: 4) stops at the count",
    ),
    # (b) data sets held until their template arrives
    "akvorado/data+templates": Override(
        21,
        1,
        "(b) the one datagram has data set 257 (664 bytes = 11 records of 60) BEFORE the "
        "template set defining 257, then 10 more records: held and decoded, 10 + 11 "
        "(tshark and akvorado drop the first set)",
    ),
    "cloudflare-goflow/netflow_test_packets.pcap": Override(
        50,
        0,
        "(b) the first frame carries data set 256 of 44 bytes (1 record of 38 + 2 pad) "
        "before the second frame defines template 256: held and decoded, 1 + 22 + 27 "
        "(tshark: 49)",
    ),
    # (c) the v9 header count is not where the walk stops (softflowd counts data only)
    "logstash/Netflow 9 invalid 01": Override(
        2,
        1,
        "(c) header count 2 covers the two template flowsets only; flowsets 256 (16 bytes: "
        "1 options record of 9 + 3 pad), 2048 (70: 1 record of 63 + 3 pad) and 1024 (44: 1 "
        "record of 39 + 1 pad) follow; tshark stops at the count (0)",
    ),
    "graylog/netflow9.pcap": Override(
        21,
        1,
        "(c) datagram 0 has count 1 but carries templates 1024 and 2048, options template "
        "and data 256 (1 record) and 1 record of 1024; tshark stops at the count, misses "
        "it and template 2048, so it reports the 2048 sets of datagrams 6 and 8 (1 IPv6 "
        "record each) as template-less: 19 records of 1024 + 2 of 2048 (Graylog: 19)",
    ),
}

#: v5 files whose header count disagrees with the length: dropped whole, counted
MALFORMED_V5: dict[str, str] = {
    "logstash/Netflow 5 invalid 01": "header count 55582 (2667960 bytes) vs 1464-byte datagram",
    "logstash/Netflow 5 invalid 02": "header count 163 (7848 bytes) vs 1464-byte datagram",
}

#: Graylog counts whose number includes the options data records (expected.json status)
SOURCE_TOTAL_INCLUDES_OPTIONS: frozenset[str] = frozenset(
    {
        "graylog/nprobe-netflow9-2.pcap",  # 7 = 6 flows + 1 options
        "graylog/nprobe-netflow9-3.pcap",  # 898 = 892 + 6
        # 16 = 15 + 1, with buffering (b): datagrams 0 and 1 hold 7 records of template
        # 257 each (372-byte sets, 53-byte records) before datagram 2 defines 257
        "graylog/nprobe-netflow9-4.pcap",
    }
)


def expected_counts(group_id: str) -> tuple[int, int]:
    """(flow records, options records) we must decode for a group."""
    if group_id in COUNT_OVERRIDES:
        override = COUNT_OVERRIDES[group_id]
        return override.flows, override.options
    facts = group(group_id).facts
    source, tshark = facts["expected"], facts["tshark"]
    flows, options = source.get("flow_records"), source.get("options_data_records")
    total = source.get("total_records")  # logstash: flows + options, in stream order
    if group_id in SOURCE_TOTAL_INCLUDES_OPTIONS:
        total, flows = flows, None
    if options is None:
        options = tshark["options_data_records"]
    if flows is None:
        flows = tshark["flow_records"] if total is None else total - options
    if total is not None:
        assert flows + options == total, f"{group_id}: split {flows}+{options} != {total}"
    return flows, options


# --- decoding a group ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The export header of one datagram, parsed here independently of the decoder."""

    version: int
    count: int | None  # v5/v9 record count
    uptime_ms: int | None  # v5/v9 sysUptime
    export_ns: int  # v5 with unix_nsecs
    unix_secs: int
    unix_nsecs: int
    sequence: int
    domain: int  # v9 source id, IPFIX observation domain


def parse_header(payload: bytes) -> Header | None:
    version = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else -1
    if version == 5 and len(payload) >= 24:
        _, count, uptime, secs, nsecs, seq, _, _, _ = struct.unpack_from(">HHIIIIBBH", payload)
        return Header(5, count, uptime, secs * NS_PER_S + nsecs, secs, nsecs, seq, 0)
    if version == 9 and len(payload) >= 20:
        _, count, uptime, secs, seq, source_id = struct.unpack_from(">HHIIII", payload)
        return Header(9, count, uptime, secs * NS_PER_S, secs, 0, seq, source_id)
    if version == 10 and len(payload) >= 16:
        _, _, export, seq, domain = struct.unpack_from(">HHIII", payload)
        return Header(10, None, None, export * NS_PER_S, export, 0, seq, domain)
    return None


@dataclass
class Row:
    """One decoded record in comparable Python values."""

    kind: str  # "flow" or "options"
    datagram: int  # index in the group's feed order
    header: Header | None
    values: dict[str, object]  # column -> int | float | str (addresses, MACs) | bytes
    extras: dict[str, bytes]  # "PEN:id" -> raw big-endian bytes

    def describe(self) -> str:
        keys = ("src_addr", "src_addr6", "dst_addr", "dst_addr6", "src_port", "dst_port")
        shown = {k: self.values[k] for k in keys if k in self.values}
        return f"{self.kind} of datagram {self.datagram} {shown}"


@dataclass
class DecodedGroup:
    decoder: FlowDecoder
    batches: list[FlowBatch]
    flows: list[Row]
    options: list[Row]
    headers: list[Header | None]
    errors: list[tuple[int, ParseError]] = field(default_factory=list)


COLUMN_SPECS = elements.column_specs()
_TIME_COLUMNS = frozenset({"time_start", "time_end", "time_received"}) | frozenset(
    c for c, s in COLUMN_SPECS.items() if s.kind is ElementKind.DATETIME_NANOSECONDS
)
_IPV4_COLUMNS = frozenset(c for c, s in COLUMN_SPECS.items() if s.kind is ElementKind.IPV4)
_EXTRA_KEY = re.compile(r"^(-?\d+|scope):\d+$")


def _python_column(column: str, values: np.ndarray | VarBinary) -> list[object]:
    if isinstance(values, VarBinary):
        return [values.value(i) for i in range(len(values))]
    if values.ndim == 2:
        if values.shape[1] == 16:
            return [str(ipaddress.IPv6Address(bytes(row))) for row in values]
        if values.shape[1] == 6:
            return [":".join(f"{b:02x}" for b in row) for row in values]
        return [bytes(row) for row in values]
    if column in _IPV4_COLUMNS or column == "exporter":
        return [str(ipaddress.IPv4Address(int(v))) for v in values]
    return values.tolist()


def _raw_column(values: np.ndarray | VarBinary) -> list[bytes]:
    if isinstance(values, VarBinary):
        return [values.value(i) for i in range(len(values))]
    return [bytes(row) for row in np.asarray(values, dtype=np.uint8)]


def _batch_rows(batch: FlowBatch, headers: list[Header | None]) -> list[Row]:
    columns = {name: _python_column(name, values) for name, values in batch.columns.items()}
    extras = {key: _raw_column(values) for key, values in batch.extra_fields}
    rows = []
    for i in range(batch.num_rows):
        datagram = (int(columns["time_received"][i]) - RECEIVED_AT_NS) // NS_PER_MS
        rows.append(
            Row(
                "flow",
                datagram,
                headers[datagram],
                {name: column[i] for name, column in columns.items()},
                {key: column[i] for key, column in extras.items()},
            )
        )
    return rows


def _options_row(values: dict[str, object], datagram: int, header: Header | None) -> Row:
    columns: dict[str, object] = {}
    extras: dict[str, bytes] = {}
    for name, value in values.items():
        spec = COLUMN_SPECS.get(name)
        if _EXTRA_KEY.match(name) and isinstance(value, str):
            extras[name] = bytes.fromhex(value)
        elif spec is not None and spec.kind is ElementKind.OCTETS and isinstance(value, str):
            columns[name] = bytes.fromhex(value)
        else:
            columns[name] = value
    return Row("options", datagram, header, columns, extras)


@cache
def decode_group(group_id: str) -> DecodedGroup:
    """Feed a group's datagrams in order to one fresh decoder; datagram i is received
    at RECEIVED_AT_NS + i ms, so a flow's time_received names its datagram (held sets
    keep their own datagram's context)."""
    decoder = FlowDecoder()
    headers: list[Header | None] = []
    options: list[Row] = []
    errors: list[tuple[int, ParseError]] = []
    for index, datagram in enumerate(group(group_id).datagrams()):
        header = parse_header(datagram.payload)
        headers.append(header)
        try:
            decoder.feed_datagram(
                datagram.payload, datagram.source, RECEIVED_AT_NS + index * NS_PER_MS
            )
        except ParseError as error:
            errors.append((index, error))
        for record in decoder.take_options_records():
            options.append(_options_row(record.values, index, header))
    batches = decoder.flush()
    decoder.finish()
    flows = [row for batch in batches for row in _batch_rows(batch, headers)]
    return DecodedGroup(decoder, batches, flows, options, headers, errors)


def _group_params(predicate: Callable[[dict], bool] = lambda facts: True) -> list:
    ids = group_ids()
    if not ids:
        return [pytest.param("", marks=pytest.mark.skip(reason=NO_CORPUS))]
    facts = {g["id"]: g for g in expected()["groups"]}
    return [gid for gid in ids if predicate(facts[gid])]


# --- 1. record counts ----------------------------------------------------------------------------


#: data sets tshark reports as template-less that we decode: held until their template
#: arrived (b), or their template was defined after the v9 header count ran out (c)
DECODED_DESPITE_TSHARK: dict[str, int] = {
    "akvorado/data+templates": 1,
    "cloudflare-goflow/netflow_test_packets.pcap": 1,
    "graylog/netflow9.pcap": 2,  # template 2048 is in datagram 0, after the count
    "graylog/nprobe-netflow9-4.pcap": 2,
}


@pytest.mark.parametrize("group_id", _group_params())
def test_group_record_counts(group_id: str) -> None:
    decoded = decode_group(group_id)
    flows = sum(batch.num_rows for batch in decoded.batches)
    stats = decoded.decoder.stats
    if group_id in MALFORMED_V5:
        assert (flows, len(decoded.options)) == (0, 0), MALFORMED_V5[group_id]
        assert stats.dropped == Counter({"malformed": 1}), MALFORMED_V5[group_id]
        assert [type(e).__name__ for _, e in decoded.errors] == ["MalformedSet"]
        return
    assert decoded.errors == [], f"{group_id}: datagrams dropped: {decoded.errors}"
    want_flows, want_options = expected_counts(group_id)
    assert (flows, len(decoded.options)) == (want_flows, want_options)
    assert (stats.flow_records, stats.options_records) == (want_flows, want_options)
    # what is still held at the end is exactly what no template ever came for
    assert decoded.decoder.templates.held_set_count() == (
        group(group_id).facts["tshark"]["data_sets_without_template"]
        - DECODED_DESPITE_TSHARK.get(group_id, 0)
    )


def test_count_overrides_differ_from_the_sources() -> None:
    """Each override is needed: it disagrees with what expected.json would give."""
    if not group_ids():
        pytest.skip(NO_CORPUS)
    for group_id, override in COUNT_OVERRIDES.items():
        facts = group(group_id).facts
        tshark = (facts["tshark"]["flow_records"], facts["tshark"]["options_data_records"])
        source = facts["expected"].get("total_records", facts["expected"].get("flow_records"))
        assert (override.flows, override.options) != tshark, group_id
        assert source != override.flows + override.options, group_id


def test_split_counts_match_tshark_on_split_messages() -> None:
    """(a): the files split into messages decode to tshark's counts on the split
    messages, except where (c) adds the records tshark stops before."""
    if not group_ids():
        pytest.skip(NO_CORPUS)
    split_files = {
        "logstash/Netflow 5 valid 01": "logstash-codec-netflow/netflow5.dat",
        "logstash/IPFIX": "logstash-codec-netflow/ipfix.dat",
        "graylog/netflow-v9-1.dat": "graylog-plugin-netflow/netflow-v9-1.dat",
    }
    behind_the_count = {"graylog/netflow-v9-1.dat": 2}
    for group_id, name in split_files.items():
        split = expected()["files"][name]["if_split_into_messages_tshark"]
        assert len(decode_group(group_id).headers) == len(split["per_message"])
        flows, options = expected_counts(group_id)
        assert flows == split["flow_records"] + behind_the_count.get(group_id, 0)
        assert options == split["options_data_records"]


def _decoded_rows(decoder: FlowDecoder) -> Counter[str]:
    """Every flushed record as text: all columns (address twins apart) and extras."""
    rows: Counter[str] = Counter()
    for batch in decoder.flush():
        columns = {name: _python_column(name, v) for name, v in batch.columns.items()}
        extras = {key: _raw_column(v) for key, v in batch.extra_fields}
        for i in range(batch.num_rows):
            values = sorted((k, c[i]) for k, c in {**columns, **extras}.items())
            rows[repr(values)] += 1
    return rows


@pytest.mark.parametrize("group_id", _group_params())
def test_flush_granularity_does_not_change_records(group_id: str) -> None:
    """Flushing after every datagram or once at the end gives the same records: staging
    sets of many datagrams into one buffer must not change how any record decodes."""
    once, every = FlowDecoder(), FlowDecoder()
    each: Counter[str] = Counter()
    for index, datagram in enumerate(group(group_id).datagrams()):
        for decoder in (once, every):
            with contextlib.suppress(ParseError):
                decoder.feed_datagram(datagram.payload, datagram.source, RECEIVED_AT_NS + index)
        each += _decoded_rows(every)
    assert _decoded_rows(once) == each


def _label_int(text: str) -> int:
    """tshark label values: '88 (88)', 'TCP (6)', '0x10', '5'."""
    match = re.search(r"\((\d+)\)$", text)
    return int(match.group(1)) if match else int(text.split()[0], 0)


#: tshark's label -> our column, for the first flow record tshark decoded per group
_TSHARK_LABELS = {
    "SrcPort": "src_port",
    "DstPort": "dst_port",
    "Protocol": "proto",
    "Packets": "packets",
    "Octets": "bytes",
    "InputInt": "in_if",
    "OutputInt": "out_if",
}


#: groups whose flows carry the sampled frame (dataLinkFrameSection, IE 315): tshark
#: dissects the frame and labels its protocol/addresses as the record's; we keep the
#: frame raw (akvorado parses it: expected.json "derived")
LABELS_FROM_SAMPLED_FRAME: frozenset[str] = frozenset(
    {"akvorado/datalink", "akvorado/ipfix-srv6", "akvorado/juniper-cpid", "akvorado/eompls-cw"}
)
_FRAME_LABELS = frozenset({"SrcAddr", "DstAddr", "SrcPort", "DstPort", "Protocol"})


@pytest.mark.parametrize(
    "group_id",
    _group_params(
        lambda facts: (
            bool(facts["tshark"].get("first_flow_record_tshark_labels"))
            and facts["id"] not in MALFORMED_V5
        )
    ),
)
def test_tshark_first_record_is_decoded(group_id: str) -> None:
    """expected.json keeps the first flow record the corpus' tshark run decoded in each
    group: one of our records has its addresses, ports, protocol, counters, interfaces."""
    labels = dict(group(group_id).facts["tshark"]["first_flow_record_tshark_labels"])
    if group_id in LABELS_FROM_SAMPLED_FRAME:
        labels = {k: v for k, v in labels.items() if k not in _FRAME_LABELS}
    want: dict[str, object] = {
        column: _label_int(labels[label])
        for label, column in _TSHARK_LABELS.items()
        if label in labels
    }
    for label, column in (("SrcAddr", "src_addr"), ("DstAddr", "dst_addr")):
        if label in labels:
            address = ipaddress.ip_address(labels[label])
            want[column if address.version == 4 else column + "6"] = str(address)
    rows = decode_group(group_id).flows
    assert any(all(row.values.get(k) == v for k, v in want.items()) for row in rows), want


# --- 2. field values -----------------------------------------------------------------------------


#: expected.json keys we do not compare, with the reason
SKIPPED_KEYS: dict[str, str] = {
    "header:setId (template id of the data set)": (
        "a FlowBatch does not carry its template id (one batch per template, unnamed)"
    ),
    "header:samplingAlgorithm (v5 header)": "the v5 header's 2 mode bits are not kept",
}

#: expected values that expected.json cut short when it extracted them from the Ruby
#: spec (the string stops at a ")" of the original): compared as prefixes
TRUNCATED_IN_EXPECTED: dict[str, str] = {
    "'Mozilla/5.0 (Commodore 64;  kobo.com": "continues ') Gecko/20100101 Firefox/75.0'",
    "'1.1 akamai.net(ghost": "the decoded value continues ') (AkamaiGHost)'",
    "UNISAINS-AS-AP Universiti Sains Malaysia (USM": "spec value continues '), MY'",
}

#: enterprise numbers expected.json got wrong, checked against the template bytes
PEN_CORRECTIONS: dict[int, tuple[int, str]] = {
    12326: (
        10704,
        "expected.json labels Barracuda's extended uniflow fields PEN 12326; the template "
        "in ipfix_test_barracuda_extended_uniflow_tpl256.dat carries 10704 (0x000029d0)",
    ),
}

#: nonstandard keys without a field id in their name
NONSTANDARD_ALIASES: dict[str, tuple[int, str]] = {
    "reamcore_id_rule_1": (8384, "expected.json typo of 'streamcore_id_rule_1 (v9 field id 8384)'"),
}


class Mismatch(Exception):
    pass


def _parse_iso_ns(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def _unquote(value: object) -> tuple[object, bool]:
    """(value, exact): strips the Ruby quotes the spec kept; a known truncated value
    compares as a prefix."""
    if isinstance(value, str) and value in TRUNCATED_IN_EXPECTED:
        return value.removeprefix("'"), False
    if not isinstance(value, str) or not value.startswith("'"):
        return value, True
    assert value.endswith("'") and len(value) >= 2, f"unbalanced quote in {value!r}"
    return value[1:-1], True


def _text(actual: object) -> str:
    if isinstance(actual, bytes):
        try:
            return actual.decode("utf-8")
        except UnicodeDecodeError:
            return actual.decode("latin-1")
    return str(actual)


def _same_text(expected_value: str, actual: object, exact: bool) -> bool:
    candidates = {_text(actual)}
    if isinstance(actual, bytes):
        candidates.add(actual.decode("latin-1"))  # logstash renders bytes as Latin-1
        candidates.add(_text(actual.rstrip(b"\0")))  # fixed-length strings, NUL padded
    else:
        candidates.add(str(actual).rstrip("\0"))
    if exact:
        return expected_value in candidates
    return any(c.startswith(expected_value) for c in candidates)


def _same_value(expected_value: object, actual: object, kind: ElementKind | None) -> bool:
    """One expected value against a column value (already in Python form)."""
    expected_value, exact = _unquote(expected_value)
    if actual is None:
        return False
    if kind in (ElementKind.IPV4, ElementKind.IPV6) and isinstance(expected_value, str):
        return ipaddress.ip_address(expected_value) == ipaddress.ip_address(str(actual))
    if kind is ElementKind.MAC and isinstance(expected_value, str):
        return expected_value.lower() == str(actual).lower()
    if isinstance(expected_value, bool) or kind is ElementKind.BOOLEAN:
        return int(actual) == (1 if expected_value in (True, 1) else 2)  # RFC 7011 6.1.5
    if isinstance(expected_value, float):
        return isinstance(actual, int | float) and math.isclose(
            actual, expected_value, rel_tol=1e-6
        )
    if isinstance(expected_value, int):
        if isinstance(actual, bytes):
            return int.from_bytes(actual, "big") == expected_value
        return isinstance(actual, int | float | np.integer) and int(actual) == expected_value
    if isinstance(expected_value, str) and isinstance(actual, bytes):
        return (
            _same_raw(expected_value, actual, None)
            if exact
            else _same_text(expected_value, actual, exact)
        )
    if isinstance(expected_value, str):
        return _same_text(expected_value, actual, exact)
    raise AssertionError(f"no comparison for expected {expected_value!r}")


def _same_raw(expected_value: object, raw: bytes, element: elements.Element | None) -> bool:
    """An expected value against the raw big-endian bytes kept in extra_fields."""
    expected_value, exact = _unquote(expected_value)
    kind = element.kind if element is not None else None
    if isinstance(expected_value, float):
        fmt = {4: ">f", 8: ">d"}.get(len(raw))
        return fmt is not None and math.isclose(
            struct.unpack(fmt, raw)[0], expected_value, rel_tol=1e-6
        )
    if isinstance(expected_value, int):
        return int.from_bytes(raw, "big") == expected_value
    assert isinstance(expected_value, str), expected_value
    if re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8})+", expected_value):  # Cisco ACL ids
        return raw.hex() == expected_value.replace("-", "")
    if len(expected_value) == 2 * len(raw) > 0 and re.fullmatch(r"[0-9a-f]+", expected_value):
        return raw.hex() == expected_value  # logstash renders octetArray as hex
    if kind is ElementKind.IPV4 or (
        len(raw) == 4 and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", expected_value)
    ):
        return str(ipaddress.IPv4Address(raw)) == expected_value
    if kind is ElementKind.IPV6:
        return ipaddress.IPv6Address(raw) == ipaddress.ip_address(expected_value)
    return _same_text(expected_value, raw, exact)


@dataclass(frozen=True)
class Context:
    """Facts about the group that some comparisons need."""

    system_init_ms: int | None  # IPFIX systemInitTimeMilliseconds the group states


def _uptime_ns(row: Row, value: int, context: Context) -> int | None:
    """Absolute time of a sysUpTime value, computed here from the datagram header."""
    header = row.header
    assert header is not None
    if header.version in (5, 9):
        assert header.uptime_ms is not None
        delta = (header.uptime_ms - value) & 0xFFFFFFFF
        if delta >= 1 << 31:  # the 32-bit ms counter wrapped between flow and export
            delta -= 1 << 32
        return header.export_ns - delta * NS_PER_MS
    if context.system_init_ms is not None:
        return (context.system_init_ms + value) * NS_PER_MS
    return None  # IPFIX without a system init time: see _check_ipfix_uptimes


def _lookup_value(row: Row, element: elements.Element) -> tuple[object, bool]:
    """(value, raw): the element's column value, or its raw bytes when it lost the
    column to a higher-priority element (or has no column) and sits in extra_fields."""
    key = elements.extra_field_key(element.pen, element.element_id)
    if key in row.extras:
        return row.extras[key], True
    if element.column is None:
        raise Mismatch(f"{element.name}: not in extra_fields")
    if element.column not in row.values:
        raise Mismatch(f"{element.name}: column {element.column} absent")
    return row.values[element.column], False


def _check_time(row: Row, element: elements.Element, value: object, context: Context) -> None:
    actual, raw = _lookup_value(row, element)
    if raw:  # lost time_start/time_end to a better element: the wire value itself
        assert isinstance(actual, bytes)
        if int.from_bytes(actual, "big") != value:
            raise Mismatch(f"{element.name}: raw {actual.hex()} != {value}")
        return
    assert isinstance(actual, int), (element.name, actual)
    kind = element.kind
    if kind is ElementKind.DATETIME_MILLISECONDS:
        ok = actual // NS_PER_MS == value
    elif kind is ElementKind.DATETIME_SECONDS:
        ok = actual // NS_PER_S == value
    elif kind is ElementKind.DATETIME_MICROSECONDS:
        # NetScaler: expected.json has logstash's rendering, milliseconds and then a
        # literal "#{nanos}" (an uninterpolated Ruby string in the spec), or a quoted
        # ISO string: compare the milliseconds
        text, _ = _unquote(value)
        assert isinstance(text, str)
        ok = actual // NS_PER_MS == _parse_iso_ns(text.replace("#{nanos}", "")) // NS_PER_MS
    elif kind is ElementKind.SYSUPTIME_MILLISECONDS:
        assert isinstance(value, int)
        want = _uptime_ns(row, value, context)
        if want is None:
            return  # checked as a pair in _check_ipfix_uptimes
        ok = actual == want
    else:
        raise AssertionError(f"no time rule for {element.name} ({kind})")
    if not ok:
        raise Mismatch(f"{element.name}: {actual} ns does not read as {value!r}")


def _check_ipfix_uptimes(row: Row, fields: dict[str, object], context: Context) -> None:
    """IPFIX flowStart/EndSysUpTime with no systemInitTimeMilliseconds known: the
    decoder keeps the duration and ends the flow at the export time (docs/decoding.md)."""
    header = row.header
    if header is None or header.version != 10 or context.system_init_ms is not None:
        return
    start, end = fields.get("flowStartSysUpTime"), fields.get("flowEndSysUpTime")
    if not (isinstance(start, int) and isinstance(end, int)):
        return
    got_start, got_end = row.values["time_start"], row.values["time_end"]
    assert isinstance(got_start, int) and isinstance(got_end, int)
    if got_end != header.export_ns or got_end - got_start != (end - start) * NS_PER_MS:
        raise Mismatch(f"IPFIX uptimes {start}..{end}: got {got_start}..{got_end}")


def _logstash_application_id(raw: bytes) -> str:
    """applicationId as logstash renders it: 'engine..selector', or for engine 20
    (PANA-L7-PEN, RFC 6759) 'engine..PEN..selector'."""
    engine = raw[0]
    if engine == 20 and len(raw) > 5:
        return f"{engine}..{int.from_bytes(raw[1:5], 'big')}..{int.from_bytes(raw[5:], 'big')}"
    return f"{engine}..{int.from_bytes(raw[1:], 'big')}"


def _check_field(row: Row, key: str, value: object, context: Context) -> None:
    """One key of a record's "fields"; raises Mismatch."""
    if key == "applicationId_base64":  # Beats: the raw applicationId bytes, base64
        actual, _ = _lookup_value(row, elements.by_name("applicationId"))
        assert isinstance(actual, bytes)
        if base64.b64encode(actual).decode() != value:
            raise Mismatch(f"applicationId {actual.hex()} != base64 {value}")
        return
    element = elements.by_name(key)
    if key == "applicationId" and isinstance(value, str):
        actual, _ = _lookup_value(row, element)
        assert isinstance(actual, bytes)
        if _logstash_application_id(actual) != value:
            raise Mismatch(f"applicationId {actual.hex()} != {value}")
        return
    if key == "forwardingStatus" and isinstance(value, dict):
        # logstash splits the byte: status (2 bits) << 6 | reason code (6 bits)
        value = (value["status"] << 6) | value["reason"]
    if key == "mplsLabelStackLength" and isinstance(value, dict):
        # logstash reads IE 201 as a label stack entry: label 20 | exp 3 | bos 1 | ttl 8
        value = (
            (value["label"] << 12)
            | (value["experimental"] << 9)
            | (value["bottom_of_stack"] << 8)
            | value["ttl"]
        )
    if key == "samplingInterval" and row.kind == "flow" and value == 0:
        # a flow's sampling_interval is the 1-in-N in force; 0 in the record (H3C)
        # means not sampled, stored as 1 (docs/decoding.md, Sampling)
        value = 1
    if element.kind in elements.TIME_KINDS:
        _check_time(row, element, value, context)
        return
    if element.kind in (ElementKind.DURATION_MILLISECONDS, ElementKind.DURATION_MICROSECONDS):
        # folded into time_start / time_end, never a column
        scale = NS_PER_MS if element.kind is ElementKind.DURATION_MILLISECONDS else 1000
        span = row.values["time_end"] - row.values["time_start"]  # type: ignore[operator]
        if span != value * scale:  # type: ignore[operator]
            raise Mismatch(f"{key}: time_end - time_start = {span} ns, not {value}")
        return
    actual, raw = _lookup_value(row, element)
    ok = _same_raw(value, actual, element) if raw else _same_value(value, actual, element.kind)  # type: ignore[arg-type]
    if not ok:
        raise Mismatch(f"{key}: {actual!r} != {value!r}")


_PEN_KEY = re.compile(r"^(?:PEN (\d+) / IE (\d+)|[A-Za-z]+\((\d+)\)/(\d+))\b")
_V9_ID_KEY = re.compile(r"\((?:v9 field id|Cisco NSEL legacy id) (\d+)[;)]")
_SCOPE_KEY = re.compile(r"^scope \w+ \(v9 options scope type (\d+)\)$")


def _check_enterprise(row: Row, key: str, value: object) -> None:
    match = _PEN_KEY.match(key)
    assert match, f"unparsed enterprise key {key!r}"
    pen = int(match.group(1) or match.group(3))
    element_id = int(match.group(2) or match.group(4))
    pen = PEN_CORRECTIONS.get(pen, (pen, ""))[0]
    _check_element(row, pen, element_id, value, key)


def _check_element(row: Row, pen: int, element_id: int, value: object, key: str) -> None:
    element = elements.lookup(pen, element_id)
    extra = elements.extra_field_key(pen, element_id)
    if element is None or extra in row.extras:
        if extra not in row.extras:
            raise Mismatch(f"{key}: {extra} not in extra_fields")
        if not _same_raw(value, row.extras[extra], element):
            raise Mismatch(f"{key}: raw {row.extras[extra].hex()} != {value!r}")
        return
    actual, raw = _lookup_value(row, element)
    assert not raw
    if not _same_value(value, actual, element.kind):
        raise Mismatch(f"{key}: {actual!r} != {value!r}")


def _check_nonstandard(row: Row, key: str, value: object) -> None:
    scope = _SCOPE_KEY.match(key)
    if scope:
        scope_element = elements.v9_scope_field(int(scope.group(1)))
        assert scope_element is not None and scope_element.column is not None
        column = scope_element.column
        raw_key = f"scope:{scope.group(1)}"
        actual = row.values.get(column, row.extras.get(raw_key))
        if actual is None or not _same_value(value, actual, ElementKind.UNSIGNED):
            raise Mismatch(f"{key}: {actual!r} != {value!r}")
        return
    if key in NONSTANDARD_ALIASES:
        element_id = NONSTANDARD_ALIASES[key][0]
    else:
        match = _V9_ID_KEY.search(key)
        assert match, f"nonstandard key without a field id: {key!r} (add an alias)"
        element_id = int(match.group(1))
    _check_element(row, 0, element_id, value, key)


def _check_header(row: Row, key: str, value: object) -> None:
    header = row.header
    assert header is not None
    if f"header:{key}" in SKIPPED_KEYS:
        return
    got: object
    if key == "version":
        got = header.version
    elif key == "exportTime":
        assert isinstance(value, str)
        got, value = header.export_ns // NS_PER_MS, _parse_iso_ns(value) // NS_PER_MS
    elif key == "sequenceNumber":
        got = header.sequence
    elif key in ("count", "count (v5 header)"):
        got = header.count
    elif key == "sysUptime":
        got = header.uptime_ms
    elif key == "unix_secs":
        got = header.unix_secs
    elif key == "unix_nsecs":
        got = header.unix_nsecs
    elif key == "source_id":
        got = header.domain
    elif key == "engineType (v5 header)":
        got = row.values["engine_type"]
    elif key == "engineId (v5 header)":
        got = row.values["engine_id"]
    elif key == "samplingInterval (v5 header)":
        got = row.values["sampling_interval"]
        value = value or 1  # 0: not sampled, which we store as 1-in-1
    else:
        raise AssertionError(f"unknown header key {key!r}: compare it or add it to SKIPPED_KEYS")
    if got != value:
        raise Mismatch(f"header {key}: {got!r} != {value!r}")


def record_mismatches(row: Row, record: dict, context: Context) -> list[str]:
    problems = []
    checks: list[tuple[Callable[..., None], tuple]] = []
    for key, value in (record.get("header") or {}).items():
        checks.append((_check_header, (row, key, value)))
    fields = record.get("fields") or {}
    for key, value in fields.items():
        checks.append((_check_field, (row, key, value, context)))
    checks.append((_check_ipfix_uptimes, (row, fields, context)))
    for key, value in (record.get("enterprise_fields") or {}).items():
        checks.append((_check_enterprise, (row, key, value)))
    for key, value in (record.get("nonstandard_fields") or {}).items():
        checks.append((_check_nonstandard, (row, key, value)))
    for check, args in checks:
        try:
            check(*args)
        except Mismatch as mismatch:
            problems.append(str(mismatch))
    return problems


def _record_params() -> list:
    if not group_ids():
        return [pytest.param("", "", 0, marks=pytest.mark.skip(reason=NO_CORPUS))]
    params = []
    for facts in expected()["groups"]:
        for section in ("records", "asserted_field_values"):
            for position, record in enumerate(facts.get(section, [])):
                params.append(
                    pytest.param(
                        facts["id"],
                        section,
                        position,
                        id=f"{facts['id']}|{section}[{position}]@{record['index']}",
                    )
                )
    return params


def group_context(group_id: str) -> Context:
    inits = {
        record["fields"]["systemInitTimeMilliseconds"]
        for section in ("records", "asserted_field_values")
        for record in group(group_id).facts.get(section, [])
        if "systemInitTimeMilliseconds" in (record.get("fields") or {})
    }
    assert len(inits) <= 1, inits
    return Context(next(iter(inits)) if inits else None)


@pytest.mark.parametrize(("group_id", "section", "position"), _record_params())
def test_expected_record_is_decoded(group_id: str, section: str, position: int) -> None:
    record = group(group_id).facts[section][position]
    decoded = decode_group(group_id)
    context = group_context(group_id)
    best: tuple[int, Row | None, list[str]] = (1 << 30, None, [])
    for row in decoded.flows + decoded.options:
        problems = record_mismatches(row, record, context)
        if not problems:
            return
        if len(problems) < best[0]:
            best = (len(problems), row, problems)
    _, row, problems = best
    where = row.describe() if row else "no records"
    pytest.fail(
        f"{group_id} {section}[{position}] ({record['status']}) matches no decoded record; "
        f"closest: {where}: {problems}"
    )


def test_every_expected_key_is_compared_or_skipped() -> None:
    """Every field key in expected.json resolves to an element, a rule or a skip entry,
    and every skip entry is used."""
    if not group_ids():
        pytest.skip(NO_CORPUS)
    used = set()
    for facts in expected()["groups"]:
        for section in ("records", "asserted_field_values"):
            for record in facts.get(section, []):
                for key in record.get("fields") or {}:
                    if key != "applicationId_base64":
                        elements.by_name(key)  # KeyError: unmapped
                for key in record.get("header") or {}:
                    if f"header:{key}" in SKIPPED_KEYS:
                        used.add(f"header:{key}")
                for key in record.get("enterprise_fields") or {}:
                    assert _PEN_KEY.match(key), key
                for key in record.get("nonstandard_fields") or {}:
                    assert (
                        _SCOPE_KEY.match(key)
                        or _V9_ID_KEY.search(key)
                        or key in NONSTANDARD_ALIASES
                    ), key
    assert used == set(SKIPPED_KEYS)


# --- 3. explicit checks --------------------------------------------------------------------------


def _require(group_id: str) -> None:
    if not group_ids():
        pytest.skip(NO_CORPUS)
    assert group_id in group_ids()


def _iso_ms(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // NS_PER_MS / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns // NS_PER_MS % 1000:03d}Z"


def test_v5_sysuptime_wrap_gives_the_right_start() -> None:
    """netflow5.dat record 0: first=4294967295, last=2577, header sysUptime 3381,
    unix_secs 1430591888, unix_nsecs 280328000. The start is 3.382 s before the export,
    not 49 days later: logstash's derived first_switched (2015-06-21T11:40:52.194Z) is
    its wrap bug, and expected.json keeps it only under "derived"."""
    _require("logstash/Netflow 5 valid 01")
    rows = [r for r in decode_group("logstash/Netflow 5 valid 01").flows if r.datagram == 0]
    first = next(r for r in rows if r.values["src_addr"] == "10.0.2.2")
    assert first.header is not None
    assert (first.header.uptime_ms, first.header.unix_secs, first.header.unix_nsecs) == (
        3381,
        1430591888,
        280328000,
    )
    export_ms = 1430591888 * 1000 + 280328000 // NS_PER_MS
    assert _iso_ms(first.values["time_start"]) == "2015-05-02T18:38:04.898Z"  # type: ignore[arg-type]
    assert first.values["time_start"] // NS_PER_MS == export_ms - (3381 - -1)  # type: ignore[operator]
    assert _iso_ms(first.values["time_end"]) == "2015-05-02T18:38:07.476Z"  # type: ignore[arg-type]
    assert first.values["time_end"] // NS_PER_MS == export_ms - (3381 - 2577)  # type: ignore[operator]


VMWARE = "logstash/IPFIX VMware virtual distributed switch"


def test_vmware_vds_records() -> None:
    """All 5 VDS records carry the VMware elements 888-890 as columns, and the IPv6 one
    its addresses."""
    _require(VMWARE)
    flows = decode_group(VMWARE).flows
    assert len(flows) == 5
    for row in flows:
        assert row.values["ingress_if_attr"] == 1
        assert row.values["egress_if_attr"] == 2
        assert row.values["vxlan_export_role"] == 0
        assert row.values["layer2_segment_id"] == 0
        assert not any(key.startswith("6876:") for key in row.extras)
    v6 = [row for row in flows if "src_addr6" in row.values and "src_addr" not in row.values]
    assert [(r.values["src_addr6"], r.values["dst_addr6"]) for r in v6] == [
        ("fe80::5187:5cd8:d750:cdc9", "ff02::1:3")
    ]
    assert v6[0].values["bytes"] == 144
    starts = Counter(_iso_ms(r.values["time_start"]) for r in flows)  # type: ignore[arg-type]
    assert starts == Counter(
        {
            "2016-12-22T12:17:37.000Z": 1,
            "2016-12-22T12:17:42.000Z": 2,
            "2016-12-22T12:25:49.000Z": 2,
        }
    )
    assert all(r.values["time_end"] == r.values["time_start"] for r in flows)


# --- 4. schema and robustness --------------------------------------------------------------------


@pytest.mark.parametrize("group_id", _group_params())
def test_group_batches_convert_to_the_storage_schema(group_id: str) -> None:
    for batch in decode_group(group_id).batches:
        record_batch = to_record_batch(batch)
        assert record_batch.num_rows == batch.num_rows
        for column in record_batch.schema:
            assert FLOW_SCHEMA.field(column.name).type == column.type, column.name
        complete = to_record_batch(batch, complete=True)
        assert complete.schema.equals(FLOW_SCHEMA)


def _file_params() -> list:
    names = file_names()
    return names or [pytest.param("", marks=pytest.mark.skip(reason=NO_CORPUS))]


@pytest.mark.parametrize("name", _file_params())
def test_every_corpus_file_alone_decodes_or_raises_parse_error(name: str) -> None:
    """Each file on its own (data files without their templates too): ParseError is the
    only exception, and whatever decodes converts to the schema."""
    decoder = FlowDecoder()
    for index, datagram in enumerate(file_datagrams(name)):
        with contextlib.suppress(ParseError):
            decoder.feed_datagram(datagram.payload, datagram.source, RECEIVED_AT_NS + index)
    decoder.take_options_records()
    for batch in decoder.flush():
        to_record_batch(batch)
    decoder.finish()


def test_address_twins_hold_one_family_per_flow() -> None:
    """Where a record fills only one family (the other twin all zero on the wire), the
    stored twin is null and the JSON row shows the filled address."""
    if not group_ids():
        pytest.skip(NO_CORPUS)
    wrong: Counter[str] = Counter()
    for group_id in group_ids():
        for batch in decode_group(group_id).batches:
            twins = [c for c in ("src_addr", "dst_addr") if {c, c + "6"} <= set(batch.columns)]
            if not twins:
                continue
            stored = to_record_batch(batch)
            for column in twins:
                v4 = np.asarray(batch.columns[column])
                v6 = np.asarray(batch.columns[column + "6"])
                only4, only6 = (v4 != 0) & ~v6.any(axis=1), (v4 == 0) & v6.any(axis=1)
                texts = [row[column] for row in flow_rows(batch)]
                v4_stored = stored.column(column).to_pylist()
                v6_stored = stored.column(column + "6").to_pylist()
                for i in range(batch.num_rows):
                    if only4[i] and (v6_stored[i] is not None or texts[i] == "::"):
                        wrong[f"{group_id} {column}: IPv4 flow"] += 1
                    if only6[i] and (v4_stored[i] is not None or texts[i] == "0.0.0.0"):
                        wrong[f"{group_id} {column}: IPv6 flow"] += 1
    assert not wrong, dict(wrong)


# --- 5. sampling ---------------------------------------------------------------------------------


PMACCT_SAMPLING = "pmacct/104-IPFIXv10-IPv6-CISCO-sampling_option"


def test_pmacct_sampling_options_apply_to_flows() -> None:
    _require(PMACCT_SAMPLING)
    decoded = decode_group(PMACCT_SAMPLING)
    [announcement] = decoded.options
    values = announcement.values
    assert values["selector_algorithm"] == 3  # random n-out-of-N
    interval = values["sampling_population"] // values["sampling_size"]  # type: ignore[operator]
    assert interval == 256
    assert len(decoded.flows) == 3
    for row in decoded.flows:
        assert row.values["sampler_id"] == values["sampler_id"]
        assert row.values["sampling_interval"] == interval


def test_akvorado_sampling_from_sampler_options() -> None:
    """TestDecode: sampler 1 announced as 1-in-30000 in options data; all 4 flows."""
    _require("akvorado/TestDecode")
    decoded = decode_group("akvorado/TestDecode")
    assert {r.values["sampler_random_interval"] for r in decoded.options} == {30000}
    assert [r.values["sampling_interval"] for r in decoded.flows] == [30000] * 4


def test_akvorado_sampling_rate_in_data_records() -> None:
    """samplingrate: Huawei sends samplingInterval (34) in every data record: 2048
    (akvorado TestDecodeSamplingRate asserts the first flow)."""
    _require("akvorado/samplingrate")
    flows = decode_group("akvorado/samplingrate").flows
    assert len(flows) == 6
    assert {r.values["sampling_interval"] for r in flows} == {2048}


def test_akvorado_multiple_sampling_rates_per_sampler() -> None:
    """multiplesamplingrates: two samplers announced (1: 1-in-2000, 2: 1-in-4000);
    each flow gets its sampler's interval. akvorado TestDecodeMultipleSamplingRates
    states the first two: ffff::68 -> 4000, ffff::5a -> 2000."""
    group_id = "akvorado/multiplesamplingrates"
    _require(group_id)
    decoded = decode_group(group_id)
    samplers = {
        r.values["sampler_id"]: r.values["sampler_random_interval"] for r in decoded.options
    }
    assert samplers == {1: 2000, 2: 4000}
    assert len(decoded.flows) == 12
    for row in decoded.flows:
        assert row.values["sampling_interval"] == samplers[row.values["sampler_id"]]
    by_source = {r.values["src_addr6"]: r.values["sampling_interval"] for r in decoded.flows}
    assert by_source["ffff::68"] == 4000
    assert by_source["ffff::5a"] == 2000
    assert Counter(r.values["sampling_interval"] for r in decoded.flows) == Counter(
        {2000: 11, 4000: 1}
    )
