"""The filter language's tokens and literals: what a word, a number, an address, a
protocol, a MAC or a TCP flag string looks like, and the one error type.

Tokens carry their offset in the filter text, so every error can point at the word
that caused it. Words follow nfdump's scanner: letters, digits and ``_ : . - /``
(``+`` too, for ISO time offsets); ``( ) [ ] ,``, the comparators and ``&& || !`` stand
alone; ``#`` starts a comment that runs to the end of the line. Keywords are plain words
here: the parser decides what a word means where it stands (case-insensitively).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Final

from flowq.flags import FLAG_BITS
from flowq.timewindow import WindowError, parse_time

MAX_UINT64: Final = 2**64 - 1


class FilterError(Exception):
    """A filter that is not in the language; ``position`` is the 0-based offset of the
    offending token in the filter text (the end of the text for a premature end)."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message

    def __str__(self) -> str:
        return f"column {self.position + 1}: {self.message}"

    def render(self, text: str) -> str:
        """The message the CLI prints: where, what, and the filter with a caret.

        A one-line filter says ``column N``; a multi-line one (``-f FILE``) says
        ``line L, column N`` and echoes only that line. Tabs echo as spaces so the caret
        stays under the token.
        """
        start = text.rfind("\n", 0, self.position) + 1
        end = text.find("\n", start)
        line = text[start : end if end >= 0 else len(text)].replace("\t", " ")
        column = self.position - start
        where = f"column {column + 1}"
        if "\n" in text.rstrip("\n"):
            where = f"line {text.count(chr(10), 0, start) + 1}, {where}"
        return f"flowq: filter error at {where}: {self.message}\n  {line}\n  {' ' * column}^"


class TokenKind(StrEnum):
    WORD = "word"
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    COMMA = ","
    COMPARATOR = "comparator"  # = == < > <= >=
    NOT_EQUAL = "!="  # not in nfdump's language: the parser explains
    AND = "&&"
    OR = "||"
    NOT = "!"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    position: int

    @property
    def lower(self) -> str:
        return self.text.lower()


