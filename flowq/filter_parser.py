"""nfdump's filter grammar -> the AST of ``flowq.filter_ast``.

``not`` binds tighter than ``and``, which binds tighter than ``or``; keywords are
case-insensitive; an empty filter (or one holding only comments) is ``any``. This module
knows which words make which primitive and which qualifiers (src, dst, in, out, ...)
each accepts; ``docs/filters.md`` is the user's reference. Every error names the token
that caused it (``FilterError.position``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Final, TypeVar

from flowq.filter_ast import (
    QUANTITIES,
    AddressMatch,
    And,
    AnyFlow,
    Compare,
    InSet,
    Node,
    Not,
    Op,
    Or,
)
from flowq.filter_lexer import (
    AddressPattern,
    FilterError,
    Token,
    TokenKind,
    parse_host,
    parse_host_or_network,
    parse_netmask,
    parse_network,
    parse_number,
    tokenize,
)
from flowq.filter_primitives import DIRECTIONS, KEYWORDS, QUALIFIED, SIMPLE, UNSUPPORTED

MAX_DEPTH: Final = 100
_T = TypeVar("_T")
_COMPARATORS: Final = {
    "=": Op.EQ, "==": Op.EQ, "eq": Op.EQ, "<": Op.LT, "lt": Op.LT, ">": Op.GT, "gt": Op.GT,
    "<=": Op.LE, "le": Op.LE, ">=": Op.GE, "ge": Op.GE,
}  # fmt: skip


def parse_filter(text: str) -> Node:
    """The AST of an nfdump filter; raises ``FilterError`` with the offending position."""
    return Parser(text).parse()


def article(noun: str) -> str:
    return f"an {noun}" if noun[0].lower() in "aeio" else f"a {noun}"


class Parser:
    """Recursive descent over the tokens; the primitives (``filter_primitives``) call
    back into ``numeric``, ``addresses``, ... for their values."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    # --- token helpers -----------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def is_word(self, *words: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind is TokenKind.WORD and token.lower in words

    def is_op(self, kind: TokenKind, word: str, ahead: int = 0) -> bool:
        return self.peek(ahead).kind is kind or self.is_word(word, ahead=ahead)

    @staticmethod
    def expected(what: str, token: Token) -> FilterError:
        if token.kind is TokenKind.END:
            return FilterError(token.position, f"unexpected end of filter: expected {what}")
        return FilterError(token.position, f"expected {what}, found '{token.text}'")

    def expect_word(self, what: str, *words: str) -> Token:
        if not self.is_word(*words):
            raise self.expected(what, self.peek())
        return self.take()

    def value_token(self, what: str) -> Token:
        token = self.peek()
        if token.kind is not TokenKind.WORD:
            raise self.expected(what, token)
        return self.take()

    # --- expressions ---------------------------------------------------------------
    def parse(self) -> Node:
        if self.peek().kind is TokenKind.END:
            return AnyFlow()
        node = self.parse_or()
        token = self.peek()
        if token.kind is TokenKind.RPAREN:
            raise FilterError(token.position, "unbalanced ')'")
        if token.kind is not TokenKind.END:
            raise self.expected("'and', 'or' or the end of the filter", token)
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_op(TokenKind.OR, "or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while self.is_op(TokenKind.AND, "and"):
            self.take()
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self) -> Node:
        token = self.peek()
        is_not = self.is_op(TokenKind.NOT, "not")
        if not is_not and token.kind is not TokenKind.LPAREN:
            return self.parse_primitive()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(token.position, f"filter nested deeper than {MAX_DEPTH} levels")
        self.take()
        if is_not:
            node: Node = Not(self.parse_unary())
        else:
            node = self.parse_or()
            close = self.peek()
            if close.kind is TokenKind.END:
                raise FilterError(token.position, "unbalanced '(': no ')' closes it")
            if close.kind is not TokenKind.RPAREN:
                raise self.expected("'and', 'or' or ')'", close)
            self.take()
        self.depth -= 1
        return node

    # --- primitives ------------------------------------------------------------------
    def parse_primitive(self) -> Node:
        token = self.peek()
        if token.kind is TokenKind.NOT_EQUAL:
            raise FilterError(token.position, "'!=' is not in nfdump's language: use 'not'")
        if token.kind is not TokenKind.WORD:
            raise self.expected("a filter term", token)
        word = token.lower
        if word == "next" and not self.is_word("ip", "host", ahead=1):
            return self.parse_qualified()  # 'next as'
        simple = SIMPLE.get(word)
        if simple is not None:
            self.take()
            return simple(self, token)
        if word in DIRECTIONS or word in QUALIFIED:
            return self.parse_qualified()
        if word in ("and", "or"):
            raise self.expected("a filter term", token)
        if word in UNSUPPORTED:
            raise FilterError(token.position, f"nfdump's '{token.text}' filter is not supported")
        if parse_number(token.text) is not None or any(c in token.text for c in ".:/"):
            raise self.expected("a filter term", token)
        close = difflib.get_close_matches(word, KEYWORDS, n=1, cutoff=0.75)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FilterError(token.position, f"unknown keyword '{token.text}'{hint}")

    def parse_direction(self) -> tuple[str, Token | None]:
        """nfdump's qualifiers: src, dst, src or dst, src and dst, in, out, in src, ...,
        prev, next -> (direction, its first token)."""
        first = self.peek()
        if self.is_word("src", "dst"):
            self.take()
            other = "dst" if first.lower == "src" else "src"
            for kind, word in ((TokenKind.OR, "or"), (TokenKind.AND, "and")):
                if self.is_op(kind, word) and self.is_word(other, ahead=1):
                    self.take(), self.take()
                    return f"src {word} dst", first
            return first.lower, first
        if self.is_word("in", "out"):
            self.take()
            if self.is_word("src", "dst"):
                return f"{first.lower} {self.take().lower}", first
            return first.lower, first
        if self.is_word("prev", "previous", "next"):
            self.take()
            return ("prev" if first.lower != "next" else "next"), first
        return "", None

    def parse_qualified(self) -> Node:
        direction, first = self.parse_direction()
        token = self.peek()
        handler = QUALIFIED.get(token.lower) if token.kind is TokenKind.WORD else None
        if handler is None:
            after = f" after '{first.text}'" if first is not None else ""
            raise self.expected(f"a field such as ip, net or port{after}", token)
        self.take()
        node = handler(self, direction)
        if node is None:
            where = first.position if first is not None else token.position
            raise FilterError(where, f"'{direction}' cannot qualify '{token.lower}'")
        return node

    # --- values ------------------------------------------------------------------------
    def comparator(self) -> Op:
        token = self.peek()
        if token.kind is TokenKind.NOT_EQUAL:
            raise FilterError(token.position, "'!=' is not in nfdump's language: use 'not'")
        if token.kind is TokenKind.COMPARATOR or self.is_word("eq", "lt", "gt", "le", "ge"):
            self.take()
            return _COMPARATORS[token.lower]
        return Op.EQ

    def number(self, quantity: str, token: Token | None = None) -> int:
        """A number within the quantity's range, from the next token (or ``token``)."""
        spec = QUANTITIES[quantity]
        if token is None:
            token = self.value_token(article(spec.noun))
        value = parse_number(token.text)
        if value is None:
            raise self.expected(article(spec.noun), token)
        if value > spec.maximum:
            raise FilterError(
                token.position, f"{spec.noun} {token.text} is out of range 0..{spec.maximum}"
            )
        return value

    def bracket_list(self, item: Callable[[Token], _T], what: str) -> list[_T]:
        """``[ a, b c ]``: items separated by commas or blanks, at least one."""
        opening = self.peek()
        if opening.kind is not TokenKind.LBRACKET:
            raise self.expected("'[' after 'in'", opening)
        self.take()
        items: list[_T] = []
        after_comma = False
        while True:
            token = self.peek()
            if token.kind is TokenKind.END:
                raise FilterError(opening.position, "unbalanced '[': no ']' closes the list")
            if token.kind in (TokenKind.RBRACKET, TokenKind.COMMA) and items and not after_comma:
                self.take()
                if token.kind is TokenKind.RBRACKET:
                    return items
                after_comma = True
                continue
            if token.kind is not TokenKind.WORD:
                raise self.expected(what, token)
            items.append(item(self.take()))
            after_comma = False

    def numeric(self, *quantities: str, both: bool = False, lists: bool = True) -> Node:
        """``[CMP] N`` or ``in [ N ... ]`` over one quantity, or either/both of two."""
        first = quantities[0]
        if lists and self.is_word("in"):
            self.take()
            noun = article(QUANTITIES[first].noun)
            values = frozenset(self.bracket_list(lambda t: self.number(first, t), noun))
            nodes: tuple[Node, ...] = tuple(InSet(q, values) for q in quantities)
        else:
            op = self.comparator()
            value = self.number(first)
            nodes = tuple(Compare(q, op, value) for q in quantities)
        if len(nodes) == 1:
            return nodes[0]
        return And(nodes) if both else Or(nodes)

    def addresses(self, *fields: str, both: bool = False, network: bool = False) -> Node:
        """An address, ``in [ list ]`` or (``network``) a network, for each field."""
        if network:
            patterns: tuple[AddressPattern, ...] = (self.network(),)
        elif self.is_word("in"):
            self.take()
            patterns = tuple(self.bracket_list(parse_host_or_network, "an address or network"))
        else:
            patterns = (parse_host(self.value_token("an address")),)
        nodes = tuple(AddressMatch(f, patterns) for f in fields)
        if len(nodes) == 1:
            return nodes[0]
        return And(nodes) if both else Or(nodes)

    def network(self) -> AddressPattern:
        token = self.value_token("a network (ADDRESS/LENGTH or ADDRESS NETMASK)")
        if "/" in token.text:
            return parse_network(token)
        address = parse_host(token)
        mask = self.value_token(f"'/LENGTH' or a netmask after '{token.text}'")
        return parse_netmask(address, token, mask)
