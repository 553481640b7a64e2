"""flowcapd's settings: defaults, the TOML file (``--config``) and the command line, in
that order of precedence (flags win).

Every flag has a TOML key of the same meaning (except ``--config`` itself and the
one-shot ``--read``); a bad value in either place is one clear line and exit 2 at start
(``ConfigError``), never a traceback. On SIGHUP the same sources are read again
(``reload_config``): what ``LIVE_SETTINGS`` names applies at once, the rest on restart.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from storage.retention import RetentionPolicy, RetentionValueError, parse_duration, parse_size

DEFAULT_PORT: Final = 23456
DEFAULT_FLOW_DIR: Final = Path("./flows")
DEFAULT_ROTATION_S: Final = 300
#: 32 MiB: ~25,000 full-size datagrams, a second of a busy vDS at 1 M flows/s. The
#: kernel caps the request at net.core.rmem_max (see docs/operations.md).
DEFAULT_SOCKET_BUFFER_BYTES: Final = 32 * 1024 * 1024
DEFAULT_METRICS: Final = "127.0.0.1:9723"
#: setsockopt takes a C int: a larger request is no buffer size, it is a crash
MAX_SOCKET_BUFFER_BYTES: Final = 2**31 - 1
#: a day: intervals are for rotating files every few minutes, and a longer one is one
#: spool that grows for days (and far larger values overflow the interval arithmetic)
MAX_ROTATION_S: Final = 86_400
SUBDIR_LAYOUTS: Final = range(0, 9)  # nfcapd's -S numbers
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A setting that cannot work; the message is the one line flowcapd prints."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything flowcapd needs to run, validated."""

    flow_dir: Path = DEFAULT_FLOW_DIR
    port: int = DEFAULT_PORT
    bind: str | None = None  # None: all addresses (IPv6 dual-stack where available)
    rotation_interval_s: int = DEFAULT_ROTATION_S
    subdir_layout: int = 0
    socket_buffer_bytes: int = DEFAULT_SOCKET_BUFFER_BYTES
    workers: int = 1
    metrics: str | None = DEFAULT_METRICS  # None: off
    allow: tuple[str, ...] = ()
    log_level: str = "info"
    read: tuple[Path, ...] = ()  # offline ingest: capture files instead of a socket
    #: spool fsync interval: kill -9 loses at most about this much
    flush_interval_s: float = 1.0
    #: retention after each rotation (storage.retention); None: keep everything, as nfcapd
    max_age_s: int | None = None
    max_size_bytes: int | None = None
    config_file: Path | None = None
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), compare=False, repr=False
    )
    #: the command line it came from: a reload reads the file again and the flags
    #: still win over it
    argv: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def state_dir(self) -> Path:
        """Where templates are persisted across restarts (a dot directory readers skip)."""
        return self.flow_dir / ".flowcapd"

    @property
    def retention(self) -> RetentionPolicy | None:
        policy = RetentionPolicy(self.max_age_s, self.max_size_bytes)
        return policy if policy.enabled else None

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        if self.metrics is None:
            return None
        host, _, port = self.metrics.rpartition(":")
        return host.strip("[]"), int(port)


