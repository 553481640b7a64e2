"""Capture files in, export datagrams out: all knowledge of pcap, pcapng and raw dumps.

Offline decoding (``python -m parsers``, ``flowq -r``) and the corpus tests replay export
packets from files. This module turns the bytes of such a file into the UDP datagrams a
collector socket would have received, in capture order, with the exporter's address and
the capture time, so the decoder never learns where a datagram came from. It is sans-I/O
like the rest of ``parsers/``: callers read the file and pass its bytes.

dpkt reads the containers (the pcap file header and records, the pcapng blocks). Frames
are decoded here with ``struct`` and every length checked, rather than with dpkt's
protocol classes, because those decode eagerly down to every protocol they know and
raise outside their own exception family on hostile frames (``IndexError`` in the MPLS
guess of ``Ethernet``, ``AttributeError`` in ``IP6`` when a fragment header precedes
other extension headers), and they parse the first IPv4 fragment as if it were the
whole UDP datagram.
"""

from __future__ import annotations

import io
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

import dpkt

from parsers import ipfix, netflow_v5, netflow_v9


@dataclass(frozen=True, slots=True)
class CapturedDatagram:
    """One UDP datagram as the collector's socket would have received it."""

    payload: bytes  # the UDP payload; shorter than the UDP length says if the capture cut it
    source: tuple[str, int]  # exporter (address as ipaddress formats it, UDP source port)
    destination_port: int  # UDP destination port; 0 for raw files
    captured_at_ns: int  # capture time, ns since 1970; 0 for raw files and pcapng SPBs


class CaptureFormat(StrEnum):
    """File formats ``read_capture`` understands, told apart by their first bytes."""

    PCAP = "pcap"
    PCAPNG = "pcapng"
    RAW = "raw"


class CaptureError(Exception):
    """The capture file is cut off, corrupt, or of a link type this module cannot read
    (an odd frame inside a sound file is skipped instead).

    Raised after every datagram before the damage was yielded, so a caller can keep
    those and still report the file as unreadable.
    """


# First four bytes of a pcap file -> (struct byte order, ns per unit of the fraction field).
_PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000),  # microsecond, written little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1_000),  # microsecond, big-endian
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanosecond, little-endian
    b"\xa1\xb2\x3c\x4d": (">", 1),  # nanosecond, big-endian
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # section header block type, the same in both byte orders


def detect_capture_format(data: bytes) -> CaptureFormat:
    """No NetFlow/IPFIX version field equals a capture magic, so four bytes decide."""
    if data[:4] in _PCAP_MAGICS:
        return CaptureFormat.PCAP
    if data[:4] == _PCAPNG_MAGIC:
        return CaptureFormat.PCAPNG
    return CaptureFormat.RAW


def read_capture(
    data: bytes, raw_source: tuple[str, int] = ("0.0.0.0", 0)
) -> Iterator[CapturedDatagram]:
    """Yield every UDP datagram of a capture in frame order (any port: callers filter).

    Other traffic (TCP such as the BMP/BGP sessions in pmacct captures, ICMP, ARP) and
    frames too short to show a UDP header are skipped. Fragmented IPv4/IPv6 datagrams are
    reassembled and yielded at the frame that completes them; datagrams whose fragments
    never all arrive are dropped, as the kernel would have. A datagram cut short by the
    snap length is yielded as captured, and the decoder reports it truncated.

    A raw file (no capture magic) holds bare export messages from ``raw_source``; see
    ``split_export_messages``. Raises ``CaptureError`` once the file stops making sense.
    """
    capture_format = detect_capture_format(data)
    if capture_format is CaptureFormat.RAW:
        for message in split_export_messages(data):
            yield CapturedDatagram(message, raw_source, 0, 0)
        return
    if capture_format is CaptureFormat.PCAP:
        frames = _read_pcap_frames(data)
    else:
        frames = _read_pcapng_frames(data)
    reassembler = _FragmentReassembler()
    for frame in frames:
        packet = _ip_packet(frame)
        if packet is None:
            continue
        ip = _udp_in_ip(packet)
        if ip is None:
            continue
        segment = ip.payload
        if ip.fragment is not None:
            segment = reassembler.add(ip.fragment, ip.payload)
            if segment is None:
                continue
        datagram = _udp_datagram(segment, ip.source, frame.captured_at_ns)
        if datagram is not None:
            yield datagram


