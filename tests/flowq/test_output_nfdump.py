"""flowq's text formats and summary lines against nfdump 1.7.1's, on the same flows.

The first 13 rows of the dataset (``NFDUMP_COMPARABLE`` in ``conftest.py``) are encoded
as IPFIX (a template per set of fields a row has, times as ``flowStart/EndMilliseconds``)
and stored by a real nfcapd. ``nfdump -r FILE -o FORMAT`` must then print exactly what
flowq prints for the same rows: header, records and summary lines (nfdump's last line,
``Sys: ... Runtime: ...``, is timing and is left out).

The nfdump outputs are also kept in ``tests/golden/nfdump_*.txt`` so the comparison runs
where nfdump is not installed. Provenance: captured by this module from nfdump and nfcapd
1.7.1 (Debian 12 package ``nfdump 1.7.1-2+deb12u1``, ``nfdump -V``: NSEL-NEL1.7.1), with
``TZ=UTC`` except ``nfdump_line_new_york.txt`` (``TZ=America/New_York``), by
``pytest tests/flowq --update-golden``. Where nfdump is installed the live output is also
checked against the kept copy, so a kept file cannot drift from what nfdump prints.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowq.output import RecordWriter, Summary, parse_output_format, write_summary
from flowq.output_text import TOKENS

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
HAVE_NFDUMP = bool(shutil.which("nfcapd") and shutil.which("nfdump"))
#: every token but %tr: nfcapd stamps its own receive time
COMPARED_FMT = "fmt:" + " ".join(f"%{name}" for name in TOKENS if name != "tr")
FORMATS = {
    "line": ("line", False),
    "long": ("long", False),
    "extended": ("extended", False),
    "fmt": (COMPARED_FMT, False),
    "line_plain": ("line", True),
    "extended_plain": ("extended", True),
    "fmt_plain": (COMPARED_FMT, True),
}
NEW_YORK = "America/New_York"

# -- IPFIX encoding of the dataset -------------------------------------------------------

#: (information element, length, column) per address family; None columns send 0
_COMMON_HEAD = [(152, 8, "time_start"), (153, 8, "time_end"), (4, 1, "proto")]
_COMMON_TAIL = [
    (7, 2, "src_port"), (11, 2, "dst_port"), (6, 1, "tcp_flags"), (5, 1, "tos"),
    (55, 1, "dst_tos"), (2, 8, "packets"), (1, 8, "bytes"), (10, 4, "in_if"),
    (14, 4, "out_if"), (16, 4, "src_as"), (17, 4, "dst_as"), (58, 2, "src_vlan"),
    (59, 2, "dst_vlan"), (61, 1, "flow_direction"), (24, 8, "out_packets"),
    (23, 8, "out_bytes"), (3, 8, "flows"),
]  # fmt: skip
_V4 = [
    *_COMMON_HEAD,
    (8, 4, "src_addr"),
    (12, 4, "dst_addr"),
    *_COMMON_TAIL,
    (9, 1, "src_mask"),
    (13, 1, "dst_mask"),
    (15, 4, "next_hop"),
    (18, 4, "bgp_next_hop"),
    (32, 2, "icmp_type_code"),
]
_V6 = [
    *_COMMON_HEAD,
    (27, 16, "src_addr6"),
    (28, 16, "dst_addr6"),
    *_COMMON_TAIL,
    (29, 1, "src_mask"),
    (30, 1, "dst_mask"),
    (62, 16, "next_hop6"),
    (63, 16, "bgp_next_hop6"),
    (139, 2, "icmp_type_code"),
]
#: sent even when null (as 0), so every record has a time, protocol and addresses
_ALWAYS = {"time_start", "time_end", "proto", "src_addr", "dst_addr", "src_addr6", "dst_addr6"}


def _field_bytes(value: Any, length: int) -> bytes:
    if value is None:
        return bytes(length)
    if isinstance(value, bytes):
        return value
    if hasattr(value, "timestamp"):
        value = round(value.timestamp() * 1000)
    return int(value).to_bytes(length, "big")


def ipfix_messages(batch: pa.RecordBatch) -> list[bytes]:
    """The rows as one IPFIX message, one data set per row in row order (so nfcapd
    stores them in this order). Each row's template holds the fields the row has, as
    an exporter's would: a null is a field not sent. (A field sent as 0 would not do:
    nfcapd keeps a zero IPv6 next hop as ``::``, and copies a template's icmpTypeCode
    into the destination port of any flow that is neither TCP nor UDP.)"""
    templates: dict[tuple[tuple[int, int, str], ...], int] = {}
    data_sets = []
    for row in batch.to_pylist():
        family = _V6 if row.get("src_addr6") is not None else _V4
        fields = tuple(f for f in family if f[2] in _ALWAYS or row.get(f[2]) is not None)
        template_id = templates.setdefault(fields, 256 + len(templates))
        record = b"".join(_field_bytes(row.get(col), length) for _, length, col in fields)
        data_sets.append(struct.pack("!HH", template_id, 4 + len(record)) + record)
    template_sets = []
    for fields, template_id in templates.items():
        body = struct.pack("!HH", template_id, len(fields))
        body += b"".join(struct.pack("!HH", ie, length) for ie, length, _ in fields)
        template_sets.append(struct.pack("!HH", 2, 4 + len(body)) + body)
    body = b"".join(template_sets + data_sets)
    return [struct.pack("!HHIII", 10, 16 + len(body), 1_795_860_300, 1, 0) + body]


def protocol_flows(count: int = 256) -> pa.RecordBatch:
    """One short IPv4 flow per protocol number, to check every protocol's name."""
    start = pa.array([1_795_860_300_000] * count, pa.timestamp("ms", tz="UTC"))
    return pa.RecordBatch.from_pydict(
        {
            "time_start": start,
            "time_end": start,
            "proto": pa.array(range(count), pa.uint8()),
            "src_addr": pa.array([0x0A000001] * count, pa.uint32()),
            "dst_addr": pa.array([0x0A000002] * count, pa.uint32()),
            "packets": pa.array([1] * count, pa.uint64()),
            "bytes": pa.array([40] * count, pa.uint64()),
            "exporter": pa.array([0x7F000001] * count, pa.uint32()),
        }
    )


