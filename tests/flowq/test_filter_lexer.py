"""Tokens and literals: positions, nfdump's number forms, protocols, flags, addresses."""

from __future__ import annotations

import pytest

from flowq.filter_lexer import (
    FilterError,
    Token,
    TokenKind,
    parse_host_or_network,
    parse_number,
    parse_protocol,
    parse_tcp_flags,
    protocol_numbers,
    tokenize,
)

W = TokenKind.WORD


def kinds_texts_positions(text: str) -> list[tuple[TokenKind, str, int]]:
    return [(t.kind, t.text, t.position) for t in tokenize(text)]


def test_tokens_carry_their_offsets() -> None:
    assert kinds_texts_positions("proto tcp&&(port>=80)") == [
        (W, "proto", 0),
        (W, "tcp", 6),
        (TokenKind.AND, "&&", 9),
        (TokenKind.LPAREN, "(", 11),
        (W, "port", 12),
        (TokenKind.COMPARATOR, ">=", 16),
        (W, "80", 18),
        (TokenKind.RPAREN, ")", 20),
        (TokenKind.END, "", 21),
    ]


def test_words_hold_addresses_networks_times_and_dashes() -> None:
    text = "ip in [10.0.0.0/8,2001:db8::/32] icmp-type first seen > 2026-11-22T10:00:00+01:00"
    words = [t.text for t in tokenize(text) if t.kind is W]
    assert words == [
        "ip", "in", "10.0.0.0/8", "2001:db8::/32", "icmp-type", "first", "seen",
        "2026-11-22T10:00:00+01:00",
    ]  # fmt: skip


def test_comments_and_symbols() -> None:
    tokens = tokenize("not!a # comment ) ( \n || b != c == d")
    assert [(t.kind, t.text) for t in tokens] == [
        (W, "not"),
        (TokenKind.NOT, "!"),
        (W, "a"),
        (TokenKind.OR, "||"),
        (W, "b"),
        (TokenKind.NOT_EQUAL, "!="),
        (W, "c"),
        (TokenKind.COMPARATOR, "=="),
        (W, "d"),
        (TokenKind.END, ""),
    ]


@pytest.mark.parametrize(
    ("text", "end"), [("", 0), ("port", 4), ("port ", 5), ("port   ", 5), ("port # x", 5)]
)
def test_end_token_sits_just_after_the_last_word(text: str, end: int) -> None:
    assert tokenize(text)[-1] == Token(TokenKind.END, "", end)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0), ("80", 80), ("080", 80), ("1k", 1000), ("1K", 1000), ("2m", 2_000_000),
        ("3G", 3_000_000_000), ("1t", 10**12), ("0x50", 80), ("0XfF", 255),
        ("18446744073709551615", 2**64 - 1),
        ("1.5k", None), ("1e3", None), ("-1", None), ("k", None), ("0x", None), ("1kb", None),
    ],
)  # fmt: skip
def test_numbers_as_nfdump_reads_them(text: str, value: int | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("tcp", 6), ("TCP", 6), ("udp", 17), ("icmp", 1), ("ICMP6", 58), ("ipv6-icmp", 58),
        ("gre", 47), ("esp", 50), ("ah", 51), ("sctp", 132), ("ospf", 89), ("ipip", 4),
        ("UDP-L", 136), ("58", 58), ("0x11", 17), ("0", 0),
    ],
)  # fmt: skip
def test_protocol_names_and_numbers(name: str, number: int) -> None:
    assert parse_protocol(Token(W, name, 0)) == number


def test_protocol_table_prefers_nfdump_names() -> None:
    names = protocol_numbers()
    assert names["idpr"] == 35  # listed twice by nfdump (35, 38): the first wins
    assert names["ipip"] == 4
    with pytest.raises(FilterError, match="unknown protocol 'tpc' \\(did you mean 'tcp'\\?\\)"):
        parse_protocol(Token(W, "tpc", 3))


@pytest.mark.parametrize(
    ("letters", "bits"),
    [("F", 1), ("S", 2), ("R", 4), ("P", 8), ("A", 16), ("U", 32), ("E", 64), ("C", 128),
     ("X", 63), ("SA", 18), ("as", 18), ("XEC", 255), ("SS", 2)],
)  # fmt: skip
def test_tcp_flag_letters(letters: str, bits: int) -> None:
    assert parse_tcp_flags(Token(W, letters, 0)) == bits


def test_address_patterns() -> None:
    host = parse_host_or_network(Token(W, "10.1.2.3", 0))
    assert (host.version, host.value, host.mask, host.prefix_length()) == (
        4, 0x0A010203, 0xFFFFFFFF, 32
    )  # fmt: skip
    net = parse_host_or_network(Token(W, "10.1.2.3/16", 0))
    assert net.bounds() == (0x0A010000, 0x0A01FFFF)
    v6 = parse_host_or_network(Token(W, "2001:db8::1/127", 0))
    assert v6.prefix_length() == 127 and v6.bounds()[1] - v6.bounds()[0] == 1
    everything = parse_host_or_network(Token(W, "::/0", 0))
    assert everything.bounds() == (0, 2**128 - 1) and everything.prefix_length() == 0


def test_render_points_at_the_column() -> None:
    error = FilterError(4, "something")
    assert error.render("abc defg") == (
        "flowq: filter error at column 5: something\n  abc defg\n      ^"
    )
    assert str(error) == "column 5: something"
    assert error.position == 4 and error.message == "something"
