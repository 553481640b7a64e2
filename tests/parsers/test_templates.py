"""Template lifecycle: refresh, redefinition, withdrawal, scoping per transport session
and domain, data held until its template arrives, and the NetFlow v9 zero-length
field quirks. Packets are built with construct (the builders of ``test_roundtrip.py``).

A stateful hypothesis test then runs any sequence of definitions, redefinitions,
withdrawals and data against a plain reference model of who holds which template.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from parsers.decoder import FlowDecoder
from parsers.events import FieldSpec, FlowBatch, TemplateSpec
from parsers.ipfix import parse_template_set
from parsers.netflow_v9 import SCOPE_PEN, parse_template_flowset
from tests.parsers.test_roundtrip import (
    VARLEN,
    VMWARE,
    WireField,
    column_values,
    data_record,
    ipfix_message,
    ipfix_options_template_record,
    ipfix_set,
    ipfix_template_record,
    ipfix_withdrawal,
    v9_flowset,
    v9_message,
    v9_options_template_record,
    v9_template_record,
)

EXPORTER = ("192.0.2.10", 4739)
EXPORT_S = 1_600_000_000
NOW_NS = 1_700_000_000_000_000_000

LAYOUT_A = [WireField(0, 8, 4), WireField(0, 7, 2)]  # src_addr, src_port
LAYOUT_B = [WireField(0, 7, 2), WireField(0, 12, 4), WireField(0, 4, 1)]  # + dst_addr, proto


def records_a(*pairs: tuple[int, int]) -> bytes:
    return b"".join(data_record(LAYOUT_A, list(p)) for p in pairs)


def records_b(*triples: tuple[int, int, int]) -> bytes:
    return b"".join(data_record(LAYOUT_B, list(t)) for t in triples)


def layouts_of(decoder: FlowDecoder, exporter: tuple[str, int] = EXPORTER) -> dict:
    return decoder.templates.exporters[exporter].layouts


def spec_of(fields: Sequence[WireField], template_id: int = 256) -> TemplateSpec:
    return TemplateSpec(
        template_id, tuple(FieldSpec(f.pen, f.element_id, f.length) for f in fields)
    )


# --- refresh and redefinition --------------------------------------------------------


@pytest.mark.parametrize("version", [9, 10])
def test_refresh_keeps_the_compiled_layout(version: int) -> None:
    decoder = FlowDecoder()

    def feed(extra_templates: Sequence[tuple[int, list[WireField]]] = ()) -> None:
        templates = [(256, LAYOUT_A), *extra_templates]
        if version == 10:
            body = b"".join(ipfix_template_record(t, f) for t, f in templates)
            message = ipfix_message(
                [ipfix_set(2, body), ipfix_set(256, records_a((1, 2)))], EXPORT_S
            )
        else:
            body = b"".join(v9_template_record(t, f) for t, f in templates)
            message = v9_message(
                [v9_flowset(0, body), v9_flowset(256, records_a((1, 2)))], 1000, EXPORT_S
            )
        decoder.feed_datagram(message, EXPORTER, NOW_NS)

    feed()
    layout = layouts_of(decoder)[(version, 0, 256)]
    feed()  # the same template set bytes again
    feed([(257, LAYOUT_B)])  # the same template in a different set: parsed anew
    assert layouts_of(decoder)[(version, 0, 256)] is layout
    stats = decoder.templates.stats
    assert (stats.templates_learned, stats.templates_redefined) == (2, 0)
    assert decoder.templates.template_count == 2
    (batch,) = decoder.flush()  # one layout object: one batch of all three datagrams
    assert batch.columns["src_addr"].tolist() == [1, 1, 1]


def test_redefinition_later_data_new_layout_staged_data_old_layout() -> None:
    """Same id, new layout: data staged before the redefinition (even in the same
    datagram, before the template set) still decodes with the old layout in the same
    flush; data after it with the new one."""
    decoder = FlowDecoder()
    decoder.feed_datagram(
        ipfix_message(
            [
                ipfix_set(2, ipfix_template_record(256, LAYOUT_A)),
                ipfix_set(256, records_a((1, 10))),
            ],
            EXPORT_S,
        ),
        EXPORTER,
        NOW_NS,
    )
    old_layout = layouts_of(decoder)[(10, 0, 256)]
    count = decoder.feed_datagram(
        ipfix_message(
            [
                ipfix_set(256, records_a((2, 20))),  # still the old layout
                ipfix_set(2, ipfix_template_record(256, LAYOUT_B)),
                ipfix_set(256, records_b((30, 3, 6), (31, 4, 17))),  # the new one
            ],
            EXPORT_S,
        ),
        EXPORTER,
        NOW_NS,
    )
    assert count == 3
    decoder.feed_datagram(
        ipfix_message([ipfix_set(256, records_b((32, 5, 1)))], EXPORT_S), EXPORTER, NOW_NS
    )
    new_layout = layouts_of(decoder)[(10, 0, 256)]
    assert new_layout is not old_layout and new_layout.template == spec_of(LAYOUT_B)
    assert decoder.templates.stats.templates_redefined == 1
    old, new = decoder.flush()
    assert old.columns["src_addr"].tolist() == [1, 2]
    assert old.columns["src_port"].tolist() == [10, 20]
    assert "dst_addr" not in old.columns
    assert new.columns["src_port"].tolist() == [30, 31, 32]
    assert new.columns["dst_addr"].tolist() == [3, 4, 5]
    assert new.columns["proto"].tolist() == [6, 17, 1]
    assert "src_addr" not in new.columns


def test_v9_redefinition_in_the_same_flush() -> None:
    decoder = FlowDecoder()
    for fields, records in ((LAYOUT_A, records_a((1, 1))), (LAYOUT_B, records_b((2, 2, 2)))):
        decoder.feed_datagram(
            v9_message(
                [v9_flowset(0, v9_template_record(300, fields)), v9_flowset(300, records)],
                5,
                EXPORT_S,
            ),
            EXPORTER,
            NOW_NS,
        )
    first, second = decoder.flush()
    assert first.columns["src_addr"].tolist() == [1]
    assert second.columns["dst_addr"].tolist() == [2]


# --- withdrawal (IPFIX) ----------------------------------------------------------------


def test_withdrawal_makes_later_data_wait_for_a_template() -> None:
    decoder = FlowDecoder()
    decoder.feed_datagram(
        ipfix_message(
            [
                ipfix_set(
                    2, ipfix_template_record(256, LAYOUT_A) + ipfix_template_record(257, LAYOUT_B)
                )
            ],
            EXPORT_S,
        ),
        EXPORTER,
        NOW_NS,
    )
    decoder.feed_datagram(
        ipfix_message([ipfix_set(2, ipfix_withdrawal(256))], EXPORT_S), EXPORTER, NOW_NS
    )
    assert set(layouts_of(decoder)) == {(10, 0, 257)}
    assert decoder.templates.template_count == 1
    assert decoder.templates.stats.templates_withdrawn == 1
    assert (
        decoder.feed_datagram(
            ipfix_message([ipfix_set(256, records_a((1, 1)))], EXPORT_S), EXPORTER, NOW_NS
        )
        == 0
    )
    assert decoder.templates.held_set_count() == 1
    assert decoder.flush() == []
    # a withdrawal of an id nobody defined changes nothing
    decoder.feed_datagram(
        ipfix_message([ipfix_set(2, ipfix_withdrawal(999))], EXPORT_S), EXPORTER, NOW_NS
    )
    assert set(layouts_of(decoder)) == {(10, 0, 257)}
    assert decoder.templates.stats.templates_withdrawn == 1


OPTIONS_FIELDS = [WireField(0, 149, 4), WireField(0, 34, 4)]


def _define_templates_and_options(decoder: FlowDecoder, domain: int) -> None:
    decoder.feed_datagram(
        ipfix_message(
            [
                ipfix_set(
                    2, ipfix_template_record(256, LAYOUT_A) + ipfix_template_record(257, LAYOUT_B)
                ),
                ipfix_set(3, ipfix_options_template_record(258, OPTIONS_FIELDS, 1)),
            ],
            EXPORT_S,
            domain=domain,
        ),
        EXPORTER,
        NOW_NS,
    )


@pytest.mark.parametrize(("set_id", "remaining"), [(2, {258}), (3, {256, 257})])
def test_withdraw_all_of_one_kind_in_one_domain(set_id: int, remaining: set[int]) -> None:
    """Template id 2 in set 2 withdraws all templates, id 3 in set 3 all options
    templates (RFC 7011 §8.1), of that domain only."""
    decoder = FlowDecoder()
    _define_templates_and_options(decoder, domain=1)
    _define_templates_and_options(decoder, domain=2)
    decoder.feed_datagram(
        ipfix_message([ipfix_set(set_id, ipfix_withdrawal(set_id))], EXPORT_S, domain=1),
        EXPORTER,
        NOW_NS,
    )
    keys = set(layouts_of(decoder))
    assert {k[2] for k in keys if k[1] == 1} == remaining
    assert {k[2] for k in keys if k[1] == 2} == {256, 257, 258}
    assert decoder.templates.template_count == 3 + len(remaining)


def test_withdraw_all_also_takes_templates_defined_earlier_in_the_datagram() -> None:
    decoder = FlowDecoder()
    decoder.feed_datagram(
        ipfix_message(
            [
                ipfix_set(
                    2,
                    ipfix_template_record(256, LAYOUT_A)
                    + ipfix_withdrawal(2)
                    + ipfix_template_record(257, LAYOUT_B),
                )
            ],
            EXPORT_S,
        ),
        EXPORTER,
        NOW_NS,
    )
    assert set(layouts_of(decoder)) == {(10, 0, 257)}


# --- scoping: (exporter address, port, version, domain, id) -----------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((("192.0.2.1", 4739), 0), (("192.0.2.2", 4739), 0)),  # two exporters
        ((("192.0.2.1", 4739), 0), (("192.0.2.1", 4740), 0)),  # two source ports
        ((("192.0.2.1", 4739), 0), (("192.0.2.1", 4739), 1)),  # two domains
        ((("2001:db8::1", 4739), 0), (("192.0.2.1", 4739), 0)),
    ],
)
@pytest.mark.parametrize("version", [9, 10])
def test_same_template_id_does_not_collide(first: tuple, second: tuple, version: int) -> None:
    decoder = FlowDecoder()

    def message(sets: list[tuple[int, bytes]], domain: int) -> bytes:
        if version == 10:
            return ipfix_message([ipfix_set(s, b) for s, b in sets], EXPORT_S, domain=domain)
        return v9_message([v9_flowset(s, b) for s, b in sets], 1, EXPORT_S, source_id=domain)

    template_set = 2 if version == 10 else 0
    record = ipfix_template_record if version == 10 else v9_template_record
    (exporter_a, domain_a), (exporter_b, domain_b) = first, second
    decoder.feed_datagram(
        message([(template_set, record(400, LAYOUT_A))], domain_a), exporter_a, NOW_NS
    )
    decoder.feed_datagram(
        message([(template_set, record(400, LAYOUT_B))], domain_b), exporter_b, NOW_NS
    )
    decoder.feed_datagram(message([(400, records_b((7, 8, 9)))], domain_b), exporter_b, NOW_NS)
    decoder.feed_datagram(message([(400, records_a((5, 6)))], domain_a), exporter_a, NOW_NS)
    batches = decoder.flush()
    assert len(batches) == 2
    by_columns = {("src_addr" in b.columns): b for b in batches}
    assert by_columns[True].columns["src_addr"].tolist() == [5]
    assert by_columns[True].columns["observation_domain"].tolist() == [domain_a]
    assert by_columns[False].columns["dst_addr"].tolist() == [8]
    assert by_columns[False].columns["observation_domain"].tolist() == [domain_b]
    assert decoder.templates.template_count == 2


def test_v9_and_ipfix_of_one_session_do_not_collide() -> None:
    decoder = FlowDecoder()
    decoder.feed_datagram(
        ipfix_message([ipfix_set(2, ipfix_template_record(256, LAYOUT_A))], EXPORT_S),
        EXPORTER,
        NOW_NS,
    )
    decoder.feed_datagram(
        v9_message([v9_flowset(0, v9_template_record(256, LAYOUT_B))], 1, EXPORT_S),
        EXPORTER,
        NOW_NS,
    )
    assert set(layouts_of(decoder)) == {(10, 0, 256), (9, 0, 256)}
    decoder.feed_datagram(
        v9_message([v9_flowset(256, records_b((1, 2, 3)))], 1, EXPORT_S), EXPORTER, NOW_NS
    )
    (batch,) = decoder.flush()
    assert batch.columns["dst_addr"].tolist() == [2]


# --- data before its template ----------------------------------------------------------


@pytest.mark.parametrize("version", [9, 10])
def test_data_before_template_is_held_and_decoded_later(version: int) -> None:
    decoder = FlowDecoder()
    if version == 10:
        early = ipfix_message([ipfix_set(256, records_a((1, 10), (2, 20)))], EXPORT_S - 5)
        late = ipfix_message([ipfix_set(2, ipfix_template_record(256, LAYOUT_A))], EXPORT_S)
    else:
        early = v9_message([v9_flowset(256, records_a((1, 10), (2, 20)))], 100, EXPORT_S - 5)
        late = v9_message([v9_flowset(0, v9_template_record(256, LAYOUT_A))], 5100, EXPORT_S)
    assert decoder.feed_datagram(early, EXPORTER, NOW_NS) == 0
    assert decoder.flush() == []
    assert decoder.templates.held_set_count() == 1
    assert decoder.feed_datagram(late, EXPORTER, NOW_NS + 1) == 2
    (batch,) = decoder.flush()
    assert batch.columns["src_addr"].tolist() == [1, 2]
    assert batch.columns["src_port"].tolist() == [10, 20]
    # the held records keep their own datagram's clock and receive time
    assert batch.columns["time_start"].tolist() == [(EXPORT_S - 5) * 10**9] * 2
    assert batch.columns["time_received"].tolist() == [NOW_NS] * 2
    assert decoder.templates.held_set_count() == 0
    assert decoder.templates.stats.held_sets_released == 1
    assert decoder.templates.stats.held_bytes == 0


@pytest.mark.parametrize("version", [9, 10])
def test_data_set_before_template_set_in_one_datagram(version: int) -> None:
    decoder = FlowDecoder()
    if version == 10:
        message = ipfix_message(
            [
                ipfix_set(256, records_a((1, 10))),
                ipfix_set(2, ipfix_template_record(256, LAYOUT_A)),
            ],
            EXPORT_S,
        )
    else:
        message = v9_message(
            [v9_flowset(256, records_a((1, 10))), v9_flowset(0, v9_template_record(256, LAYOUT_A))],
            1,
            EXPORT_S,
        )
    assert decoder.feed_datagram(message, EXPORTER, NOW_NS) == 1
    (batch,) = decoder.flush()
    assert batch.columns["src_addr"].tolist() == [1]
    assert decoder.templates.held_set_count() == 0


def test_held_options_data_applies_when_its_template_arrives() -> None:
    """Options data that arrived before its template (held) is older than the flows
    of the datagram that finally brings the template, so those flows read it."""
    decoder = FlowDecoder()
    decoder.feed_datagram(
        ipfix_message([ipfix_set(258, data_record(OPTIONS_FIELDS, [0, 64]))], EXPORT_S),
        EXPORTER,
        NOW_NS,
    )
    assert decoder.take_options_records() == []
    decoder.feed_datagram(
        ipfix_message(
            [
                ipfix_set(3, ipfix_options_template_record(258, OPTIONS_FIELDS, 1)),
                ipfix_set(2, ipfix_template_record(256, LAYOUT_A)),
                ipfix_set(256, records_a((1, 1))),
            ],
            EXPORT_S,
        ),
        EXPORTER,
        NOW_NS,
    )
    (record,) = decoder.take_options_records()
    assert record.values["sampling_interval"] == 64
    (batch,) = decoder.flush()
    assert batch.columns["sampling_interval"].tolist() == [64]


# --- NetFlow v9 zero-length fields ---------------------------------------------------


def test_v9_options_template_with_a_zero_length_scope_field() -> None:
    """Juniper SRX: an options template whose System scope field has length 0."""
    scope = [WireField(0, 1, 0)]
    options = [WireField(0, 34, 4), WireField(0, 35, 1)]
    message = v9_message(
        [
            v9_flowset(1, v9_options_template_record(512, scope, options), padding=2),
            v9_flowset(512, data_record(options, [100, 2]), padding=3),
            v9_flowset(0, v9_template_record(513, LAYOUT_A)),
            v9_flowset(513, records_a((9, 9))),
        ],
        1,
        EXPORT_S,
    )
    decoder = FlowDecoder()
    assert decoder.feed_datagram(message, EXPORTER, NOW_NS) == 2
    layout = layouts_of(decoder)[(9, 0, 512)]
    assert layout.template.fields[0] == FieldSpec(SCOPE_PEN, 1, 0)
    assert layout.template.scope_field_count == 1 and layout.template.is_options
    (record,) = decoder.take_options_records()
    assert record.values["sampling_interval"] == 100
    assert record.values["sampling_algorithm"] == 2
    assert "scope_system" not in record.values
    (batch,) = decoder.flush()
    assert batch.columns["sampling_interval"].tolist() == [100]


def test_v9_template_with_zero_length_fields() -> None:
    fields = [WireField(0, 8, 4), WireField(0, 12, 0), WireField(0, 7, 2), WireField(0, 99, 0)]
    present = [fields[0], fields[2]]
    records = b"".join(data_record(present, [a, p]) for a, p in ((1, 2), (3, 4)))
    message = v9_message(
        [v9_flowset(0, v9_template_record(700, fields)), v9_flowset(700, records)], 1, EXPORT_S
    )
    decoder = FlowDecoder()
    assert decoder.feed_datagram(message, EXPORTER, NOW_NS) == 2
    (batch,) = decoder.flush()
    assert batch.columns["src_addr"].tolist() == [1, 3]
    assert batch.columns["src_port"].tolist() == [2, 4]
    assert "dst_addr" not in batch.columns
    assert batch.extra_fields == []


def test_v9_template_with_only_zero_length_fields_yields_no_records() -> None:
    fields = [WireField(0, 8, 0)]
    message = v9_message(
        [v9_flowset(0, v9_template_record(701, fields)), v9_flowset(701, b"")], 1, EXPORT_S
    )
    decoder = FlowDecoder()
    assert decoder.feed_datagram(message, EXPORTER, NOW_NS) == 0
    assert decoder.flush() == []
    assert (9, 0, 701) in layouts_of(decoder)


# --- template records parse to what construct built ----------------------------------

IPFIX_FIELDS = st.builds(
    WireField,
    st.sampled_from([0, 0, VMWARE, 99999, 29305]),
    st.integers(1, 0x7FFF),
    st.sampled_from([1, 2, 4, 8, 16, VARLEN]) | st.integers(0, 70000).map(lambda n: n % 65536),
)


@given(
    st.lists(
        st.tuples(st.integers(256, 65535), st.lists(IPFIX_FIELDS, min_size=1, max_size=20)),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    )
)
def test_ipfix_template_sets_parse_to_the_built_specs(templates: list) -> None:
    body = b"".join(ipfix_template_record(t, f) for t, f in templates)
    assert parse_template_set(body + bytes(3), 20, is_options=False) == [
        spec_of(f, t) for t, f in templates
    ]


@given(
    st.lists(
        st.tuples(
            st.integers(256, 65535),
            st.lists(
                st.builds(WireField, st.just(0), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
                min_size=1,
                max_size=20,
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_v9_template_flowsets_parse_to_the_built_specs(templates: list) -> None:
    body = b"".join(v9_template_record(t, f) for t, f in templates)
    assert parse_template_flowset(body + bytes(2), 20) == [spec_of(f, t) for t, f in templates]


# --- any sequence of template operations against a reference model -------------------

#: layouts the machine picks from; every one carries flowId (148) so each decoded row
#: names the record it came from, and the layouts differ in what else they carry
MODEL_LAYOUTS: tuple[tuple[WireField, ...], ...] = (
    (WireField(0, 148, 8), WireField(0, 8, 4), WireField(0, 7, 2)),
    (WireField(0, 7, 2), WireField(0, 148, 4), WireField(0, 12, 4), WireField(0, 1, 8)),
    (WireField(0, 4, 1), WireField(0, 148, 8)),
    (WireField(0, 148, 8), WireField(VMWARE, 898, VARLEN)),  # IPFIX only
)
MODEL_SESSIONS = (  # (exporter, version, domain)
    (("192.0.2.1", 4739), 10, 0),
    (("192.0.2.1", 4739), 10, 7),
    (("192.0.2.1", 4740), 10, 0),
    (("192.0.2.2", 4739), 10, 0),
    (("192.0.2.1", 4739), 9, 0),
)
MODEL_IDS = (256, 257, 1000)


def model_value(flow_id: int, f: WireField) -> int | bytes:
    if f.element_id == 148:
        return flow_id
    if f.length == VARLEN:
        return b"obs-%d" % flow_id
    return (flow_id * 2654435761 + f.element_id) % (1 << (8 * f.length))


SESSION_INDEXES = st.integers(0, len(MODEL_SESSIONS) - 1)
#: element -> column of the layouts above
MODEL_COLUMNS = {
    148: "flow_id",
    8: "src_addr",
    7: "src_port",
    12: "dst_addr",
    1: "bytes",
    4: "proto",
    898: "virtual_obs_id",
}


class TemplateModel(RuleBasedStateMachine):
    """The cache holds exactly the templates the model says; every record decodes with
    the layout in force when its datagram arrived, and exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = FlowDecoder()
        self.model: dict[tuple[int, int], int] = {}  # (session, template id) -> layout
        self.sent: dict[int, tuple[int, int]] = {}  # flow id -> (session, layout)
        self.decoded: set[int] = set()
        #: data sets sent for templates not defined: (session, id) -> (layout, sets)
        self.held: dict[tuple[int, int], tuple[int, int]] = {}
        self.next_flow_id = 1
        self.sequence = 0

    def _send(self, session: int, sets: list[tuple[int, bytes]]) -> int:
        exporter, version, domain = MODEL_SESSIONS[session]
        self.sequence += 1
        if version == 10:
            message = ipfix_message(
                [ipfix_set(s, b) for s, b in sets], EXPORT_S, self.sequence, domain
            )
        else:
            message = v9_message(
                [v9_flowset(s, b) for s, b in sets], 1000, EXPORT_S, self.sequence, domain
            )
        return self.decoder.feed_datagram(message, exporter, NOW_NS)

    @rule(
        session=SESSION_INDEXES,
        template_id=st.sampled_from(MODEL_IDS),
        layout=st.integers(0, len(MODEL_LAYOUTS) - 1),
    )
    def define(self, session: int, template_id: int, layout: int) -> None:
        version = MODEL_SESSIONS[session][1]
        if version == 9 and MODEL_LAYOUTS[layout][-1].length == VARLEN:
            layout = 0  # v9 has no variable-length fields
        if (session, template_id) in self.held:  # the layout its held data was made for
            layout = self.held.pop((session, template_id))[0]
        fields = MODEL_LAYOUTS[layout]
        if version == 10:
            self._send(session, [(2, ipfix_template_record(template_id, fields))])
        else:
            self._send(session, [(0, v9_template_record(template_id, fields))])
        self.model[(session, template_id)] = layout

    @precondition(lambda self: any(MODEL_SESSIONS[k[0]][1] == 10 for k in self.model))
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        session, template_id = data.draw(
            st.sampled_from(sorted(k for k in self.model if MODEL_SESSIONS[k[0]][1] == 10))
        )
        self._send(session, [(2, ipfix_withdrawal(template_id))])
        del self.model[(session, template_id)]

    @rule(session=SESSION_INDEXES)
    def withdraw_all(self, session: int) -> None:
        if MODEL_SESSIONS[session][1] != 10:
            return
        self._send(session, [(2, ipfix_withdrawal(2))])
        for key in [k for k in self.model if k[0] == session]:
            del self.model[key]

    def _records(self, session: int, layout: int, records: int) -> bytes:
        fields = MODEL_LAYOUTS[layout]
        body = b""
        for _ in range(records):
            flow_id = self.next_flow_id
            self.next_flow_id += 1
            body += data_record(fields, [model_value(flow_id, f) for f in fields])
            self.sent[flow_id] = (session, layout)
        return body

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), records=st.integers(1, 3))
    def send_data(self, data: st.DataObject, records: int) -> None:
        session, template_id = data.draw(st.sampled_from(sorted(self.model)))
        body = self._records(session, self.model[(session, template_id)], records)
        assert self._send(session, [(template_id, body)]) == records

    @rule(
        session=SESSION_INDEXES,
        template_id=st.sampled_from(MODEL_IDS),
        layout=st.integers(0, len(MODEL_LAYOUTS) - 2),
        records=st.integers(1, 3),
    )
    def send_data_for_unknown_template(
        self, session: int, template_id: int, layout: int, records: int
    ) -> None:
        """Held until a template arrives (the machine defines the matching one)."""
        key = (session, template_id)
        if key in self.model:
            return
        layout, sets = self.held.get(key, (layout, 0))
        body = self._records(session, layout, records)
        assert self._send(session, [(template_id, body)]) == 0
        self.held[key] = (layout, sets + 1)

    @rule()
    def flush(self) -> None:
        for batch in self.decoder.flush():
            self._check_batch(batch)

    def _check_batch(self, batch: FlowBatch) -> None:
        for row, flow_id in enumerate(batch.columns["flow_id"].tolist()):
            assert flow_id not in self.decoded, f"flow {flow_id} decoded twice"
            self.decoded.add(flow_id)
            session, layout = self.sent[flow_id]
            exporter, version, domain = MODEL_SESSIONS[session]
            assert batch.columns["exporter_port"][row] == exporter[1]
            assert batch.columns["observation_domain"][row] == domain
            assert batch.columns["flow_version"][row] == version
            for f in MODEL_LAYOUTS[layout]:
                column = batch.columns[MODEL_COLUMNS[f.element_id]]
                assert column_values(column)[row] == model_value(flow_id, f)

    @invariant()
    def cache_matches_model(self) -> None:
        cache = self.decoder.templates
        assert cache.template_count == len(self.model)
        actual = {}
        for exporter, state in cache.exporters.items():
            for (version, domain, template_id), layout in state.layouts.items():
                session = MODEL_SESSIONS.index((exporter, version, domain))
                actual[(session, template_id)] = layout.template
        expected = {k: spec_of(MODEL_LAYOUTS[v], k[1]) for k, v in self.model.items()}
        assert actual == expected
        assert cache.held_set_count() == sum(sets for _, sets in self.held.values())

    def teardown(self) -> None:
        self.flush()
        for key in list(self.held):  # now define what the held data waits for
            self.define(key[0], key[1], 0)
        self.flush()
        assert self.decoded == set(self.sent)


TestTemplateModel = TemplateModel.TestCase