# -- running nfcapd and nfdump -----------------------------------------------------------


def _udp_sockets() -> dict[int, int]:
    """Local UDP port -> receive queue bytes, from /proc/net/udp."""
    ports = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        ports[port] = int(fields[4].split(":")[1], 16)
    return ports


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def store_with_nfcapd(directory: Path, messages: list[bytes]) -> Path:
    """Run nfcapd on a free port, send ``messages``, stop it; return its flow file."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["nfcapd", "-w", str(directory), "-p", str(port), "-b", "127.0.0.1", "-t", "300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: port in _udp_sockets(), "nfcapd did not bind its port")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for message in messages:
                sender.sendto(message, ("127.0.0.1", port))
        _wait_for(lambda: _udp_sockets().get(port, 0) == 0, "nfcapd did not read its socket")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    files = sorted(directory.glob("nfcapd.2*"))
    assert len(files) == 1, files
    return files[0]


def run_nfdump(
    path: Path, fmt: str, *, plain: bool = False, tz: str = "UTC", filter_text: str | None = None
) -> str:
    """nfdump's output without its timing line."""
    args = ["nfdump", "-r", str(path), "-o", fmt, *(["-N"] if plain else [])]
    args += [filter_text] if filter_text else []
    env = {**os.environ, "TZ": tz}
    text = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return "".join(line for line in text.splitlines(True) if not line.startswith("Sys: "))


@dataclass(frozen=True)
class NfdumpFiles:
    dataset: Path
    protocols: Path


@pytest.fixture(scope="module")
def nfdump_files(tmp_path_factory: pytest.TempPathFactory, nfdump_flows) -> NfdumpFiles:
    if not HAVE_NFDUMP:
        pytest.skip("nfcapd/nfdump not installed")
    base = tmp_path_factory.mktemp("nfcapd")
    (base / "dataset").mkdir()
    (base / "protocols").mkdir()
    return NfdumpFiles(
        store_with_nfcapd(base / "dataset", ipfix_messages(nfdump_flows)),
        store_with_nfcapd(base / "protocols", ipfix_messages(protocol_flows())),
    )


# -- flowq's side ------------------------------------------------------------------------


def _bytes_read(nfdump_text: str) -> int:
    match = re.search(r"Bytes read: (\d+)", nfdump_text)
    assert match, nfdump_text
    return int(match.group(1))


