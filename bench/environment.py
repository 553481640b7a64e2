"""What a benchmark result was measured on, and the one-core setup every bench uses.

Numbers without the machine are not comparable: each results JSON carries the Python,
numpy and pyarrow versions, the CPU model, the core count and the commit it measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def pin_to_one_cpu(cpu: int | None) -> int | None:
    """Run this process (and any thread numpy or Arrow starts) on one CPU.

    ``None`` picks the lowest CPU currently allowed. Returns the CPU, or ``None`` where
    affinity cannot be set (not Linux).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    chosen = min(os.sched_getaffinity(0)) if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return chosen


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def machine_info(pinned_cpu: int | None) -> dict[str, object]:
    """The facts a reader needs to compare two result files."""
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": _version("numpy"),
        "pyarrow": _version("pyarrow"),
        "construct": _version("construct"),
        "netflow": _version("netflow"),
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "pinned_cpu": pinned_cpu,
        # other work on the machine skews the numbers: this shows whether there was some
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "argv": sys.argv,
        "measured_at_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(path: Path, document: dict[str, object]) -> None:
    """Write a results file, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
