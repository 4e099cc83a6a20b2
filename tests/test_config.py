"""Configs: YAML keys and CLI flags are the same set, flags win, typos are errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mammocad.data.splits import SplitScheme
from mammocad.utils.config import build_configs, check_workers, click_options, dump_yaml, workers_callback
from mammocad.utils.errors import DataError


@dataclass(frozen=True)
class A:
    size: int | None = field(default=None, metadata={"help": "resize"})
    clip: float = 2.0
    out: Path = Path("o")
    grid: tuple[int, int] = (4, 3)


@dataclass(frozen=True)
class B:
    flag: bool = False
    scheme: SplitScheme = SplitScheme.OFFICIAL


def _command():
    @click.command()
    @click.option("--config", "config_file", type=click.Path(path_type=Path))
    @click_options(A, B)
    def cmd(config_file, **flags):
        a, b = build_configs((A, B), config_file, flags)
        click.echo(dump_yaml(a, b))

    return cmd


def test_precedence_defaults_yaml_flags(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("size: 512\nclip: 3.5\nscheme: tfds\nflag: true\n")
    result = CliRunner().invoke(_command(), ["--config", str(cfg), "--clip", "1.5", "--no-flag"])
    assert result.exit_code == 0, result.output
    assert "size: 512" in result.output and "clip: 1.5" in result.output
    assert "flag: false" in result.output and "scheme: tfds" in result.output and "out: o" in result.output


def test_every_field_is_a_flag():
    help_text = CliRunner().invoke(_command(), ["--help"]).output
    for flag in ("--size", "--clip", "--out", "--flag / --no-flag", "--scheme [official|tfds]"):
        assert flag in help_text
    assert "[default: 2.0]" in help_text  # clip
    assert "resize" in help_text and "[default: None]" not in help_text  # None defaults explain themselves


def test_unknown_yaml_key_and_bad_value(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sise: 512\n")
    with pytest.raises(DataError, match=r"c.yaml: unknown config keys \['sise'\]"):
        build_configs((A, B), cfg, {})
    cfg.write_text("clip: lots\n")
    with pytest.raises(ValueError, match="'lots' is not a valid float"):
        build_configs((A, B), cfg, {})
    cfg.write_text("size: null\n")
    assert build_configs((A, B), cfg, {})[0].size is None


def test_tuple_fields_from_yaml_and_flags(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("grid: [7, 8]\n")
    assert build_configs((A, B), cfg, {})[0].grid == (7, 8)
    assert build_configs((A, B), None, {})[0].grid == (4, 3)
    result = CliRunner().invoke(_command(), ["--config", str(cfg), "--grid", "5", "6"])
    assert result.exit_code == 0, result.output
    assert "grid:\n- 5\n- 6" in result.output
    assert "- 7\n- 8" in CliRunner().invoke(_command(), ["--config", str(cfg)]).output
    cfg.write_text("grid: [1, 2, 3]\n")
    with pytest.raises(ValueError, match="expected 2 values"):
        build_configs((A, B), cfg, {})


@pytest.mark.parametrize("value", [None, 0, 1, 16])
def test_check_workers_accepts_none_and_counts(value):
    assert check_workers(value) == value


@pytest.mark.parametrize("value", [-1, -8, True, 1.5, "2"])
def test_check_workers_refuses_anything_else(value):
    with pytest.raises(ValueError, match=r"^--jobs must be 0 or more \(0: work in this process\), got "):
        check_workers(value, "--jobs")


def test_workers_callback_is_a_usage_error():
    @click.command()
    @click.option("--workers", default=1, callback=workers_callback)
    def cmd(workers):
        click.echo(f"workers={workers}")

    assert CliRunner().invoke(cmd, ["--workers", "0"]).output == "workers=0\n"
    result = CliRunner().invoke(cmd, ["--workers", "-2"])
    assert result.exit_code == 2 and "Error: --workers must be 0 or more" in result.output and "got -2" in result.output
