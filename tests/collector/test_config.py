"""``--config FILE``: every TOML key works, flags win over the file, and a bad setting
is one line on stderr and exit 2 (never a traceback)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from collector import daemon as daemon_module
from collector.daemon import main
from storage.naming import parse_name
from tests.collector.exports import flow_ids, stored_table, v5_datagrams
from tests.collector.harness import FLOWCAPD, assert_finished, flow_files, wait_for
from tests.corpus import corpus_dir

WAIT_S = 30.0
IS_ROOT = os.geteuid() == 0


def _toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _granted(daemon) -> int:
    return int(daemon.wait_line(r"receive buffer (\d+) bytes")[1])


def test_every_key_from_the_file(tmp_path: Path, flowcapd, exporters) -> None:
    flow_dir = tmp_path / "from-toml"
    config = _toml(
        tmp_path / "flowcapd.toml",
        f"""
flow_dir = "{flow_dir}"
port = 0
bind = "127.0.0.1"
rotation_interval = 120
subdir_layout = 1
socket_buffer = 8388608
workers = 1
metrics = "127.0.0.1:0"
allow = ["127.0.0.1/32"]
log_level = "debug"
flush_interval = 0.2
""",
    )
    daemon = flowcapd.run([str(FLOWCAPD), "--config", str(config)], metrics=True)
    assert daemon.host == "127.0.0.1"
    assert _granted(daemon) == 8388608 if IS_ROOT else _granted(daemon) <= 8388608
    allowed, other = exporters("127.0.0.1"), exporters("127.0.0.2")
    allowed.send(v5_datagrams(0, 4), daemon.target)
    other.send(v5_datagrams(1000, 3), daemon.target)
    wait_for(
        lambda: (
            daemon.metric("flowcap_flows_written_total") == 120
            and daemon.metric("flowcap_packets_dropped_total", reason="not_allowed") == 3
        ),
        WAIT_S,
        "120 flows written, 3 datagrams not allowed",
    )
    assert daemon.stop() == 0, daemon.stderr

    files = flow_files(flow_dir)
    assert files and all(f.parent != flow_dir for f in files)  # -S 1: %Y/%m/%d
    for path in files:
        name = parse_name(path.name)
        assert name is not None and name.interval_end_s - name.interval_start_s == 120
        assert path.parent.relative_to(flow_dir).parts[0] == path.name[8:12]  # the year
    assert sorted(flow_ids(stored_table(flow_dir))) == list(range(120))
    assert_finished(flow_dir)


def test_flags_win_over_the_file(tmp_path: Path, flowcapd, exporters) -> None:
    from_file, from_flags = tmp_path / "from-file", tmp_path / "from-flags"
    config = _toml(
        tmp_path / "flowcapd.toml",
        f"""
