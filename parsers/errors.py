"""Every way an export datagram can be refused, as one exception family.

Parsers raise only ``ParseError`` subclasses. The ``reason`` is a closed vocabulary
(``DropReason``) that the collector also uses as the ``reason`` label of
``flowcap_packets_dropped_total``, so a new reason is a new, bounded label value.
Any other exception escaping ``parsers/`` is a bug (the fuzz tests fail on it).
"""

from __future__ import annotations

from enum import StrEnum


class DropReason(StrEnum):
    """Why a datagram was dropped; the values are metric label values."""

    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    UNKNOWN_VERSION = "unknown_version"
    BAD_TEMPLATE = "bad_template"
    TEMPLATE_LIMIT = "template_limit"


class ParseError(Exception):
    """A datagram that cannot be decoded; nothing of it was applied.

    ``offset`` is the byte offset in the datagram where the problem was found, when
    known, so a message can point at it.
    """

    reason: DropReason = DropReason.MALFORMED

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset

    def __str__(self) -> str:
        text = super().__str__()
        return text if self.offset is None else f"{text} (at byte {self.offset})"


class TruncatedDatagram(ParseError):
    """A length field points past the end of the datagram."""

    reason = DropReason.TRUNCATED


class UnsupportedVersion(ParseError):
    """The version field is not 5, 9 or 10."""

    reason = DropReason.UNKNOWN_VERSION


class MalformedSet(ParseError):
    """A set / flowset header or body breaks the RFC's length rules."""

    reason = DropReason.MALFORMED


class MalformedTemplate(ParseError):
    """A template or options-template record cannot be a valid template."""

    reason = DropReason.BAD_TEMPLATE


class TemplateLimitExceeded(ParseError):
    """An exporter defined more templates than ``TemplateLimits`` allows."""

    reason = DropReason.TEMPLATE_LIMIT