class _Frame(NamedTuple):
    number: int  # 1-based, as Wireshark numbers frames, so messages can be checked there
    link_type: int
    captured_at_ns: int
    data: bytes


# --- pcap ------------------------------------------------------------------------------

_PCAP_FILE_HEADER_BYTES = 24
_PCAP_RECORD_HEADER_BYTES = 16
# No capture tool writes records above libpcap's MAXIMUM_SNAPLEN; a bigger length means
# the record headers are out of step with the file (corruption), not a big frame.
_PCAP_MAX_RECORD_BYTES = 262_144
_LINK_TYPE_MASK = 0xFFFF  # upper bits of the pcap link-type field carry FCS flags


def _read_pcap_frames(data: bytes) -> Iterator[_Frame]:
    """dpkt reads the file, but its timestamps are floats and it silently returns a short
    last record; the record header read here at the same offset gives exact ns and the
    length to check the record against."""
    if len(data) < _PCAP_FILE_HEADER_BYTES:
        raise CaptureError(f"pcap file header cut off ({len(data)} of 24 bytes)")
    byte_order, ns_per_fraction = _PCAP_MAGICS[data[:4]]
    reader = dpkt.pcap.Reader(io.BytesIO(data))
    link_type = reader.datalink() & _LINK_TYPE_MASK
    record_header = struct.Struct(byte_order + "IIII")
    records = iter(reader)
    offset = _PCAP_FILE_HEADER_BYTES
    number = 0
    while offset < len(data):
        number += 1
        remaining = len(data) - offset
        if remaining < _PCAP_RECORD_HEADER_BYTES:
            raise CaptureError(
                f"frame {number}: record header at byte {offset} cut off "
                f"({remaining} of {_PCAP_RECORD_HEADER_BYTES} bytes)"
            )
        seconds, fraction, captured_bytes, _ = record_header.unpack_from(data, offset)
        if captured_bytes > _PCAP_MAX_RECORD_BYTES:
            raise CaptureError(
                f"frame {number}: record at byte {offset} claims {captured_bytes} captured "
                f"bytes, more than any capture tool writes; the file is corrupt"
            )
        _, frame = next(records)
        if len(frame) < captured_bytes:
            raise CaptureError(
                f"frame {number}: cut off, the record claims {captured_bytes} bytes "
                f"but the file ends after {len(frame)}"
            )
        offset += _PCAP_RECORD_HEADER_BYTES + captured_bytes
        yield _Frame(number, link_type, seconds * 1_000_000_000 + fraction * ns_per_fraction, frame)


# --- pcapng ----------------------------------------------------------------------------

_PCAPNG_INTERFACE_DESCRIPTION = 1
_PCAPNG_PACKET = 2  # obsolete, still written by old tools
_PCAPNG_SIMPLE_PACKET = 3
_PCAPNG_ENHANCED_PACKET = 6
_PCAPNG_BYTE_ORDER_MAGIC = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_PCAPNG_OPTION_TSRESOL = 9
_PCAPNG_OPTION_TSOFFSET = 14
_PCAPNG_MIN_BLOCK_BYTES = 12


class _Interface(NamedTuple):
    link_type: int
    ticks_per_second: int
    offset_s: int


# dpkt's class for each block kind we read, by (block type, struct byte order).
_PCAPNG_BLOCK_CLASSES: dict[tuple[int, str], type[dpkt.Packet]] = {
    (dpkt.pcapng.PCAPNG_BT_SHB, "<"): dpkt.pcapng.SectionHeaderBlockLE,
    (dpkt.pcapng.PCAPNG_BT_SHB, ">"): dpkt.pcapng.SectionHeaderBlock,
    (_PCAPNG_INTERFACE_DESCRIPTION, "<"): dpkt.pcapng.InterfaceDescriptionBlockLE,
    (_PCAPNG_INTERFACE_DESCRIPTION, ">"): dpkt.pcapng.InterfaceDescriptionBlock,
    (_PCAPNG_ENHANCED_PACKET, "<"): dpkt.pcapng.EnhancedPacketBlockLE,
    (_PCAPNG_ENHANCED_PACKET, ">"): dpkt.pcapng.EnhancedPacketBlock,
    (_PCAPNG_PACKET, "<"): dpkt.pcapng.PacketBlockLE,
    (_PCAPNG_PACKET, ">"): dpkt.pcapng.PacketBlock,
}


