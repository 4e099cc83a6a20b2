"""The command line: every command runs, YAML and flags agree, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mammocad.cli import app
from mammocad.demo import MIN_PATIENTS


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", [[], ["synth"], ["stats"], ["prepare"], ["demo"]])
def test_help_of_every_command(command):
    assert "Usage" in run(*command, "--help").output


def test_synth_then_stats(tmp_path: Path):
    out = tmp_path / "synth"
    result = run("synth", out, "--patients", 4, "--rows", 256, "--cols", 192)
    assert "wrote 4 patients" in result.output
    assert len(list((out / "csv").glob("*.csv"))) == 4
    table9 = run("stats", out, "--split-scheme", "official").output
    assert "Table 9" in table9 and "abnormalities" in table9
    lines = {line.split()[0]: line.split() for line in table9.splitlines()[2:]}
    assert lines["all"][1] == "4"  # patients


def test_prepare_reads_yaml_and_flags_win(synth_small: Path, tmp_path: Path):
    config = tmp_path / "prepare.yaml"
    config.write_text(f"source: {synth_small}\nout: {tmp_path / 'ignored'}\nsize: 64\nlimit: 2\nworkers: 1\n")
    out = tmp_path / "prepared"
    result = run("prepare", "--config", config, "--out", out, "--size", 96)
    assert "prepared 2" in result.output
    images = pd.read_csv(out / "images.csv")
    assert len(images) == 2 and set(images["rows"]) == {96}
    assert not (tmp_path / "ignored").exists()
    assert "size: 96" in (out / "prepare.yaml").read_text()
    assert "Table 9 for prepared folder" in run("stats", out).output


def test_patches_command_and_tables_11_12(prepared_small: Path, tmp_path: Path):
    out = tmp_path / "large"
    result = run("patches", "--prepared", prepared_small, "--out", out, "--kind", "large", "--output-size", 64,
                 "--workers", 1, "--no-figure")
    assert "large patches" in result.output and "0 failed" in result.output
    assert "output_size: 64" in (out / "patches.yaml").read_text()
    table = run("stats", out).output
    assert "Tables 11/12" in table and "total" in table
    # a flag of another kind is refused rather than silently ignored
    wrong = run("patches", "--prepared", prepared_small, "--out", out, "--kind", "large", "--stride", 64, ok=False)
    assert wrong.exit_code == 2 and "--stride" in wrong.output and "--kind large" in wrong.output
    yaml_file = tmp_path / "small.yaml"
    yaml_file.write_text("kind: small\nimage_size: [576, 448]\npatch_size: [112, 112]\nworkers: 1\n"
                         "positives_per_lesion: 2\nbackgrounds_per_image: 2\nfigure: false\n")
    run("patches", "--config", yaml_file, "--prepared", prepared_small, "--out", tmp_path / "small")
    assert "patch_size:\n- 112\n- 112" in (tmp_path / "small" / "patches.yaml").read_text()


def test_unknown_yaml_key_is_one_clear_line(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    config.write_text("sizee: 512\n")
    result = run("prepare", "--config", config, ok=False)
    assert result.exit_code != 0
    assert "sizee" in result.output and str(config) in result.output and "Traceback" not in result.output


def test_missing_dataset_is_one_clear_line(tmp_path: Path):
    result = run("prepare", "--source", tmp_path / "nowhere", "--out", tmp_path / "out", ok=False)
    assert result.exit_code != 0 and "nowhere" in result.output and "Traceback" not in result.output


def test_demo_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "demo"
    result = run("demo", "--out", out, "--patients", MIN_PATIENTS)
    assert "research software" in result.output.lower()
    assert (out / "prepared" / "images.csv").is_file()
    for kind in ("small", "large", "seg", "resize512"):
        assert (out / "patches" / kind / "patches.csv").is_file()
    assert "AUC" in result.output and (out / "run" / "evaluation" / "metrics.json").is_file()
