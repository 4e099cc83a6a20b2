"""train-classifier / evaluate-classifier end to end on a tiny patch set (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
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
