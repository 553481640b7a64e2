"""parsers.capture: corpus captures and raw dumps first; synthetic captures (built with
dpkt's writers) for what the corpus lacks: VLAN, SLL2, raw/loopback link types, pcapng,
fragments, snaplen cuts, damaged files."""

from __future__ import annotations

import io
import ipaddress
import socket
import struct
from decimal import Decimal

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.capture import (
    CapturedDatagram,
    CaptureError,
    CaptureFormat,
    detect_capture_format,
    read_capture,
    split_export_messages,
)
from tests.corpus import corpus_dir, expected, require_corpus

NO_CORPUS = f"shared corpus not found at {corpus_dir()}"

EXPORTER = "192.0.2.10"
COLLECTOR = "192.0.2.1"
EXPORTER6 = "2001:db8::10"
COLLECTOR6 = "2001:db8::1"
T0 = 1_700_000_000  # a capture time, whole seconds


# --- corpus ----------------------------------------------------------------------------


def _corpus_files(*formats: str) -> list:
    """expected.json "files" entries of the given formats, as test parameters."""
    if not (corpus_dir() / "expected.json").is_file():
        return [pytest.param("", marks=pytest.mark.skip(reason=NO_CORPUS))]
    files = expected()["files"]
    return sorted(name for name, facts in files.items() if facts["format"] in formats)


def _corpus_bytes(name: str) -> bytes:
    return (require_corpus() / name).read_bytes()


def _facts(name: str) -> dict:
    return expected()["files"][name]


PCAP_FORMATS = ("pcap", "pcap-ns")  # expected.json "format"; pcap-ns: nanosecond magic


@pytest.mark.corpus
@pytest.mark.parametrize("name", _corpus_files("pcap", "pcap-ns", "raw"))
def test_corpus_format_is_detected(name: str) -> None:
    detected = detect_capture_format(_corpus_bytes(name))
    want = CaptureFormat.RAW if _facts(name)["format"] == "raw" else CaptureFormat.PCAP
    assert detected is want


def _carries_tcp(name: str) -> bool:
    # MANIFEST.md: these pmacct captures also hold the BMP (TCP/1790) or BGP (TCP/179) session
    return "-BMP-" in name or "-BGP-" in name


@pytest.mark.corpus
@pytest.mark.parametrize("name", _corpus_files(*PCAP_FORMATS))
def test_corpus_pcap_yields_one_datagram_per_export_frame(name: str) -> None:
    """expected.json "frames_or_datagrams" counts every frame of a pcap, so it equals the
    export datagrams only where the capture holds nothing else."""
    facts = _facts(name)
    datagrams = list(read_capture(_corpus_bytes(name)))
    assert {d.destination_port for d in datagrams} <= set(facts["udp_ports"])
    if _carries_tcp(name):
        assert 0 < len(datagrams) < facts["frames_or_datagrams"]
    else:
        assert len(datagrams) == facts["frames_or_datagrams"]


@pytest.mark.corpus
@pytest.mark.parametrize("name", _corpus_files(*PCAP_FORMATS))
def test_corpus_pcap_payloads_are_whole_export_messages(name: str) -> None:
    """UDP payloads start with a version the file is known to carry, and IPFIX messages are
    exactly as long as their header says: nothing of the frame around them leaks in."""
    versions = set(_facts(name)["versions"])
    for datagram in read_capture(_corpus_bytes(name)):
        version, length = struct.unpack_from("!HH", datagram.payload)
        assert version in versions
        if version == 10:
            assert length == len(datagram.payload)


def _pcap_groups() -> list:
    if not (corpus_dir() / "expected.json").is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPUS))]
    files = expected()["files"]
    groups = expected()["groups"]
    return [
        pytest.param(group, id=group["id"])
        for group in groups
        if group["feed_order"]
        and all(files[name]["format"] in PCAP_FORMATS for name in group["feed_order"])
    ]


@pytest.mark.corpus
@pytest.mark.parametrize("group", _pcap_groups())
def test_corpus_group_datagrams_match_tshark(group: dict) -> None:
    """tshark's cflow frame count for the group is an independent count of export datagrams
    (it also covers the pmacct captures with TCP mixed in, and two-exporter groups)."""
    total = 0
    for name in group["feed_order"]:
        ports = set(_facts(name)["udp_ports"])
        total += sum(d.destination_port in ports for d in read_capture(_corpus_bytes(name)))
    assert total == group["tshark"]["cflow_frames"]


