"""Retention in flowcapd: the ``--max-age``/``--max-size`` settings, the daemon applying
them after a rotation (a real process, SIGHUP to rotate), and ``flowcapd expire``."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from collector.config import ConfigError, load_config
from storage.naming import FileKind, FlowFileName, interval_dir
from storage.retention import RetentionPolicy
from tests.collector.exports import v5_datagrams
from tests.collector.harness import FLOWCAPD, flow_files, one_day_interval, spool_rows, wait_for

WAIT_S = 30.0
D = 86_400
MIB = 1024 * 1024


def old_file(root: Path, days_ago: float, size: int, summary: int = 1000, layout: int = 0) -> Path:
    """A finished file (and its summary) of a 5 min interval that ended ``days_ago``."""
    end = int(time.time() - days_ago * D)
    end -= end % 300
    name = FlowFileName(end - 300, end, 0, 0, FileKind.PARQUET)
    directory = interval_dir(root, name.interval_start_s, layout)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name.name
    path.write_bytes(b"\0" * size)
    path.with_suffix(".summary").write_bytes(b"\0" * summary)
    return path


# -- settings ---------------------------------------------------------------------------------


def test_settings_from_flags_and_toml(tmp_path: Path) -> None:
    assert load_config([]).retention is None  # default: keep everything, as nfcapd
    config = load_config(["--max-age", "30d", "--max-size", "1.5T"])
    assert config.retention == RetentionPolicy(30 * D, int(1.5 * 1024**4))
    toml = tmp_path / "flowcapd.toml"
    toml.write_text('max_age = "2w"\nmax_size = 1000000\n')
    assert load_config(["--config", str(toml)]).retention == RetentionPolicy(14 * D, 1_000_000)
    # flags win; 'off' lifts a limit the file set
    config = load_config(["--config", str(toml), "--max-age", "12h", "--max-size", "off"])
    assert config.retention == RetentionPolicy(12 * 3600, None)
    toml.write_text("max_age = 48\n")  # a number is hours, like the flag
    assert load_config(["--config", str(toml)]).retention == RetentionPolicy(48 * 3600)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-age", "3x"], "max-age: '3x' is not a duration"),
        (["--max-age", "0"], "max-age: '0' must be more than 0"),
        (["--max-size", "10Q"], "max-size: '10Q' is not a size"),
    ],
)
def test_bad_settings(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(argv)


def test_bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    toml = tmp_path / "flowcapd.toml"
    toml.write_text("max_size = true\n")
    for argv in (["--max-age", "1.5d"], ["--config", str(toml)]):
        run = subprocess.run(
            [str(FLOWCAPD), "-l", str(tmp_path), *argv], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 2
        assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("flowcapd: max-")


# -- the daemon -------------------------------------------------------------------------------


def rotate_with_traffic(daemon, exporter, flow_dir: Path) -> Path:
    """Flows in, SIGHUP: the current interval's file is finished (and retention runs)."""
    before = set(flow_files(flow_dir))
    exporter.send(v5_datagrams(0, 20), daemon.target)
    wait_for(lambda: spool_rows(flow_dir) == 600, WAIT_S, "600 flows in the spool")
    daemon.send_signal(signal.SIGHUP)
    new = wait_for(lambda: set(flow_files(flow_dir)) - before, WAIT_S, "the rotated file")
    assert len(new) == 1
    return new.pop()


def test_daemon_deletes_files_older_than_max_age_after_rotation(
    tmp_path: Path, flowcapd, exporters
) -> None:
    interval = one_day_interval()
    expired = [old_file(tmp_path, days, 4096, layout=1) for days in (9, 3)]
    kept = old_file(tmp_path, 0.5, 4096, layout=1)  # ended 12 h ago: within a day
    foreign = tmp_path / "2020" / "notes.txt"
    foreign.parent.mkdir()
    foreign.write_text("not ours")
    daemon = flowcapd.start(
        tmp_path, "-t", interval, "-S", "1", "-b", "127.0.0.1", "--max-age", "1d"
    )
    assert all(p.exists() for p in expired)  # nothing happens before a rotation

    today = rotate_with_traffic(daemon, exporters(), tmp_path)
    wait_for(lambda: not any(p.exists() for p in expired), WAIT_S, "old files deleted")
    line = daemon.wait_line(r"retention: deleted (\d+) files \((.*) freed")
    assert line[1] == "2"
    assert not any(p.with_suffix(".summary").exists() for p in expired)
    assert not any(p.parent.exists() for p in expired)  # their -S day directories too
    assert kept.exists() and foreign.exists()
    assert daemon.metric("flowcap_retention_deleted_files_total") == 2
    assert daemon.metric("flowcap_retention_deleted_bytes_total") == 2 * (4096 + 1000)

    assert daemon.stop() == 0, daemon.stderr
    assert flow_files(tmp_path) == sorted([kept, today])  # within a day, and today's
    assert today.with_suffix(".summary").exists()


