"""flowcapd's log lines: timestamps on a terminal, ``<N>`` priorities and no timestamps
under systemd, one line per event (tracebacks folded), and repeated per-exporter,
per-reason warnings rate-limited."""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

import pytest

from collector.logformat import setup_logging, stream_is_journal
from collector.ratelimit import MAX_KEYS, RateLimitedLog
from tests.collector.harness import wait_for

WAIT_S = 30.0


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_through(environ: dict[str, str], stream) -> str:
    setup_logging("info", environ=environ, stream=stream)
    log = logging.getLogger("flowcapd")
    log.warning("exporter %s: datagram dropped", "10.0.0.1:2055")
    log.debug("not shown at info")
    log.error("disk full")
    stream.flush()
    return stream.getvalue() if isinstance(stream, io.StringIO) else ""


@pytest.mark.usefixtures("restore_logging")
def test_terminal_lines_carry_time_and_pid() -> None:
    text = _log_through({}, io.StringIO())
    pattern = rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} flowcapd\[{os.getpid()}\] "
    lines = text.splitlines()
    assert len(lines) == 2
    assert re.match(pattern + r"WARNING exporter 10\.0\.0\.1:2055: datagram dropped$", lines[0])
    assert re.match(pattern + r"ERROR disk full$", lines[1])


@pytest.mark.usefixtures("restore_logging")
def test_under_systemd_priority_prefix_and_no_timestamp() -> None:
    text = _log_through({"INVOCATION_ID": "0123456789abcdef"}, io.StringIO())
    assert text == "<4>WARNING exporter 10.0.0.1:2055: datagram dropped\n<3>ERROR disk full\n"


@pytest.mark.usefixtures("restore_logging")
def test_journal_stream_counts_only_if_it_is_our_stderr(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as journal, (tmp_path / "other").open("w+") as other:
        status = os.fstat(journal.fileno())
        environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        assert stream_is_journal(environ, journal)
        assert not stream_is_journal(environ, other)  # inherited, not ours
        assert not stream_is_journal({"JOURNAL_STREAM": "junk"}, journal)
        setup_logging("info", environ=environ, stream=journal)
        logging.getLogger("flowcapd").info("listening on 127.0.0.1:23456")
        setup_logging("info", environ=environ, stream=other)
        logging.getLogger("flowcapd").info("listening on 127.0.0.1:23456")
        journal.seek(0)
        other.seek(0)
        assert journal.read() == "<6>INFO listening on 127.0.0.1:23456\n"
        assert re.match(r"^\d{4}-.* INFO listening on", other.read())


@pytest.mark.usefixtures("restore_logging")
def test_a_traceback_stays_on_one_line() -> None:
    stream = io.StringIO()
    setup_logging("info", environ={"INVOCATION_ID": "x"}, stream=stream)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("flowcapd").exception("decoder bug")
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.startswith("<3>ERROR decoder bug | Traceback")
    assert "ValueError: bad | value" in text


# -- rate limiting -------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_rate_limit_one_line_per_key_and_interval(caplog) -> None:
    clock = _Clock()
    limited = RateLimitedLog(logging.getLogger("flowcapd.test"), interval_s=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="flowcapd.test"):
        for _ in range(50):
            limited.warning(("10.0.0.1", "truncated"), "exporter %s: dropped", "10.0.0.1")
        limited.warning(("10.0.0.2", "truncated"), "exporter %s: dropped", "10.0.0.2")
        limited.warning(("10.0.0.1", "malformed"), "exporter %s: bad set", "10.0.0.1")
        clock.now_s += 9.9
        limited.warning(("10.0.0.1", "truncated"), "exporter %s: dropped", "10.0.0.1")
        clock.now_s += 0.2
        limited.warning(("10.0.0.1", "truncated"), "exporter %s: dropped", "10.0.0.1")
    assert [r.getMessage() for r in caplog.records] == [
        "exporter 10.0.0.1: dropped",
        "exporter 10.0.0.2: dropped",  # another exporter is not hidden
        "exporter 10.0.0.1: bad set",  # nor another reason
        "exporter 10.0.0.1: dropped (50 similar suppressed)",
    ]


def test_rate_limit_table_is_bounded(caplog) -> None:
    limited = RateLimitedLog(logging.getLogger("flowcapd.test"), clock=_Clock())
    with caplog.at_level(logging.WARNING, logger="flowcapd.test"):
        for index in range(MAX_KEYS + 10):
            limited.warning((index, "x"), "key %d", index)
    assert len(caplog.records) == MAX_KEYS + 10  # every new key logs once
    assert len(limited._last) <= MAX_KEYS


# -- a real daemon -------------------------------------------------------------------------


def test_daemon_under_systemd_and_malformed_floods(
    tmp_path: Path, flowcapd, exporters, monkeypatch
) -> None:
    """With INVOCATION_ID set (systemd sets it for every unit): priority prefixes, no
    timestamps. Sixty malformed datagrams from each of two exporters: one line each."""
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    daemon = flowcapd.start(tmp_path / "flows", "-b", "127.0.0.1")
    truncated_v5 = b"\x00\x05\x00\x01" + bytes(10)  # a v5 header cut short
    first, second = exporters("127.0.0.1"), exporters("127.0.0.2")
    first.send([truncated_v5] * 60, daemon.target)
    second.send([truncated_v5] * 60, daemon.target)

    def dropped() -> float:
        samples = daemon.scrape()
        return sum(v for (name, _), v in samples.items() if name == "flowcap_packets_dropped_total")

    wait_for(lambda: dropped() == 120, WAIT_S, "120 datagrams dropped")
    assert daemon.stop() == 0, daemon.stderr
    lines = daemon.lines
    assert all(re.match(r"<[2-7]>(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) for line in lines)
    assert any(line.startswith("<6>INFO listening on 127.0.0.1:") for line in lines)
    drops = sorted(line for line in lines if "datagram dropped" in line)
    assert len(drops) == 2, drops  # one per exporter and reason, not sixty
    assert drops[0].startswith("<4>WARNING exporter 127.0.0.1:")
    assert drops[1].startswith("<4>WARNING exporter 127.0.0.2:")