@pytest.mark.corpus
def test_nanosecond_pcap_timestamps_are_exact() -> None:
    data = _corpus_bytes("scapy/netflowv9.pcap")
    assert data[:4] == b"\x4d\x3c\xb2\xa1"  # nanosecond magic, little-endian
    record_times, offset = [], 24
    while offset < len(data):
        seconds, nanoseconds, captured, _ = struct.unpack_from("<IIII", data, offset)
        record_times.append(seconds * 1_000_000_000 + nanoseconds)
        offset += 16 + captured
    times = [d.captured_at_ns for d in read_capture(data)]
    assert times == record_times
    assert times[0] == 1_508_409_869_575_718_995  # a float would have lost the last digits


@pytest.mark.corpus
def test_microsecond_pcap_timestamps_are_whole_microseconds() -> None:
    data = _corpus_bytes("graylog-plugin-netflow/netflow5.pcap")
    seconds, microseconds = struct.unpack_from("<II", data, 24)
    times = [d.captured_at_ns for d in read_capture(data)]
    assert times[0] == seconds * 1_000_000_000 + microseconds * 1_000
    assert all(t % 1_000 == 0 for t in times)


@pytest.mark.corpus
def test_ipv6_transport_gives_ipv6_exporter_text() -> None:
    data = _corpus_bytes("pmacct/104-IPFIXv10-IPv6-CISCO-sampling_option/traffic-00.pcap")
    datagrams = list(read_capture(data))
    assert len(datagrams) == 5
    for datagram in datagrams:
        address, _ = datagram.source
        assert ipaddress.ip_address(address).version == 6
        assert str(ipaddress.ip_address(address)) == address  # ipaddress's own formatting


@pytest.mark.corpus
def test_bmp_over_tcp_is_skipped() -> None:
    name = "pmacct/400-IPFIXv10-BMP-CISCO-SRv6-multiple-sources/traffic-00.pcap"
    datagrams = list(read_capture(_corpus_bytes(name)))
    assert len(datagrams) < _facts(name)["frames_or_datagrams"]  # the BMP frames are gone
    assert {d.destination_port for d in datagrams} == {9991}
    assert all(d.payload[:2] == b"\x00\x0a" for d in datagrams)  # IPFIX, never BMP (v3)


@pytest.mark.corpus
def test_linux_cooked_capture_keeps_exporter_ports() -> None:
    """MANIFEST.md: pmacct 112 is an SLL capture whose frames 1-10 come from port 61853 and
    11-21 from 65156 (the exporter restarted its session)."""
    data = _corpus_bytes("pmacct/112-IPFIXv10-CISCO-options-map-reassignment/traffic-00.pcap")
    assert struct.unpack_from("<I", data, 20)[0] == 113  # LINKTYPE_LINUX_SLL
    ports = [d.source[1] for d in read_capture(data)]
    assert ports == [61853] * 10 + [65156] * 11


@pytest.mark.corpus
@pytest.mark.parametrize("name", _corpus_files("raw"))
def test_split_reproduces_corpus_message_boundaries(name: str) -> None:
    data = _corpus_bytes(name)
    facts = _facts(name)
    boundaries = facts.get("message_boundaries") or [{"offset": 0, "length": len(data)}]
    parts = split_export_messages(data)
    offsets = [sum(len(part) for part in parts[:i]) for i in range(len(parts))]
    assert [(o, len(p)) for o, p in zip(offsets, parts, strict=True)] == [
        (b["offset"], b["length"]) for b in boundaries
    ]
    assert len(parts) == facts["export_messages_in_file"]


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "logstash-codec-netflow/"
        "netflow9_test_paloalto_81_data257_1flowset_in_large_zerofilled_packet.dat",
        "logstash-codec-netflow/netflow9_test_cisco_aci_tpl256-258.dat",
    ],
)
def test_zero_padded_raw_file_stays_one_message(name: str) -> None:
    data = _corpus_bytes(name)
    padding = _facts(name)["trailing_zero_padding_bytes"]
    assert split_export_messages(data) == [data]
    assert data.endswith(bytes(padding))


