"""Fixtures of the collector's end-to-end tests (the harness is ``harness.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.collector.harness import DaemonFactory, UdpExporter


@pytest.fixture
def flowcapd() -> Iterator[DaemonFactory]:
    factory = DaemonFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def exporters() -> Iterator[Callable[..., UdpExporter]]:
    """``exporters(host="127.0.0.1")`` -> a new bound exporter socket, closed afterwards."""
    made: list[UdpExporter] = []

    def make(host: str = "127.0.0.1", port: int = 0) -> UdpExporter:
        exporter = UdpExporter(host, port)
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.close()
