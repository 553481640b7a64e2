"""The collector's process fixtures (a ``flowcapd`` subprocess, exporter sockets), for
running the daemon under the unit's hardening."""

from tests.collector.conftest import exporters, flowcapd

__all__ = ["exporters", "flowcapd"]
