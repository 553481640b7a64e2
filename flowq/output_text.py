"""nfdump's text layouts (``-o line``, ``long``, ``extended``, ``fmt:``) and the value
texts every flowq output shares (addresses, times, protocol names).

A layout is a sequence of nfdump ``%`` tokens and literal strings. Each token renders a
whole batch column at once into an Arrow string array already padded to nfdump 1.7.1's
width (``%16s`` addresses, ``%8s`` scaled counters, ...); the line is the element-wise
join of those arrays. The header line is the tokens' headers with every literal
replaced by as many spaces, as nfdump builds it.

Missing values print as nfdump prints an absent element: 0, ``0.0.0.0``, and
``0000-00-00 00:00:00.000`` for a missing time. IPv6 addresses are printed in full
(``inet_ntop`` text): where nfdump shortens ``2001:db8:1:2::1`` to ``2001:db..2::1`` in
its 16-character column, flowq lets the address overflow the column instead.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.flags import flags_texts
from flowq.numbers import (
    bits_per_second,
    bytes_per_packet,
    duration_texts,
    format_numbers,
    per_second,
)
from flowq.stats import ICMP_PROTOCOLS
from storage.schema import FLOW_SCHEMA, IPV4_TYPE, IPV6_TYPE

# nfdump 1.7.1's protocol names (output_util.c protoList); numbers from 138 on print as
# numbers
PROTOCOL_NAMES: Final = (
    "0", "ICMP", "IGMP", "GGP", "IPIP", "ST", "TCP", "CBT", "EGP", "IGP", "BBN", "NVPII",
    "PUP", "ARGUS", "ENCOM", "XNET", "CHAOS", "UDP", "MUX", "DCN", "HMP", "PRM", "XNS",
    "Trnk1", "Trnk2", "Leaf1", "Leaf2", "RDP", "IRTP", "ISO-4", "NETBK", "MFESP", "MEINP",
    "DCCP", "3PC", "IDPR", "XTP", "DDP", "IDPR", "TP++", "IL", "IPv6", "SDRP", "Rte6",
    "Frag6", "IDRP", "RSVP", "GRE", "MHRP", "BNA", "ESP", "AH", "INLSP", "SWIPE", "NARP",
    "MOBIL", "TLSP", "SKIP", "ICMP6", "NOHE6", "OPTS6", "HOST", "CFTP", "NET", "SATNT",
    "KLAN", "RVD", "IPPC", "FS", "SATM", "VISA", "IPCV", "CPNX", "CPHB", "WSN", "PVP",
    "BSATM", "SUNND", "WBMON", "WBEXP", "ISOIP", "VMTP", "SVMTP", "VINES", "TTP", "NSIGP",
    "DGP", "TCF", "EIGRP", "OSPF", "S-RPC", "LARP", "MTP", "AX.25", "OS", "MICP", "SCCSP",
    "ETHIP", "ENCAP", "99", "GMTP", "IFMP", "PNNI", "PIM", "ARIS", "SCPS", "QNX", "A/N",
    "IPcmp", "SNP", "CpqPP", "IPXIP", "VRRP", "PGM", "0hop", "L2TP", "DDX", "IATP", "STP",
    "SRP", "UTI", "SMP", "SM", "PTP", "ISIS4", "FIRE", "CRTP", "CRUDP", "128", "IPLT",
    "SPS", "PIPE", "SCTP", "FC", "134", "MHEAD", "UDP-L", "MPLS",
)  # fmt: skip
_PROTOCOL_TEXT: Final = np.array(
    [PROTOCOL_NAMES[p] if p < len(PROTOCOL_NAMES) else str(p) for p in range(256)],
    dtype=object,
)

#: IPv4 address column -> its IPv6 twin (``src_addr`` -> ``src_addr6``, ...)
ADDRESS_COLUMNS: Final = {
    f.name: f"{f.name}6"
    for f in FLOW_SCHEMA
    if f.type == IPV4_TYPE
    and f"{f.name}6" in FLOW_SCHEMA.names
    and FLOW_SCHEMA.field(f"{f.name}6").type == IPV6_TYPE
}
_OCTET_TEXT: Final = pa.array([str(v) for v in range(256)], type=pa.string())
ZERO_TIME_TEXT: Final = "0000-00-00 00:00:00.000"
_MILLISECOND_TEXT: Final = pa.array([f"{v:03d}" for v in range(1000)], type=pa.string())

# nfdump's predefined layouts (nfdump.c printmap, 1.7.1)
LINE_FMT: Final = "%ts %td %pr %sap -> %dap %pkt %byt %fl"
LONG_FMT: Final = "%ts %td %pr %sap -> %dap %flg %tos %pkt %byt %fl"
EXTENDED_FMT: Final = "%ts %td %pr %sap -> %dap %flg %tos %pkt %byt %pps %bps %bpp %fl"
NAMED_LAYOUTS: Final = {"line": LINE_FMT, "long": LONG_FMT, "extended": EXTENDED_FMT}


# -- value texts shared by every output -------------------------------------------------


def protocol_name(proto: int, *, plain: bool = False) -> str:
    """nfdump's protocol text (``TCP``, ``ICMP6``, ``0``); the number with ``-N``."""
    return str(proto) if plain else str(_PROTOCOL_TEXT[proto & 0xFF])


