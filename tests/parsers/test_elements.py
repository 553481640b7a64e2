"""The element registry's rules (see the ``parsers/elements.py`` docstring)."""

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from parsers import elements
from parsers.elements import ColumnSpec, Element, ElementKind

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
IANA_LIMIT = 32768  # ids from here up under PEN 0 are NetFlow v9 vendor types

# expected.json "fields" keys that are not registry names but the source tool's own
# spelling: logstash renders applicationId as base64 under this key
NOT_IANA_NAMES = frozenset({"applicationId_base64"})

CORE_COLUMNS: dict[str, set[int]] = {
    "time_start": {22, 150, 152, 154, 156, 158},
    "time_end": {21, 151, 153, 155, 157, 159},
    "proto": {4},
    "src_addr": {8},
    "src_port": {7, 180, 182},
    "dst_addr": {12},
    "dst_port": {11, 181, 183},
    "tcp_flags": {6},
    "tos": {5},
    "packets": {2, 86, 298},
    "bytes": {1, 85, 231},
    "in_if": {10},
    "out_if": {14},
    "src_as": {16},
    "dst_as": {17},
    "src_mask": {9, 29},
    "dst_mask": {13, 30},
    "next_hop": {15},
    "sampling_interval": {34},
}
# the element a template with several candidates should prefer
CORE_PRIMARY = {"time_start": 152, "time_end": 153, "bytes": 1, "packets": 2}


def family(kind: ElementKind) -> str:
    """Kinds that may share a column: all times are one family, durations another."""
    if elements.is_time_kind(kind):
        return "time"
    if kind in (ElementKind.DURATION_MILLISECONDS, ElementKind.DURATION_MICROSECONDS):
        return "duration"
    return kind.value


def by_column() -> dict[str, list[Element]]:
    columns: dict[str, list[Element]] = defaultdict(list)
    for element in elements.all_elements():
        if element.column is not None:
            columns[element.column].append(element)
    return columns


def test_keys_and_names_are_unique():
    keys = Counter((e.pen, e.element_id) for e in elements.all_elements())
    assert [k for k, n in keys.items() if n > 1] == []
    names = Counter(e.name for e in elements.all_elements())
    assert [k for k, n in names.items() if n > 1] == []


def test_lookup_and_by_name_agree_with_all_elements():
    for element in elements.all_elements():
        assert elements.lookup(element.pen, element.element_id) is element
        assert elements.by_name(element.name) is element
    assert elements.lookup(0, 0) is None
    assert elements.lookup(0, 65) is None  # "assigned for NetFlow v9 compatibility"
    assert elements.lookup(0, 416) is None  # unassigned
    with pytest.raises(KeyError):
        elements.by_name("noSuchElement")


def test_iana_ids_are_the_registry_range():
    ids = {e.element_id for e in elements.all_elements() if e.pen == 0}
    iana = {i for i in ids if i < IANA_LIMIT}
    assert max(iana) >= 520
    unnamed = {0, 97, 416, 419} | set(range(65, 70)) | set(range(105, 128))
    assert iana.isdisjoint(unnamed)
    assert set(range(1, 530)) - unnamed <= iana


def test_sizes_match_kinds():
    fixed = {
        ElementKind.IPV4: {4},
        ElementKind.IPV6: {16},
        ElementKind.MAC: {6},
        ElementKind.BOOLEAN: {1},
        ElementKind.FLOAT: {4, 8},
        ElementKind.DATETIME_SECONDS: {4},
        ElementKind.DATETIME_MILLISECONDS: {8},
        ElementKind.DATETIME_MICROSECONDS: {8},
        ElementKind.DATETIME_NANOSECONDS: {8},
        ElementKind.LIST: {0},
    }
    for element in elements.all_elements():
        if element.kind in fixed:
            assert element.size in fixed[element.kind], element
        elif element.kind in (ElementKind.UNSIGNED, ElementKind.SIGNED):
            assert 1 <= element.size <= 8, element


def test_columns_are_snake_case_and_not_header_columns():
    for column in by_column():
        assert column == column.lower() and column.replace("_", "").isalnum(), column
    # filled from the message header / datagram, never by an element
    assert {"exporter", "observation_domain", "time_received"}.isdisjoint(by_column())


def test_each_column_takes_one_kind_family_and_unique_priorities():
    for column, members in by_column().items():
        assert len({family(e.kind) for e in members}) == 1, (column, members)
        priorities = Counter(e.priority for e in members)
        assert max(priorities.values()) == 1, (column, members)


