"""``kill -9`` and recovery: whatever moment the kill hits, the next start turns every
spool into readable Parquet, keeps every flow that was on disk before the kill, and
never stores a flow twice."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pyarrow.parquet as pq

from tests.collector.exports import flow_ids, stored_table, v5_datagrams
from tests.collector.harness import (
    RECEIVE_BUFFER,
    assert_finished,
    datagram_budget,
    flow_files,
    one_day_interval,
    spool_rows,
    spools,
    temporary_files,
    wait_for,
)

WAIT_S = 30.0
FLOWS_PER_DATAGRAM = 30


def _start(flowcapd, flow_dir: Path, *args: str, metrics: bool = False):
    return flowcapd.start(flow_dir, "-B", RECEIVE_BUFFER, "-b", "127.0.0.1", *args, metrics=metrics)


def _ids_on_disk(flow_dir: Path) -> list[int]:
    """Flow ids in every Parquet file and live spool now (a lower bound of what a kill
    now keeps: complete frames are in the page cache, which a killed process cannot
    take back)."""
    return flow_ids(stored_table(flow_dir))


def _rows_on_disk(flow_dir: Path) -> int:
    return len(_ids_on_disk(flow_dir))


def _parquet_ids(flow_dir: Path) -> list[int]:
    """Flow ids of every Parquet file, each file read on its own (all must be readable)."""
    ids: list[int] = []
    for path in flow_files(flow_dir):
        ids += flow_ids(pq.read_table(path))
    return ids


def test_kill9_then_recovery(tmp_path: Path, flowcapd, exporters) -> None:
    """Flows reported written survive; so does every complete frame of the spool being
    written at the kill; the restart recovers them into Parquet before it listens."""
    exporter = exporters()
    interval = one_day_interval()  # one spool, not one rotated by time meanwhile
    daemon = _start(flowcapd, tmp_path, "-t", interval, metrics=True)
    exporter.send(v5_datagrams(0, 50), daemon.target)
    wait_for(
        lambda: daemon.metric("flowcap_flows_written_total") == 1500,
        WAIT_S,
        "1500 flows written",
    )
    # then more, and the kill while they are being written
    more = datagram_budget(daemon, 400)
    exporter.send(v5_datagrams(1500, more), daemon.target)
    sent = 1500 + more * FLOWS_PER_DATAGRAM
    wait_for(lambda: spool_rows(tmp_path) >= 3000, WAIT_S, "3000 flows in the spool")
    known = set(_ids_on_disk(tmp_path))
    daemon.kill9()
    assert len(spools(tmp_path)) == 1
    assert flow_files(tmp_path) == []
    assert len(known) >= 3000

    restarted = _start(flowcapd, tmp_path, "-t", interval)
    assert spools(tmp_path) == []  # recovered before listening
    assert temporary_files(tmp_path) == []
    recovered = _parquet_ids(tmp_path)
    assert len(recovered) == len(set(recovered)), "a flow recovered twice"
    assert known <= set(recovered)
    assert set(recovered) <= set(range(sent))
    assert "recovered" in restarted.stderr
    assert restarted.stop() == 0
    assert_finished(tmp_path)
    assert sorted(_parquet_ids(tmp_path)) == sorted(recovered)  # the restart added nothing


def test_kill9_repeatedly_mid_write(tmp_path: Path, flowcapd, exporters) -> None:
    """Eight kills at varied moments: right after a burst (mid-append), once the spool
    holds some of it, just after a SIGHUP (mid-conversion to Parquet), and once
    everything is in the spool. Then a clean stop: all files readable, no flow twice,
    none that was on disk before a kill lost, none that was never sent."""
    rng = random.Random(20261122)
    exporter = exporters()
    sent: set[int] = set()
    known: set[int] = set()
    next_id = 0
    for iteration in range(8):
        daemon = _start(flowcapd, tmp_path)
        assert spools(tmp_path) == [], f"iteration {iteration}: a spool survived recovery"
        on_disk_before = len(_parquet_ids(tmp_path))
        count = rng.randint(1, datagram_budget(daemon, 300))
        exporter.send(v5_datagrams(next_id, count), daemon.target)
        sent |= set(range(next_id, next_id + count * FLOWS_PER_DATAGRAM))
        next_id += count * FLOWS_PER_DATAGRAM
        moment = iteration % 4
        # on disk: in spools or Parquet (the default -t 300 may rotate meanwhile)
        if moment == 1:
            some = on_disk_before + rng.randint(1, count) * FLOWS_PER_DATAGRAM // 2
            wait_for(lambda n=some: _rows_on_disk(tmp_path) >= n, WAIT_S, f"{some} flows")
        elif moment == 2:
            daemon.send_signal(signal.SIGHUP)  # the kill hits the conversion to Parquet
        elif moment == 3:
            wait_for(
                lambda n=on_disk_before + count * FLOWS_PER_DATAGRAM: _rows_on_disk(tmp_path) >= n,
                WAIT_S,
                "the whole burst on disk",
            )
        ids = _ids_on_disk(tmp_path)
        known |= set(ids)
        daemon.kill9()
        assert len(ids) >= on_disk_before

    final = _start(flowcapd, tmp_path)
    exporter.send(v5_datagrams(next_id, 5), final.target)
    sent |= set(range(next_id, next_id + 5 * FLOWS_PER_DATAGRAM))
    assert final.stop() == 0, final.stderr
    assert_finished(tmp_path)

    ids = _parquet_ids(tmp_path)
    assert len(ids) == len(set(ids)), "a flow stored twice"
    assert set(ids) <= sent
    assert known <= set(ids), f"{len(known - set(ids))} flows on disk before a kill were lost"
    # the last, clean run lost nothing
    assert set(range(next_id, next_id + 5 * FLOWS_PER_DATAGRAM)) <= set(ids)
    assert sorted(flow_ids(stored_table(tmp_path))) == sorted(ids)