def column(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    """The batch's column, None when the batch does not carry it."""
    index = batch.schema.get_field_index(name)
    return None if index < 0 else batch.column(index)


def uint_values(batch: pa.RecordBatch, name: str, fill: int = 0) -> np.ndarray:
    """An integer column as uint64 numpy, ``fill`` for nulls and for a missing column."""
    array = column(batch, name)
    if array is None:
        return np.full(batch.num_rows, fill, dtype=np.uint64)
    if array.null_count:
        array = pc.fill_null(array, fill)
    return np.asarray(array.to_numpy(zero_copy_only=False)).astype(np.uint64, copy=False)


def time_ms(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """A time column as int64 ms since 1970, 0 where null or missing."""
    array = column(batch, name)
    if array is None:
        return np.zeros(batch.num_rows, dtype=np.int64)
    ms = pc.cast(array, pa.timestamp("ms", tz="UTC"), safe=False).cast(pa.int64())
    return np.asarray(pc.fill_null(ms, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def ipv4_texts(addresses: np.ndarray) -> pa.Array:
    """uint32 addresses -> dotted quads, vectorized (Arrow ``take`` of octet texts)."""
    values = np.asarray(addresses, dtype=np.uint32)
    octets = [
        _OCTET_TEXT.take(pa.array((values >> np.uint32(shift)) & np.uint32(0xFF)))
        for shift in (24, 16, 8, 0)
    ]
    return pc.binary_join_element_wise(*octets, ".")


def ipv6_text(address: bytes) -> str:
    """16 bytes -> the full RFC 5952 text (``inet_ntop``), never shortened."""
    return socket.inet_ntop(socket.AF_INET6, address)


def address_texts(batch: pa.RecordBatch, name: str) -> pa.Array:
    """The text of address column ``name`` (``src_addr``) merged with its IPv6 twin
    (``src_addr6``): one string per row, null where the flow has neither.

    Each distinct address is formatted once and spread with ``take``: a batch of flows
    holds far fewer addresses than rows (an exporter column: one), and IPv6 texts come
    from ``inet_ntop``, a Python call per address."""
    v4 = column(batch, name)
    v6 = column(batch, ADDRESS_COLUMNS.get(name, f"{name}6"))
    text = pa.nulls(batch.num_rows, type=pa.string())
    if v4 is not None and v4.null_count < len(v4):
        values = np.asarray(pc.fill_null(v4, 0).to_numpy(zero_copy_only=False), dtype=np.uint32)
        distinct, inverse = np.unique(values, return_inverse=True)
        dotted = ipv4_texts(distinct).take(pa.array(inverse.reshape(-1)))
        text = dotted if v4.null_count == 0 else pc.if_else(pc.is_valid(v4), dotted, text)
    if v6 is not None and v6.null_count < len(v6):
        rows = np.flatnonzero(np.asarray(pc.is_valid(v6)))
        taken = v6.take(pa.array(rows))
        distinct = pc.unique(taken)
        words = pa.array([ipv6_text(v) for v in distinct.to_pylist()], type=pa.string())
        spread = words.take(pc.index_in(taken, value_set=distinct))
        mask = np.zeros(batch.num_rows, dtype=bool)
        mask[rows] = True
        text = pc.replace_with_mask(text, pa.array(mask), spread)
    return text


def is_ipv6(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """Rows whose address ``name`` is IPv6 (its ``name6`` twin is set)."""
    v6 = column(batch, ADDRESS_COLUMNS.get(name, f"{name}6"))
    if v6 is None:
        return np.zeros(batch.num_rows, dtype=bool)
    return np.asarray(pc.is_valid(v6))


def time_texts(ms: np.ndarray, *, utc: bool) -> pa.Array:
    """ms since 1970 -> nfdump's ``2026-11-22 10:05:00.123``, local time unless
    ``utc``; 0 (nfdump's "no time") -> ``0000-00-00 00:00:00.000``.

    Zone and DST follow the C library's ``localtime``, so ``TZ`` works as in nfdump.
    """
    ms = np.asarray(ms, dtype=np.int64)
    text = format_times(ms, "%Y-%m-%d %H:%M:%S.", utc=utc)
    unset = ms <= 0
    if unset.any():
        text = pc.if_else(pa.array(unset), pa.scalar(ZERO_TIME_TEXT), text)
    return text


def format_times(ms: np.ndarray, second_format: str, *, utc: bool, suffix: str = "") -> pa.Array:
    """ms since 1970 -> ``strftime(second_format)`` of the second, then the three
    millisecond digits, then ``suffix``. Each distinct second is formatted once (a batch
    of flows spans few of them), the rest is Arrow ``take`` and join."""
    ms = np.asarray(ms, dtype=np.int64)
    seconds, inverse = np.unique(np.floor_divide(ms, 1000), return_inverse=True)
    prefixes = pa.array(
        [_second_text(s, utc, second_format) for s in seconds.tolist()], type=pa.string()
    )
    parts = [
        prefixes.take(pa.array(inverse.reshape(-1))),
        _MILLISECOND_TEXT.take(pa.array(ms % 1000)),
    ]
    if suffix:
        parts.append(pa.scalar(suffix))
    return pc.binary_join_element_wise(*parts, "")


def time_text(ms: int, *, utc: bool) -> str:
    """``time_texts`` for one value."""
    return str(time_texts(np.array([ms], dtype=np.int64), utc=utc)[0])


def seconds_text(ms: int, *, utc: bool) -> str:
    """``2026-11-22 10:05:00``: a time to the second (nfdump's ``Time window``)."""
    return _second_text(ms // 1000, utc)


def _second_text(second: int, utc: bool, second_format: str = "%Y-%m-%d %H:%M:%S") -> str:
    try:
        parts = time.gmtime(second) if utc else time.localtime(second)
    except (OverflowError, OSError, ValueError):  # beyond the C library's years
        parts = time.gmtime(0)
    return time.strftime(second_format, parts)


# -- the % tokens ------------------------------------------------------------------------


class _Rows:
    """One batch seen by the tokens: typed columns, computed once per batch."""

    def __init__(self, batch: pa.RecordBatch, *, utc: bool, plain: bool) -> None:
        self.batch = batch
        self.utc = utc
        self.plain = plain
        self._uint: dict[str, np.ndarray] = {}

    def uint(self, name: str) -> np.ndarray:
        if name not in self._uint:
            self._uint[name] = uint_values(self.batch, name)
        return self._uint[name]

    def time(self, name: str) -> pa.Array:
        return time_texts(time_ms(self.batch, name), utc=self.utc)

    @cached_property
    def duration_ms(self) -> np.ndarray:
        start = time_ms(self.batch, "time_start")
        end = time_ms(self.batch, "time_end")
        valid = (start > 0) & (end >= start)
        return np.where(valid, end - start, 0).astype(np.int64)

    @cached_property
    def flows(self) -> np.ndarray:
        flows = self.uint("flows")
        return np.where(flows == 0, np.uint64(1), flows)

    @cached_property
    def is_icmp(self) -> np.ndarray:
        return np.isin(self.uint("proto"), ICMP_PROTOCOLS)

    @cached_property
    def icmp(self) -> np.ndarray:
        """ICMP type << 8 | code of ICMP flows (``icmp_type_code``, else the destination
        port, where NetFlow v5 carries it); 0 for other protocols, as in nfdump."""
        value = self.uint("dst_port")
        type_code = column(self.batch, "icmp_type_code")
        if type_code is not None:
            sent = np.asarray(pc.is_valid(type_code))
            value = np.where(sent, self.uint("icmp_type_code"), value)
        return np.where(self.is_icmp, value, np.uint64(0))

    def address(self, name: str) -> pa.Array:
        return pc.fill_null(address_texts(self.batch, name), "0.0.0.0")

    def dst_port_text(self) -> pa.Array:
        """nfdump's ICMP_Port_decode: ``type.code`` for ICMP, else the port."""
        ports = _uint_text(self.uint("dst_port"))
        if not self.is_icmp.any():
            return ports
        icmp = self.icmp
        decoded = pc.binary_join_element_wise(
            _uint_text(icmp >> np.uint64(8)), _uint_text(icmp & np.uint64(0xFF)), "."
        )
        return pc.if_else(pa.array(self.is_icmp), decoded, ports)


Render = Callable[[_Rows], pa.Array]


@dataclass(frozen=True, slots=True)
class Token:
    """An nfdump ``%`` token: its header text and how it renders a batch."""

    name: str
    header: str
    render: Render


def _uint_text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.uint64)), pa.string())


def _right(text: pa.Array, width: int) -> pa.Array:
    return pc.utf8_lpad(text, width=width, padding=" ")


def _left(text: pa.Array, width: int) -> pa.Array:
    return pc.utf8_rpad(text, width=width, padding=" ")


def _number(name: str, width: int) -> Render:
    return lambda rows: _right(_uint_text(rows.uint(name)), width)


def _scaled(values: Callable[[_Rows], np.ndarray]) -> Render:
    return lambda rows: _right(format_numbers(values(rows), plain=rows.plain, fixed_width=True), 8)


def _address(name: str) -> Render:
    return lambda rows: _right(rows.address(name), 16)


def _address_port(name: str, port: Callable[[_Rows], pa.Array]) -> Render:
    def render(rows: _Rows) -> pa.Array:
        separator = pc.if_else(pa.array(is_ipv6(rows.batch, name)), ".", ":")
        return pc.binary_join_element_wise(
            _right(rows.address(name), 16), separator, _left(port(rows), 5), ""
        )

    return render


def _protocol(rows: _Rows) -> pa.Array:
    protocols = rows.uint("proto") & np.uint64(0xFF)
    text = (
        _uint_text(protocols)
        if rows.plain
        else pa.array(_PROTOCOL_TEXT[protocols.astype(np.intp)], type=pa.string())
    )
    return _left(text, 5)


def _duration(rows: _Rows) -> pa.Array:
    return duration_texts(rows.duration_ms, plain=rows.plain)


def _seconds(rows: _Rows) -> pa.Array:
    return duration_texts(rows.duration_ms, plain=True)


def _engine(rows: _Rows) -> pa.Array:
    return pc.binary_join_element_wise(
        _right(_uint_text(rows.uint("engine_type")), 3),
        _left(_uint_text(rows.uint("engine_id")), 3),
        "/",
    )


def _domain(rows: _Rows) -> pa.Array:
    hex_digits = [f"0x{v:09x}" for v in rows.uint("observation_domain").tolist()]
    return pa.array(hex_digits, type=pa.string())


def _direction(rows: _Rows) -> pa.Array:
    egress = rows.uint("flow_direction") != 0
    return pa.array(np.where(egress, "  E", "  I"), type=pa.string())


_TOKEN_LIST: Final = (
    Token("ts", "Date first seen        ", lambda r: r.time("time_start")),
    Token("tfs", "Date first seen        ", lambda r: r.time("time_start")),
    Token("te", "Date last seen         ", lambda r: r.time("time_end")),
    Token("tr", "Date flow received     ", lambda r: r.time("time_received")),
    Token("td", "    Duration    ", _duration),
    Token("tds", "    Duration    ", _seconds),
    Token("pr", "Proto", _protocol),
    Token("sa", "     Src IP Addr", _address("src_addr")),
    Token("da", "     Dst IP Addr", _address("dst_addr")),
    Token("nh", "     Next-hop IP", _address("next_hop")),
    Token("nhb", " BGP next-hop IP", _address("bgp_next_hop")),
    Token("ra", "       Router IP", _address("exporter")),
    Token("sap", "     Src IP Addr:Port ",
          _address_port("src_addr", lambda r: _uint_text(r.uint("src_port")))),
    Token("dap", "     Dst IP Addr:Port ", _address_port("dst_addr", _Rows.dst_port_text)),
    Token("sp", "Src Pt", _number("src_port", 6)),
    Token("dp", "Dst Pt", lambda r: _right(r.dst_port_text(), 6)),
    Token("it", "ICMP-T", lambda r: _right(_uint_text(r.icmp >> np.uint64(8)), 6)),
    Token("ic", "ICMP-C", lambda r: _right(_uint_text(r.icmp & np.uint64(0xFF)), 6)),
    Token("sas", "Src AS", _number("src_as", 6)),
    Token("das", "Dst AS", _number("dst_as", 6)),
    Token("in", " Input", _number("in_if", 6)),
    Token("out", "Output", _number("out_if", 6)),
    Token("pkt", " Packets", _scaled(lambda r: r.uint("packets"))),
    Token("ipkt", "  In Pkt", _scaled(lambda r: r.uint("packets"))),
    Token("opkt", " Out Pkt", _scaled(lambda r: r.uint("out_packets"))),
    Token("byt", "   Bytes", _scaled(lambda r: r.uint("bytes"))),
    Token("ibyt", " In Byte", _scaled(lambda r: r.uint("bytes"))),
    Token("obyt", "Out Byte", _scaled(lambda r: r.uint("out_bytes"))),
    Token("fl", "Flows", lambda r: _right(_uint_text(r.flows), 5)),
    Token("flg", "   Flags", lambda r: flags_texts(r.uint("tcp_flags"), r.uint("proto"))),
    Token("tos", "Tos", _number("tos", 3)),
    Token("stos", "STos", _number("tos", 4)),
    Token("dtos", "DTos", _number("dst_tos", 4)),
    Token("dir", "Dir", _direction),
    Token("smk", "SMask", _number("src_mask", 5)),
    Token("dmk", "DMask", _number("dst_mask", 5)),
    Token("svln", "SVlan", _number("src_vlan", 5)),
    Token("dvln", "DVlan", _number("dst_vlan", 5)),
    Token("bps", "     bps", _scaled(lambda r: bits_per_second(r.uint("bytes"), r.duration_ms))),
    Token("pps", "     pps", _scaled(lambda r: per_second(r.uint("packets"), r.duration_ms))),
    Token("bpp", "   Bpp",
          lambda r: _right(_uint_text(bytes_per_packet(r.uint("bytes"), r.uint("packets"))), 6)),
    Token("eng", " engine", _engine),
    Token("odid", "obsDomainID", _domain),
)  # fmt: skip
#: every supported token by name (without the ``%``)
TOKENS: Final = {token.name: token for token in _TOKEN_LIST}
_TIMES: Final = ("time_start", "time_end")
_DST_PORT: Final = ("dst_port", "proto", "icmp_type_code")  # ICMP type.code for ICMP
#: the flow columns each token reads (a test renders every token from these alone), so
#: a record dump reads only the columns its layout prints
TOKEN_READS: Final[dict[str, tuple[str, ...]]] = {
    "ts": ("time_start",), "tfs": ("time_start",), "te": ("time_end",),
    "tr": ("time_received",), "td": _TIMES, "tds": _TIMES, "pr": ("proto",),
    "sa": ("src_addr", "src_addr6"), "da": ("dst_addr", "dst_addr6"),
    "nh": ("next_hop", "next_hop6"), "nhb": ("bgp_next_hop", "bgp_next_hop6"),
    "ra": ("exporter", "exporter6"), "sap": ("src_addr", "src_addr6", "src_port"),
    "dap": ("dst_addr", "dst_addr6", *_DST_PORT), "sp": ("src_port",), "dp": _DST_PORT,
    "it": _DST_PORT, "ic": _DST_PORT, "sas": ("src_as",), "das": ("dst_as",),
    "in": ("in_if",), "out": ("out_if",), "pkt": ("packets",), "ipkt": ("packets",),
    "opkt": ("out_packets",), "byt": ("bytes",), "ibyt": ("bytes",), "obyt": ("out_bytes",),
    "fl": ("flows",), "flg": ("tcp_flags", "proto"), "tos": ("tos",), "stos": ("tos",),
    "dtos": ("dst_tos",), "dir": ("flow_direction",), "smk": ("src_mask",),
    "dmk": ("dst_mask",), "svln": ("src_vlan",), "dvln": ("dst_vlan",),
    "bps": ("bytes", *_TIMES), "pps": ("packets", *_TIMES), "bpp": ("bytes", "packets"),
    "eng": ("engine_type", "engine_id"), "odid": ("observation_domain",),
}  # fmt: skip


# -- layouts -----------------------------------------------------------------------------

Piece = Token | str


def parse_fmt(template: str) -> tuple[Piece, ...]:
    """An nfdump format (``%ts %sa -> %da``) -> tokens and literal strings.

    As in nfdump, a token's name runs to the first character that is not a letter or
    digit, and ``%line``, ``%long``, ``%extended`` stand for those whole layouts.
    Raises ValueError naming the token and its column (1 = the first character after
    ``fmt:``).
    """
    if not template:
        raise ValueError("empty fmt: format")
    pieces: list[Piece] = []
    position = 0
    while position < len(template):
        if template[position] != "%":
            end = template.find("%", position)
            end = len(template) if end < 0 else end
            pieces.append(template[position:end])
            position = end
            continue
        end = position + 1
        while end < len(template) and template[end].isalnum():
            end += 1
        name = template[position + 1 : end]
        if name in NAMED_LAYOUTS:
            pieces.extend(parse_fmt(NAMED_LAYOUTS[name]))
        elif name in TOKENS:
            pieces.append(TOKENS[name])
        else:
            known = " ".join(f"%{t}" for t in (*TOKENS, *NAMED_LAYOUTS))
            raise ValueError(
                f"unknown fmt token '%{name}' at column {position + 1}; known: {known}"
            )
        position = end
    return tuple(pieces)


@dataclass(frozen=True, slots=True)
class TextLayout:
    """A parsed layout: its header line and its lines for a batch."""

    pieces: tuple[Piece, ...]

    @classmethod
    def parse(cls, template: str) -> TextLayout:
        return cls(parse_fmt(template))

    @property
    def reads(self) -> list[str]:
        """The flow columns its tokens read, in first-use order."""
        names = [n for piece in self.pieces if isinstance(piece, Token)
                 for n in TOKEN_READS[piece.name]]  # fmt: skip
        return list(dict.fromkeys(names))

    def header(self) -> str:
        return "".join(
            piece.header if isinstance(piece, Token) else " " * len(piece) for piece in self.pieces
        )

    def parts(self, batch: pa.RecordBatch, *, utc: bool, plain: bool) -> list[Part]:
        """The row pieces: one string array per token, a scalar per literal."""
        rows = _Rows(batch, utc=utc, plain=plain)
        return [
            piece.render(rows) if isinstance(piece, Token) else pa.scalar(piece)
            for piece in self.pieces
        ]

    def render(self, batch: pa.RecordBatch, *, utc: bool, plain: bool) -> pa.Array:
        """One string per row (no newline)."""
        return join_parts(self.parts(batch, utc=utc, plain=plain), batch.num_rows)

    def render_block(self, batch: pa.RecordBatch, *, utc: bool, plain: bool) -> str:
        """The batch's lines as one string, each ending in a newline."""
        return text_block(self.parts(batch, utc=utc, plain=plain), batch.num_rows)


Part = pa.Array | pa.Scalar


def join_parts(parts: Sequence[Part], rows: int) -> pa.Array:
    """Element-wise concatenation of string arrays and scalars: one string per row."""
    if not any(isinstance(part, pa.Array) for part in parts):
        text = "".join(str(part.as_py()) for part in parts)
        return pa.array([text] * rows, type=pa.string())
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "")


def text_block(parts: Sequence[Part], rows: int, terminator: str = "\n") -> str:
    """``join_parts`` with ``terminator`` after each row, as one string, taken straight
    from the Arrow data buffer (no per-row Python objects)."""
    if rows == 0:
        return ""
    return buffer_text(join_parts([*parts, pa.scalar(terminator)], rows))


def buffer_text(lines: pa.Array) -> str:
    """The concatenation of a string array's values (nulls count as empty)."""
    if lines.null_count:
        lines = pc.fill_null(lines, "")
    if not pa.types.is_string(lines.type):
        return "".join(lines.to_pylist())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    data = lines.buffers()[2]
    return "" if data is None else str(memoryview(data)[start:end], "utf-8")