def flowq_output(
    fmt: str,
    batch: pa.RecordBatch,
    *,
    plain: bool,
    utc: bool,
    bytes_read: int,
    passed: pa.RecordBatch | None = None,
) -> str:
    """flowq's text for the flows nfdump read (``passed``: those a filter kept)."""
    out = io.StringIO()
    writer = RecordWriter(parse_output_format(fmt), out, utc=utc, plain_numbers=plain, quiet=False)
    writer.write_header()
    writer.write_batch(batch if passed is None else passed)
    writer.finish()
    summary = Summary(bytes_read=bytes_read)
    summary.add_processed(batch)
    summary.add_passed(batch if passed is None else passed)
    write_summary(out, summary, plain_numbers=plain, utc=utc)
    return out.getvalue()


def kept(name: str, live: str | None, update: bool) -> str:
    """The kept nfdump output ``name``; checks (or, updating, rewrites) it against the
    live one when nfdump ran."""
    path = GOLDEN_DIR / name
    if live is not None:
        if update:
            path.write_text(live)
        assert path.read_text() == live, f"nfdump's output differs from {path}"
    if not path.exists():
        pytest.skip(f"{path} missing and nfdump not installed")
    return path.read_text()


@pytest.fixture
def live(request: pytest.FixtureRequest) -> Iterator[Callable[..., str | None]]:
    """``live(...)``: run nfdump when installed, else None (the kept copy is used)."""

    def run(which: str, fmt: str, **kwargs: Any) -> str | None:
        if not HAVE_NFDUMP:
            return None
        files: NfdumpFiles = request.getfixturevalue("nfdump_files")
        return run_nfdump(getattr(files, which), fmt, **kwargs)

    yield run


# -- the comparisons ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_same_as_nfdump(name: str, nfdump_flows, live, updating_golden: bool) -> None:
    fmt, plain = FORMATS[name]
    expected = kept(f"nfdump_{name}.txt", live("dataset", fmt, plain=plain), updating_golden)
    got = flowq_output(fmt, nfdump_flows, plain=plain, utc=True, bytes_read=_bytes_read(expected))
    assert got == expected


def test_summary_of_a_filtered_query_same_as_nfdump(nfdump_flows, live, updating_golden) -> None:
    """Summary over the matching flows; time window and 'processed' over all read."""
    expected = kept(
        "nfdump_line_proto_tcp.txt",
        live("dataset", "line", filter_text="proto tcp"),
        updating_golden,
    )
    tcp = nfdump_flows.filter(pc.equal(nfdump_flows["proto"], 6))
    got = flowq_output(
        "line", nfdump_flows, plain=False, utc=True, bytes_read=_bytes_read(expected), passed=tcp
    )
    assert got == expected


def test_local_time_same_as_nfdump(nfdump_flows, live, updating_golden) -> None:
    expected = kept(
        "nfdump_line_new_york.txt", live("dataset", "line", tz=NEW_YORK), updating_golden
    )
    saved = os.environ.get("TZ")
    os.environ["TZ"] = NEW_YORK
    time.tzset()
    try:
        got = flowq_output(
            "line", nfdump_flows, plain=False, utc=False, bytes_read=_bytes_read(expected)
        )
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert got == expected


def test_every_protocol_name_same_as_nfdump(live, updating_golden) -> None:
    fmt = "fmt:%pr|%sap"
    expected = kept("nfdump_protocols.txt", live("protocols", fmt), updating_golden)
    got = flowq_output(
        fmt, protocol_flows(), plain=False, utc=True, bytes_read=_bytes_read(expected)
    )
    assert got == expected


def test_ipv6_is_shown_in_full_where_nfdump_shortens() -> None:
    """The one deliberate layout difference: a long IPv6 address is not shortened."""
    address = "2001:db8:1234:5678:9abc:def0:1234:5678"
    batch = pa.RecordBatch.from_pydict(
        {
            "src_addr6": pa.array([ipaddress.IPv6Address(address).packed], pa.binary(16)),
        }
    )
    out = io.StringIO()
    writer = RecordWriter(
        parse_output_format("fmt:%sa|"), out, utc=True, plain_numbers=False, quiet=True
    )
    writer.write_batch(batch)
    assert out.getvalue() == f"{address}|\n"