@pytest.mark.corpus
def test_raw_file_yields_each_message_from_the_given_exporter() -> None:
    data = _corpus_bytes("logstash-codec-netflow/netflow5.dat")
    datagrams = list(read_capture(data, raw_source=(EXPORTER, 2055)))
    assert len(datagrams) == 12
    assert b"".join(d.payload for d in datagrams) == data
    assert {(d.source, d.destination_port, d.captured_at_ns) for d in datagrams} == {
        ((EXPORTER, 2055), 0, 0)
    }


# --- synthetic captures ----------------------------------------------------------------


def _v5_message(count: int, marker: int = 0) -> bytes:
    header = struct.pack("!HHIIIIBBH", 5, count, 1000, T0, 0, marker, 0, 0, 0)
    return header + bytes([marker % 256]) * (48 * count)


def _ipfix_message(body: bytes, domain: int = 0) -> bytes:
    return struct.pack("!HHIII", 10, 16 + len(body), T0, 1, domain) + body


def _udp(payload: bytes, source_port: int = 50000, destination_port: int = 2055) -> dpkt.udp.UDP:
    return dpkt.udp.UDP(
        sport=source_port, dport=destination_port, ulen=8 + len(payload), data=payload
    )


def _ipv4(
    data: bytes | dpkt.Packet, protocol: int = 17, source: str = EXPORTER, **fields
) -> dpkt.ip.IP:
    return dpkt.ip.IP(
        src=socket.inet_aton(source),
        dst=socket.inet_aton(COLLECTOR),
        p=protocol,
        data=data,
        **fields,
    )


def _ipv6(data: bytes | dpkt.Packet, next_header: int = 17) -> dpkt.ip6.IP6:
    return dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, EXPORTER6),
        dst=socket.inet_pton(socket.AF_INET6, COLLECTOR6),
        nxt=next_header,
        hlim=64,
        plen=len(bytes(data)),
        data=data,
    )


def _ethernet(ip: dpkt.Packet, ethertype: int = 0x0800, **fields) -> dpkt.ethernet.Ethernet:
    return dpkt.ethernet.Ethernet(
        src=b"\x02" * 6, dst=b"\x04" * 6, type=ethertype, data=ip, **fields
    )


def _pcap(frames: list[bytes | dpkt.Packet], link_type: int = 1, nano: bool = False) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=link_type, nano=nano)
    for index, frame in enumerate(frames):
        writer.writepkt(frame, ts=T0 + index)
    return out.getvalue()


def _times(datagrams: list[CapturedDatagram]) -> list[int]:
    return [d.captured_at_ns for d in datagrams]


PAYLOAD = _ipfix_message(b"\x01\x00\x00\x08abcd")
CAPTURE_MAGICS = [  # pcap: us LE, us BE, ns LE, ns BE; then pcapng
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
]


def test_detects_every_capture_magic() -> None:
    *pcap_magics, pcapng_magic = CAPTURE_MAGICS
    for magic in pcap_magics:
        assert detect_capture_format(magic + bytes(20)) is CaptureFormat.PCAP
    assert detect_capture_format(pcapng_magic + bytes(24)) is CaptureFormat.PCAPNG
    for raw in (b"", b"\x00\x05", PAYLOAD, _v5_message(1)):
        assert detect_capture_format(raw) is CaptureFormat.RAW


def test_ethernet_ipv4_udp() -> None:
    [datagram] = read_capture(_pcap([_ethernet(_ipv4(_udp(PAYLOAD, 40000, 4739)))]))
    assert datagram == CapturedDatagram(PAYLOAD, (EXPORTER, 40000), 4739, T0 * 1_000_000_000)


@pytest.mark.parametrize(
    ("tags", "outer_ethertype"),
    [
        ([dpkt.ethernet.VLANtag8021Q(id=100)], 0x8100),
        ([dpkt.ethernet.VLANtag8021Q(id=10), dpkt.ethernet.VLANtag8021Q(id=100)], 0x88A8),
    ],
    ids=["802.1Q", "QinQ"],
)
def test_vlan_tagged_frames(tags: list, outer_ethertype: int) -> None:
    frame = bytes(_ethernet(_ipv4(_udp(PAYLOAD)), vlan_tags=tags))
    assert struct.unpack_from("!H", frame, 12)[0] == outer_ethertype
    assert [d.payload for d in read_capture(_pcap([frame]))] == [PAYLOAD]


