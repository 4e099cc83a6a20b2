"""train-classifier / evaluate-classifier end to end on a tiny patch set (CPU, seconds)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mammocad.patches.build import PatchJob, PatchKind, build_patches
from mammocad.patches.large_context import LargeContextConfig
from mammocad.patches.store import MANIFEST, read_manifest
from test_cli import run  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)


@pytest.fixture(scope="module")
def patch_set(prepared_small: Path, tmp_path_factory) -> Path:
    """Large-context 64 px patches; splits re-dealt so every split holds both pathologies.

    (Six synthetic patients are too few for the patient-level split to guarantee that; the
    manifest is the documented interface, so rewriting its split column is a legal setup.)
    """
    out = tmp_path_factory.mktemp("large64")
    build_patches(PatchJob(prepared=prepared_small, out=out, kind=PatchKind.LARGE, workers=1, figure=False),
                  LargeContextConfig(output_size=64), progress=False)
    manifest = pd.read_csv(out / MANIFEST, keep_default_na=False)
    malignant = manifest["label"].str.startswith("MALIGNANT")
    for group in (manifest[malignant], manifest[~malignant]):
        manifest.loc[group.index, "split"] = [("train", "train", "val", "test")[i % 4] for i in range(len(group))]
    manifest.to_csv(out / MANIFEST, index=False)
    return out


def test_train_then_evaluate_on_another_split(patch_set: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run("train-classifier", "--data", patch_set, "--task", "benign_malignant", "--model", "medical_cnn",
                 "--weights", "none", "--phases", "all:2:1e-3", "--input-size", 64, "--batch-size", 8,
                 "--workers", 0, "--augment", "simple", "--out", run_dir, "--bootstrap", 50)
    assert "best val AUC" in result.output and "confusion matrix" in result.output
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "config.yaml",
                 "evaluation/metrics.json", "evaluation/confusion.csv", "evaluation/roc.png",
                 "evaluation/predictions_test.csv", "evaluation/predictions_val.csv", "evaluation/training_curves.png"):
        assert (run_dir / name).is_file(), name

    # the saved predictions are enough to recompute the reported AUC
    predictions = pd.read_csv(run_dir / "evaluation" / "predictions_test.csv")
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    test_patches = read_manifest(patch_set).query("split == 'test'")
    assert sorted(predictions["sample_id"]) == sorted(test_patches["patch_id"])
    assert metrics["metrics"]["auc"] == pytest.approx(roc_auc_score(predictions["target"], predictions["prob_MALIGNANT"]))
    low, high = metrics["metrics"]["auc_ci"]
    assert low <= metrics["metrics"]["auc"] <= high

    # evaluate the same checkpoint on the train split of the data, into a folder of our choice
    out = tmp_path / "eval-train"
    again = run("evaluate-classifier", "--checkpoint", run_dir / "checkpoints" / "best.ckpt", "--data", patch_set,
                "--split", "train", "--val-split", "none", "--out", out, "--bootstrap", 50)
    assert "threshold from default" in again.output
    train_predictions = pd.read_csv(out / "predictions_train.csv")
    assert len(train_predictions) == (read_manifest(patch_set)["split"] == "train").sum()
    assert np.allclose(train_predictions.filter(like="prob_").sum(axis=1), 1.0)


def test_evaluate_with_a_missing_checkpoint_is_one_line(patch_set: Path, tmp_path: Path):
    result = run("evaluate-classifier", "--checkpoint", tmp_path / "nope.ckpt", "--data", patch_set, ok=False)
    assert result.exit_code != 0 and "nope.ckpt" in result.output and "Traceback" not in result.output


def test_unknown_task_is_a_usage_error(patch_set: Path, tmp_path: Path):
    result = run("train-classifier", "--data", patch_set, "--task", "cats_vs_dogs", "--out", tmp_path / "r", ok=False)
    assert result.exit_code == 2 and "cats_vs_dogs" in result.output and "five_class" in result.output


# Files a user may pass by mistake; torch's unpickler fails on each in another way (its own
# UnpicklingError, KeyError, IndexError, EOFError, RuntimeError, or a UserWarning first).
NOT_TORCH_FILES = {
    "text": b"# mammocad\n\nResearch software.\n",
    "plain pickle": pickle.dumps({"weights": [1.0, 2.0]}),
    "pickle with memo reference": b"\x80\x02h\x05.",  # KeyError in the unpickler
    "pickle popping an empty stack": b"\x80\x02.",  # IndexError
    "empty": b"",  # EOFError
    "pickle protocol 2": pickle.dumps({"a": 1}, protocol=2),  # RuntimeError: invalid magic number
}


def _one_error_line(result, path: Path) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {path}: ") and "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("content", NOT_TORCH_FILES.values(), ids=NOT_TORCH_FILES.keys())
def test_evaluate_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path: Path, content: bytes):
    bad = tmp_path / "best.ckpt"
    bad.write_bytes(content)
    # the checkpoint is read first: a wrong --data too does not change the message
    result = run("evaluate-classifier", "--checkpoint", bad, "--data", tmp_path / "nonexistent", ok=False)
    line = _one_error_line(result, bad)
    assert "not a readable checkpoint file" in line and "weights_only" not in line
    assert not (tmp_path / "evaluation-test").exists()


def test_evaluate_a_foreign_checkpoint_or_a_folder_is_one_line(tmp_path: Path):
    foreign = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, foreign)
    assert "not a mammocad training checkpoint" in _one_error_line(
        run("evaluate-classifier", "--checkpoint", foreign, "--data", tmp_path, ok=False), foreign)
    assert "is a folder" in _one_error_line(
        run("evaluate-classifier", "--checkpoint", tmp_path, "--data", tmp_path, ok=False), tmp_path)


@pytest.mark.parametrize("case", ["missing", "text", "plain pickle", "foreign state_dict"])
def test_train_with_bad_weights_is_one_line_and_writes_nothing(patch_set: Path, tmp_path: Path, case: str):
    weights = tmp_path / "weights.pt"
    if case == "foreign state_dict":
        torch.save({"w": torch.zeros(2)}, weights)
    elif case != "missing":
        weights.write_bytes(NOT_TORCH_FILES[case])
    run_dir = tmp_path / "run"
    result = run("train-classifier", "--data", patch_set, "--task", "benign_malignant", "--model", "medical_cnn",
                 "--weights", weights, "--input-size", 64, "--out", run_dir, ok=False)
    line = _one_error_line(result, weights)
    expected = {"missing": "no such weights file", "text": "not a readable PyTorch state_dict file",
                "plain pickle": "not a readable PyTorch state_dict file",
                "foreign state_dict": "not a medical_cnn state_dict"}[case]
    assert expected in line
    assert not run_dir.exists()


@pytest.fixture(scope="module")
def checkpoint(patch_set: Path, tmp_path_factory) -> Path:
    """A one-epoch benign_malignant medical_cnn on ``patch_set`` (checkpoints/best.ckpt of its run)."""
    from mammocad.train.engine import TrainConfig, train_classifier

    config = TrainConfig(data=patch_set, task="benign_malignant", model="medical_cnn", weights="none",
                         input_size=64, phases="all:1:1e-3", batch_size=8, workers=0, augment="none",
                         out=tmp_path_factory.mktemp("run") / "run")
    return train_classifier(config, progress=False).best_checkpoint


def _with_splits(patch_set: Path, out: Path, move: dict[tuple[str, str], str]) -> Path:
    """A copy of ``patch_set`` whose patches of (split, label prefix) move to another split."""
    shutil.copytree(patch_set, out)
    manifest = pd.read_csv(out / MANIFEST, keep_default_na=False)
    for (split, prefix), to in move.items():
        manifest.loc[(manifest["split"] == split) & manifest["label"].str.startswith(prefix), "split"] = to
    manifest.to_csv(out / MANIFEST, index=False)
    return out


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluate_on_a_split_of_one_class_is_one_line_and_writes_nothing(checkpoint: Path, patch_set: Path,
                                                                         tmp_path: Path, split: str):
    data = _with_splits(patch_set, tmp_path / "data", {(split, "BENIGN"): "train"})
    out = tmp_path / "evaluation"
    result = run("evaluate-classifier", "--checkpoint", checkpoint, "--data", data, "--out", out,
                 "--bootstrap", 20, ok=False)
    line = _one_error_line(result, data)
    assert f"the '{split}' split holds only MALIGNANT patches of task benign_malignant" in line
    assert ("--val-split none" in line) == (split == "val")
    assert not out.exists()  # no predictions CSV of the other split either
    # the advice works: with the fixed threshold the evaluation runs
    if split == "val":
        again = run("evaluate-classifier", "--checkpoint", checkpoint, "--data", data, "--out", out,
                    "--val-split", "none", "--bootstrap", 20)
        assert "threshold from default" in again.output and (out / "predictions_test.csv").is_file()


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_evaluate_into_a_file_is_one_line(checkpoint: Path, patch_set: Path, tmp_path: Path, where: str):
    existing = tmp_path / "results.txt"
    existing.write_text("mine")
    out = existing if where == "file" else existing / "evaluation"
    result = run("evaluate-classifier", "--checkpoint", checkpoint, "--data", patch_set, "--out", out, ok=False)
    assert "is a file, not a folder" in _one_error_line(result, out)
    assert existing.read_text() == "mine"


@pytest.mark.parametrize("flag", ["--batch-size", "--bootstrap"])
def test_evaluate_counts_below_one_are_usage_errors(checkpoint: Path, patch_set: Path, tmp_path: Path, flag: str):
    result = run("evaluate-classifier", "--checkpoint", checkpoint, "--data", patch_set, "--out", tmp_path / "e",
                 flag, 0, ok=False)
    assert result.exit_code == 2 and flag in result.output and "Traceback" not in result.output
    assert not (tmp_path / "e").exists()


def test_train_into_a_file_is_one_line(patch_set: Path, tmp_path: Path):
    existing = tmp_path / "run"
    existing.write_text("mine")
    result = run("train-classifier", "--data", patch_set, "--task", "benign_malignant", "--model", "medical_cnn",
                 "--weights", "none", "--input-size", 64, "--out", existing, ok=False)
    assert "is a file, not a folder" in _one_error_line(result, existing) and existing.read_text() == "mine"


# ---- what a training prints --------------------------------------------------------------------
def _terminal(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: carriage returns overwrite, ESC[A moves up a line."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]", text):
        if token == "\n":
            row, col = row + 1, 0
            lines.extend([] for _ in range(row + 1 - len(lines)))
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b"):
            if token.endswith("A"):
                row = max(0, row - int(token[2:-1] or 1))
            elif token.endswith("K"):
                del lines[row][col:]
        else:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col:col + 1] = [token]
            col += 1
    return ["".join(line).rstrip() for line in lines]


NOISE = ("GPU available", "TPU available", "Tip:", "\N{ELECTRIC LIGHT BULB}", "litlogger", "litmodels",
         "`Trainer.fit` stopped", "Warning", "deprecated", "warnings.warn", "LeafSpec")


def test_training_output_has_progress_and_no_third_party_noise(patch_set: Path, tmp_path: Path):
    """The real command in its own process, umask 027: what a user sees, and the modes of its files."""
    import os
    import subprocess
    import sys

    import mammocad

    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(mammocad.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "mammocad", "train-classifier", "--data", str(patch_set), "--task",
               "benign_malignant", "--model", "medical_cnn", "--weights", "none", "--phases", "all:2:1e-3",
               "--input-size", "64", "--batch-size", "8", "--workers", "0", "--augment", "simple",
               "--out", str(tmp_path / "run"), "--bootstrap", "20"]
    # stdout and stderr on one screen, as in a terminal; bytes, to keep the bars' carriage returns
    output = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=True,
                            preexec_fn=lambda: os.umask(0o027)).stdout.decode()
    for noise in NOISE:
        assert noise not in output, noise
    screen = _terminal(output)
    # the epoch bar is there, and its last line once (the epochs share one bar line)
    assert [line for line in screen if line.startswith("Epoch ")] == [next(line for line in screen
                                                                          if line.startswith("Epoch 1: 100%"))]
    # mammocad's own lines are all there
    assert "trained 2 epoch(s)" in output and "confusion matrix" in output
    assert "Research software, not a medical device" in output
    # every file of the run has the mode the umask gives: checkpoints (Lightning), TensorBoard
    # events, figures (matplotlib), CSV/JSON/YAML (atomic writes)
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in tmp_path.rglob("*") if p.is_file()}
    assert len(modes) >= 12 and set(modes.values()) == {oct(0o640)}, modes


def test_interrupted_training_raises_keyboard_interrupt_and_restores_ctrl_c(patch_set: Path, tmp_path: Path):
    """Lightning turns a Ctrl-C into sys.exit(1) and ignores SIGINT afterwards; the engine undoes both."""
    import signal

    from lightning.pytorch.callbacks import Callback

    from mammocad.train.engine import TrainConfig, train_classifier

    class CtrlC(Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT)
    config = TrainConfig(data=patch_set, task="benign_malignant", model="medical_cnn", weights="none",
                         input_size=64, phases="all:3:1e-3", batch_size=8, workers=0, augment="none",
                         out=tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, progress=False, callbacks=[CtrlC()])
    assert signal.getsignal(signal.SIGINT) is before
    # the finished epoch's checkpoint stays, and resume continues from it
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    from dataclasses import replace

    assert train_classifier(replace(config, resume=True), progress=False).epochs_run == 3


@pytest.mark.parametrize("flag, value", [("--accelerator", "banana"), ("--strategy", "banana")])
def test_train_with_settings_lightning_refuses_is_one_line_and_writes_nothing(patch_set: Path, tmp_path: Path,
                                                                               flag: str, value: str):
    run_dir = tmp_path / "run"
    result = run("train-classifier", "--data", patch_set, "--task", "benign_malignant", "--model", "medical_cnn",
                 "--weights", "none", "--input-size", 64, "--out", run_dir, flag, value, ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: cannot train with"), lines
    assert "banana" in lines[0] and not run_dir.exists()
