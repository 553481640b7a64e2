"""The one loader of the shared real-device corpus (``../shared/corpus``).

Tests get groups (files fed in order to one decoder), datagrams, and the facts of
``expected.json`` through here; when the corpus is absent they skip with a reason.
The corpus is third-party data under its own licenses: it is read in place, never
copied into this repository.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from parsers.capture import CapturedDatagram, read_capture

#: exporter identity given to raw payload files (what the corpus' tshark check used)
RAW_EXPORTER = ("192.0.2.1", 40000)
RECEIVED_AT_NS = 1_700_000_000_000_000_000


def corpus_dir() -> Path:
    """``../shared/corpus`` beside the repository (override: FLOWCAP_CORPUS)."""
    override = os.environ.get("FLOWCAP_CORPUS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def require_corpus() -> Path:
    """The corpus directory, or skip the calling test with the reason."""
    directory = corpus_dir()
    if not (directory / "expected.json").is_file():
        pytest.skip(f"shared corpus not found at {directory} (clone ../shared beside the repo)")
    return directory


@cache
def expected() -> dict:
    """``expected.json`` as parsed (cached)."""
    return json.loads((require_corpus() / "expected.json").read_text())


@dataclass(frozen=True)
class CorpusGroup:
    """Files to feed, in order, to one fresh decoder, with their expected facts."""

    id: str
    files: tuple[str, ...]
    facts: dict

    def datagrams(self) -> Iterator[CapturedDatagram]:
        """Every datagram of the group in feed order (raw files split into messages)."""
        directory = require_corpus()
        for name in self.files:
            yield from read_capture((directory / name).read_bytes(), raw_source=RAW_EXPORTER)


def group_ids() -> list[str]:
    """Group ids for parametrizing; empty (tests then skip) without the corpus."""
    path = corpus_dir() / "expected.json"
    if not path.is_file():
        return []
    return [g["id"] for g in json.loads(path.read_text())["groups"]]


def group(group_id: str) -> CorpusGroup:
    for facts in expected()["groups"]:
        if facts["id"] == group_id:
            return CorpusGroup(facts["id"], tuple(facts["feed_order"]), facts)
    raise KeyError(group_id)


def file_names() -> list[str]:
    """Every data file of the corpus (relative names, as in expected.json)."""
    path = corpus_dir() / "expected.json"
    if not path.is_file():
        return []
    return sorted(json.loads(path.read_text())["files"])


def file_datagrams(name: str) -> list[CapturedDatagram]:
    return list(read_capture((require_corpus() / name).read_bytes(), raw_source=RAW_EXPORTER))


def all_datagrams() -> Iterator[tuple[str, int, CapturedDatagram]]:
    """(file, index, datagram) for every datagram of every corpus file."""
    for name in file_names():
        for index, datagram in enumerate(file_datagrams(name)):
            yield name, index, datagram