def test_mpls_labelled_frame() -> None:
    labels = struct.pack("!II", (16 << 12) | 64, (17 << 12) | 0x100 | 64)  # second: bottom
    frame = b"\x04" * 6 + b"\x02" * 6 + b"\x88\x47" + labels + bytes(_ipv4(_udp(PAYLOAD)))
    assert [d.payload for d in read_capture(_pcap([frame]))] == [PAYLOAD]


def _loopback(family: int, byte_order: str, ip: dpkt.Packet) -> bytes:
    return struct.pack(byte_order + "I", family) + bytes(ip)


@pytest.mark.parametrize(
    ("link_type", "frame", "exporter"),
    [
        (113, dpkt.sll.SLL(ethtype=0x0800, data=_ipv4(_udp(PAYLOAD))), EXPORTER),
        (113, dpkt.sll.SLL(ethtype=0x86DD, data=_ipv6(_udp(PAYLOAD))), EXPORTER6),
        (276, dpkt.sll2.SLL2(ethtype=0x0800, data=_ipv4(_udp(PAYLOAD))), EXPORTER),
        (276, dpkt.sll2.SLL2(ethtype=0x86DD, data=_ipv6(_udp(PAYLOAD))), EXPORTER6),
        (101, _ipv4(_udp(PAYLOAD)), EXPORTER),
        (101, _ipv6(_udp(PAYLOAD)), EXPORTER6),
        (12, _ipv4(_udp(PAYLOAD)), EXPORTER),
        (14, _ipv6(_udp(PAYLOAD)), EXPORTER6),
        (0, _loopback(2, "<", _ipv4(_udp(PAYLOAD))), EXPORTER),
        (0, _loopback(30, "<", _ipv6(_udp(PAYLOAD))), EXPORTER6),
        (108, _loopback(2, ">", _ipv4(_udp(PAYLOAD))), EXPORTER),
        (1, _ethernet(_ipv6(_udp(PAYLOAD)), 0x86DD), EXPORTER6),
    ],
    ids=[
        "sll-v4", "sll-v6", "sll2-v4", "sll2-v6", "raw101-v4", "raw101-v6", "raw12", "raw14",
        "null-le-v4", "null-le-v6-macos", "loop-be-v4", "ethernet-v6",
    ],
)  # fmt: skip
def test_link_types(link_type: int, frame: bytes | dpkt.Packet, exporter: str) -> None:
    [datagram] = read_capture(_pcap([frame], link_type=link_type))
    assert datagram.payload == PAYLOAD
    assert datagram.source == (exporter, 50000)


def test_unsupported_link_type_is_a_capture_error() -> None:
    with pytest.raises(CaptureError, match=r"frame 1: link type 105 is not supported"):
        list(read_capture(_pcap([b"\x00" * 40], link_type=105)))


def test_other_traffic_is_skipped_in_frame_order() -> None:
    tcp = dpkt.tcp.TCP(sport=1790, dport=50000, data=b"\x03\x00\x00\x00\x06\x04")  # BMP
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1))
    arp = dpkt.arp.ARP()
    frames = [
        _ethernet(_ipv4(tcp, protocol=6)),
        _ethernet(_ipv4(_udp(b"first"))),
        _ethernet(_ipv4(icmp, protocol=1)),
        _ethernet(arp, ethertype=0x0806),
        _ethernet(_ipv6(dpkt.icmp6.ICMP6(type=128), next_header=58), 0x86DD),
        _ethernet(_ipv4(_udp(b"second", destination_port=9995))),
        b"\x04" * 6 + b"\x02" * 6 + b"\x08\x00" + b"\x45\x00",  # IP header cut off
    ]
    datagrams = list(read_capture(_pcap(frames)))
    assert [(d.payload, d.destination_port) for d in datagrams] == [
        (b"first", 2055),
        (b"second", 9995),
    ]
    assert _times(datagrams) == [(T0 + 1) * 1_000_000_000, (T0 + 5) * 1_000_000_000]


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(_ethernet(_ipv4(_udp(b"tiny")))) + bytes(20)  # padded to the 60-byte minimum
    assert [d.payload for d in read_capture(_pcap([frame]))] == [b"tiny"]