def test_ipv6_twins_of_ipv4_columns():
    columns = by_column()
    kinds = {c: {e.kind for e in members} for c, members in columns.items()}
    for column, column_kinds in kinds.items():
        if column_kinds == {ElementKind.IPV4} and column + "6" in kinds:
            assert kinds[column + "6"] == {ElementKind.IPV6}, column
    # An IANA IPv4 element whose IPv6 twin exists has the twin column X6, or, for
    # columns that spell out the family (exporter_ipv4_address), X with ipv6.
    iana = {e.name: e for e in elements.all_elements() if e.pen == 0}
    checked = 0
    for name, element in iana.items():
        twin = iana.get(name.replace("IPv4", "IPv6"))
        if element.kind is not ElementKind.IPV4 or twin is None or twin is element:
            continue
        assert element.column is not None and twin.column is not None
        expected = element.column.replace("ipv4", "ipv6")
        if expected == element.column:
            expected = element.column + "6"
        assert twin.column == expected, (name, twin.name)
        checked += 1
    assert checked >= 8
    assert elements.lookup(0, 8).column + "6" == elements.lookup(0, 27).column
    assert elements.lookup(0, 225).column + "6" == elements.lookup(0, 281).column


@pytest.mark.parametrize("column", sorted(CORE_COLUMNS))
def test_core_columns_come_from_the_expected_iana_elements(column: str):
    iana = {
        e.element_id
        for e in elements.all_elements()
        if e.pen == 0 and e.element_id < IANA_LIMIT and e.column == column
    }
    assert iana == CORE_COLUMNS[column]
    members = [e for e in elements.all_elements() if e.column == column and e.pen == 0]
    winner = min(members, key=lambda e: e.priority)
    assert winner.element_id == CORE_PRIMARY.get(column, min(CORE_COLUMNS[column]))


def test_named_columns_the_brief_fixes():
    expected = {
        56: "in_src_mac", 57: "out_dst_mac", 80: "in_dst_mac", 81: "out_src_mac",
        58: "src_vlan", 59: "dst_vlan", 60: "ip_version", 136: "flow_end_reason",
        89: "forwarding_status", 32: "icmp_type_code", 139: "icmp_type_code",
        176: "icmp_type", 178: "icmp_type", 177: "icmp_code", 179: "icmp_code",
        225: "xlate_src_addr", 226: "xlate_dst_addr", 227: "xlate_src_port",
        228: "xlate_dst_port", 281: "xlate_src_addr6", 282: "xlate_dst_addr6",
        233: "fw_event", 230: "nat_event", 231: "bytes", 232: "out_bytes",
        298: "packets", 299: "out_packets", 234: "ingress_vrf_id", 235: "egress_vrf_id",
        95: "application_id", 96: "application_name", 94: "application_description",
        82: "interface_name", 83: "interface_description", 84: "sampler_name",
        148: "flow_id", 52: "min_ttl", 53: "max_ttl", 252: "in_phys_if",
        253: "out_phys_if", 243: "dot1q_vlan", 130: "exporter_ipv4_address",
        315: "data_link_frame_section", 210: None, 291: None, 292: None, 293: None,
        33000: "ingress_acl_id", 33001: "egress_acl_id", 33002: "fw_ext_event",
        40000: "username", 40001: "xlate_src_addr", 40002: "xlate_dst_addr",
        40003: "xlate_src_port", 40004: "xlate_dst_port", 40005: "fw_event",
    }  # fmt: skip
    for element_id, column in expected.items():
        element = elements.lookup(0, element_id)
        assert element is not None and element.column == column, (element_id, element)
    for index in range(10):
        label = elements.lookup(0, 70 + index)
        assert label is not None
        assert (label.column, label.kind, label.size) == (
            f"mpls_label_{index + 1}", ElementKind.UNSIGNED, 3
        )
    assert elements.lookup(0, 231).priority == 2 and elements.lookup(0, 232).priority == 1
    assert elements.lookup(0, 298).priority == 2 and elements.lookup(0, 299).priority == 1
    assert elements.lookup(0, 40001).priority == 1  # the IANA id (225) wins
    assert elements.by_name("NF_F_INGRESS_ACL_ID").size == 12


def test_vmware_elements_have_named_columns():
    for element_id in (*range(880, 885), *range(886, 891), 898):
        element = elements.lookup(elements.VMWARE_PEN, element_id)
        assert element is not None and element.column, element_id
    assert elements.lookup(elements.VMWARE_PEN, 885) is None
    segment = elements.lookup(0, 351)
    assert segment is not None and segment.column == "layer2_segment_id"
    assert elements.lookup(elements.VMWARE_PEN, 883).kind is ElementKind.IPV6


def test_reverse_elements_mirror_iana():
    reverse = elements.lookup(elements.REVERSE_PEN, 1)
    assert reverse is not None
    assert reverse.name == "reverseOctetDeltaCount"
    assert (reverse.column, reverse.kind, reverse.size) == (
        "reverse_bytes", ElementKind.UNSIGNED, 8
    )
    assert elements.lookup(elements.REVERSE_PEN, 1) is reverse  # precomputed
    start = elements.lookup(elements.REVERSE_PEN, 152)
    assert start is not None and start.column == "reverse_time_start"
    assert start.priority == elements.lookup(0, 152).priority
    address = elements.lookup(elements.REVERSE_PEN, 8)
    assert address is not None and address.name == "reverseSourceIPv4Address"
    assert address.column is None
    assert elements.lookup(elements.REVERSE_PEN, 236).name == "reverseVRFname"
    for never_reversed in (130, 148, 210, 239):
        assert elements.lookup(elements.REVERSE_PEN, never_reversed) is None
    assert elements.lookup(elements.REVERSE_PEN, 33000) is None  # v9 vendor types


