"""``--series INTERVAL`` and ``--plot FILE.png``: flows, packets, bytes and bits per second
per time bucket, the traffic graph NfSen used to draw.

Buckets are aligned on the interval (``5m`` -> :00, :05, …) by each flow's start time;
each batch is bucketed and summed with Arrow, buckets merge across batches, and empty
buckets between the first and the last are printed as zeros so a gap shows as a gap.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowq.numbers import format_numbers
from flowq.output import FormatKind, OutputFormat, time_texts
from flowq.output_machine import iso_times


class SeriesAccumulator:
    def __init__(self, interval: timedelta) -> None:
        self.interval_ms = int(interval.total_seconds() * 1000)
        self._totals: dict[int, np.ndarray] = {}

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        start = pc.cast(batch.column("time_start"), pa.int64())
        bucket = pc.multiply(pc.divide(start, self.interval_ms), self.interval_ms)
        flows = (
            pc.fill_null(batch.column("flows"), 1)
            if "flows" in batch.schema.names
            else pa.nulls(batch.num_rows, pa.uint64()).fill_null(1)
        )
        table = pa.table(
            {
                "bucket": bucket,
                "flows": pc.cast(flows, pa.uint64()),
                "packets": pc.cast(pc.fill_null(batch.column("packets"), 0), pa.uint64()),
                "bytes": pc.cast(pc.fill_null(batch.column("bytes"), 0), pa.uint64()),
            }
        )
        grouped = table.group_by("bucket").aggregate(
            [("flows", "sum"), ("packets", "sum"), ("bytes", "sum")]
        )
        for row in zip(
            grouped["bucket"].to_pylist(),
            grouped["flows_sum"].to_pylist(),
            grouped["packets_sum"].to_pylist(),
            grouped["bytes_sum"].to_pylist(),
            strict=True,
        ):
            if row[0] is None:
                continue
            current = self._totals.setdefault(row[0], np.zeros(3, dtype=np.uint64))
            current += np.array(row[1:], dtype=np.uint64)

    def table(self) -> pa.Table:
        """One row per bucket from the first to the last, zeros where nothing was seen."""
        if not self._totals:
            empty = pa.array([], pa.uint64())
            return pa.table({"time": pa.array([], pa.timestamp("ms", tz="UTC")), "flows": empty,
                             "packets": empty, "bytes": empty, "bps": empty})  # fmt: skip
        first, last = min(self._totals), max(self._totals)
        buckets = np.arange(first, last + self.interval_ms, self.interval_ms, dtype=np.int64)
        sums = np.zeros((len(buckets), 3), dtype=np.uint64)
        for bucket, values in self._totals.items():
            sums[(bucket - first) // self.interval_ms] = values
        seconds = self.interval_ms / 1000
        bps = (sums[:, 2].astype(np.float64) * 8 / seconds).astype(np.uint64)
        return pa.table(
            {
                "time": pa.array(buckets, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                "flows": sums[:, 0],
                "packets": sums[:, 1],
                "bytes": sums[:, 2],
                "bps": bps,
            }
        )

    def write(self, out: TextIO, fmt: OutputFormat, *, utc: bool, plain: bool, quiet: bool) -> None:
        table = self.table()
        if fmt.kind in (FormatKind.CSV, FormatKind.JSON, FormatKind.NDJSON):
            times = iso_times(table["time"].combine_chunks()).to_pylist()
            rows = [
                {"time": t, "flows": f, "packets": p, "bytes": b, "bps": r}
                for t, f, p, b, r in zip(times, *(table[c].to_pylist() for c in
                                                 ("flows", "packets", "bytes", "bps")), strict=True)
            ]  # fmt: skip
            if fmt.kind is FormatKind.CSV:
                if not quiet:
                    out.write("time,flows,packets,bytes,bps\n")
                for row in rows:
                    out.write(",".join(str(v) for v in row.values()) + "\n")
            elif fmt.kind is FormatKind.NDJSON:
                out.writelines(json.dumps(row) + "\n" for row in rows)
            else:
                out.write(json.dumps(rows) + "\n")
            return
        ms = np.asarray(pc.cast(table["time"], pa.int64()), dtype=np.int64)
        times = time_texts(ms, utc=utc).to_pylist()
        numbers = {
            c: format_numbers(np.asarray(table[c], dtype=np.uint64), plain=plain).to_pylist()
            for c in ("flows", "packets", "bytes", "bps")
        }
        if not quiet:
            out.write(f"{'Interval start':<23} {'Flows':>10} {'Packets':>10} {'Bytes':>10} "
                      f"{'bps':>10}\n")  # fmt: skip
        for i, time in enumerate(times):
            out.write(
                f"{time:<23} {numbers['flows'][i]:>10} {numbers['packets'][i]:>10} "
                f"{numbers['bytes'][i]:>10} {numbers['bps'][i]:>10}\n"
            )

    def plot(self, path: Path) -> None:
        """Draw bits/s and flows per interval into a PNG (matplotlib, no display)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        table = self.table()
        times = table["time"].to_pylist()
        figure, (rate_axis, flow_axis) = plt.subplots(2, 1, sharex=True, figsize=(10, 5))
        rate_axis.fill_between(times, table["bps"].to_pylist(), step="post", alpha=0.6)
        rate_axis.set_ylabel("bits/s")
        rate_axis.set_title("traffic per interval")
        flow_axis.step(times, table["flows"].to_pylist(), where="post")
        flow_axis.set_ylabel("flows")
        flow_axis.set_xlabel("time (UTC)")
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