def test_snaplen_cut_datagram_is_yielded_as_captured() -> None:
    """The decoder, not the reader, decides what a cut message is worth; it sees the cut
    because the payload is shorter than the IPFIX length field says."""
    frame = bytes(_ethernet(_ipv4(_udp(PAYLOAD))))
    [datagram] = read_capture(_pcap([frame[:-5]]))
    assert datagram.payload == PAYLOAD[:-5]


@pytest.mark.parametrize("nano", [False, True])
def test_pcap_timestamps(nano: bool) -> None:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=1, nano=nano)
    writer.writepkt(_ethernet(_ipv4(_udp(PAYLOAD))), ts=Decimal("1700000000.123456789"))
    [datagram] = read_capture(out.getvalue())
    assert datagram.captured_at_ns == (
        1_700_000_000_123_456_789 if nano else 1_700_000_000_123_457_000
    )


@pytest.mark.parametrize(("magic", "ns_per_unit"), [(0xA1B2C3D4, 1_000), (0xA1B23C4D, 1)])
def test_big_endian_pcap(magic: int, ns_per_unit: int) -> None:
    frame = bytes(_ethernet(_ipv4(_udp(PAYLOAD))))
    data = struct.pack(">IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    data += struct.pack(">IIII", T0, 654_321, len(frame), len(frame)) + frame
    [datagram] = read_capture(data)
    assert datagram.captured_at_ns == T0 * 1_000_000_000 + 654_321 * ns_per_unit
    assert datagram.payload == PAYLOAD


# --- pcapng ---


def _option(code: int, value: bytes) -> dpkt.pcapng.PcapngOptionLE:
    return dpkt.pcapng.PcapngOptionLE(code=code, data=value)


def _interface(
    link_type: int, tsresol: int | None = None
) -> dpkt.pcapng.InterfaceDescriptionBlockLE:
    options = [] if tsresol is None else [_option(9, bytes([tsresol])), _option(0, b"")]
    return dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=link_type, snaplen=65535, opts=options)


def _packet_block(frame: bytes | dpkt.Packet, ticks: int, interface: int = 0) -> dpkt.Packet:
    return dpkt.pcapng.EnhancedPacketBlockLE(
        iface_id=interface, ts_high=ticks >> 32, ts_low=ticks & 0xFFFFFFFF, pkt_data=bytes(frame)
    )


def _pcapng(interfaces: list, packets: list) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out, idb=interfaces)
    for packet in packets:
        writer.writepkt(packet)
    return out.getvalue()