def test_daemon_keeps_the_directory_under_max_size(tmp_path: Path, flowcapd, exporters) -> None:
    interval = one_day_interval()
    oldest, middle, newest = (old_file(tmp_path, days, MIB) for days in (5, 4, 3))
    daemon = flowcapd.start(
        tmp_path, "-t", interval, "-b", "127.0.0.1", "--max-size", "2.5M", "--max-age", "off"
    )
    today = rotate_with_traffic(daemon, exporters(), tmp_path)
    wait_for(lambda: not oldest.exists(), WAIT_S, "the oldest file deleted")
    # 3 MiB + today's small file: the oldest going brings it under 2.5 MiB
    assert daemon.metric("flowcap_retention_deleted_files_total") == 1
    assert daemon.metric("flowcap_retention_deleted_bytes_total") == MIB + 1000
    assert middle.exists() and newest.exists()
    assert daemon.stop() == 0, daemon.stderr
    assert flow_files(tmp_path) == [middle, newest, today]
    total = sum(p.stat().st_size for p in tmp_path.rglob("flowcap.*") if p.is_file())
    assert total <= 2.5 * MIB


# -- flowcapd expire --------------------------------------------------------------------------


def expire(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FLOWCAPD), "expire", *args], capture_output=True, text=True, timeout=60
    )


def test_expire_dry_run_lists_then_deletes(tmp_path: Path) -> None:
    old = [old_file(tmp_path, days, 2048, layout=2) for days in (40, 35)]
    recent = old_file(tmp_path, 2, 2048, layout=2)
    listed = [str(p) for f in old for p in (f.with_suffix(".summary"), f)]

    dry = expire("-l", str(tmp_path), "--max-age", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == listed
    assert "would delete 2 files (6.0 KiB to free, 3.0 KiB left)" in dry.stderr
    assert all(f.exists() for f in old)

    run = expire("-l", str(tmp_path), "--max-age", "30d")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == listed
    assert run.stderr.startswith("flowcapd expire: deleted 2 files (6.0 KiB freed, 3.0 KiB left)")
    assert not any(f.exists() or f.parent.exists() for f in old) and recent.exists()

    again = expire("-l", str(tmp_path), "--max-age", "30d")
    assert (again.returncode, again.stdout) == (0, "")
    assert "deleted 0 files" in again.stderr


def test_expire_takes_dir_and_limits_from_the_config(tmp_path: Path) -> None:
    flow_dir = tmp_path / "flows"
    files = [old_file(flow_dir, days, 1000, summary=24) for days in (3, 2, 1)]
    toml = tmp_path / "flowcapd.toml"
    toml.write_text(f'flow_dir = "{flow_dir}"\nmax_size = "2K"\nport = 9999\n')
    run = expire("--config", str(toml))
    assert run.returncode == 0, run.stderr
    assert [f.exists() for f in files] == [False, True, True]
    run = expire("--config", str(toml), "--max-size", "1K")  # flags win
    assert run.returncode == 0 and [f.exists() for f in files] == [False, False, True]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--max-age", "1d", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["--max-age", "soon"], 2, "flowcapd expire: max-age: 'soon' is not a duration"),
        (["--max-size", "-1G"], 2, "expected one argument"),
        ([], 2, "flowcapd expire: nothing to do: give --max-age and/or --max-size"),
        (["-l", "{missing}", "--max-age", "1d"], 1, "no such directory"),
    ],
)
def test_expire_exit_codes(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    args = [a.replace("{missing}", str(tmp_path / "missing")) for a in args]
    run = expire(*(["-l", str(tmp_path)] if "-l" not in args else []), *args)
    assert run.returncode == code, run.stderr
    assert message in run.stderr and run.stdout == ""
