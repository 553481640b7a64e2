"""SIGHUP re-reads ``--config``: the allow list and log level apply at once (in every
worker with ``--workers N``), anything else that changed is logged once as "needs a
restart: KEY", and a bad file keeps the running settings with one error line."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import pytest

from collector.config import ConfigError, load_config, reload_config
from tests.collector.exports import flow_ids, stored_table, v5_datagrams
from tests.collector.harness import FLOWCAPD, wait_for

WAIT_S = 30.0


def _write(path: Path, flow_dir: Path, **settings: str) -> Path:
    lines = [
        f'flow_dir = "{flow_dir}"',
        "port = 0",
        'bind = "127.0.0.1"',
        'metrics = "127.0.0.1:0"',
        "flush_interval = 0.2",
        *(f"{key} = {value}" for key, value in settings.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the rules, in process ---------------------------------------------------------------


def test_reload_applies_live_settings_and_names_the_rest(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "c.toml", tmp_path, log_level='"warning"')
    running = load_config(["--config", str(config_file), "-t", "60"])
    _write(
        config_file,
        tmp_path,
        log_level='"debug"',
        allow='["10.0.0.0/8"]',
        rotation_interval="120",  # the flag (-t 60) still wins: no change
        workers="3",
        subdir_layout="2",
    )
    outcome = reload_config(running)
    assert outcome.config.log_level == "debug"
    assert outcome.config.allow == ("10.0.0.0/8",)
    assert [str(n) for n in outcome.config.allowed_networks] == ["10.0.0.0/8"]
    assert outcome.needs_restart == ("subdir_layout", "workers")
    # what needs a restart keeps its running value until then
    assert outcome.config == replace(running, log_level="debug", allow=("10.0.0.0/8",))


def test_reload_of_a_bad_file_raises_and_changes_nothing(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "c.toml", tmp_path)
    running = load_config(["--config", str(config_file)])
    config_file.write_text("port = \n")
    with pytest.raises(ConfigError):
        reload_config(running)
    assert running.allow == () and running.port == 0


# -- a real daemon --------------------------------------------------------------------------


def _dropped(daemon) -> float:
    return daemon.metric("flowcap_packets_dropped_total", reason="not_allowed")


def test_sighup_reloads_allow_list_and_log_level(tmp_path: Path, flowcapd, exporters) -> None:
    flow_dir = tmp_path / "flows"
    config_file = _write(tmp_path / "flowcapd.toml", flow_dir, log_level='"warning"')
    daemon = flowcapd.run([str(FLOWCAPD), "--config", str(config_file)], metrics=True)
    stranger, friend = exporters("127.0.0.1"), exporters("127.0.0.2")
    stranger.send(v5_datagrams(0, 3), daemon.target)
    wait_for(lambda: daemon.metric("flowcap_flows_written_total") == 90, WAIT_S, "90 flows")

    _write(
        config_file,
        flow_dir,
        log_level='"info"',
        allow='["127.0.0.2/32"]',
        rotation_interval="120",
    )
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_line(r"needs a restart: rotation_interval")
    daemon.wait_line(r"INFO reloaded .*flowcapd\.toml: allow 127\.0\.0\.2/32, log level info")
    # the two lines may come in either order: the reload's own line is the first at info
    marker = next(i for i, line in enumerate(daemon.lines) if " INFO reloaded " in line)
    stranger.send(v5_datagrams(1000, 4), daemon.target)
    friend.send(v5_datagrams(2000, 2), daemon.target)
    wait_for(
        lambda: _dropped(daemon) == 4 and daemon.metric("flowcap_flows_written_total") == 150,
        WAIT_S,
        "4 datagrams not allowed, 60 more flows from the allowed exporter",
    )

    config_file.write_text("allow = [\n")  # a typo: the daemon carries on as it was
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_line(r"ERROR reload failed, keeping the running settings: config ")
    stranger.send(v5_datagrams(3000, 1), daemon.target)
    wait_for(lambda: _dropped(daemon) == 5, WAIT_S, "the old allow list still in force")
    assert daemon.process.poll() is None

    assert daemon.stop() == 0, daemon.stderr
    before, after = daemon.lines[:marker], daemon.lines[marker:]
    assert not [line for line in before if " INFO " in line]  # at warning: no info lines
    assert any(" INFO stopped: " in line for line in after)  # at info after the reload
    assert sum("needs a restart" in line for line in daemon.lines) == 1
    assert sum("reload failed" in line for line in daemon.lines) == 1
    assert "Traceback" not in daemon.stderr
    assert sorted(flow_ids(stored_table(flow_dir))) == [
        *range(90),
        *range(2000, 2060),
    ]


def test_sighup_reloads_every_worker(tmp_path: Path, flowcapd, exporters) -> None:
    """``--workers 2``: the parent forwards SIGHUP, each worker applies the new allow
    list (sixteen exporters' source ports spread over both workers), and the parent
    alone says what needs a restart."""
    flow_dir = tmp_path / "flows"
    config_file = _write(tmp_path / "flowcapd.toml", flow_dir, workers="2", log_level='"warning"')
    daemon = flowcapd.run([str(FLOWCAPD), "--config", str(config_file)], metrics=True)
    senders = [exporters("127.0.0.1") for _ in range(16)]
    for index, sender in enumerate(senders):
        sender.send(v5_datagrams(index * 100, 1), daemon.target)
    wait_for(lambda: daemon.metric("flowcap_flows_written_total") == 480, WAIT_S, "480 flows")

    _write(
        config_file,
        flow_dir,
        workers="2",
        allow='["127.0.0.2/32"]',
        log_level='"info"',
        subdir_layout="1",
    )
    marker = len(daemon.lines)
    daemon.send_signal(signal.SIGHUP)
    for worker in (0, 1):
        daemon.wait_line(rf"worker {worker}: reloaded settings applied")
    for sender in senders:
        sender.send(v5_datagrams(5000, 1), daemon.target)
    wait_for(lambda: _dropped(daemon) == 16, WAIT_S, "all 16 datagrams not allowed")
    assert daemon.stop() == 0, daemon.stderr
    assert sum("needs a restart: subdir_layout" in line for line in daemon.lines) == 1
    # info level in the workers too: before the reload none, at stop each one's summary
    assert not [line for line in daemon.lines[:marker] if " INFO " in line]
    assert sum(" INFO stopped: " in line for line in daemon.lines[marker:]) == 2
    assert len(flow_ids(stored_table(flow_dir))) == 480
