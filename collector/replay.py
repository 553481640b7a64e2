"""Send export datagrams to a collector over UDP: ``python -m collector.replay``.

Replays pcap / pcapng / raw dumps (like nfreplay), for testing a collector with a
capture of a real exporter, and serves the end-to-end tests and benchmarks as their
exporter. It runs on asyncio-dgram: one coroutine reads plainly and the rate here is
the sender's choice (the collector's receive path, where every µs counts, uses a
DatagramProtocol instead; see ``collector/listener.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import asyncio_dgram

from parsers.capture import CaptureError, read_capture


async def send_datagrams(
    datagrams: Iterable[bytes],
    target: tuple[str, int],
    source: tuple[str, int] | None = None,
    rate_per_s: float | None = None,
) -> int:
    """Send each payload as one datagram from one socket; return how many.

    ``rate_per_s`` paces the sender (None: as fast as the socket takes them, yielding
    to the loop every 64 datagrams).
    """
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    local = source or (("::" if family == socket.AF_INET6 else "0.0.0.0"), 0)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(local)
    # unconnected, addressed per send: asyncio_dgram.from_socket on a connected socket
    # sets ``transport._address``, which uvloop's UDPTransport does not have
    stream = await asyncio_dgram.from_socket(sock)
    sent = 0
    started = time.perf_counter()
    try:
        for payload in datagrams:
            await stream.send(payload, target)
            sent += 1
            if rate_per_s:
                delay = sent / rate_per_s - (time.perf_counter() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            elif sent % 64 == 0:
                await asyncio.sleep(0)
    finally:
        stream.close()
    return sent


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collector.replay",
        description="Replay NetFlow/IPFIX datagrams from capture files to a collector.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--to",
        type=_target,
        default=("127.0.0.1", 23456),
        help="collector HOST:PORT (default 127.0.0.1:23456)",
    )
    parser.add_argument("--rate", type=float, help="datagrams per second (default: no pacing)")
    args = parser.parse_args(argv)  # fmt: skip
    payloads: list[bytes] = []
    for path in args.files:
        try:
            payloads.extend(d.payload for d in read_capture(path.read_bytes()))
        except (OSError, CaptureError) as error:
            print(f"replay: {path}: {error}", file=sys.stderr)
            return 1
    sent = asyncio.run(send_datagrams(payloads, args.to, rate_per_s=args.rate))
    print(f"replay: sent {sent} datagrams to {args.to[0]}:{args.to[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