#: TOML key -> Config field (the example config must list every key; its test reads this)
TOML_KEYS: Final[dict[str, str]] = {
    "flow_dir": "flow_dir",
    "port": "port",
    "bind": "bind",
    "rotation_interval": "rotation_interval_s",
    "subdir_layout": "subdir_layout",
    "socket_buffer": "socket_buffer_bytes",
    "workers": "workers",
    "metrics": "metrics",
    "allow": "allow",
    "log_level": "log_level",
    "flush_interval": "flush_interval_s",
    "max_age": "max_age_s",
    "max_size": "max_size_bytes",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowcapd",
        description="NetFlow v5/v9 and IPFIX collector writing rotated Parquet files.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "-l",
        dest="flow_dir",
        type=Path,
        metavar="DIR",
        help=f"base directory for flow files (default {DEFAULT_FLOW_DIR})",
    )
    parser.add_argument(
        "-p",
        dest="port",
        type=int,
        metavar="PORT",
        help=f"UDP port; 0 picks a free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "-b",
        dest="bind",
        metavar="ADDR",
        help="bind address, IPv4 or IPv6; '::' is dual-stack (default: all)",
    )
    parser.add_argument(
        "-t",
        dest="rotation_interval_s",
        type=int,
        metavar="SECONDS",
        help=f"rotation interval, aligned (default {DEFAULT_ROTATION_S})",
    )
    parser.add_argument(
        "-S",
        dest="subdir_layout",
        type=int,
        metavar="N",
        help="sub-directory layout, nfcapd's numbers 0-8 (default 0: none)",
    )
    parser.add_argument(
        "-B",
        dest="socket_buffer_bytes",
        type=int,
        metavar="BYTES",
        help=f"socket receive buffer (default {DEFAULT_SOCKET_BUFFER_BYTES})",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="receiving processes sharing the port (default 1)"
    )
    parser.add_argument(
        "--metrics",
        metavar="ADDR:PORT",
        help=f"Prometheus endpoint, or 'off' (default {DEFAULT_METRICS})",
    )
    parser.add_argument(
        "--allow",
        action="append",
        metavar="CIDR",
        help="accept exports only from these sources (repeatable)",
    )
    parser.add_argument(
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="TOML file with the same settings; flags win",
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        metavar="LEVEL",
        choices=LOG_LEVELS,
        help="log level (default info)",
    )
    parser.add_argument(
        "--read",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="ingest pcap/pcapng/raw dumps into -l DIR and exit",
    )
    parser.add_argument(
        "--max-age",
        dest="max_age_s",
        metavar="DURATION",
        help="after each rotation delete flow files whose interval ended longer ago "
        "(nfexpire units: 30d, 12h, 90m, 2w, 1w2d; plain number = hours; 'off'; default off)",
    )
    parser.add_argument(
        "--max-size",
        dest="max_size_bytes",
        metavar="SIZE",
        help="after each rotation delete the oldest flow files until DIR holds at most SIZE "
        "(500G, 1.5T, 100M, 10K: powers of 1024; plain number = bytes; 'off'; default off)",
    )
    return parser  # fmt: skip


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config {path}: {error}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in TOML_KEYS:
            known = ", ".join(TOML_KEYS)
            raise ConfigError(f"config {path}: unknown key '{key}' (known: {known})")
        values[TOML_KEYS[key]] = value
    return values


def _validate(values: dict[str, Any]) -> Config:
    config = Config()
    for name, value in values.items():
        config = _set(config, name, value)
    return _checked(config)


def _set(config: Config, name: str, value: Any) -> Config:
    if name in ("flow_dir", "config_file"):
        if not isinstance(value, str | Path) or str(value) == "":
            raise ConfigError(f"{name}: {value!r} is not a directory path")
        return replace(config, **{name: Path(value)})
    if name in ("port", "rotation_interval_s", "subdir_layout", "socket_buffer_bytes", "workers"):
        if isinstance(value, bool) or not isinstance(value, int):
            key = name.removesuffix("_s").removesuffix("_bytes")
            raise ConfigError(f"{key}: {value!r} is not a whole number")
        return replace(config, **{name: value})
    if name == "flush_interval_s":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"flush_interval: {value!r} is not a number of seconds")
        return replace(config, flush_interval_s=float(value))
    if name in ("max_age_s", "max_size_bytes"):
        return replace(config, **{name: _retention_limit(name, value)})
    if name == "metrics":
        return replace(config, metrics=None if value in (None, "off", False) else str(value))
    if name == "allow":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"allow: expected CIDR strings, got {value!r}")
        return replace(config, allow=tuple(items))
    if name == "read":
        return replace(config, read=tuple(Path(v) for v in value))
    if name in ("bind", "log_level"):
        return replace(config, **{name: str(value)})
    raise ConfigError(f"unknown setting {name}")


