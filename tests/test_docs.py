"""The docs tell the truth: every flag is documented, the README's examples run, links
resolve, and the operations guide's snippets (TOML, Prometheus YAML, metric names) are
what the code accepts and exposes.

README examples to run are the ``flowq`` lines of fenced ``sh`` blocks that follow a
``<!-- example -->`` line. They run as written (``.venv/bin/flowq`` is the installed
entry point next to this interpreter) in a directory whose ``./flows`` holds flows
written by flowcap's own storage writer, with ``TZ=UTC`` so the ``-t`` windows in the
README match the dataset's times.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from collector.config import TOML_KEYS, load_config
from collector.config import build_parser as flowcapd_parser
from collector.expire_command import build_parser as expire_parser
from collector.metrics import FlowcapMetrics
from flowq.cli import build_parser as flowq_parser
from parsers.events import FlowBatch
from storage.interval_writer import IntervalWriter
from storage.schema import CORE_FIELDS, DATAGRAM_FIELDS, FLOW_SCHEMA, to_record_batch
from tests.storage.synthetic import flow_batch

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
OPERATIONS = ROOT / "docs" / "operations.md"
STORAGE_DOC = ROOT / "docs" / "storage.md"

#: the README's examples query this day (TZ=UTC): 2026-11-22 10:00-10:10
DATASET_START_S = int(datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp())
EXAMPLE_MARK = "<!-- example -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


# -- helpers ---------------------------------------------------------------------------


def _section(text: str, heading: str) -> str:
    """The text under the heading (any level) up to the next heading of any level.
    Headings are looked for outside fenced blocks (a ``#`` comment is no heading)."""
    blanked = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    match = re.search(rf"^#+ {re.escape(heading)}\n", blanked, re.M)
    assert match, f"no heading {heading!r}"
    end = re.compile(r"^#", re.M).search(blanked, match.end())
    return text[match.end() : end.start() if end else len(text)]


def _option_strings(parser: argparse.ArgumentParser) -> list[tuple[str, str | None]]:
    """(flag, help) of every optional argument, ``-h``/``--help`` included."""
    return [(flag, action.help) for action in parser._actions for flag in action.option_strings]


def _table_first_cells(text: str) -> str:
    """The first cells of the Markdown table rows in ``text``, joined: where a flags
    table names its flags."""
    return "\n".join(line.split("|")[1] for line in text.splitlines() if line.startswith("| `"))


def _flags_in(cells: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cells))


def _fenced(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, blanks to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m) for m in re.findall(r"^#+\s+(.*)$", text, re.M)}


# -- (a) every flag has help text and is in the README's tables ------------------------


@pytest.mark.parametrize(
    ("program", "parser", "heading"),
    [
        ("flowcapd", flowcapd_parser(), "flowcapd, the collector"),
        ("flowcapd expire", expire_parser(), "flowcapd expire"),
        ("flowq", flowq_parser(), "flowq, the query CLI"),
    ],
)
def test_every_flag_has_help_and_a_readme_row(program, parser, heading):
    documented = _flags_in(_table_first_cells(_section(README.read_text(), heading)))
    flags = _option_strings(parser)
    assert flags, f"{program}: no flags found in its parser"
    for flag, help_text in flags:
        assert help_text and help_text.strip(), f"{program} {flag} has no help text"
    missing = sorted({flag for flag, _ in flags} - documented)
    assert not missing, f"{program} flags missing from the README table: {missing}"
    unknown = sorted(documented - {flag for flag, _ in flags})
    assert not unknown, f"README documents {program} flags that do not exist: {unknown}"


# -- (b) the README's flowq examples run on a real dataset -----------------------------


