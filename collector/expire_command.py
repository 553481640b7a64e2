"""``flowcapd expire``: apply the retention policy once, like nfexpire.

``flowcapd expire [-l DIR] [--max-age D] [--max-size S] [--config FILE] [--dry-run]``
takes DIR and the limits from the same places as the daemon (the TOML file, flags win),
so one config serves both. It prints every path it deleted (or, with ``--dry-run``,
would delete) on stdout, one a line, and a summary on stderr.

Exit status: 0 done (also when nothing was due), 1 DIR missing or a file could not be
deleted, 2 bad arguments or no limit given.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from collector.config import ConfigError, load_config
from storage.retention import apply_retention, problem_lines, summary_line

PROG = "flowcapd expire"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Delete the oldest finished flow files below DIR by age and/or total size "
        "(like nfexpire); never the current interval, spools or foreign files.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("-l", dest="flow_dir", metavar="DIR", help="base directory of flow files")
    parser.add_argument(
        "--max-age",
        metavar="DURATION",
        help="delete files whose interval ended longer ago (30d, 12h, 90m, 2w; plain = hours)",
    )
    parser.add_argument(
        "--max-size",
        metavar="SIZE",
        help="delete the oldest files until DIR holds at most SIZE (500G, 1.5T; powers of 1024)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="flowcapd's TOML file (flow_dir, max_age, max_size)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=False,
        help="print what would be deleted, delete nothing",
    )
    return parser


def _daemon_argv(arguments: dict[str, object]) -> list[str]:
    """The same settings as flowcapd flags, so the daemon's loader validates them and
    applies its precedence (defaults, TOML, flags)."""
    flags = {"config": "--config=", "flow_dir": "-l", "max_age": "--max-age=",
             "max_size": "--max-size="}  # fmt: skip
    return [f"{flag}{arguments[key]}" for key, flag in flags.items() if key in arguments]


def main(argv: Sequence[str] | None = None) -> int:
    """Only here do outcomes become exit codes."""
    try:
        arguments = vars(build_parser().parse_args(argv))
    except SystemExit as exit_:  # argparse: usage errors are 2, --help is 0
        return int(exit_.code or 0)
    try:
        config = load_config(_daemon_argv(arguments))
    except ConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    policy = config.retention
    if policy is None:
        print(f"{PROG}: nothing to do: give --max-age and/or --max-size", file=sys.stderr)
        return 2
    flow_dir: Path = config.flow_dir
    if not flow_dir.is_dir():
        print(f"{PROG}: {flow_dir}: no such directory", file=sys.stderr)
        return 1
    dry_run = bool(arguments["dry_run"])
    result = apply_retention(flow_dir, policy, time.time(), dry_run=dry_run)
    for path in result.deleted:
        print(path)
    print(f"{PROG}: {summary_line(result, dry_run)}", file=sys.stderr)
    if result.vanished:
        print(f"{PROG}: {result.vanished} files were deleted by another process", file=sys.stderr)
    for line in problem_lines(result.problems):
        print(f"{PROG}: {line}", file=sys.stderr)
    return 1 if result.problems else 0