def test_pcapng_interfaces_keep_their_own_link_type_and_clock() -> None:
    """dpkt.pcapng.Reader would apply interface 0 to every packet; each must use its own."""
    ticks_ns = 1_700_000_000_123_456_789
    data = _pcapng(
        [_interface(1), _interface(101, tsresol=9), _interface(1, tsresol=0x80 | 10)],
        [
            _packet_block(_ethernet(_ipv4(_udp(b"eth, microseconds"))), ticks_ns // 1000),
            _packet_block(_ipv6(_udp(b"raw IPv6, nanoseconds")), ticks_ns, interface=1),
            _packet_block(_ethernet(_ipv4(_udp(b"eth, 1/1024 s"))), T0 * 1024 + 512, interface=2),
        ],
    )
    assert detect_capture_format(data) is CaptureFormat.PCAPNG
    datagrams = list(read_capture(data))
    assert [(d.payload, d.source[0]) for d in datagrams] == [
        (b"eth, microseconds", EXPORTER),
        (b"raw IPv6, nanoseconds", EXPORTER6),
        (b"eth, 1/1024 s", EXPORTER),
    ]
    assert _times(datagrams) == [
        ticks_ns // 1000 * 1000,
        ticks_ns,
        T0 * 1_000_000_000 + 500_000_000,
    ]


def test_big_endian_pcapng() -> None:
    frame = bytes(_ipv4(_udp(PAYLOAD)))
    data = (
        bytes(dpkt.pcapng.SectionHeaderBlock())
        + bytes(dpkt.pcapng.InterfaceDescriptionBlock(linktype=101))
        + bytes(dpkt.pcapng.EnhancedPacketBlock(ts_high=0, ts_low=7, pkt_data=frame))
    )
    [datagram] = read_capture(data)
    assert (datagram.payload, datagram.captured_at_ns) == (PAYLOAD, 7_000)


def test_pcapng_simple_packet_block_has_no_timestamp() -> None:
    frame = bytes(_ethernet(_ipv4(_udp(PAYLOAD))))
    padded = frame + bytes(-len(frame) % 4)
    simple = struct.pack("<III", 3, 16 + len(padded), len(frame)) + padded
    simple += struct.pack("<I", 16 + len(padded))
    data = _pcapng([_interface(1)], []) + simple
    [datagram] = read_capture(data)
    assert (datagram.payload, datagram.captured_at_ns) == (PAYLOAD, 0)


def test_pcapng_packet_for_undescribed_interface_is_a_capture_error() -> None:
    data = _pcapng(
        [_interface(1)], [_packet_block(_ethernet(_ipv4(_udp(PAYLOAD))), 1, interface=3)]
    )
    with pytest.raises(CaptureError, match=r"frame 1: .*interface 3"):
        list(read_capture(data))


# --- fragments ---


def _ipv4_fragments(
    payload: bytes, identification: int, size: int = 1480, source: str = EXPORTER
) -> list[bytes]:
    """The IPv4 fragments (whole Ethernet frames) of one UDP datagram, in order."""
    segment = bytes(_udp(payload, destination_port=4739))
    frames = []
    for offset in range(0, len(segment), size):
        more = offset + size < len(segment)
        ip = _ipv4(
            segment[offset : offset + size],
            source=source,
            id=identification,
            mf=int(more),
            offset=offset // 8,
        )
        frames.append(bytes(_ethernet(ip)))
    return frames


BIG_PAYLOAD = _ipfix_message(b"\x01\x00\x0b\xb8" + bytes(range(256)) * 11 + bytes(180))


def test_ipv4_fragments_are_reassembled_at_the_completing_frame() -> None:
    fragments = _ipv4_fragments(BIG_PAYLOAD, identification=7)
    assert len(fragments) == 3
    frames = [fragments[0], _ethernet(_ipv4(_udp(b"small"))), fragments[1], fragments[2]]
    datagrams = list(read_capture(_pcap(frames)))
    assert [d.payload for d in datagrams] == [b"small", BIG_PAYLOAD]
    assert datagrams[1].source == (EXPORTER, 50000)
    assert datagrams[1].destination_port == 4739
    assert _times(datagrams) == [(T0 + 1) * 1_000_000_000, (T0 + 3) * 1_000_000_000]


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0), (2, 1, 0), (0, 2, 1)])
def test_out_of_order_ipv4_fragments(order: tuple[int, ...]) -> None:
    fragments = _ipv4_fragments(BIG_PAYLOAD, identification=8)
    datagrams = list(read_capture(_pcap([fragments[i] for i in order])))
    assert [d.payload for d in datagrams] == [BIG_PAYLOAD]
    assert _times(datagrams) == [(T0 + 2) * 1_000_000_000]


def test_interleaved_fragmented_datagrams_are_kept_apart() -> None:
    other = _ipfix_message(b"\x01\x00\x07\xd4" + bytes(2000))
    first = _ipv4_fragments(BIG_PAYLOAD, identification=1)
    second = _ipv4_fragments(other, identification=2)
    third = _ipv4_fragments(other, identification=1, source="192.0.2.99")  # same id elsewhere
    frames = [first[0], second[0], third[1], first[2], second[1], third[0], first[1]]
    datagrams = list(read_capture(_pcap(frames)))
    assert [(d.payload, d.source[0]) for d in datagrams] == [
        (other, EXPORTER),
        (other, "192.0.2.99"),
        (BIG_PAYLOAD, EXPORTER),
    ]


def test_repeated_fragment_yields_the_datagram_once() -> None:
    fragments = _ipv4_fragments(BIG_PAYLOAD, identification=9)
    frames = [fragments[0], fragments[0], fragments[1], fragments[2], fragments[2]]
    assert [d.payload for d in read_capture(_pcap(frames))] == [BIG_PAYLOAD]


