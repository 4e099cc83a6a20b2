"""Model bundles: `mammocad export` of a real (tiny) training run, round trip, and refusals of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammocad.infer.bundle import MAGIC, read_bundle
from mammocad.patches.build import PatchJob, PatchKind, build_patches
from mammocad.patches.datasets import PatchDataset
from mammocad.patches.large_context import LargeContextConfig
from mammocad.patches.store import MANIFEST
from mammocad.preprocess.config import PreprocessConfig
from mammocad.preprocess.pipeline import preprocess
from mammocad.train.augment import eval_transform
from mammocad.train.inference import load_classifier, predict_probabilities
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import read_image
from test_cli import run  # tests/ is on sys.path


@pytest.fixture(scope="module")
def trained_run(prepared_small: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, patch set): medical_cnn trained 1 epoch on 64 px large-context patches, evaluated."""
    root = tmp_path_factory.mktemp("bundle_run")
    patches = root / "large64"
    build_patches(PatchJob(prepared=prepared_small, out=patches, kind=PatchKind.LARGE, workers=1, figure=False),
                  LargeContextConfig(output_size=64), progress=False)
    manifest = pd.read_csv(patches / MANIFEST, keep_default_na=False)
    malignant = manifest["label"].str.startswith("MALIGNANT")
    for group in (manifest[malignant], manifest[~malignant]):  # every split holds both classes (see test_classifier_cli)
        manifest.loc[group.index, "split"] = [("train", "val", "test")[i % 3] for i in range(len(group))]
    manifest.to_csv(patches / MANIFEST, index=False)
    run_dir = root / "run"
    run("train-classifier", "--data", patches, "--task", "benign_malignant", "--model", "medical_cnn",
        "--weights", "none", "--phases", "all:1:1e-3", "--input-size", 32, "--batch-size", 8, "--augment", "none",
        "--out", run_dir, "--bootstrap", 20)
    return run_dir, patches


@pytest.fixture(scope="module")
def bundle_file(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "model.mcad"
    result = run("export", "--run", trained_run[0], "--out", out)
    assert "classifier medical_cnn" in result.output and "sha256" in result.output
    return out


def test_round_trip_gives_the_checkpoints_predictions(trained_run, bundle_file: Path):
    run_dir, patches = trained_run
    bundle = read_bundle(bundle_file)
    checkpoint_model, meta = load_classifier(run_dir / "checkpoints" / "best.ckpt")
    dataset = PatchDataset(patches, "test", classes=meta["classes"], transform=eval_transform(32))
    expected, _ = predict_probabilities(checkpoint_model, dataset, input_size=32)
    got, _ = predict_probabilities(bundle.build_classifier(), dataset, input_size=32)
    assert np.array_equal(got, expected)
    evaluation = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert bundle.threshold == evaluation["threshold"] and bundle.threshold_source == "validation"
    assert bundle.metrics["validation"]["val_auc"] == pytest.approx(pd.read_csv(run_dir / "metrics.csv")["val_auc"].max())
    assert (bundle.task, bundle.class_names, bundle.input_size) == ("benign_malignant", ("BENIGN", "MALIGNANT"), 32)
    assert bundle.large_context == LargeContextConfig(output_size=64)


def test_bundle_alone_reproduces_the_training_preprocessing(bundle_file: Path, prepared_small: Path):
    bundle = read_bundle(bundle_file)
    assert bundle.preprocess == PreprocessConfig()  # what conftest's prepared_small was made with
    row = pd.read_csv(prepared_small / "images.csv").iloc[0]
    again = preprocess(read_image(row["image_path"]), config=bundle.preprocess).image
    assert np.array_equal(again, read_image(prepared_small / row["prepared_image"]))


def _rewrite(source: Path, target: Path, edit) -> Path:
    target.write_bytes(edit(source.read_bytes()))
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda b: b[:-100], "truncated"),
    (lambda b: b[:-50] + bytes([b[-50] ^ 0xFF]) + b[-49:], "SHA-256 does not match"),
    (lambda b: b.replace(b'"mammocad_version": "', b'"mammocad_version": "9.', 1), "export the model again"),
    (lambda b: b"PK\x03\x04 a zip, not a bundle", "not a mammocad model bundle"),
])
def test_bad_bundles_are_one_clear_line(bundle_file: Path, tmp_path: Path, edit, message: str):
    bad = _rewrite(bundle_file, tmp_path / "bad.mcad", edit)
    with pytest.raises(DataError, match=message) as err:
        read_bundle(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    result = run("predict", tmp_path, "--classifier", bad, "--baseline", "blob", "--out", tmp_path / "out", ok=False)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_header_is_readable_without_torch(bundle_file: Path):
    data = bundle_file.read_bytes()
    header = json.loads(data[len(MAGIC):].split(b"\n", 1)[0])
    assert header["kind"] == "classifier" and header["sha256"] == read_bundle(bundle_file).checksum