def _read_pcapng_frames(data: bytes) -> Iterator[_Frame]:
    """Blocks are walked here, not by ``dpkt.pcapng.Reader``, because that reader keeps
    only the first interface (its link type and clock then apply to every packet) and
    makes timestamps floats; dpkt still parses each block."""
    offset = 0
    number = 0
    byte_order = "<"
    interfaces: list[_Interface] = []
    while offset < len(data):
        where = f"frame {number + 1}: block at byte {offset}"
        remaining = len(data) - offset
        if remaining < _PCAPNG_MIN_BLOCK_BYTES:
            raise CaptureError(f"{where} cut off ({remaining} of at least 12 bytes)")
        if data[offset : offset + 4] == _PCAPNG_MAGIC:  # each section has its byte order
            bom = data[offset + 8 : offset + 12]
            if bom not in _PCAPNG_BYTE_ORDER_MAGIC:
                raise CaptureError(f"{where}: section header without byte-order magic")
            byte_order = _PCAPNG_BYTE_ORDER_MAGIC[bom]
            interfaces = []
        block_type, block_bytes = struct.unpack_from(byte_order + "II", data, offset)
        if block_bytes < _PCAPNG_MIN_BLOCK_BYTES or block_bytes % 4:
            raise CaptureError(f"{where} has an invalid length ({block_bytes})")
        if block_bytes > remaining:
            raise CaptureError(
                f"{where} cut off: it claims {block_bytes} bytes, the file ends after {remaining}"
            )
        block = data[offset : offset + block_bytes]
        offset += block_bytes
        if block_type == _PCAPNG_SIMPLE_PACKET:  # no interface id (always 0), no timestamp
            number += 1
            (original_bytes,) = struct.unpack_from(byte_order + "I", block, 8)
            frame = block[12 : 12 + min(original_bytes, block_bytes - 16)]
            yield _pcapng_frame(number, 0, None, frame, interfaces, where)
            continue
        block_class = _PCAPNG_BLOCK_CLASSES.get((block_type, byte_order))
        if block_class is None:  # statistics, name resolution, custom blocks
            continue
        try:
            parsed = block_class(block)
        except (dpkt.UnpackError, UnicodeDecodeError) as error:  # dpkt decodes comments
            raise CaptureError(f"{where} is malformed ({type(error).__name__}: {error})") from None
        if block_type == dpkt.pcapng.PCAPNG_BT_SHB:
            if parsed.v_major != 1:
                raise CaptureError(f"{where}: pcapng version {parsed.v_major} is not supported")
        elif block_type == _PCAPNG_INTERFACE_DESCRIPTION:
            interfaces.append(_pcapng_interface(parsed, byte_order, where))
        else:
            number += 1
            if len(parsed.pkt_data) < parsed.caplen:
                raise CaptureError(
                    f"{where}: claims {parsed.caplen} captured bytes, "
                    f"the block holds {len(parsed.pkt_data)}"
                )
            ticks = (parsed.ts_high << 32) | parsed.ts_low
            yield _pcapng_frame(number, parsed.iface_id, ticks, parsed.pkt_data, interfaces, where)


def _pcapng_interface(idb: dpkt.Packet, byte_order: str, where: str) -> _Interface:
    ticks_per_second = 1_000_000  # pcapng default: microseconds
    offset_s = 0
    for option in idb.opts:
        if option.code == _PCAPNG_OPTION_TSRESOL and option.data:
            # MSB clear: 10^-n seconds per tick; MSB set: 2^-n (pcapng, if_tsresol)
            exponent = option.data[0] & 0x7F
            ticks_per_second = 2**exponent if option.data[0] & 0x80 else 10**exponent
        elif option.code == _PCAPNG_OPTION_TSOFFSET:
            if len(option.data) != 8:
                raise CaptureError(f"{where}: if_tsoffset is {len(option.data)} bytes, not 8")
            (offset_s,) = struct.unpack(byte_order + "q", option.data)
    return _Interface(idb.linktype, ticks_per_second, offset_s)


