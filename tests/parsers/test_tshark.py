"""Cross-check against tshark: every flow record tshark decodes from a corpus group is
also decoded by us, with the same addresses, ports, protocol, packets, bytes and times.

One pcap per group, written here with dpkt: every datagram of the group in feed order
(raw files split into messages, one frame each, from 192.0.2.1:40000 to 192.0.2.2:2055;
pcap datagrams keep their exporter address and ports), so templates from earlier files
are known to tshark as to us. One tshark process per group, ``-n``, ``-T json``.

The comparison is a multiset inclusion per group: we may decode more than tshark (sets
held until their template arrives, flowsets after the v9 header count), never less or
different. Groups tshark cannot decode are listed with the reason. Times agree to the
microsecond everywhere, NetScaler's dateTimeMicroseconds included.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest

from parsers.decoder import FlowDecoder
from parsers.errors import ParseError
from parsers.events import VarBinary
from tests.corpus import RECEIVED_AT_NS, corpus_dir, expected, group, group_ids

pytestmark = pytest.mark.corpus

TSHARK = shutil.which("tshark")
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
RAW_DESTINATION = ("192.0.2.2", 2055)
EPOCH = "Jan  1, 1970 00:00:00.000000000"

#: groups tshark cannot decode as the exporter meant them: skipped whole
SKIP_GROUPS: dict[str, str] = {
    "logstash/Netflow 5 invalid 01": (
        "v5 header count 55582 disagrees with the 1464-byte datagram (30 records): tshark "
        "decodes what is there, we drop the datagram as malformed (test_corpus)"
    ),
    "logstash/Netflow 5 invalid 02": (
        "v5 header count 163 disagrees with the 1464-byte datagram (30 records): tshark "
        "decodes what is there, we drop the datagram as malformed (test_corpus)"
    ),
    "logstash/Netflow 9 H3C": (
        "tshark 4.0 rejects template 3281 (ipv4RouterSc, IE 43, in 2 bytes and a field of "
        "type 0) and reports the data as malformed: 0 records (logstash and we: 16)"
    ),
    "logstash/Netflow 9 H3C Netstream with varstring": (
        "same H3C template 3281 (IE 43 in 2 bytes, a type-0 field) plus VRFname (236) as a "
        "v9 varstring: tshark 4.0 reports the data as malformed, 0 records (logstash, we: 1)"
    ),
}

# --- building the group's pcap --------------------------------------------------------------------


def _frame(payload: bytes, source: tuple[str, int], destination_port: int) -> bytes:
    address = ipaddress.ip_address(source[0].split("%", 1)[0])
    udp = dpkt.udp.UDP(sport=source[1], dport=destination_port or RAW_DESTINATION[1])
    udp.data = payload
    udp.ulen = len(udp)
    if address.version == 4:
        ip: dpkt.Packet = dpkt.ip.IP(
            src=address.packed,
            dst=ipaddress.IPv4Address(RAW_DESTINATION[0]).packed,
            p=dpkt.ip.IP_PROTO_UDP,
            ttl=64,
            data=udp,
        )
        ip.len = len(ip)
        ether_type = dpkt.ethernet.ETH_TYPE_IP
    else:
        ip = dpkt.ip6.IP6(
            src=address.packed,
            dst=ipaddress.IPv6Address("2001:db8::2").packed,
            nxt=dpkt.ip.IP_PROTO_UDP,
            hlim=64,
            data=udp,
        )
        ip.plen = len(udp)
        ether_type = dpkt.ethernet.ETH_TYPE_IP6
    ethernet = dpkt.ethernet.Ethernet(
        src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02", type=ether_type, data=ip
    )
    return bytes(ethernet)


def write_group_pcap(group_id: str, path: Path) -> set[int]:
    """The group's datagrams as one pcap; returns the UDP destination ports used."""
    ports = set()
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
        for index, datagram in enumerate(group(group_id).datagrams()):
            port = datagram.destination_port or RAW_DESTINATION[1]
            ports.add(port)
            writer.writepkt(
                _frame(datagram.payload, datagram.source, port), ts=1_600_000_000 + index
            )
    return ports