def test_every_reverse_element_has_its_forward_twin():
    for reverse in elements.all_elements():
        if reverse.pen != elements.REVERSE_PEN:
            continue
        forward = elements.lookup(0, reverse.element_id)
        assert forward is not None and forward.element_id < IANA_LIMIT
        assert reverse.name == "reverse" + forward.name[0].upper() + forward.name[1:]
        assert (reverse.kind, reverse.size, reverse.priority) == (
            forward.kind, forward.size, forward.priority
        )
        assert reverse.column in (None, f"reverse_{forward.column}")


def test_v9_scope_fields():
    names = {t: elements.v9_scope_field(t) for t in range(1, 6)}
    assert {t: e.column for t, e in names.items() if e} == {
        1: "scope_system",
        2: "scope_interface",
        3: "scope_line_card",
        4: "scope_cache",
        5: "scope_template",
    }
    for element in elements.V9_SCOPE_FIELDS.values():
        assert (element.kind, element.size) == (ElementKind.UNSIGNED, 4)
    assert elements.v9_scope_field(0) is None
    assert elements.v9_scope_field(6) is None


def test_column_specs():
    specs = elements.column_specs()
    time = ColumnSpec(ElementKind.DATETIME_NANOSECONDS, 8)
    for column in ("time_start", "time_end", "system_init_time", "observation_time"):
        assert specs[column] == time
    assert specs["reverse_time_end"] == time
    assert "duration" not in specs and "reverse_duration" not in specs
    assert specs["bytes"] == ColumnSpec(ElementKind.UNSIGNED, 8)
    assert specs["mpls_label_1"] == ColumnSpec(ElementKind.UNSIGNED, 4)
    assert specs["sampler_id"] == ColumnSpec(ElementKind.UNSIGNED, 8)
    assert specs["src_addr"] == ColumnSpec(ElementKind.IPV4, 4)
    assert specs["src_addr6"] == ColumnSpec(ElementKind.IPV6, 16)
    assert specs["in_src_mac"] == ColumnSpec(ElementKind.MAC, 6)
    assert specs["ingress_acl_id"] == ColumnSpec(ElementKind.OCTETS, 0)
    assert specs["application_name"] == ColumnSpec(ElementKind.STRING, 0)
    assert specs["sampling_probability"] == ColumnSpec(ElementKind.FLOAT, 8)
    assert specs["reverse_bytes"] == ColumnSpec(ElementKind.UNSIGNED, 8)
    assert specs["scope_interface"] == ColumnSpec(ElementKind.UNSIGNED, 4)
    for column, spec in specs.items():
        if spec.kind in (ElementKind.UNSIGNED, ElementKind.SIGNED):
            assert spec.size in (1, 2, 4, 8), column
        elif spec.kind in (ElementKind.STRING, ElementKind.OCTETS):
            assert spec.size == 0, column
        else:
            assert spec.kind in (
                ElementKind.DATETIME_NANOSECONDS,
                ElementKind.IPV4,
                ElementKind.IPV6,
                ElementKind.MAC,
                ElementKind.FLOAT,
                ElementKind.BOOLEAN,
            ), column
    element_columns = {c for c in by_column() if c not in ("duration", "reverse_duration")}
    assert element_columns <= set(specs)


def test_time_and_padding_helpers():
    assert elements.is_time_kind(ElementKind.SYSUPTIME_MILLISECONDS)
    assert elements.is_time_kind(ElementKind.DATETIME_SECONDS)
    assert not elements.is_time_kind(ElementKind.DURATION_MILLISECONDS)
    assert not elements.is_time_kind(ElementKind.UNSIGNED)
    assert elements.is_padding(elements.by_name("paddingOctets"))
    assert not elements.is_padding(elements.by_name("octetDeltaCount"))


def test_extra_field_key():
    assert elements.extra_field_key(6876, 999) == "6876:999"


def test_corpus_field_names_resolve():
    expected = CORPUS / "expected.json"
    if not expected.is_file():
        pytest.skip(f"corpus not found at {expected}")
    groups = json.loads(expected.read_text())["groups"]
    names = {
        name
        for group in groups
        for record in group.get("records") or []
        for name in (record.get("fields") or {})
    }
    assert names
    unknown = []
    for name in sorted(names - NOT_IANA_NAMES):
        try:
            elements.by_name(name)
        except KeyError:
            unknown.append(name)
    assert unknown == []
