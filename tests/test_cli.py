"""The command line: every command runs, YAML and flags agree, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mammocad.cli import app


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


def test_cli_defines_its_commands_without_heavy_imports():
    """`mammocad --help` must answer at once: defining the commands imports no torch, Lightning,
    pandas or OpenCV (they load inside the commands that need them)."""
    import subprocess
    import sys

    heavy = ("torch", "lightning", "pandas", "cv2", "matplotlib", "sklearn", "albumentations")
    code = ("import sys, mammocad.cli\n"
            "from click.testing import CliRunner\n"
            "for c in ([], ['prepare'], ['patches'], ['train-classifier'], ['synth'], ['split'], ['report'], ['reproduce']):\n"
            "    assert CliRunner().invoke(mammocad.cli.app, [*c, '--help']).exit_code == 0, c\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_non_dicom_file_named_dcm_is_one_clean_line(synth_small: Path, tmp_path: Path):
    import shutil

    source = tmp_path / "synth"
    shutil.copytree(synth_small, source)
    victim = sorted(source.rglob("1-full mammogram images-*/000000.dcm"))[0]
    victim.write_text("<html>404 Not Found</html>")  # what a failed download leaves behind
    result = run("prepare", "--source", source, "--out", tmp_path / "out", "--workers", 1, "--figures", 0, ok=False)
    assert result.exit_code == 1  # one item failed, the rest is prepared
    lines = [line for line in result.output.splitlines() if str(victim) in line]
    assert len(lines) == 1 and "DICOM file header" in lines[0], result.output
    assert "force" not in result.output and "Traceback" not in result.output


def test_prepare_and_patches_refuse_bad_paths_in_one_line(tmp_path: Path):
    existing = tmp_path / "a-file"
    existing.write_text("x")
    for args in (["prepare", "--source", tmp_path / "missing", "--out", tmp_path / "o1"],
                 ["prepare", "--source", tmp_path, "--out", existing],
                 ["patches", "--prepared", tmp_path / "missing", "--out", tmp_path / "o2"],
                 ["patches", "--prepared", tmp_path, "--out", existing],
                 ["prepare", "--source", tmp_path, "--out", tmp_path / "o3", "--workers", "-1"]):
        result = run(*args, ok=False)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
        assert len([line for line in result.output.splitlines() if line.strip()]) <= 3, result.output
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
    assert existing.read_text() == "x"


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_synth_into_a_file_is_one_line(tmp_path: Path, where: str):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    out = existing if where == "file" else existing / "synth"
    result = run("synth", out, "--patients", 1, "--rows", 256, "--cols", 192, ok=False)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"Error: {out}: "), result.output
    assert "is a file, not a folder" in lines[0]
    assert existing.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("flags, flag", [
    (["--patients", 0], "--patients"), (["--patients", -3], "--patients"), (["--rows", 0], "--rows"),
    (["--cols", 100], "--cols"), (["--rows", 1024, "--cols", 256], "--rows"),
    (["--test-fraction", 2], "--test-fraction"), (["--seed", -1], "--seed"),
    (["--workers", -1], "--workers"),
])
def test_synth_impossible_values_are_usage_errors(tmp_path: Path, flags: list, flag: str):
    result = run("synth", tmp_path / "out", *flags, ok=False)
    error = result.output.strip().splitlines()[-1]
    assert result.exit_code == 2 and error.startswith("Error: --") and flag in error, result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_synth_with_workers_0_runs_in_this_process(tmp_path: Path):
    assert "wrote 1 patients" in run("synth", tmp_path / "s", "--patients", 1, "--rows", 256, "--cols", 192,
                                     "--workers", 0).output


@pytest.mark.parametrize("command", [
    ["synth", "OUT"],
    ["train-classifier", "--data", "DATA", "--out", "OUT"],
    ["evaluate-classifier", "--checkpoint", "x.ckpt", "--data", "DATA", "--out", "OUT"],
    ["demo", "--out", "OUT"],
])
def test_workers_is_checked_the_same_way_by_every_command(tmp_path: Path, command: list[str]):
    args = [str(tmp_path / a) if a in ("OUT", "DATA") else a for a in command]
    result = run(*args, "--workers", -1, ok=False)
    assert result.exit_code == 2, result.output
    assert "workers must be 0 or more (0: work in this process), got -1" in result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


# ---- Ctrl-C and the machine's errors: one line, no traceback -----------------------------------
def _env() -> dict[str, str]:
    import os

    import mammocad

    src = str(Path(mammocad.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


def test_interrupt_wrapper_is_one_line_and_exit_130(capsys):
    from mammocad.__main__ import run_interruptible

    def start_up():
        raise KeyboardInterrupt  # e.g. while the CLI's imports load

    with pytest.raises(SystemExit) as exit_info:
        run_interruptible(start_up)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "mammocad: interrupted"


def test_interrupt_during_a_command_is_one_line_and_exit_130(monkeypatch, tmp_path: Path):
    import mammocad.data.synthetic

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mammocad.data.synthetic, "generate_cbis_ddsm", interrupted)
    result = run("synth", tmp_path / "s", ok=False)
    assert result.exit_code == 130
    assert result.output.strip() == "mammocad: interrupted" and "Aborted" not in result.output


def test_ctrl_c_ends_a_running_command_with_one_line(tmp_path: Path):
    """A real SIGINT (what Ctrl-C sends) while synth renders images, to the whole process group."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "synth"
    command = [sys.executable, "-m", "mammocad", "synth", str(out), "--patients", "200", "--workers", "1"]
    # As in a terminal, SIGINT is not ignored in the child: a test run started in the background
    # (`make test &`, nohup) ignores it, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600  # a guard against a hang, not a speed check
        while not (out / "synth_config.json").exists():  # written just before the first image
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "mammocad: interrupted"
    assert "Traceback" not in stderr + stdout and "KeyboardInterrupt" not in stderr


def test_an_os_error_naming_a_file_is_one_line():
    import click

    from mammocad.cli.common import clean_errors as _clean_errors

    @_clean_errors
    def write():
        raise PermissionError(13, "Permission denied", "/data/out/images.csv")

    with pytest.raises(click.ClickException, match=r"^/data/out/images.csv: Permission denied$"):
        write()

    @_clean_errors
    def bug():
        raise OSError("no file involved")  # not about a file: a bug, kept as a traceback

    with pytest.raises(OSError):
        bug()


def test_third_party_warnings_are_hidden_and_mammocad_ones_are_not():
    import warnings

    from mammocad.utils.quiet import third_party_warnings_hidden

    @third_party_warnings_hidden
    def command():
        for module in ("lightning.pytorch.utilities._pytree", "torch.serialization", "mammocad.train.engine"):
            warnings.warn_explicit(f"from {module}", DeprecationWarning, f"{module}.py", 1, module=module)

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        command()
    assert [str(w.message) for w in shown] == ["from mammocad.train.engine"]