# --- reading tshark's records ---------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """JSON objects with repeated keys (tshark repeats fields) keep every value."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            previous = result[key]
            result[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[key] = value
    return result


def _fields(tree: dict) -> dict[str, object]:
    """Every cflow.* field of a record, its ``*_tree`` subtrees flattened in."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_fields(value))
        elif key.startswith("cflow.") and key not in flat:
            flat[key] = value
    return flat


def _ms(relative: str) -> int:
    return int(Decimal(relative) * 1000)


def _absolute_ns(text: str) -> int:
    """'Jul 31, 2017 13:38:03.473000000 UTC' -> ns since 1970."""
    stamp, fraction = text.removesuffix(" UTC").rsplit(".", 1)
    moment = datetime.strptime(stamp, "%b %d, %Y %H:%M:%S").replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_S + int(fraction.ljust(9, "0")[:9])


def _first(fields: dict[str, object], *names: str) -> object:
    for name in names:
        if name in fields:
            value = fields[name]
            return value[0] if isinstance(value, list) else value
    return None


def _int(value: object) -> int | None:
    return None if value is None else int(str(value), 0)


def _address(fields: dict[str, object], name: str) -> str | None:
    value = _first(fields, name)
    return None if value is None else str(ipaddress.ip_address(str(value)))


def _record(fields: dict[str, object], header: dict[str, object]) -> tuple[tuple, tuple | None]:
    """(identity, times) of one tshark flow record. Times: ("abs", start_ns, end_ns),
    either may be None when the template has only one; ("dur", ms) for IPFIX sysUpTime
    values (relative to a system init time tshark does not apply); or None."""
    identity = (
        _address(fields, "cflow.srcaddr"),
        _address(fields, "cflow.srcaddrv6"),
        _address(fields, "cflow.dstaddr"),
        _address(fields, "cflow.dstaddrv6"),
        _int(_first(fields, "cflow.srcport")),
        _int(_first(fields, "cflow.dstport")),
        _int(_first(fields, "cflow.protocol")),
        _int(_first(fields, "cflow.packets", "cflow.permanent_packets", "cflow.initiator_packets")),
        _int(_first(fields, "cflow.octets", "cflow.permanent_octets", "cflow.initiator_octets")),
    )
    # tshark shows a sysUpTime start/end of 0 as the absolute time 0 (the epoch)
    for absolute_name, relative_name in (
        ("cflow.abstimestart", "cflow.timestart"),
        ("cflow.abstimeend", "cflow.timeend"),
    ):
        if str(fields.get(absolute_name, "")).startswith(EPOCH):
            fields[relative_name] = fields.pop(absolute_name) and "0"
    relative_start, relative_end = (
        _first(fields, "cflow.timestart"),
        _first(fields, "cflow.timeend"),
    )
    if header["version"] == 10 and relative_start is not None and relative_end is not None:
        return identity, ("dur", _ms(str(relative_end)) - _ms(str(relative_start)))
    export_ns = int(str(header["unix_secs"])) * NS_PER_S + int(str(header["unix_nsecs"]))
    uptime = _ms(str(header["uptime"]))

    def absolute(absolute_name: str, relative: object) -> int | None:
        value = _first(fields, absolute_name)
        if value is not None:
            return _absolute_ns(str(value))
        if relative is None or header["version"] == 10:
            return None
        delta = (uptime - _ms(str(relative))) & 0xFFFFFFFF  # sysUpTime wraps at 2**32 ms
        return export_ns - (delta - (1 << 32) if delta >= 1 << 31 else delta) * NS_PER_MS

    start = absolute("cflow.abstimestart", relative_start)
    end = absolute("cflow.abstimeend", relative_end)
    return identity, None if start is None and end is None else ("abs", start, end)


def tshark_records(pcap: Path, ports: set[int]) -> list[tuple[tuple, tuple | None]]:
    """The flow (not options) records tshark decodes from the pcap."""
    assert TSHARK is not None
    command = [TSHARK, "-n", "-r", str(pcap), "-T", "json", "-J", "ip ipv6 udp cflow"]
    for port in sorted(ports):
        command += ["-d", f"udp.port=={port},cflow"]
    result = subprocess.run(command, capture_output=True, check=True, timeout=120)
    packets = json.loads(result.stdout, object_pairs_hook=_pairs)
    options_templates: set[tuple] = set()
    records = []
    for packet in packets:
        layers = packet["_source"]["layers"]
        pdus = layers.get("cflow")
        if pdus is None:
            continue
        source = (
            _first(layers.get("ip", layers.get("ipv6", {})), "ip.src", "ipv6.src"),
            _first(layers.get("udp", {}), "udp.srcport"),
        )
        for pdu in pdus if isinstance(pdus, list) else [pdus]:
            records += _pdu_records(pdu, source, options_templates)
    return records


def _pdu_records(pdu: dict, source: tuple, options_templates: set[tuple]) -> list:
    version = int(str(pdu["cflow.version"]))
    stamp = pdu.get("cflow.timestamp_tree", {})
    header = {
        "version": version,
        "uptime": pdu.get("cflow.sysuptime", "0"),
        "unix_secs": stamp.get("cflow.unix_secs", pdu.get("cflow.exporttime", 0)),
        "unix_nsecs": stamp.get("cflow.unix_nsecs", 0),
    }
    domain = pdu.get("cflow.source_id", pdu.get("cflow.od_id", "0"))
    records = []
    for key, value in pdu.items():
        if key.startswith("pdu "):  # NetFlow v5 record
            records.append(_record(_fields(value), header))
            continue
        if not key.startswith(("FlowSet ", "Set ")) or not isinstance(value, dict):
            continue
        flowset_id = int(str(value.get("cflow.flowset_id", "-1")))
        if flowset_id in (1, 3):  # options templates: remember their ids
            for template in _templates(value):
                options_templates.add((source, domain, template))
            continue
        if flowset_id < 256 or (source, domain, flowset_id) in options_templates:
            continue
        for name, flow in value.items():
            if name.startswith("Flow ") and isinstance(flow, dict):
                records.append(_record(_fields(flow), header))
    return records


def _templates(flowset: dict) -> list[int]:
    ids = []
    for value in flowset.values():
        if isinstance(value, dict):
            if "cflow.template_id" in value:
                ids.append(int(str(value["cflow.template_id"])))
            else:
                ids += _templates(value)
    return ids


# --- our records ----------------------------------------------------------------------------------


def our_records(group_id: str) -> list[tuple[tuple, dict]]:
    """(identity, times) for every flow we decode from the group, from the batch columns
    (IPv4 and IPv6 address columns apart: some templates carry both)."""
    decoder = FlowDecoder()
    for index, datagram in enumerate(group(group_id).datagrams()):
        try:
            decoder.feed_datagram(datagram.payload, datagram.source, RECEIVED_AT_NS + index)
        except ParseError:
            continue
    records = []
    for batch in decoder.flush():
        columns = {name: _column_values(name, values) for name, values in batch.columns.items()}
        names = ("src_addr", "src_addr6", "dst_addr", "dst_addr6", "src_port", "dst_port")
        names += ("proto", "packets", "bytes")
        for i in range(batch.num_rows):
            identity = tuple(columns[n][i] if n in columns else None for n in names)
            times = {"start": columns["time_start"][i], "end": columns["time_end"][i]}
            records.append((identity, times))
    return records


def _column_values(name: str, values: object) -> list:
    if name in ("src_addr", "dst_addr"):
        return [str(ipaddress.IPv4Address(int(v))) for v in values]  # type: ignore[attr-defined]
    if name in ("src_addr6", "dst_addr6"):
        return [str(ipaddress.IPv6Address(bytes(row))) for row in values]  # type: ignore[attr-defined]
    if isinstance(values, VarBinary):
        return [values.value(i) for i in range(len(values))]
    return values.tolist()  # type: ignore[attr-defined]


def _same_times(theirs: tuple | None, ours: dict) -> bool:
    """Equal to the microsecond: for dateTimeMicroseconds tshark and we round the NTP
    fraction differently below 1 us (RFC 7011 6.1.9 drops its 11 low bits; tshark
    shows e.g. .492059999 for the .492059950 that the masked fraction reads .492059707)."""
    if theirs is None:
        return True
    if theirs[0] == "dur":
        return ours["end"] - ours["start"] == theirs[1] * NS_PER_MS
    return all(
        abs(mine // 1000 - their // 1000) <= 1
        for mine, their in ((ours["start"], theirs[1]), (ours["end"], theirs[2]))
        if their is not None
    )


def tshark_flow_count(group_id: str) -> int:
    """Flow records the corpus' tshark run found in the group, with the raw files that
    hold several messages counted as split (one frame per message, as we write them)."""
    facts, files = group(group_id).facts, expected()["files"]
    total = 0
    for name, counts in facts["per_file_in_group_context_tshark"].items():
        split = files[name].get("if_split_into_messages_tshark")
        total += split["flow_records"] if split else counts["flow"]
    return total


def _group_params() -> list:
    if TSHARK is None:
        return [pytest.param("", marks=pytest.mark.skip(reason="tshark not installed"))]
    ids = group_ids()
    if not ids:
        return [pytest.param("", marks=pytest.mark.skip(reason=f"no corpus at {corpus_dir()}"))]
    params = []
    for gid in ids:
        if gid in SKIP_GROUPS:
            params.append(pytest.param(gid, marks=pytest.mark.skip(reason=SKIP_GROUPS[gid])))
        else:
            params.append(gid)
    return params


@pytest.mark.parametrize("group_id", _group_params())
def test_tshark_records_are_ours(group_id: str, tmp_path: Path) -> None:
    pcap = tmp_path / "group.pcap"
    ports = write_group_pcap(group_id, pcap)
    theirs = tshark_records(pcap, ports)
    # the extraction reads what the corpus' own tshark run counted
    assert len(theirs) == tshark_flow_count(group_id)
    ours: dict[tuple, list[dict]] = {}
    for identity, times in our_records(group_id):
        ours.setdefault(identity, []).append(times)
    missing = []
    for identity, times in theirs:
        candidates = ours.get(identity, [])
        match = next((i for i, c in enumerate(candidates) if _same_times(times, c)), None)
        if match is None:
            missing.append((identity, times, candidates[:3]))
        else:
            candidates.pop(match)
    assert not missing, f"{len(missing)} of {len(theirs)} tshark records not ours: {missing[:5]}"


def test_skip_tables_name_real_groups() -> None:
    if not group_ids():
        pytest.skip(f"no corpus at {corpus_dir()}")
    assert set(SKIP_GROUPS) <= set(group_ids())


def test_pcap_builder_keeps_every_datagram(tmp_path: Path) -> None:
    if not group_ids():
        pytest.skip(f"no corpus at {corpus_dir()}")
    group_id = "logstash/Netflow 5 valid 01"  # one raw file, 12 messages
    pcap = tmp_path / "g.pcap"
    assert write_group_pcap(group_id, pcap) == {2055}
    with pcap.open("rb") as handle:
        frames = [
            bytes(dpkt.ethernet.Ethernet(buf).data.data.data) for _, buf in dpkt.pcap.Reader(handle)
        ]
    assert frames == [d.payload for d in group(group_id).datagrams()]
    assert Counter(len(f) for f in frames) == Counter({120: 9, 216: 3})