flow_dir = "{from_file}"
port = 9
bind = "::1"
rotation_interval = 120
subdir_layout = 1
socket_buffer = 65536
workers = 2
metrics = "off"
allow = ["127.0.0.2/32"]
log_level = "error"
""",
    )
    argv = [
        str(FLOWCAPD),
        "--config",
        str(config),
        "-l",
        str(from_flags),
        "-p",
        "0",
        "-b",
        "127.0.0.1",
        "-t",
        "60",
        "-S",
        "0",
        "-B",
        "8388608",
        "--workers",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--allow",
        "127.0.0.1/32",
        "--log-level",
        "info",
    ]
    daemon = flowcapd.run(argv, metrics=True)  # info lines: --log-level won
    assert daemon.host == "127.0.0.1" and daemon.port != 9
    assert _granted(daemon) == 8388608 if IS_ROOT else _granted(daemon) > 0  # one worker
    exporters("127.0.0.1").send(v5_datagrams(0, 2), daemon.target)
    wait_for(
        lambda: daemon.metric("flowcap_flows_written_total") == 60,
        WAIT_S,
        "60 flows from the exporter the flag allows",
    )
    assert daemon.stop() == 0, daemon.stderr

    assert not from_file.exists()
    files = flow_files(from_flags)
    assert files and all(f.parent == from_flags for f in files)
    for path in files:
        name = parse_name(path.name)
        assert name is not None and name.interval_end_s - name.interval_start_s == 60
    assert sorted(flow_ids(stored_table(from_flags))) == list(range(60))


def test_log_level_from_the_file(tmp_path: Path) -> None:
    """Offline ingest (no port to find): ``log_level = "warning"`` hides the info lines,
    and ``--log-level info`` brings them back."""
    capture = corpus_dir() / "graylog-plugin-netflow/netflow5.pcap"
    if not capture.is_file():
        pytest.skip("shared corpus not found")
    config = _toml(tmp_path / "flowcapd.toml", 'log_level = "warning"\n')
    base = [str(FLOWCAPD), "--config", str(config), "--read", str(capture)]
    quiet = subprocess.run(
        [*base, "-l", str(tmp_path / "a")], capture_output=True, text=True, timeout=60
    )
    loud = subprocess.run(
        [*base, "-l", str(tmp_path / "b"), "--log-level", "info"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == ""
    assert "INFO read 3 datagrams: 4 flows written" in loud.stderr


INVALID_FILES = [
    ('port = "abc"', "port: 'abc' is not a whole number"),
    ("port = 70000", "port 70000 is not 0-65535"),
    ("port = 1.5", "port: 1.5 is not a whole number"),
    ('bind = "localhost"', "bind address 'localhost' is not an IP address"),
    ("rotation_interval = 0", "rotation interval 0 s is not 1-86400"),
    ("rotation_interval = 100000000000000000000", "is not 1-86400"),
    ("subdir_layout = 9", "sub-directory layout 9 is not 0-8"),
    ("socket_buffer = 100", "socket buffer 100 bytes is not 4096-"),
    ("socket_buffer = 3000000000", "socket buffer 3000000000 bytes is not 4096-"),
    ("workers = 0", "workers 0 is not 1-256"),
    ('workers = "2"', "workers: '2' is not a whole number"),
    ('metrics = "nope"', "metrics 'nope' is not ADDR:PORT or 'off'"),
    ('metrics = "127.0.0.1:99999"', "is not ADDR:PORT or 'off'"),
    ('allow = ["300.0.0.0/8"]', "allow: '300.0.0.0/8' is not an address or CIDR"),
    ("allow = 5", "allow: expected CIDR strings, got 5"),
    ('log_level = "loud"', "log level 'loud' is not debug/info/warning/error"),
    ('flush_interval = "1s"', "flush_interval: '1s' is not a number of seconds"),
    ("flush_interval = 0", "flush interval 0.0 s must be a positive number"),
    ("flush_interval = nan", "must be a positive number"),
    ("flush_interval = inf", "must be a positive number"),
    ("flow_dir = 5", "flow_dir: 5 is not a directory path"),
    ('flow_dir = ""', "flow_dir: '' is not a directory path"),
    ("flow_dirs = 1", "unknown key 'flow_dirs'"),
    ("[daemon]\nport = 1", "unknown key 'daemon'"),
    ("port = ", "Invalid value (at line 1, column 8)"),
]


@pytest.fixture
def refuse_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``main()`` runs in this process: a configuration wrongly accepted must fail the
    test, not start a daemon on the default port."""

    def accepted(level: str) -> None:
        raise AssertionError("the configuration was accepted")

    monkeypatch.setattr(daemon_module, "setup_logging", accepted)
    monkeypatch.chdir(tmp_path)  # the default ./flows would land here


@pytest.mark.usefixtures("refuse_to_run")
@pytest.mark.parametrize(("text", "message"), INVALID_FILES, ids=[t for t, _ in INVALID_FILES])
def test_invalid_file_is_one_line_and_exit_2(tmp_path: Path, capsys, text: str, message: str):
    config = _toml(tmp_path / "bad.toml", text + "\n")
    assert main(["--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("flowcapd: ")
    assert message in err
    assert not (tmp_path / "flows").exists()


@pytest.mark.usefixtures("refuse_to_run")
def test_missing_config_file(tmp_path: Path, capsys) -> None:
    assert main(["--config", str(tmp_path / "nope.toml")]) == 2
    _, err = capsys.readouterr()
    assert (
        err == f"flowcapd: cannot read config {tmp_path / 'nope.toml'}: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-p", "70000"], "flowcapd: port 70000 is not 0-65535\n"),
        (["-t", "0"], "flowcapd: rotation interval 0 s is not 1-86400\n"),
        (["-B", "3000000000"], "flowcapd: socket buffer 3000000000 bytes is not 4096-2147483647\n"),
        (["--allow", "10.0.0.0/33"], "flowcapd: allow: '10.0.0.0/33' is not an address or CIDR\n"),
    ],
)
def test_invalid_flag_from_the_console_script(tmp_path: Path, flags: list[str], message: str):
    """The installed ``flowcapd``: exit 2, exactly one line, nothing else."""
    result = subprocess.run(
        [str(FLOWCAPD), "-l", str(tmp_path / "flows"), *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message)


def test_flag_of_the_wrong_type_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(FLOWCAPD), "-p", "abc"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1] == "flowcapd: error: argument -p: invalid int value: 'abc'"
    )
    assert "Traceback" not in result.stderr