def test_datagram_with_a_missing_fragment_is_not_yielded() -> None:
    fragments = _ipv4_fragments(BIG_PAYLOAD, identification=10)
    frames = [fragments[0], fragments[2], _ethernet(_ipv4(_udp(b"after")))]
    assert [d.payload for d in read_capture(_pcap(frames))] == [b"after"]


def test_out_of_order_ipv6_fragments() -> None:
    segment = bytes(_udp(BIG_PAYLOAD))
    pieces = [(0, segment[:1448]), (1448, segment[1448:2896]), (2896, segment[2896:])]
    frames = []
    for offset, piece in pieces:
        more = int(offset + len(piece) < len(segment))
        fragment_header = struct.pack("!BxHI", 17, offset | more, 0xABCD)
        frames.append(_ethernet(_ipv6(fragment_header + piece, next_header=44), 0x86DD))
    datagrams = list(read_capture(_pcap([frames[2], frames[0], frames[1]])))
    assert [(d.payload, d.source) for d in datagrams] == [(BIG_PAYLOAD, (EXPORTER6, 50000))]


# --- empty and damaged files ---


def test_empty_inputs_yield_nothing() -> None:
    assert list(read_capture(b"")) == []
    assert list(read_capture(_pcap([]))) == []
    assert list(read_capture(_pcap([], nano=True))) == []
    assert list(read_capture(_pcapng([_interface(1)], []))) == []


def _three_frame_pcap() -> bytes:
    return _pcap([_ethernet(_ipv4(_udp(bytes([n]) * 100))) for n in (1, 2, 3)])


def test_pcap_cut_mid_record_yields_the_readable_frames_then_fails() -> None:
    datagrams = []
    with pytest.raises(CaptureError, match=r"frame 3: cut off, the record claims 142 bytes"):
        for datagram in read_capture(_three_frame_pcap()[:-10]):
            datagrams.append(datagram)
    assert [d.payload[0] for d in datagrams] == [1, 2]


def test_pcap_cut_mid_record_header() -> None:
    data = _three_frame_pcap()
    cut = len(data) - 142 - 6  # inside the third record header
    with pytest.raises(CaptureError, match=r"frame 3: record header at byte \d+ cut off"):
        list(read_capture(data[:cut]))


def test_pcap_cut_in_file_header() -> None:
    with pytest.raises(CaptureError, match=r"pcap file header cut off \(10 of 24 bytes\)"):
        list(read_capture(_three_frame_pcap()[:10]))


def test_pcap_record_length_out_of_step_is_a_capture_error() -> None:
    data = bytearray(_three_frame_pcap())
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)  # first record's captured length
    with pytest.raises(CaptureError, match=r"frame 1: .* more than any capture tool writes"):
        list(read_capture(bytes(data)))


def test_pcapng_cut_mid_block_yields_the_readable_frames_then_fails() -> None:
    packets = [_packet_block(_ethernet(_ipv4(_udp(bytes([n]) * 100))), n) for n in (1, 2, 3)]
    data = _pcapng([_interface(1)], packets)
    datagrams = []
    with pytest.raises(CaptureError, match=r"frame 3: block at byte \d+ cut off"):
        for datagram in read_capture(data[:-10]):
            datagrams.append(datagram)
    assert [d.payload[0] for d in datagrams] == [1, 2]


# --- split_export_messages ---


def test_split_concatenated_messages() -> None:
    messages = [_v5_message(2, 1), _v5_message(0, 2), _ipfix_message(b"x" * 20), _v5_message(1, 3)]
    assert split_export_messages(b"".join(messages)) == messages


def test_split_v5_message_claiming_more_than_remains_keeps_the_rest() -> None:
    data = _v5_message(2) + _v5_message(30)[:200]
    assert split_export_messages(data) == [_v5_message(2), _v5_message(30)[:200]]


def _v9_message(flowsets: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack("!HH", i, 4 + len(b)) + b for i, b in flowsets)
    return struct.pack("!HHIIII", 9, len(flowsets), 1000, T0, 1, 0) + body


