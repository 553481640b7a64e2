"""``python -m parsers FILE...``: decode export captures for a person debugging an
exporter.

Reads pcap, pcapng and raw datagram dumps (bare UDP payloads, possibly several
concatenated messages), feeds the datagrams in file order to one decoder (exporter
identity from each frame's source address and port; raw files use ``--exporter``),
prints one JSON object per flow record on stdout and a summary on stderr.
Exit 0 even when datagrams were malformed (they are counted); 1 on unreadable files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from parsers.capture import CaptureError, detect_capture_format, read_capture
from parsers.decoder import FlowDecoder
from parsers.errors import ParseError
from parsers.json_rows import flow_rows, options_row

#: datagrams decoded between flushes, to bound memory on large captures
FLUSH_EVERY_DATAGRAMS = 4096
PROGRAM = "python -m parsers"


def _exporter(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Decode NetFlow v5/v9 and IPFIX from pcap, pcapng or raw dumps.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--options", action="store_true", help="also print options data records")
    parser.add_argument(
        "--exporter",
        type=_exporter,
        default=("192.0.2.1", 2055),
        help="exporter identity for raw dumps (HOST:PORT, default 192.0.2.1:2055)",
    )
    return parser


def _emit(decoder: FlowDecoder, quiet: bool, show_options: bool) -> int:
    records = 0
    options = decoder.take_options_records()
    for batch in decoder.flush():
        records += batch.num_rows
        if not quiet:
            for row in flow_rows(batch):
                sys.stdout.write(json.dumps(row) + "\n")
    if show_options and not quiet:
        for record in options:
            sys.stdout.write(json.dumps(options_row(record), default=str) + "\n")
    return records


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    decoder = FlowDecoder()
    started = time.perf_counter()
    datagrams = dropped = 0
    unreadable = False
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as error:
            print(f"{PROGRAM}: {path}: {error.strerror or error}", file=sys.stderr)
            unreadable = True
            continue
        now_ns = time.time_ns()
        try:
            for datagram in read_capture(data, raw_source=args.exporter):
                datagrams += 1
                try:
                    decoder.feed_datagram(
                        datagram.payload, datagram.source, datagram.captured_at_ns or now_ns
                    )
                except ParseError as error:
                    dropped += 1
                    print(
                        f"{PROGRAM}: {path}: datagram {datagrams} from "
                        f"{datagram.source[0]}:{datagram.source[1]} dropped "
                        f"({error.reason}): {error}",
                        file=sys.stderr,
                    )
                if datagrams % FLUSH_EVERY_DATAGRAMS == 0:
                    _emit(decoder, args.quiet, args.options)
        except CaptureError as error:
            print(
                f"{PROGRAM}: {path}: unreadable {detect_capture_format(data)}: {error}",
                file=sys.stderr,
            )
            unreadable = True
    _emit(decoder, args.quiet, args.options)
    decoder.finish()
    elapsed = time.perf_counter() - started
    _summary(decoder, datagrams, elapsed)
    return 1 if unreadable else 0


def _summary(decoder: FlowDecoder, datagrams: int, elapsed_s: float) -> None:
    stats = decoder.stats
    cache = decoder.templates
    versions = ", ".join(f"v{v}: {n}" for v, n in sorted(stats.datagrams.items())) or "none"
    drops = ", ".join(f"{r}: {n}" for r, n in sorted(stats.dropped.items())) or "none"
    rate = stats.flow_records / elapsed_s if elapsed_s > 0 else 0.0
    lines = [
        f"datagrams: {datagrams} ({versions})",
        f"flow records: {stats.flow_records}",
        f"options records: {stats.options_records}",
        f"dropped datagrams: {sum(stats.dropped.values())} ({drops})",
        f"templates: {cache.template_count} held sets: {cache.stats.held_sets} "
        f"(released {cache.stats.held_sets_released}, still held {cache.held_set_count()})",
        f"sequence lost: {stats.sequence_lost}",
        f"elapsed: {elapsed_s:.3f} s ({rate:,.0f} flows/s)",
    ]
    for line in lines:
        print(f"{PROGRAM}: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