def _tenant_batch(rows: int, t0_s: int) -> FlowBatch:
    """vDS VXLAN flows: outer UDP 4789 between hosts, tenant TCP inside, VNI 5001."""
    rng = np.random.default_rng(7)
    end_ns = (t0_s + rng.integers(0, 60, rows)).astype(np.int64) * 1_000_000_000
    columns = {
        "time_start": end_ns - 5_000_000_000,
        "time_end": end_ns,
        "proto": np.full(rows, 17, np.uint8),
        "src_addr": np.full(rows, 0x0A140001, np.uint32),  # 10.20.0.1
        "dst_addr": np.full(rows, 0x0A140002, np.uint32),
        "src_port": rng.integers(49152, 65535, rows).astype(np.uint16),
        "dst_port": np.full(rows, 4789, np.uint16),
        "packets": rng.integers(1, 100, rows).astype(np.uint64),
        "bytes": rng.integers(100, 100_000, rows).astype(np.uint64),
        "exporter": np.full(rows, 0x0A140001, np.uint32),
        "tenant_proto": np.full(rows, 6, np.uint8),
        "tenant_src_addr": rng.integers(0x0A010000, 0x0A01FFFF, rows).astype(np.uint32),
        "tenant_dst_addr": np.full(rows, 0xC0A86414, np.uint32),  # 192.168.100.20
        "tenant_src_port": rng.integers(1024, 65535, rows).astype(np.uint16),
        "tenant_dst_port": np.full(rows, 443, np.uint16),
        "layer2_segment_id": np.full(rows, 5001, np.uint64),
        "vxlan_export_role": np.ones(rows, np.uint8),
        "sampling_interval": np.ones(rows, np.uint32),
    }
    return FlowBatch(rows, columns)


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory whose ``./flows`` holds ten minutes of finished intervals
    (IPv4 and IPv6 flows, VMware tenant flows) written by ``IntervalWriter``."""
    work = tmp_path_factory.mktemp("readme")
    writer = IntervalWriter(work / "flows", 300, 0, 0)
    for step in range(20):
        received_s = DATASET_START_S + 30 * step
        writer.append(to_record_batch(flow_batch(500, received_s - 1, step, shape=step % 2)),
                      received_s)  # fmt: skip
        writer.append(to_record_batch(_tenant_batch(50, received_s - 1)), received_s)
    finished = writer.close()
    assert len(finished) == 2, finished
    return work


def _flowq_command() -> list[str]:
    installed = Path(sys.executable).with_name("flowq")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "flowq.cli"]


def _readme_examples() -> list[str]:
    text = README.read_text()
    examples = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        if match.group(1) == "sh" and before.strip() == EXAMPLE_MARK:
            examples += [
                line.strip()
                for line in match.group(2).splitlines()
                if re.match(r"\s*(\.venv/bin/)?flowq ", line)
            ]
    return examples


def _check_output(argv: list[str], stdout: str, work: Path) -> None:
    """What the example's options promise, on a dataset where every example matches."""
    lines = stdout.splitlines()
    output = argv[argv.index("-o") + 1] if "-o" in argv else "line"
    if "--plot" in argv:
        png = work / argv[argv.index("--plot") + 1]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    if "-s" in argv:  # nfdump's statistic header, then at least one row
        assert re.search(r"^Top \d+ .+ ordered by \w+:$", stdout, re.M), stdout
    elif output == "csv":
        core = ",".join(f.name for f in CORE_FIELDS)
        assert lines[0].startswith(core), lines[0]
        assert len(lines) >= 2 and lines[1], "no CSV rows"
    elif "--series" not in argv:  # records or aggregates: header, rows, summary
        assert lines[0].startswith("Date first seen"), lines[0]
        assert len(lines) >= 2 and lines[1] and not lines[1].startswith("Summary"), lines[:3]
    if output in ("line", "long", "extended") and "-q" not in argv:
        assert any(line.startswith("Summary:") for line in lines), "no summary line"


def test_readme_has_examples():
    examples = _readme_examples()
    assert len(examples) >= 5, examples
    assert any(" -s srcip/bytes" in line for line in examples), "quick start query missing"


@pytest.mark.parametrize("line", _readme_examples())
def test_readme_example_runs(line, example_dir):
    argv = shlex.split(line, comments=True)
    assert "./flows" in argv, f"{line!r} does not read ./flows"
    env = {**os.environ, "TZ": "UTC"}
    result = subprocess.run(
        _flowq_command() + argv[1:],
        cwd=example_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{line}\nexit {result.returncode}\n{result.stderr}"
    assert result.stdout.strip(), f"{line}: no output"
    _check_output(argv, result.stdout, example_dir)


# -- (c) relative links resolve ----------------------------------------------------------


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = FENCE.sub("", path.read_text())
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name}: link to {target} points at nothing"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{path.name}: no heading #{anchor} in {linked}"


# -- docs/storage.md: the core column table is the schema's; its example runs ----------


def test_storage_core_columns_table_matches_schema():
    section = _section(STORAGE_DOC.read_text(), "Core columns")
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.M)
    expected = [(f.name, str(f.type)) for f in (*CORE_FIELDS, *DATAGRAM_FIELDS)]
    assert rows == expected
    assert [name for name, _ in rows[: len(CORE_FIELDS)]] == list(FLOW_SCHEMA.names[:22])


