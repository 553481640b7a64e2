"""UDP sockets and the receive callback: bytes and the sender's address, nothing more.

The hot path is an ``asyncio.DatagramProtocol`` on uvloop rather than asyncio-dgram's
``await recv()``: measured here, the callback costs ~4 µs of CPU per datagram and the
awaitable ~15 µs, and a busy vDS sends ~75,000 datagrams/s (1.2 M flows/s); at that
rate the difference is a whole core. asyncio-dgram serves where a coroutine reads
better and the rate is low (the test and benchmark exporters, ``collector/exporter``).
``bench/`` keeps the numbers.

The collector never interprets bytes: datagrams go to ``parsers/`` untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable
from typing import Final

#: SO_RCVBUFFORCE (Linux): set the buffer past net.core.rmem_max with CAP_NET_ADMIN
SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)
#: the largest UDP payload; reads use a buffer this big
MAX_DATAGRAM_BYTES: Final = 65535

DatagramHandler = Callable[[bytes, tuple[str, int]], None]


def _family_of(bind: str | None) -> tuple[socket.AddressFamily, str, bool]:
    """(family, address, dual_stack) for a bind setting; None means every address."""
    if bind is None:
        if socket.has_ipv6:
            return socket.AF_INET6, "::", True
        return socket.AF_INET, "0.0.0.0", False
    if ":" in bind:
        return socket.AF_INET6, bind, bind == "::"
    return socket.AF_INET, bind, False


def open_udp_socket(
    bind: str | None, port: int, receive_buffer_bytes: int, reuse_port: bool = False
) -> socket.socket:
    """A bound, non-blocking UDP socket with the largest receive buffer we may have.

    ``::`` (or no bind address) is dual-stack: IPv4 exporters arrive as ``::ffff:a.b.c.d``
    and the decoder maps them back. With ``reuse_port`` several workers bind one port and
    the kernel keeps each exporter (4-tuple hash) on one worker.
    """
    family, address, dual_stack = _family_of(bind)
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError:
        if bind is not None or family != socket.AF_INET6:
            raise
        family, address, dual_stack = socket.AF_INET, "0.0.0.0", False
        sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        set_receive_buffer(sock, receive_buffer_bytes)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def set_receive_buffer(sock: socket.socket, size_bytes: int) -> int:
    """Ask for ``size_bytes`` (forcing past rmem_max when privileged); return what the
    kernel granted (Linux reports double the usable size; we report it halved)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size_bytes)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EINVAL, errno.ENOPROTOOPT):
            raise
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size_bytes)
    return receive_buffer_bytes(sock)


def receive_buffer_bytes(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


def bound_address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return host, port


class DatagramReceiver(asyncio.DatagramProtocol):
    """Hands each datagram and its sender to ``handler``; the hot path of flowcapd."""

    def __init__(self, handler: DatagramHandler, on_error: Callable[[OSError], None]) -> None:
        self._handler = handler
        self._on_error = on_error

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._handler(data, addr)

    def error_received(self, exc: OSError) -> None:
        self._on_error(exc)


def drain_socket(sock: socket.socket, handler: DatagramHandler, limit: int = 1_000_000) -> int:
    """Read what the kernel already queued on ``sock`` (non-blocking) and hand it on.

    Used at shutdown on a duplicate of the listening socket, after the event loop's
    transport closed: SIGTERM must not lose datagrams that already arrived.
    """
    count = 0
    sock.setblocking(False)
    while count < limit:
        try:
            data, addr = sock.recvfrom(MAX_DATAGRAM_BYTES)
        except OSError:  # nothing more queued (BlockingIOError), or the socket failed
            break
        handler(data, addr)
        count += 1
    return count


def close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