def _retention_limit(name: str, value: Any) -> int | None:
    """``--max-age``/``--max-size`` (or their TOML keys, where a number is hours or
    bytes as on the command line); 'off' lifts a limit the TOML file set."""
    key = "max-age" if name == "max_age_s" else "max-size"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{key}: {value!r} is not a {key.removeprefix('max-')} limit")
    text = str(value)
    if text.strip().lower() == "off":
        return None
    try:
        return parse_duration(text) if name == "max_age_s" else parse_size(text)
    except RetentionValueError as error:
        raise ConfigError(f"{key}: {error}") from None


def _checked(config: Config) -> Config:
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"port {config.port} is not 0-65535")
    if not 1 <= config.rotation_interval_s <= MAX_ROTATION_S:
        raise ConfigError(
            f"rotation interval {config.rotation_interval_s} s is not 1-{MAX_ROTATION_S}"
        )
    if config.subdir_layout not in SUBDIR_LAYOUTS:
        raise ConfigError(f"sub-directory layout {config.subdir_layout} is not 0-8")
    if not 4096 <= config.socket_buffer_bytes <= MAX_SOCKET_BUFFER_BYTES:
        size = config.socket_buffer_bytes
        raise ConfigError(f"socket buffer {size} bytes is not 4096-{MAX_SOCKET_BUFFER_BYTES}")
    if not 1 <= config.workers <= 256:
        raise ConfigError(f"workers {config.workers} is not 1-256")
    if not (math.isfinite(config.flush_interval_s) and config.flush_interval_s > 0):
        raise ConfigError(f"flush interval {config.flush_interval_s} s must be a positive number")
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(f"log level {config.log_level!r} is not {'/'.join(LOG_LEVELS)}")
    if config.bind is not None:
        try:
            ipaddress.ip_address(config.bind.split("%", 1)[0])
        except ValueError:
            raise ConfigError(f"bind address {config.bind!r} is not an IP address") from None
    if config.metrics is not None:
        host, _, port = config.metrics.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"metrics {config.metrics!r} is not ADDR:PORT or 'off'")
    networks = []
    for cidr in config.allow:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(f"allow: {cidr!r} is not an address or CIDR") from None
    return replace(config, allowed_networks=tuple(networks))


def load_config(argv: Sequence[str] | None = None) -> Config:
    """Defaults, then ``--config`` TOML, then flags. Raises ConfigError."""
    argv = tuple(sys.argv[1:] if argv is None else argv)
    arguments = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    config_file = arguments.get("config_file")
    if config_file is not None:
        values.update(_from_toml(config_file))
    values.update(arguments)
    return replace(_validate(values), argv=argv)


#: Config fields a running daemon applies on SIGHUP (the allow list is one lookup per
#: new exporter, the log level one call); everything else is a socket, a file layout or
#: a process count that only a restart changes
LIVE_SETTINGS: Final = frozenset({"allow", "log_level"})
#: fields that are not settings of a running daemon
_NOT_RELOADED: Final = frozenset({"config_file", "read", "allowed_networks", "argv"})


@dataclass(frozen=True, slots=True)
class Reload:
    """What a SIGHUP re-read found: the config now in force, and the TOML keys whose
    new values wait for a restart."""

    config: Config
    needs_restart: tuple[str, ...]


def reload_config(running: Config) -> Reload:
    """Read ``running``'s sources again (its file, then its flags, which still win).

    Raises ConfigError, and then the running settings stay as they are.
    """
    fresh = load_config(running.argv)
    live = {name: getattr(fresh, name) for name in LIVE_SETTINGS}
    config = replace(running, **live, allowed_networks=fresh.allowed_networks)
    toml_key = {name: key for key, name in TOML_KEYS.items()}
    needs_restart = tuple(
        toml_key.get(f.name, f.name)
        for f in fields(Config)
        if f.name not in LIVE_SETTINGS
        and f.name not in _NOT_RELOADED
        and getattr(fresh, f.name) != getattr(running, f.name)
    )
    return Reload(config, needs_restart)
