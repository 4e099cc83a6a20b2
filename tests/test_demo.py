"""`mammocad demo`: end to end at its smallest, the patients it refuses, and that its classifier recipe
really learns (the segmenter recipe's check is tests/test_segment_learns.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mammocad.cli import app
from mammocad.demo import (
    MIN_PATIENTS,
    SEGMENT_SIZE,
    TASK,
    demo_checkpoint,
    demo_train_config,
    split_class_problem,
    split_lesion_problem,
)
from test_cli import run  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)


def test_demo_runs_end_to_end(tmp_path: Path):
    """The smallest demo: every stage, the classifier and the segmenter evaluated, both in the report."""
    import json

    import yaml

    out = tmp_path / "demo"
    result = run("demo", "--out", out, "--patients", MIN_PATIENTS)
    assert "research software" in result.output.lower()
    assert (out / "prepared" / "images.csv").is_file()
    for kind in ("small", "large", "seg", "resize512"):
        assert (out / "patches" / kind / "patches.csv").is_file()
    assert yaml.safe_load((out / "patches" / "resize512" / "patches.yaml").read_text())["size"] == SEGMENT_SIZE
    assert "AUC" in result.output and (out / "run" / "evaluation" / "metrics.json").is_file()

    segmenter = out / "segmenter"
    for name in ("checkpoints/last.ckpt", "metrics.csv", "evaluation/metrics.json", "evaluation/per_image_test.csv",
                 "evaluation/froc_test.png", "evaluation/loss_curves.png"):
        assert (segmenter / name).is_file(), name
    metrics = json.loads((segmenter / "evaluation" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["val_split"] == "val" and metrics["lesion_types"] == ["mass"]
    assert metrics["overlays"] and all((segmenter / "evaluation" / "overlays" / f"{i}.png").is_file()
                                       for i in metrics["overlays"])
    for words in ("[7/7]", "average Dice", "max Dice", "FP/image", "sensitivity IoU>=0.1"):
        assert words in result.output, words

    page = (out / "report.html").read_text()
    assert "Segmentation results" in page and "Segmenter: segmenter/evaluation" in page
    assert "U-Net (demo, last checkpoint)" in page and "overlay:" in page and "FROC" in page


def test_demo_refuses_too_few_patients_with_one_usage_line(tmp_path: Path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--patients", str(MIN_PATIENTS - 1)])
    assert result.exit_code == 2  # click's usage error
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: --patients must be at least {MIN_PATIENTS}: fewer can leave the validation or "
                      f"test split without both benign and malignant lesions"]
    assert "Traceback" not in result.output and not out.exists()  # refused before anything is written


def test_demo_default_and_help_agree_with_the_minimum():
    patients = next(p for p in app.commands["demo"].params if p.name == "patients")
    assert patients.default >= MIN_PATIENTS
    assert f"at least {MIN_PATIENTS}" in CliRunner().invoke(app, ["demo", "--help"]).output


def test_split_class_problem_names_the_split_without_both_classes():
    frame = pd.DataFrame({
        "split": ["train", "train", "val", "val", "test", "test", "test"],
        "label": ["BENIGN_MASS", "MALIGNANT_CALCIFICATION", "BENIGN_CALCIFICATION", "MALIGNANT_MASS",
                  "BENIGN_MASS", "BENIGN_CALCIFICATION", "BACKGROUND"],  # test: no malignant lesion
    })
    assert split_class_problem(frame) == "the test split has no MALIGNANT patches"
    assert split_class_problem(frame, splits=("train", "val")) is None


def test_split_lesion_problem_names_the_split_without_a_mass():
    frame = pd.DataFrame({"split": ["train", "train", "val", "test"],
                          "instance_labels": [["BENIGN_MASS"], [], ["MALIGNANT_CALCIFICATION"], ["MALIGNANT_MASS"]]})
    assert split_lesion_problem(frame) == "the val split has no image with a mass"
    assert split_lesion_problem(frame, splits=("train", "test")) is None


@pytest.fixture(scope="module")
def demo_like_patches(tmp_path_factory) -> Path:
    """Large-context patches of a small synthetic set, built with the demo's settings.

    Same generator, preprocessing and patch settings as `mammocad demo`, on smaller
    mammograms (512x384: lesions scale with the image, so the patches look alike) to be fast.
    """
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.patches.build import PatchJob, PatchKind, build_patches, kind_config_class
    from mammocad.preprocess.pipeline import PreprocessConfig
    from mammocad.preprocess.prepare import PrepareJob, run_prepare

    root = tmp_path_factory.mktemp("demo_recipe")
    generate_cbis_ddsm(root / "synth", SynthConfig(patients=RECIPE_PATIENTS, seed=RECIPE_SEED, image_rows=512,
                                                   image_cols=384, workers=2), progress=False)
    summary = run_prepare(PrepareJob(source=root / "synth", out=root / "prepared", workers=2, figures=0,
                                     seed=RECIPE_SEED), PreprocessConfig(), progress=False)
    assert not summary.failures
    job = PatchJob(prepared=root / "prepared", out=root / "large", kind=PatchKind.LARGE, workers=2, figure=False,
                   seed=RECIPE_SEED)
    assert not build_patches(job, kind_config_class(PatchKind.LARGE)(), progress=False).failures
    return root / "large"


RECIPE_PATIENTS, RECIPE_SEED = 100, 7


def test_demo_recipe_learns_benign_vs_malignant(demo_like_patches: Path, tmp_path: Path):
    """The demo's own recipe and checkpoint, trained on a demo-like set, are far above chance on val and test."""
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.patches.store import read_manifest
    from mammocad.train.engine import train_classifier

    assert split_class_problem(read_manifest(demo_like_patches)) is None
    config = demo_train_config(demo_like_patches, tmp_path / "run", seed=0)
    assert config.task == TASK
    result = train_classifier(config, progress=False)
    evaluation = evaluate_classifier(demo_checkpoint(result), demo_like_patches, tmp_path / "evaluation",
                                     n_resamples=50)
    assert result.best_val_auc >= 0.75
    assert evaluation.metrics["auc"] >= 0.75