def _pcapng_frame(
    number: int,
    interface_id: int,
    ticks: int | None,
    frame: bytes,
    interfaces: list[_Interface],
    where: str,
) -> _Frame:
    if interface_id >= len(interfaces):
        raise CaptureError(
            f"{where}: packet names interface {interface_id}, "
            f"the section describes {len(interfaces)}"
        )
    interface = interfaces[interface_id]
    captured_at_ns = 0
    if ticks is not None:
        captured_at_ns = interface.offset_s * 1_000_000_000 + (
            ticks * 1_000_000_000 // interface.ticks_per_second
        )
    return _Frame(number, interface.link_type, captured_at_ns, frame)


# --- link layer ------------------------------------------------------------------------

_LINKTYPE_NULL = 0  # BSD loopback, address family in host byte order
_LINKTYPE_ETHERNET = 1
_LINKTYPE_LOOP = 108  # OpenBSD loopback, address family in network byte order
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW is 12 on most BSDs and 14 on OpenBSD; libpcap writes 101; 228/229 are IPv4/IPv6.
_LINKTYPES_RAW_IP = frozenset({12, 14, 101, 228, 229})
_BSD_ADDRESS_FAMILIES_IP = frozenset({2, 24, 28, 30})  # AF_INET; AF_INET6 Net/OpenBSD, Free, mac
_ETHERTYPES_IP = frozenset({0x0800, 0x86DD})
_ETHERTYPES_VLAN = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})  # 802.1Q, 802.1ad, old QinQ
_ETHERTYPES_MPLS = frozenset({0x8847, 0x8848})
_U16 = struct.Struct("!H")


