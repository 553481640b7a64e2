"""``python -m bench decode``: flows per second from datagram bytes to Arrow, on one core.

What is timed is what the daemon will do with each datagram: ``feed_datagram`` for
every datagram, ``flush()`` every ``--flush-every`` datagrams, and ``to_record_batch``
for every batch flushed. The same datagrams (the first ``--peer-datagrams`` of them)
go through the PyPI ``netflow`` package's ``parse_packet``, counting the flows it
returns; both are reported in flows per second, so the sample sizes may differ.

Each timed run starts from a fresh decoder, so learning the templates is included, as
it is after a daemon restart. Before timing, one untimed run checks that flowcap
decoded every generated flow, with the generated packet and byte totals.

Targets (reported, never asserted: style §7): >= 2,000,000 flows/s on the
fixed-length paths, and >= 50x the ``netflow`` package.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from bench.datagrams import GENERATORS, Datagram, Scenario
from bench.environment import RESULTS_DIR, machine_info, pin_to_one_cpu, write_json
from parsers.decoder import FlowDecoder
from parsers.events import FlowBatch
from storage.schema import to_record_batch

NAME: Final = "decode"
HELP: Final = "decode throughput: flowcap vs the netflow package, flows/s on one core"

TARGET_FLOWS_PER_S: Final = 2_000_000
TARGET_RATIO: Final = 50.0
#: datagrams between flushes, as the daemon will flush
FLUSH_EVERY_DATAGRAMS: Final = 256
SEED: Final = 20240607


@dataclass(frozen=True, slots=True)
class Sizes:
    datagrams: int
    repeat: int
    peer_datagrams: int
    peer_repeat: int


FULL: Final = Sizes(datagrams=20_000, repeat=5, peer_datagrams=1_000, peer_repeat=3)
QUICK: Final = Sizes(datagrams=600, repeat=2, peer_datagrams=40, peer_repeat=1)


@dataclass(frozen=True, slots=True)
class FlowcapRun:
    """One pass over all datagrams; the phases add up to (almost) ``elapsed_s``."""

    elapsed_s: float
    walk_s: float  # feed_datagram
    flush_s: float  # flush(): numpy decode of the staged sets and batch assembly
    arrow_s: float  # to_record_batch
    flows: int  # rows of all batches
    batches: int


@dataclass(frozen=True, slots=True)
class PeerRun:
    elapsed_s: float
    flows: int


# -- the timed loops ---------------------------------------------------------------------

_Input = list[list[tuple[bytes, tuple[str, int], int]]]


def _chunks(datagrams: Sequence[Datagram], flush_every: int) -> _Input:
    rows = [(d.payload, d.exporter, d.received_at_ns) for d in datagrams]
    return [rows[i : i + flush_every] for i in range(0, len(rows), flush_every)]


def run_flowcap(chunks: _Input) -> FlowcapRun:
    """Decode everything once with a fresh decoder, flushing after each chunk."""
    decoder = FlowDecoder()
    feed = decoder.feed_datagram
    clock = time.perf_counter
    walk = flush = arrow = 0.0
    flows = batches = 0
    start = clock()
    for chunk in chunks:
        t0 = clock()
        for payload, exporter, received_at_ns in chunk:
            feed(payload, exporter, received_at_ns)
        t1 = clock()
        flushed = decoder.flush()
        t2 = clock()
        for batch in flushed:
            to_record_batch(batch)
            flows += batch.num_rows
        t3 = clock()
        batches += len(flushed)
        walk += t1 - t0
        flush += t2 - t1
        arrow += t3 - t2
    return FlowcapRun(clock() - start, walk, flush, arrow, flows, batches)


def _column_sum(batch: FlowBatch, column: str) -> int:
    values = batch.columns[column]
    if not isinstance(values, np.ndarray):
        raise TypeError(f"{column}: expected a numeric column")
    return int(values.sum())


def check_flowcap(scenario: Scenario, chunks: _Input) -> tuple[int, str | None]:
    """Untimed: decode once and compare the flow count and packet/byte totals."""
    decoder = FlowDecoder()
    flows = packets = octets = 0
    for chunk in chunks:
        for payload, exporter, received_at_ns in chunk:
            decoder.feed_datagram(payload, exporter, received_at_ns)
        for batch in decoder.flush():
            to_record_batch(batch)
            flows += batch.num_rows
            packets += _column_sum(batch, "packets")
            octets += _column_sum(batch, "bytes")
    problems = []
    if flows != scenario.flows:
        problems.append(f"decoded {flows} flows of {scenario.flows}")
    if packets != scenario.packets_total or octets != scenario.bytes_total:
        problems.append(
            f"packets {packets} (generated {scenario.packets_total}), "
            f"bytes {octets} (generated {scenario.bytes_total})"
        )
    dropped = dict(decoder.stats.dropped)
    if dropped:
        problems.append(f"dropped datagrams: {dropped}")
    return flows, "; ".join(problems) or None


def run_peer(datagrams: Sequence[Datagram]) -> PeerRun:
    """The ``netflow`` package as its own collector uses it: one template dict per
    exporter (its templates are keyed by id only), ``parse_packet`` per datagram."""
    from netflow import parse_packet

    templates: dict[tuple[str, int], dict[str, dict]] = {
        d.exporter: {"netflow": {}, "ipfix": {}} for d in datagrams
    }
    rows = [(d.payload, templates[d.exporter]) for d in datagrams]
    flows = 0
    clock = time.perf_counter
    start = clock()
    for payload, exporter_templates in rows:
        flows += len(parse_packet(payload, exporter_templates).flows)
    return PeerRun(clock() - start, flows)


# -- one scenario ------------------------------------------------------------------------


def _rate(flows: int, seconds: float) -> float:
    return flows / seconds if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class FlowcapResult:
    flows_decoded: int
    problem: str | None  # None: every generated flow decoded, totals equal
    runs: list[FlowcapRun]

    @property
    def rates(self) -> list[float]:
        return [_rate(r.flows, r.elapsed_s) for r in self.runs]

    @property
    def median_flows_per_s(self) -> float:
        return statistics.median(self.rates)

    @property
    def best_flows_per_s(self) -> float:
        return max(self.rates)

    @property
    def median_run(self) -> FlowcapRun:
        return sorted(self.runs, key=lambda r: r.elapsed_s)[len(self.runs) // 2]

    def ns_per_flow(self) -> dict[str, float]:
        """Phases of the median run, in ns per flow."""
        run = self.median_run
        flows = max(run.flows, 1)
        return {
            "walk": run.walk_s * 1e9 / flows,
            "flush": run.flush_s * 1e9 / flows,
            "arrow": run.arrow_s * 1e9 / flows,
            "total": run.elapsed_s * 1e9 / flows,
        }


@dataclass(frozen=True, slots=True)
class PeerResult:
    datagrams: int
    flows_generated: int
    runs: list[PeerRun]
    error: str | None  # the package could not decode these datagrams

    @property
    def median_flows_per_s(self) -> float | None:
        rates = [_rate(r.flows, r.elapsed_s) for r in self.runs]
        return statistics.median(rates) if rates else None

    @property
    def best_flows_per_s(self) -> float | None:
        rates = [_rate(r.flows, r.elapsed_s) for r in self.runs]
        return max(rates) if rates else None


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    flowcap: FlowcapResult
    peer: PeerResult | None

    def ratio(self, best: bool = False) -> float | None:
        if self.peer is None:
            return None
        theirs = self.peer.best_flows_per_s if best else self.peer.median_flows_per_s
        ours = self.flowcap.best_flows_per_s if best else self.flowcap.median_flows_per_s
        return ours / theirs if theirs else None

    def target_rate_met(self) -> bool | None:
        """The flows/s target applies to the fixed-length paths (median run)."""
        if not self.scenario.is_fixed_length:
            return None
        return self.flowcap.median_flows_per_s >= TARGET_FLOWS_PER_S

    def target_ratio_met(self) -> bool | None:
        ratio = self.ratio()
        return None if ratio is None else ratio >= TARGET_RATIO

    def to_json(self) -> dict[str, object]:
        s, fc, peer = self.scenario, self.flowcap, self.peer
        return {
            "name": s.name,
            "description": s.description,
            "fixed_length": s.is_fixed_length,
            "datagrams": len(s.datagrams),
            "payload_bytes": s.payload_bytes,
            "flows_generated": s.flows,
            "flowcap": {
                "flows_decoded": fc.flows_decoded,
                "correct": fc.problem is None,
                "problem": fc.problem,
                "batches_per_run": fc.runs[0].batches,
                "runs": [
                    {
                        "elapsed_s": r.elapsed_s,
                        "walk_s": r.walk_s,
                        "flush_s": r.flush_s,
                        "arrow_s": r.arrow_s,
                        "flows_per_s": rate,
                    }
                    for r, rate in zip(fc.runs, fc.rates, strict=True)
                ],
                "median_flows_per_s": fc.median_flows_per_s,
                "best_flows_per_s": fc.best_flows_per_s,
                "median_run_ns_per_flow": fc.ns_per_flow(),
            },
            "netflow": None
            if peer is None
            else {
                "datagrams": peer.datagrams,
                "flows_generated": peer.flows_generated,
                "flows_decoded": peer.runs[0].flows if peer.runs else None,
                "runs_s": [r.elapsed_s for r in peer.runs],
                "median_flows_per_s": peer.median_flows_per_s,
                "best_flows_per_s": peer.best_flows_per_s,
                "error": peer.error,
            },
            "ratio_median": self.ratio(),
            "ratio_best": self.ratio(best=True),
            "targets_met": {
                "flows_per_s": self.target_rate_met(),
                "ratio_vs_netflow": self.target_ratio_met(),
            },
        }


def measure_scenario(
    scenario: Scenario, sizes: Sizes, flush_every: int, peer: bool
) -> ScenarioResult:
    """Check, then time flowcap and the peer on one scenario."""
    chunks = _chunks(scenario.datagrams, flush_every)
    decoded, problem = check_flowcap(scenario, chunks)
    runs = []
    for _ in range(sizes.repeat):
        gc.collect()
        runs.append(run_flowcap(chunks))
    peer_result = _measure_peer(scenario, sizes) if peer else None
    return ScenarioResult(scenario, FlowcapResult(decoded, problem, runs), peer_result)


def _measure_peer(scenario: Scenario, sizes: Sizes) -> PeerResult:
    subset = scenario.datagrams[: sizes.peer_datagrams]
    generated = sum(d.flows for d in subset)
    runs: list[PeerRun] = []
    try:
        for _ in range(sizes.peer_repeat):
            gc.collect()
            runs.append(run_peer(subset))
    except Exception as error:  # the peer's failure is a result to report, not ours
        message = f"{type(error).__name__}: {error}".rstrip(": ")
        return PeerResult(len(subset), generated, [], message)
    return PeerResult(len(subset), generated, runs, None)


# -- output ------------------------------------------------------------------------------


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for scale, suffix in ((1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "NO")


def format_table(results: Sequence[ScenarioResult]) -> str:
    """The human summary: throughput, ratio, targets; then where the time goes."""
    head = (
        f"{'scenario':<13} {'flows':>9} {'flowcap/s med':>14} {'best':>9} "
        f"{'netflow/s':>10} {'ratio':>7}  {'>=2M/s':>6} {'>=50x':>5}"
    )
    lines = [head, "-" * len(head)]
    notes = []
    for r in results:
        ratio = r.ratio()
        peer_rate = r.peer.median_flows_per_s if r.peer else None
        lines.append(
            f"{r.scenario.name:<13} {r.scenario.flows:>9} "
            f"{_si(r.flowcap.median_flows_per_s):>14} {_si(r.flowcap.best_flows_per_s):>9} "
            f"{_si(peer_rate):>10} {f'{ratio:.0f}x' if ratio else '-':>7}  "
            f"{_mark(r.target_rate_met()):>6} {_mark(r.target_ratio_met()):>5}"
        )
        if r.peer and r.peer.error:
            notes.append(f"  {r.scenario.name}: the netflow package failed: {r.peer.error}")
        if r.flowcap.problem:
            notes.append(f"  {r.scenario.name}: FLOWCAP DECODE MISMATCH: {r.flowcap.problem}")
    lines += notes
    lines.append("")
    lines.append(
        f"{'ns per flow (median run)':<26} {'walk':>7} {'flush':>7} {'arrow':>7} {'total':>7}"
    )
    for r in results:
        per = r.flowcap.ns_per_flow()
        lines.append(
            f"{r.scenario.name:<26} {per['walk']:>7.0f} {per['flush']:>7.0f} "
            f"{per['arrow']:>7.0f} {per['total']:>7.0f}"
        )
    return "\n".join(lines)


def _profile(scenario: Scenario, flush_every: int) -> str:
    chunks = _chunks(scenario.datagrams, flush_every)
    profiler = cProfile.Profile()
    profiler.runcall(run_flowcap, chunks)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


# -- the subcommand ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datagrams", type=int, help=f"datagrams per scenario (default {FULL.datagrams})"
    )
    parser.add_argument(
        "--repeat", type=int, help=f"timed runs per scenario (default {FULL.repeat})"
    )
    parser.add_argument(
        "--peer-datagrams",
        type=int,
        help=f"datagrams given to the netflow package (default {FULL.peer_datagrams})",
    )
    parser.add_argument(
        "--peer-repeat", type=int, help=f"netflow package runs (default {FULL.peer_repeat})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes for a smoke test ({QUICK.datagrams} datagrams, {QUICK.repeat} runs)",
    )
    parser.add_argument(
        "--flush-every",
        type=int,
        default=FLUSH_EVERY_DATAGRAMS,
        help=f"datagrams between flushes (default {FLUSH_EVERY_DATAGRAMS})",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(GENERATORS),
        help="run only this scenario (repeatable; default all)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the netflow package")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: lowest allowed)")
    parser.add_argument("--seed", type=int, default=SEED, help="RNG seed of the datagrams")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile of one flowcap run per scenario (stderr)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "decode.json",
        help="results JSON (default bench/results/decode.json)",
    )


def _sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        args.datagrams or base.datagrams,
        args.repeat or base.repeat,
        args.peer_datagrams or base.peer_datagrams,
        args.peer_repeat or base.peer_repeat,
    )
    if min(sizes.datagrams, sizes.repeat, sizes.peer_datagrams, sizes.peer_repeat) < 1:
        raise ValueError("sizes must be positive")
    return sizes


def run(args: argparse.Namespace) -> int:
    """Measure, print the table on stdout, write the JSON; 1 if flowcap decoded wrong."""
    try:
        sizes = _sizes(args)
    except ValueError as error:
        print(f"bench decode: {error}", file=sys.stderr)
        return 2
    if args.flush_every < 1:
        print("bench decode: --flush-every must be positive", file=sys.stderr)
        return 2
    cpu = pin_to_one_cpu(args.cpu)
    results: list[ScenarioResult] = []
    for name in args.scenario or list(GENERATORS):
        print(f"bench decode: {name}: generating {sizes.datagrams} datagrams", file=sys.stderr)
        scenario = GENERATORS[name](sizes.datagrams, args.seed)
        print(f"bench decode: {name}: measuring {scenario.flows} flows", file=sys.stderr)
        results.append(measure_scenario(scenario, sizes, args.flush_every, not args.no_peer))
        if args.profile:
            print(_profile(scenario, args.flush_every), file=sys.stderr)
    document: dict[str, object] = {
        "benchmark": NAME,
        "machine": machine_info(cpu),
        "settings": {
            "datagrams": sizes.datagrams,
            "repeat": sizes.repeat,
            "peer_datagrams": sizes.peer_datagrams,
            "peer_repeat": sizes.peer_repeat,
            "flush_every_datagrams": args.flush_every,
            "seed": args.seed,
            "quick": args.quick,
        },
        "targets": {
            "flows_per_s": TARGET_FLOWS_PER_S,
            "flows_per_s_applies_to": "fixed-length scenarios, median run",
            "ratio_vs_netflow": TARGET_RATIO,
        },
        "scenarios": [r.to_json() for r in results],
    }
    write_json(args.output, document)
    print(format_table(results))
    print(f"bench decode: wrote {args.output}", file=sys.stderr)
    return 0 if all(r.flowcap.problem is None for r in results) else 1