_WORD: Final = re.compile(r"[A-Za-z0-9_:./+\-]+")
_SYMBOLS: Final = (
    ("&&", TokenKind.AND),
    ("||", TokenKind.OR),
    ("!=", TokenKind.NOT_EQUAL),
    ("==", TokenKind.COMPARATOR),
    ("<=", TokenKind.COMPARATOR),
    (">=", TokenKind.COMPARATOR),
    ("=", TokenKind.COMPARATOR),
    ("<", TokenKind.COMPARATOR),
    (">", TokenKind.COMPARATOR),
    ("!", TokenKind.NOT),
    ("(", TokenKind.LPAREN),
    (")", TokenKind.RPAREN),
    ("[", TokenKind.LBRACKET),
    ("]", TokenKind.RBRACKET),
    (",", TokenKind.COMMA),
)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with one END token placed where a missing word
    would go (just after the last token)."""
    tokens: list[Token] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char in " \t\r\n\f\v":
            i += 1
            continue
        if char == "#":
            newline = text.find("\n", i)
            i = size if newline < 0 else newline
            continue
        word = _WORD.match(text, i)
        if word:
            tokens.append(Token(TokenKind.WORD, word.group(), i))
            i = word.end()
            continue
        for symbol, kind in _SYMBOLS:
            if text.startswith(symbol, i):
                tokens.append(Token(kind, symbol, i))
                i += len(symbol)
                break
        else:
            hint = {"&": " (use 'and' or '&&')", "|": " (use 'or' or '||')"}.get(char, "")
            raise FilterError(i, f"unexpected character '{char}'{hint}")
    end = 0
    if tokens:
        last = tokens[-1]
        end = last.position + len(last.text)
        if end < size and text[end] in " \t":
            end += 1
    tokens.append(Token(TokenKind.END, "", end))
    return tokens


# --- numbers -------------------------------------------------------------------------
_NUMBER: Final = re.compile(r"(?:0x([0-9a-f]+)|([0-9]+)([kmgt]?))", re.IGNORECASE)
_SCALE: Final = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_number(text: str) -> int | None:
    """nfdump's NUMBER: decimal with an optional k/M/G/T suffix (powers of 1000, any
    case) or 0x hex; None when ``text`` is not one."""
    match = _NUMBER.fullmatch(text)
    if not match:
        return None
    if match.group(1) is not None:
        return int(match.group(1), 16)
    return int(match.group(2)) * _SCALE[match.group(3).lower()]


# --- addresses -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddressPattern:
    """Matches an address ``a`` of its IP version when ``a & mask == value``: a host
    (all-ones mask), a CIDR network or an nfdump dotted netmask (contiguous or not)."""

    version: int
    value: int
    mask: int

    @property
    def width(self) -> int:
        return 32 if self.version == 4 else 128

    def prefix_length(self) -> int | None:
        """The CIDR length of the mask, None for a non-contiguous dotted mask."""
        ones = bin(self.mask).count("1")
        full = (1 << self.width) - 1
        return ones if self.mask == (full >> (self.width - ones)) << (self.width - ones) else None

    def bounds(self) -> tuple[int, int]:
        """First and last address of a contiguous pattern."""
        return self.value, self.value | (~self.mask & ((1 << self.width) - 1))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _invalid_address(token: Token) -> FilterError:
    text = token.text
    looks_like_name = any(c.isalpha() for c in text) and ":" not in text and "." in text
    hint = " (flowq does not resolve host names)" if looks_like_name else ""
    return FilterError(token.position, f"invalid address '{text}'{hint}")


def parse_host(token: Token) -> AddressPattern:
    """One IPv4 or IPv6 address, as a pattern matching exactly it."""
    if "/" in token.text:
        raise FilterError(
            token.position,
            f"'{token.text}' is a network, not an address: use 'net {token.text}' "
            f"or 'ip in [ {token.text} ]'",
        )
    address = _ip(token.text)
    if address is None:
        raise _invalid_address(token)
    width = address.max_prefixlen
    return AddressPattern(address.version, int(address), (1 << width) - 1)


def parse_network(token: Token) -> AddressPattern:
    """``ADDRESS/LENGTH`` (host bits are ignored, as nfdump does)."""
    address_text, _, length_text = token.text.partition("/")
    address = _ip(address_text)
    if address is None:
        raise _invalid_address(Token(token.kind, address_text, token.position))
    width = address.max_prefixlen
    if not length_text.isdigit() or int(length_text) > width:
        raise FilterError(
            token.position + len(address_text) + 1,
            f"invalid prefix length '{length_text}' (0..{width} for IPv{address.version})",
        )
    length = int(length_text)
    mask = ((1 << width) - 1) ^ ((1 << (width - length)) - 1)
    return AddressPattern(address.version, int(address) & mask, mask)


def parse_host_or_network(token: Token) -> AddressPattern:
    return parse_network(token) if "/" in token.text else parse_host(token)


def parse_netmask(address: AddressPattern, address_token: Token, mask: Token) -> AddressPattern:
    """nfdump's ``net A M``: an IPv4 address and a dotted netmask."""
    if address.version != 4:
        raise FilterError(
            mask.position,
            f"a netmask is valid only for IPv4: write '{address_token.text}/LENGTH'",
        )
    value = _ip(mask.text)
    if value is None or value.version != 4:
        raise FilterError(mask.position, f"invalid netmask '{mask.text}'")
    return AddressPattern(4, address.value & int(value), int(value))


_MAC: Final = re.compile(r"[0-9a-f]{1,2}(?::[0-9a-f]{1,2}){5}", re.IGNORECASE)