def test_split_v9_at_the_next_header() -> None:
    template = _v9_message([(0, struct.pack("!HHHH", 256, 1, 8, 4))])
    data_message = _v9_message([(256, b"\x0a\x00\x00\x01"), (256, b"\x0a\x00\x00\x02")])
    assert split_export_messages(template + data_message) == [template, data_message]


def test_split_v9_keeps_an_implausible_header_inside() -> None:
    # a flowset id 9 whose "next header" is followed by a reserved flowset id (5)
    fake = struct.pack("!HHIIII", 9, 1, 0, 0, 0, 0) + struct.pack("!HH", 5, 8) + bytes(4)
    message = _v9_message([(256, b"abcd")]) + fake
    assert split_export_messages(message) == [message]


def test_split_keeps_padding_and_garbage_with_the_message_before() -> None:
    v9 = _v9_message([(256, b"abcd")])
    assert split_export_messages(v9 + bytes(1220)) == [v9 + bytes(1220)]
    assert split_export_messages(_v5_message(1) + bytes(7)) == [_v5_message(1) + bytes(7)]
    ipfix = _ipfix_message(b"y" * 8)
    assert split_export_messages(ipfix + b"\x00\x0a\x00\x03junk") == [
        ipfix + b"\x00\x0a\x00\x03junk"
    ]
    assert split_export_messages(ipfix + b"\xff") == [ipfix + b"\xff"]


def test_split_unrecognised_or_tiny_input_is_one_message() -> None:
    assert split_export_messages(b"") == []
    assert split_export_messages(bytes(64)) == [bytes(64)]
    assert split_export_messages(b"\x00\x09") == [b"\x00\x09"]
    assert split_export_messages(b"hello world") == [b"hello world"]


# --- properties ------------------------------------------------------------------------


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """The seed cut at any offset, or with one byte replaced."""
    cut = st.integers(0, len(seed)).map(lambda n: seed[:n])
    flipped = st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)).map(
        lambda change: seed[: change[0]] + bytes([change[1]]) + seed[change[0] + 1 :]
    )
    return cut | flipped


SEEDS = [
    _pcap([_ethernet(_ipv4(_udp(PAYLOAD))), *_ipv4_fragments(BIG_PAYLOAD[:1600], 3, size=800)]),
    _pcap([_ethernet(_ipv6(_udp(PAYLOAD)), 0x86DD)], nano=True),
    _pcapng(
        [_interface(1, tsresol=9), _interface(113)],
        [
            _packet_block(_ethernet(_ipv4(_udp(PAYLOAD))), 5),
            _packet_block(dpkt.sll.SLL(ethtype=0x0800, data=_ipv4(_udp(PAYLOAD))), 6, interface=1),
        ],
    ),
]

capture_inputs = (
    st.binary(max_size=400)
    | st.tuples(st.sampled_from(CAPTURE_MAGICS), st.binary(max_size=400)).map(b"".join)
    | st.tuples(
        st.sampled_from([s[:24] for s in SEEDS[:2]] + [SEEDS[2][:80]]), st.binary(max_size=400)
    ).map(b"".join)
    | st.one_of(*(_mutations(seed) for seed in SEEDS))
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capture_inputs)
def test_any_bytes_yield_datagrams_or_capture_error(data: bytes) -> None:
    try:
        datagrams = list(read_capture(data))
    except CaptureError:
        return
    assert all(isinstance(d, CapturedDatagram) for d in datagrams)


def _export_chunks() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.integers(0, 3).map(_v5_message),
        st.binary(max_size=40).map(_ipfix_message),
        st.lists(
            st.tuples(st.sampled_from([0, 1, 256, 9]), st.binary(max_size=12)), max_size=3
        ).map(_v9_message),
        st.integers(1, 30).map(bytes),
        st.binary(max_size=30),
    )


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.lists(_export_chunks(), max_size=6).map(b"".join))
def test_split_never_loses_or_reorders_bytes(data: bytes) -> None:
    parts = split_export_messages(data)
    assert b"".join(parts) == data
    assert all(parts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.integers(0, 3).map(_v5_message) | st.binary(max_size=40).map(_ipfix_message),
        min_size=1,
        max_size=6,
    )
)
def test_split_finds_every_v5_and_ipfix_message(messages: list[bytes]) -> None:
    assert split_export_messages(b"".join(messages)) == messages