def _marked_blocks(path: Path, language: str) -> list[str]:
    text = path.read_text()
    return [
        match.group(2)
        for match in FENCE.finditer(text)
        if match.group(1) == language
        and text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip() == EXAMPLE_MARK
    ]


def test_storage_pyarrow_example_reads_the_files(example_dir, monkeypatch):
    blocks = _marked_blocks(STORAGE_DOC, "python")
    assert blocks, "no <!-- example --> python block in docs/storage.md"
    monkeypatch.chdir(example_dir)
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(STORAGE_DOC), "exec"), namespace)
        table = namespace["table"]
        assert table.num_rows > 0
        assert set(table.column("dst_port").to_pylist()) == {443}


# -- docs/operations.md: config keys, metrics and Prometheus snippets -------------------


def test_config_example_loads_and_documents_every_key(tmp_path):
    text = OPERATIONS.read_text()
    section = _section(text, "The configuration file")
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    assert documented == set(TOML_KEYS), "config key table differs from collector.config"
    (example,) = _fenced_in(section, "toml")
    assert set(tomllib.loads(example)) == set(TOML_KEYS), "the example lists other keys"
    path = tmp_path / "flowcapd.toml"
    path.write_text(example)
    config = load_config(["--config", str(path)])
    assert config.config_file == path


def _fenced_in(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def _exposed_metrics() -> dict[str, tuple[str, set[str]]]:
    """name -> (type, label names) of every metric flowcapd serves, from a real
    collect() on an empty snapshot (counters with their ``_total`` suffix)."""
    metrics = FlowcapMetrics(lambda: {}, lambda: [], 1, "test")
    exposed = {}
    for family in metrics.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        declared = getattr(family, "_labelnames", ())  # label names even without samples
        labels = {*declared, *(k for s in family.samples for k in s.labels)} - {"le"}
        exposed[name] = (family.type, labels)
    return exposed


def test_metrics_table_is_what_flowcapd_serves():
    section = _section(OPERATIONS.read_text(), "Prometheus")
    rows = re.findall(r"^\| `(flowcap_\w+)` \| (\w+) \| ([^|]*) \|", section, re.M)
    documented = {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}
    assert documented == _exposed_metrics()


def test_prometheus_snippets_parse_and_name_real_metrics():
    yaml = pytest.importorskip("yaml", reason="PyYAML (the test extra) is not installed")
    blocks = _fenced(OPERATIONS, "yaml")
    assert len(blocks) >= 2, "expected a scrape config and alert rules"
    documents = [yaml.safe_load(block) for block in blocks]
    scrape = next(d for d in documents if "scrape_configs" in d)
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert "127.0.0.1:9723" in targets or any(t.endswith(":9723") for t in targets)
    rules = [r for d in documents if "groups" in d for g in d["groups"] for r in g["rules"]]
    assert len(rules) >= 4
    series = _all_series()
    for rule in rules:
        assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"]
        names = set(re.findall(r"flowcap_\w+", rule["expr"]))
        assert names or rule["expr"].startswith("up{"), f"{rule['alert']} uses no flowcap metric"
        assert names <= series, f"alert {rule['alert']}: unknown {names - series}"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_metric_names_in_docs_exist(path):
    """A metric named anywhere in the docs (prose, alerts, curl | grep) is served."""
    named = set(re.findall(r"\bflowcap_\w*[a-z]", path.read_text()))
    unknown = {n for n in named - _all_series() if not any(s.startswith(n) for s in _all_series())}
    assert not unknown, f"{path.name} names metrics flowcapd does not serve: {sorted(unknown)}"


def _all_series() -> set[str]:
    return {n for name, (kind, _) in _exposed_metrics().items() for n in _series_names(name, kind)}


def _series_names(name: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def test_service_settings_quoted_are_the_units():
    """``Key=value`` settings the service section quotes are in systemd/flowcapd.service."""
    unit = (ROOT / "systemd" / "flowcapd.service").read_text().splitlines()
    section = _section(OPERATIONS.read_text(), "Running it as a service")
    quoted = re.findall(r"`([A-Z]\w+=[^`\s]+)`", section)
    assert len(quoted) >= 4, quoted
    missing = [setting for setting in quoted if setting not in unit]
    assert not missing, f"docs/operations.md quotes settings the unit lacks: {missing}"
