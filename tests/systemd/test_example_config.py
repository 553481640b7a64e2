"""``systemd/flowcapd.toml`` (installed as /etc/flowcap/flowcapd.toml) goes through
the real config loader, so it never rots: it names every key there is, each value it
shows (commented-out examples too) loads, and every flag has a key."""

from __future__ import annotations

import re
from pathlib import Path

from collector.config import TOML_KEYS, Config, build_parser, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "flowcapd.toml"
#: flags that are no setting of a running daemon: the file itself, and a one-shot mode
FLAGS_WITHOUT_KEY = {"config_file", "read", "help"}
_KEY_LINE = re.compile(r"^(#\s*)?(\w+)\s*=", re.MULTILINE)


def test_every_flag_has_a_toml_key() -> None:
    flags = {action.dest for action in build_parser()._actions} - FLAGS_WITHOUT_KEY
    assert flags <= set(TOML_KEYS.values()), flags - set(TOML_KEYS.values())


def test_example_loads_and_is_the_defaults_but_the_flow_dir() -> None:
    config = load_config(["--config", str(EXAMPLE)])
    defaults = Config()
    assert config.flow_dir == Path("/var/lib/flowcap")
    for key, name in TOML_KEYS.items():
        if name != "flow_dir":
            assert getattr(config, name) == getattr(defaults, name), key


def test_example_lists_every_key() -> None:
    named = {match[2] for match in _KEY_LINE.finditer(EXAMPLE.read_text())}
    assert named == set(TOML_KEYS)


def test_commented_examples_load_too(tmp_path: Path) -> None:
    """Each ``# key = value`` line, uncommented in place of the active one, is valid."""
    lines = EXAMPLE.read_text().splitlines()
    commented = [i for i, line in enumerate(lines) if re.match(r"^#\s*\w+\s*=", line)]
    assert commented  # bind, allow, max_age, max_size show alternatives
    for index in commented:
        key = lines[index].lstrip("# ").split("=")[0].strip()
        variant = [
            line for i, line in enumerate(lines) if not re.match(rf"^{key}\s*=", line) or i == index
        ]
        variant[variant.index(lines[index])] = lines[index].lstrip("# ")
        path = tmp_path / f"{key}-{index}.toml"
        path.write_text("\n".join(variant) + "\n")
        config = load_config(["--config", str(path)])
        assert getattr(config, TOML_KEYS[key]) != getattr(Config(), TOML_KEYS[key]), key