def _ip_packet(frame: _Frame) -> bytes | None:
    """The IPv4/IPv6 packet a frame carries, None for any other traffic."""
    data = frame.data
    if frame.link_type == _LINKTYPE_ETHERNET:
        return _ip_after_ethertype(data, 12, 14)
    if frame.link_type == _LINKTYPE_LINUX_SLL:
        return _ip_after_ethertype(data, 14, 16)
    if frame.link_type == _LINKTYPE_LINUX_SLL2:
        return _ip_after_ethertype(data, 0, 20)
    if frame.link_type in _LINKTYPES_RAW_IP:
        return data
    if frame.link_type in (_LINKTYPE_NULL, _LINKTYPE_LOOP):
        families = {int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big")}
        return data[4:] if len(data) >= 4 and families & _BSD_ADDRESS_FAMILIES_IP else None
    raise CaptureError(
        f"frame {frame.number}: link type {frame.link_type} is not supported "
        "(Ethernet, Linux SLL/SLL2, raw IP and BSD loopback are)"
    )


def _ip_after_ethertype(data: bytes, type_offset: int, payload_offset: int) -> bytes | None:
    if len(data) < payload_offset:
        return None
    (ethertype,) = _U16.unpack_from(data, type_offset)
    offset = payload_offset
    while ethertype in _ETHERTYPES_VLAN:  # each tag: 2 bytes TCI, then the next ethertype
        if len(data) < offset + 4:
            return None
        (ethertype,) = _U16.unpack_from(data, offset + 2)
        offset += 4
    if ethertype in _ETHERTYPES_MPLS:  # labels up to bottom-of-stack; IP version decides
        while True:
            if len(data) < offset + 4:
                return None
            offset += 4
            if data[offset - 2] & 0x01:
                return data[offset:]
    return data[offset:] if ethertype in _ETHERTYPES_IP else None


# --- IP and UDP ------------------------------------------------------------------------

_IP_PROTOCOL_UDP = 17
_IPV6_EXTENSION_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_FRAGMENT_HEADER = 44
_UDP_HEADER = struct.Struct("!HHH2x")


class _FragmentKey(NamedTuple):
    version: int
    source: bytes
    destination: bytes
    identification: int  # protocol is always UDP here, so it need not be part of the key


class _Fragment(NamedTuple):
    key: _FragmentKey
    offset_bytes: int
    more_fragments: bool


class _IpPayload(NamedTuple):
    source: str
    fragment: _Fragment | None
    payload: bytes  # the UDP datagram, or this fragment's piece of it


def _udp_in_ip(packet: bytes) -> _IpPayload | None:
    """What an IP packet carries for UDP; None for other protocols and cut-off headers."""
    version = packet[0] >> 4 if packet else 0
    if version == 4:
        return _udp_in_ipv4(packet)
    if version == 6:
        return _udp_in_ipv6(packet)
    return None


def _udp_in_ipv4(packet: bytes) -> _IpPayload | None:
    header_bytes = (packet[0] & 0x0F) * 4
    if header_bytes < 20 or len(packet) < header_bytes:
        return None
    total_bytes, identification, flags_offset, protocol = struct.unpack_from("!2xHHHxB", packet)
    if protocol != _IP_PROTOCOL_UDP or 0 < total_bytes < header_bytes:
        return None
    # Total length trims Ethernet padding; 0 means segmentation offload: take what is there.
    end = min(total_bytes, len(packet)) if total_bytes else len(packet)
    source = str(ipaddress.IPv4Address(packet[12:16]))
    fragment = None
    if flags_offset & 0x3FFF:  # more-fragments flag or a fragment offset (RFC 791)
        key = _FragmentKey(4, packet[12:16], packet[16:20], identification)
        fragment = _Fragment(key, (flags_offset & 0x1FFF) * 8, bool(flags_offset & 0x2000))
    return _IpPayload(source, fragment, packet[header_bytes:end])


def _udp_in_ipv6(packet: bytes) -> _IpPayload | None:
    """Walks extension headers to UDP. A fragmentable part that starts with another
    extension header is not reassembled: exporters put UDP right after the fragment header."""
    if len(packet) < 40:
        return None
    payload_bytes, next_header = struct.unpack_from("!4xHB", packet)
    end = min(40 + payload_bytes, len(packet)) if payload_bytes else len(packet)  # 0: jumbo
    offset = 40
    fragment = None
    while next_header in _IPV6_EXTENSION_HEADERS or next_header == _IPV6_FRAGMENT_HEADER:
        if end - offset < 8:
            return None
        if next_header == _IPV6_FRAGMENT_HEADER:  # RFC 8200 §4.5
            next_header, offset_flags, identification = struct.unpack_from("!BxHI", packet, offset)
            key = _FragmentKey(6, packet[8:24], packet[24:40], identification)
            fragment = _Fragment(key, offset_flags & 0xFFF8, bool(offset_flags & 0x0001))
            offset += 8
            break
        next_header, length_units = packet[offset], packet[offset + 1]
        offset += (length_units + 1) * 8
    if next_header != _IP_PROTOCOL_UDP or offset > end:
        return None
    return _IpPayload(str(ipaddress.IPv6Address(packet[8:24])), fragment, packet[offset:end])


def _udp_datagram(segment: bytes, source_ip: str, captured_at_ns: int) -> CapturedDatagram | None:
    if len(segment) < _UDP_HEADER.size:
        return None
    source_port, destination_port, udp_bytes = _UDP_HEADER.unpack_from(segment)
    # A UDP length beyond the captured bytes means a snaplen cut: yield what is there.
    # Below 8 it is bogus (or 0 for an IPv6 jumbogram): the IP length already bounds it.
    end = udp_bytes if udp_bytes >= _UDP_HEADER.size else len(segment)
    return CapturedDatagram(
        segment[_UDP_HEADER.size : end], (source_ip, source_port), destination_port, captured_at_ns
    )


# An exporter rarely has more than a few datagrams in flight in fragments; the cap bounds
# the memory a hostile capture of never-completed fragments can take (oldest go first).
MAX_PENDING_FRAGMENTED_DATAGRAMS = 256
MAX_IP_PAYLOAD_BYTES = 65_535  # no fragment may reach beyond this (RFC 791, RFC 8200)


@dataclass(slots=True)
class _PendingDatagram:
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> bytes
    total_bytes: int | None = None  # known once the last fragment arrived


class _FragmentReassembler:
    """IPFIX messages larger than the path MTU arrive as IP fragments, in any order."""

    def __init__(self) -> None:
        self._pending: dict[_FragmentKey, _PendingDatagram] = {}

    def add(self, fragment: _Fragment, piece: bytes) -> bytes | None:
        """The whole IP payload once this fragment completes it, else None."""
        if fragment.offset_bytes + len(piece) > MAX_IP_PAYLOAD_BYTES:
            return None
        pending = self._pending.get(fragment.key)
        if pending is None:
            if len(self._pending) >= MAX_PENDING_FRAGMENTED_DATAGRAMS:
                del self._pending[next(iter(self._pending))]
            pending = self._pending[fragment.key] = _PendingDatagram()
        pending.pieces.setdefault(fragment.offset_bytes, piece)  # a retransmission adds nothing
        if not fragment.more_fragments:
            pending.total_bytes = fragment.offset_bytes + len(piece)
        if pending.total_bytes is None:
            return None
        covered = 0
        for start in sorted(pending.pieces):
            if start > covered:
                return None  # a hole
            covered = max(covered, start + len(pending.pieces[start]))
        if covered < pending.total_bytes:
            return None
        del self._pending[fragment.key]
        whole = bytearray(pending.total_bytes)
        for start in sorted(pending.pieces):
            if start < pending.total_bytes:
                piece = pending.pieces[start][: pending.total_bytes - start]
                whole[start : start + len(piece)] = piece
        return bytes(whole)


# --- raw files -------------------------------------------------------------------------

_SET_HEADER = ipfix.SET_HEADER_STRUCT  # v9 flowset / IPFIX set: id, length; also version, count


def split_export_messages(data: bytes) -> list[bytes]:
    """Cut a raw dump into export messages, never losing or reordering a byte.

    ``nc -k`` captures hold several messages back to back; each message's own length
    says where the next begins (v9 has none: see ``_netflow_v9_message_length``). Zero
    padding after a message (Palo Alto pads to a fixed size) and anything unrecognisable
    stay attached to the message before, so the decoder sees and reports them. The parts
    joined give back ``data``; no part is empty.
    """
    if not data:
        return []
    starts = [0]
    padding_from = len(data.rstrip(b"\x00"))  # from here on, the data is all zero bytes
    end = _export_message_length(data, 0)
    while end is not None and end < padding_from:
        length = _export_message_length(data, end)
        if length is None:
            break
        starts.append(end)
        end += length
    return [data[start:stop] for start, stop in zip(starts, [*starts[1:], len(data)], strict=True)]


def _export_message_length(data: bytes, start: int) -> int | None:
    """Length of the message at ``start`` (at least 1, at most what remains), or None if
    no export message starts there. A message that claims more than remains is cut
    there: the decoder counts it as truncated."""
    remaining = len(data) - start
    if remaining < _SET_HEADER.size:
        return None
    version, count_or_length = _SET_HEADER.unpack_from(data, start)
    if version == netflow_v5.VERSION:
        claimed = netflow_v5.HEADER_SIZE + netflow_v5.RECORD_SIZE * count_or_length
        return min(claimed, remaining)
    if version == ipfix.VERSION:  # RFC 7011 §3.1: the header carries the message length
        return min(count_or_length, remaining) if count_or_length >= ipfix.HEADER_SIZE else None
    if version == netflow_v9.VERSION:
        return _netflow_v9_message_length(data, start)
    return None


def _netflow_v9_message_length(data: bytes, start: int) -> int:
    """v9 headers carry a record count, not a length (RFC 3954 §5.1), and exporters
    disagree on what they count, so walk the flowsets instead. Flowset id 9 is reserved
    (ids 2-255 are, §5.2), so 0x0009 where a flowset should begin is the next message's
    version if a plausible header follows. A flowset length that cannot be right (zero
    padding, garbage) ends the walk and the rest stays with this message."""
    end = len(data)
    offset = start + netflow_v9.HEADER_SIZE
    while end - offset >= _SET_HEADER.size:
        flowset_id, flowset_bytes = _SET_HEADER.unpack_from(data, offset)
        if flowset_id == netflow_v9.VERSION and _next_header_is_plausible(data, offset):
            return offset - start
        if flowset_bytes < _SET_HEADER.size or flowset_bytes > end - offset:
            break
        offset += flowset_bytes
    return end - start


def _next_header_is_plausible(data: bytes, offset: int) -> bool:
    """Whether the v9 header whose version was read at ``offset`` is followed by a
    flowset that could be real."""
    first_flowset = offset + netflow_v9.HEADER_SIZE
    if len(data) - first_flowset < _SET_HEADER.size:
        return False
    flowset_id, flowset_bytes = _SET_HEADER.unpack_from(data, first_flowset)
    # 0 templates, 1 options templates, 256 and up data (RFC 3954 §5.2); 2-255 reserved
    return (flowset_id <= 1 or flowset_id >= 256) and (
        _SET_HEADER.size <= flowset_bytes <= len(data) - first_flowset
    )