def parse_mac(token: Token) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` (one or two hex digits per octet) -> 6 bytes."""
    if not _MAC.fullmatch(token.text):
        raise FilterError(token.position, f"invalid MAC address '{token.text}'")
    return bytes(int(part, 16) for part in token.text.split(":"))


# --- protocols -----------------------------------------------------------------------
# nfdump 1.7's protocol names (output_util.c protoList), numbers 0..137; names it lists
# twice (IDPR) resolve to the first. /etc/protocols adds its names and aliases.
_NFDUMP_PROTOCOLS: Final = (  # noqa: SIM905
    "0 ICMP IGMP GGP IPIP ST TCP CBT EGP IGP BBN NVPII PUP ARGUS ENCOM XNET CHAOS UDP MUX "
    "DCN HMP PRM XNS Trnk1 Trnk2 Leaf1 Leaf2 RDP IRTP ISO-4 NETBK MFESP MEINP DCCP 3PC "
    "IDPR XTP DDP IDPR TP++ IL IPv6 SDRP Rte6 Frag6 IDRP RSVP GRE MHRP BNA ESP AH INLSP "
    "SWIPE NARP MOBIL TLSP SKIP ICMP6 NOHE6 OPTS6 HOST CFTP NET SATNT KLAN RVD IPPC FS "
    "SATM VISA IPCV CPNX CPHB WSN PVP BSATM SUNND WBMON WBEXP ISOIP VMTP SVMTP VINES TTP "
    "NSIGP DGP TCF EIGRP OSPF S-RPC LARP MTP AX.25 IPIP MICP SCCSP ETHIP ENCAP 99 GMTP "
    "IFMP PNNI PIM ARIS SCPS QNX A/N IPcmp SNP CpqPP IPXIP VRRP PGM 0hop L2TP DDX IATP STP "
    "SRP UTI SMP SM PTP ISIS4 FIRE CRTP CRUDP 128 IPLT SPS PIPE SCTP FC 134 MHEAD UDP-L "
    "MPLS"
).split()
_ETC_PROTOCOLS: Final = Path("/etc/protocols")
_COMMON_PROTOCOLS: Final = ("tcp", "udp", "icmp", "icmp6", "gre", "esp", "ah", "sctp", "ospf")


@cache
def protocol_numbers() -> dict[str, int]:
    """Protocol name (lower case) -> number: nfdump's table first, then /etc/protocols."""
    names: dict[str, int] = {}
    for number, name in enumerate(_NFDUMP_PROTOCOLS):
        if not name.isdigit():
            names.setdefault(name.lower(), number)
    try:
        lines = _ETC_PROTOCOLS.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[1].isdigit() and int(fields[1]) <= 255:
            for name in (fields[0], *fields[2:]):
                names.setdefault(name.lower(), int(fields[1]))
    return names


def parse_protocol(token: Token) -> int:
    """A protocol number 0..255 or name (``tcp``, ``ICMP6``, ``ipv6-icmp``, ...)."""
    number = parse_number(token.text)
    if number is not None:
        if number > 255:
            raise FilterError(token.position, f"protocol {token.text} is out of range 0..255")
        return number
    names = protocol_numbers()
    if token.lower in names:
        return names[token.lower]
    close = difflib.get_close_matches(token.lower, _COMMON_PROTOCOLS, n=1) or (
        difflib.get_close_matches(token.lower, list(names), n=1, cutoff=0.75)
    )
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise FilterError(token.position, f"unknown protocol '{token.text}'{hint}")


# --- TCP flags -----------------------------------------------------------------------
#: nfdump's 'X': all six classic flags (FSRPAU)
TCP_FLAGS_X: Final = 63


def parse_tcp_flags(token: Token) -> int:
    """nfdump's flag letters (any order, any case) -> the bits that must all be set."""
    bits = 0
    for letter in token.text.upper():
        if letter == "X":
            bits |= TCP_FLAGS_X
        elif letter in FLAG_BITS:
            bits |= FLAG_BITS[letter]
        else:
            raise FilterError(
                token.position,
                f"invalid TCP flags '{token.text}': use the letters F S R P A U E C, "
                "or X for FSRPAU",
            )
    return bits


# --- times -------------------------------------------------------------------------
_RELATIVE_TIME: Final = re.compile(r"(now)?(?:([+-])(\d+)([smhdw]))?", re.IGNORECASE)
_UNIT_MS: Final = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_OFFSET_MS: Final = 1000 * 365 * 86_400_000  # a thousand years


def parse_time_literal(token: Token) -> tuple[int | None, int]:
    """(UTC epoch ms, 0) for a time in ``-t``'s forms (nfdump's YYYY/MM/DD.hh:mm:ss or
    ISO-8601; local time unless a zone is given), (None, offset ms) for ``now``,
    ``now-1h`` or ``-15m`` (units s m h d w), resolved when the filter is compiled."""
    relative = _RELATIVE_TIME.fullmatch(token.text)
    if relative and (relative.group(1) or relative.group(2)):
        sign = -1 if relative.group(2) == "-" else 1
        amount = int(relative.group(3) or 0) * _UNIT_MS[(relative.group(4) or "s").lower()]
        if amount > _MAX_OFFSET_MS:
            raise FilterError(token.position, f"time offset '{token.text}' is too large")
        return None, sign * amount
    try:
        moment = parse_time(token.text)
    except WindowError as error:
        raise FilterError(token.position, str(error)) from None
    return (moment - _EPOCH) // timedelta(milliseconds=1), 0
