"""Issue 13: classical baseline, cross-validation, patient bootstrap, TTA, ensembles, calibration (tiny, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score
from torch import nn

from mammocad.evaluate.calibration import calibrate_frame, fit_calibration, load_calibration
from mammocad.evaluate.crossval import lesion_level, patient_folds, task_frame, validation_patients
from mammocad.evaluate.metrics import (
    bootstrap_ci,
    brier_score,
    paired_bootstrap_difference,
    weighted_auc,
)
from mammocad.evaluate.predictions import average_predictions, predictions_frame
from mammocad.models import build_classifier, get_spec
from mammocad.models.features import patch_features, shape_features
from mammocad.patches.store import COLUMNS, MANIFEST
from mammocad.train.augment import tta_views
from mammocad.train.config import TrainConfig
from mammocad.train.engine import train_classifier
from mammocad.train.inference import load_predictor, predict_probabilities
from mammocad.train.tasks import get_task
from mammocad.utils.imageio import write_png
from test_cli import run  # tests/ is on sys.path

LESION = get_task("lesion_vs_background")


@pytest.fixture(scope="module")
def lesion_set(tmp_path_factory) -> Path:
    """A hand-made small-context patch set: 16 women x 2 mammograms, 32 px patches.

    Background patches are noise; lesion patches (one lesion on the first mammogram of every
    second woman) add a bright disc. Splits: women 0-9 train, 10-12 val, 13-15 test.
    """
    root = tmp_path_factory.mktemp("lesions")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 16) ** 2 + (xx - 16) ** 2 < 64).astype(float)
    rows = []
    for woman in range(16):
        split = "train" if woman < 10 else "val" if woman < 13 else "test"
        for side in range(2):
            image_id = f"img{woman:02d}{side}"
            patches = [("BACKGROUND", None)] * 3
            if side == 0 and woman % 2 == 0:
                patches += [("MALIGNANT_MASS" if woman % 4 else "BENIGN_MASS", f"{image_id}_1")] * 3
            for k, (label, abnormality) in enumerate(patches):
                pixels = 0.35 + 0.12 * rng.standard_normal((32, 32)) + (0.3 * disc if abnormality else 0)
                patch_id = f"{image_id}_{k}"
                write_png(root / "images" / f"{patch_id}.png", np.clip(pixels * 255, 0, 255).astype(np.uint8))
                rows.append({**dict.fromkeys(COLUMNS, ""), "patch_id": patch_id, "kind": "small", "split": split,
                             "label": label, "image_id": image_id, "patient_id": f"woman{woman:02d}",
                             "abnormality": abnormality or "", "file": f"images/{patch_id}.png", "masks": "[]",
                             "instance_keys": "[]", "instance_labels": "[]", "boxes": "[]", "relaxations": 0})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / MANIFEST, index=False)
    return root


# ---- classical baseline ------------------------------------------------------------------------------
def test_shape_features_of_a_disc():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 15 ** 2
    shape = shape_features(disc)
    assert shape["shape_area_fraction"] == pytest.approx(disc.mean())
    assert shape["shape_eccentricity"] < 0.1 and shape["shape_axis_ratio"] > 0.95
    assert 0.8 < shape["shape_perimeter_ratio"] < 1.2  # perimeter^2 / (4 pi area) is 1 for a disc
    assert shape_features(np.zeros((8, 8), bool))["shape_area_fraction"] == 0
    names = list(patch_features(np.random.default_rng(0).random((32, 32))))
    assert not any(n.startswith("shape_") for n in names) and len(names) == len(set(names))


def test_classical_model_trains_and_predicts_through_the_registry(lesion_set: Path, tmp_path: Path):
    assert get_spec("classical").is_classical and not get_spec("mobilenet_v2").is_classical
    with pytest.raises(ValueError, match="classical"):
        build_classifier("classical", 2)
    config = TrainConfig(data=lesion_set, task="lesion_vs_background", model="classical", input_size=32,
                         workers=0, class_weights=True, out=tmp_path / "run")
    result = train_classifier(config, progress=False)
    assert result.best_checkpoint.is_file() and result.epochs_run == 1
    assert 0.5 < result.best_val_auc <= 1.0
    predictor = load_predictor(result.best_checkpoint)
    assert predictor.meta["class_names"] == ["BACKGROUND", "LESION"] and predictor.meta["input_size"] == 32

    # the same commands as a network: the CLI evaluates it, with a calibration stored beside the checkpoint
    out = run("train-classifier", "--data", lesion_set, "--task", "lesion_vs_background", "--model", "classical_lr",
              "--input-size", 32, "--workers", 0, "--out", tmp_path / "cli", "--bootstrap", 50)
    assert "Brier" in out.output
    checkpoint = tmp_path / "cli" / "checkpoints" / "best.ckpt"
    assert load_calibration(checkpoint).method == "temperature"
    metrics = json.loads((tmp_path / "cli" / "evaluation" / "metrics.json").read_text())["metrics"]
    predictions = pd.read_csv(tmp_path / "cli" / "evaluation" / "predictions_test.csv")
    assert metrics["auc"] == pytest.approx(roc_auc_score(predictions["target"], predictions["prob_LESION"]))
    assert metrics["brier"] == pytest.approx(np.mean((predictions["prob_LESION"] - predictions["target"]) ** 2))
    assert (tmp_path / "cli" / "evaluation" / "reliability.png").is_file()

    # an ensemble of the two (and TTA) through evaluate-classifier
    run("evaluate-classifier", "--checkpoint", result.best_checkpoint, "--checkpoint", checkpoint, "--data",
        lesion_set, "--tta", "flips", "--out", tmp_path / "ens", "--bootstrap", 20)
    ensemble = pd.read_csv(tmp_path / "ens" / "predictions_test.csv")
    assert len(ensemble) == len(predictions)


# ---- folds --------------------------------------------------------------------------------------------
def test_folds_never_share_a_patient_and_keep_both_classes(lesion_set: Path):
    frame = task_frame(lesion_set, LESION)
    folds = patient_folds(frame, 4, seed=3)
    assert set().union(*folds) == set(frame["patient_id"])
    assert sum(len(f) for f in folds) == frame["patient_id"].nunique()  # disjoint
    for test in folds:
        assert frame.loc[frame["patient_id"].isin(test), "target"].nunique() == 2
        rest = frame[~frame["patient_id"].isin(test)]
        val = validation_patients(rest, 0.25, seed=0)
        assert val <= set(rest["patient_id"]) and not val & test
        assert rest.loc[rest["patient_id"].isin(val), "target"].nunique() == 2
        assert rest.loc[~rest["patient_id"].isin(val), "target"].nunique() == 2


# ---- patient bootstrap and paired difference ------------------------------------------------------
# Two patients: P1 ranks its lesion above its normal patch, P2 the other way round.
TARGETS = np.array([1, 0, 1, 0])
SCORES = np.array([0.9, 0.1, 0.2, 0.8])
PATIENTS = np.array(["P1", "P1", "P2", "P2"])


def test_patient_bootstrap_matches_the_hand_computed_distribution():
    # Resamples of two patients: {P1, P1} (p 1/4): AUC 1; {P2, P2} (1/4): 0; {P1, P2} (1/2): 3 of the 4
    # lesion/normal pairs ranked right = 0.75. The 30th and 70th percentiles both fall on 0.75.
    ci = bootstrap_ci(TARGETS, SCORES, weighted_auc, n_resamples=4000, seed=1, level=0.4, groups=PATIENTS)
    assert (ci.low, ci.high, ci.n_skipped) == (0.75, 0.75, 0)
    wide = bootstrap_ci(TARGETS, SCORES, weighted_auc, n_resamples=4000, seed=1, level=0.9, groups=PATIENTS)
    assert (wide.low, wide.high) == (0.0, 1.0)


def test_patient_bootstrap_equals_resampling_whole_patients_explicitly():
    rng = np.random.default_rng(5)
    patients = np.repeat([f"p{i}" for i in range(12)], 3)
    targets = rng.integers(0, 2, len(patients))
    scores = rng.random(len(patients)) + 0.3 * targets
    ci = bootstrap_ci(targets, scores, weighted_auc, n_resamples=200, seed=7, groups=patients)
    # the same draws, materialised: each resample repeats every row of a patient by its draw count
    codes, uniques = pd.factorize(patients)
    draws = np.random.default_rng(7).multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)), size=200)
    values = []
    for counts in draws:
        repeat = counts[codes]
        t = np.repeat(targets, repeat)
        if len(set(t)) == 2:
            values.append(roc_auc_score(t, np.repeat(scores, repeat)))
    assert ci.n_skipped == 200 - len(values)
    assert [ci.low, ci.high] == pytest.approx(np.percentile(values, [2.5, 97.5]))


def test_paired_difference_matches_the_hand_computed_case():
    perfect = TARGETS.astype(float)  # AUC 1 on every resample
    # differences perfect - SCORES: {P1, P1}: 1 - 1 = 0; {P2, P2}: 1 - 0 = 1; {P1, P2}: 1 - 0.75 = 0.25
    d = paired_bootstrap_difference(TARGETS, SCORES, perfect, weighted_auc, n_resamples=4000, seed=2, level=0.4,
                                    groups=PATIENTS)
    assert d.difference == pytest.approx(0.25) and (d.low, d.high) == (0.25, 0.25)
    assert d.fraction_above_0 == pytest.approx(0.75, abs=0.03)
    same = paired_bootstrap_difference(TARGETS, SCORES, SCORES, weighted_auc, n_resamples=200, groups=PATIENTS)
    assert (same.difference, same.low, same.high, same.fraction_above_0) == (0, 0, 0, 0)


def test_lesion_level_scores_one_unit_per_lesion_and_normal_image():
    frame = pd.DataFrame({
        "target": [1, 1, 0, 0, 0, 0], "image_id": ["a", "a", "a", "b", "b", "c"],
        "abnormality": ["a_1", "a_1", "", "", "", ""], "patient_id": ["w1", "w1", "w1", "w1", "w1", "w2"],
        "prob_BACKGROUND": [0.4, 0.2, 0.9, 0.7, 0.5, 0.6], "prob_LESION": [0.6, 0.8, 0.1, 0.3, 0.5, 0.4]})
    units = lesion_level(frame, "max").set_index("unit")
    # image a has a lesion: its background patch is left out; b and c are normal mammograms
    assert units["score"].to_dict() == {"lesion:a_1": 0.8, "normal:b": 0.5, "normal:c": 0.4}
    assert lesion_level(frame, "mean").set_index("unit")["score"]["lesion:a_1"] == pytest.approx(0.7)


# ---- TTA and ensembles -------------------------------------------------------------------------------
class Asymmetric(nn.Module):
    """Logits [0, <x, w>] with a weight map w that no flip or rotation leaves unchanged."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.arange(16.0).reshape(1, 1, 4, 4) / 40)

    def forward(self, x):
        score = (x * self.w).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_tta_averages_the_probabilities_of_the_flipped_and_rotated_views():
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    dataset = list(zip(x, range(5)))
    model = Asymmetric()
    views = tta_views(x, "d4")
    assert len(views) == 8 and torch.equal(views[0], x)
    assert len({tuple(v[0].flatten().tolist()) for v in views}) == 8  # the 8 symmetries of the square
    for mode, n in (("none", 1), ("flips", 4), ("d4", 8)):
        probs, _ = predict_probabilities(model, dataset, input_size=4, batch_size=2, tta=mode)
        expected = torch.stack([model(v).softmax(dim=1) for v in tta_views(x, mode)]).mean(dim=0)
        assert len(tta_views(x, mode)) == n
        assert np.allclose(probs, expected.detach().double().numpy())


def test_ensemble_is_the_mean_of_member_probabilities():
    a = predictions_frame(["s1", "s2", "s3"], [0, 1, 1], np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]]),
                          ["B", "M"], "test", {"patient_id": ["p1", "p2", "p3"]})
    b = predictions_frame(["s3", "s1", "s2"], [1, 0, 1], np.array([[0.1, 0.9], [0.6, 0.4], [0.7, 0.3]]),
                          ["B", "M"], "test")
    mean = average_predictions([a, b])
    assert mean["sample_id"].tolist() == ["s1", "s2", "s3"] and mean["patient_id"].tolist() == ["p1", "p2", "p3"]
    assert np.allclose(mean["prob_M"], [0.3, 0.5, 0.7]) and np.allclose(mean["prob_B"] + mean["prob_M"], 1)
    with pytest.raises(ValueError, match="same samples"):
        average_predictions([a, b.iloc[:2]])


# ---- calibration -------------------------------------------------------------------------------------
def _overconfident(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets drawn from true probabilities softmax(z), predictions softmax(4 z): far too confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, classes))
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(classes, p=p) for p in true])
    sharp = np.exp(4 * z) / np.exp(4 * z).sum(axis=1, keepdims=True)
    return targets, sharp


@pytest.mark.parametrize("classes, method", [(2, "temperature"), (2, "isotonic"), (4, "temperature")])
def test_calibration_lowers_the_brier_score_of_an_overconfident_model(classes: int, method: str):
    val_targets, val_probs = _overconfident(600, classes, seed=0)
    test_targets, test_probs = _overconfident(600, classes, seed=1)
    calibration = fit_calibration(val_targets, val_probs, method)
    calibrated = calibration.apply(test_probs)
    assert np.allclose(calibrated.sum(axis=1), 1)

    def brier(p):
        return brier_score(test_targets, p[:, 1] if classes == 2 else p)

    assert brier(calibrated) < brier(test_probs)
    if method == "temperature":
        assert calibration.temperature > 1  # overconfident: softened
        if classes == 2:  # a monotone map of the score: the ranking (AUC) is unchanged
            assert roc_auc_score(test_targets, calibrated[:, 1]) == pytest.approx(
                roc_auc_score(test_targets, test_probs[:, 1]))
    frame = predictions_frame([str(i) for i in range(600)], test_targets, test_probs,
                              [f"c{k}" for k in range(classes)], "test")
    assert np.allclose(calibrate_frame(frame, calibration).filter(like="prob_").to_numpy(), calibrated)


def test_isotonic_is_refused_for_multiclass():
    targets, probs = _overconfident(50, 3, seed=0)
    with pytest.raises(ValueError, match="binary"):
        fit_calibration(targets, probs, "isotonic")


# ---- cross-validate end to end ---------------------------------------------------------------------
def test_cross_validate_pools_out_of_fold_predictions_resumes_and_compares(lesion_set: Path, tmp_path: Path,
                                                                          monkeypatch):
    common = ["--data", lesion_set, "--task", "lesion_vs_background", "--input-size", 32, "--workers", 0,
              "--folds", 4, "--val-fraction", 0.25, "--bootstrap", 100]
    first = run("cross-validate", *common, "--model", "classical", "--out", tmp_path / "gb")
    assert "lesion level" in first.output
    oof = pd.read_csv(tmp_path / "gb" / "predictions_oof.csv")
    manifest = pd.read_csv(lesion_set / MANIFEST)
    assert sorted(oof["sample_id"]) == sorted(manifest["patch_id"])  # every patch predicted once, out of fold
    assert oof.groupby("patient_id")["fold"].nunique().max() == 1  # a woman's patches are in one fold
    folds = json.loads((tmp_path / "gb" / "folds.json").read_text())
    for k, val in enumerate(folds["val"]):
        assert not {p for p, f in folds["folds"].items() if f == k} & set(val)
    summary = json.loads((tmp_path / "gb" / "crossval.json").read_text())
    assert summary["auc"] == pytest.approx(roc_auc_score(oof["target"], oof["prob_LESION"]), abs=1e-4)
    assert summary["lesion_level"]["n_lesions"] == 8 and summary["lesion_level"]["n_normal_images"] == 24
    low, high = summary["auc_ci_patients"]
    assert low <= summary["auc"] <= high

    # resumable: finished folds are skipped (no training at all); a new prediction setting re-predicts only
    import mammocad.train.engine as engine

    monkeypatch.setattr(engine, "train_classifier", lambda *a, **k: pytest.fail("a finished fold was retrained"))
    run("cross-validate", *common, "--model", "classical", "--out", tmp_path / "gb")
    run("cross-validate", *common, "--model", "classical", "--tta", "flips", "--out", tmp_path / "gb")
    monkeypatch.undo()
    # a setting that changes what a run learns (when it stops) is part of the recipe: the folds retrain
    retrained = []
    monkeypatch.setattr(engine, "train_classifier", lambda *a, **k: retrained.append(1) or pytest.fail("retrained"))
    with pytest.raises(pytest.fail.Exception, match="retrained"):
        run("cross-validate", *common, "--model", "classical", "--tta", "flips", "--early-stopping-patience", 2,
            "--out", tmp_path / "gb")
    monkeypatch.undo()
    assert retrained

    second = run("cross-validate", *common, "--model", "classical_lr", "--out", tmp_path / "lr",
                 "--compare", tmp_path / "gb")
    assert "paired comparison" in second.output
    comparison = json.loads((tmp_path / "lr" / "comparison.json").read_text())
    lr = pd.read_csv(tmp_path / "lr" / "predictions_oof.csv").set_index("sample_id").loc[oof["sample_id"]]
    gb = pd.read_csv(tmp_path / "gb" / "predictions_oof.csv")
    expected = roc_auc_score(lr["target"], lr["prob_LESION"]) - roc_auc_score(gb["target"], gb["prob_LESION"])
    assert comparison["patch_level"]["difference"] == pytest.approx(expected, abs=1e-4)
    assert "lesion_level" in comparison


def test_cross_validate_never_resumes_a_run_of_another_recipe(lesion_set: Path, tmp_path: Path):
    from mammocad.evaluate.config import CrossValConfig
    from mammocad.evaluate.crossval import cross_validate

    train = TrainConfig(data=lesion_set, task="lesion_vs_background", model="classical", input_size=32, workers=0,
                        out=tmp_path / "cv")
    cv = CrossValConfig(folds=4, val_fraction=0.25, bootstrap=10)
    # a fold's member left half-trained by an earlier recipe (no record of which): must be removed, not resumed
    stale = tmp_path / "cv" / "folds" / "fold0" / "member0" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("an interrupted run of another recipe")
    cross_validate(train, cv)
    assert not stale.exists()
    assert json.loads((stale.parents[1] / "trained.json").read_text())["finished"] is True

    # an interrupted run of the same recipe is resumed in place
    fold = tmp_path / "cv" / "folds" / "fold1"
    (fold / "done.json").unlink()
    state = json.loads((fold / "trained.json").read_text())
    (fold / "trained.json").write_text(json.dumps({**state, "finished": False}))
    kept = fold / "member0" / "kept.txt"
    kept.write_text("this recipe's own run")
    cross_validate(train, cv)
    assert kept.exists()


# ---- named recipes ------------------------------------------------------------------------------------
def test_every_shipped_recipe_builds_both_configs():
    from mammocad.evaluate.config import CrossValConfig
    from mammocad.evaluate.recipes import load_recipe, recipe_names
    from mammocad.utils.config import build_configs

    assert "mias-lesion" in recipe_names()
    for name in recipe_names():
        values = load_recipe(name)
        train, cv = build_configs((TrainConfig, CrossValConfig), None, {}, values)
        for key, value in values.items():
            built = getattr(train if hasattr(train, key) else cv, key)
            assert str(getattr(built, "value", built)) == str(value), (name, key)


def test_recipe_sits_between_the_defaults_and_the_config_file_and_flags(lesion_set: Path, tmp_path: Path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: classical_lr\ninput_size: 32\ntta: flips\nworkers: 0\nbootstrap: 20\nfolds: 3\n")
    config = tmp_path / "config.yaml"
    config.write_text("folds: 4\nval_fraction: 0.25\n")
    run("cross-validate", "--recipe", recipe, "--config", config, "--data", lesion_set, "--task",
        "lesion_vs_background", "--bootstrap", 30, "--out", tmp_path / "cv")
    summary = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    assert summary["recipe"]["model"] == "classical_lr" and summary["recipe"]["input_size"] == 32  # the recipe's
    assert summary["tta"] == "flips"  # the recipe's
    assert summary["folds"] == 4  # the config file's, over the recipe's
    assert summary["bootstrap"]["n_resamples"] == 30  # the flag's, over the recipe's
    trained = run("train-classifier", "--recipe", recipe, "--data", lesion_set, "--task", "lesion_vs_background",
                  "--no-evaluate", "--out", tmp_path / "one")
    assert "bootstrap 20, folds 3, tta flips apply to cross-validate only" in trained.output
    assert yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())["model"] == "classical_lr"


@pytest.mark.parametrize("recipe, message", [
    ("no-such-recipe", "unknown recipe 'no-such-recipe'; named recipes: mias-lesion"),
    ("bad.yaml", "bad.yaml: a recipe holds train-classifier / cross-validate settings only; not allowed: "
                 "['out', 'wieghts']"),
])
def test_a_bad_recipe_is_one_line_naming_it(tmp_path: Path, monkeypatch, recipe: str, message: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("wieghts: none\nout: somewhere\n")
    for command in ("cross-validate", "train-classifier"):
        result = run(command, "--recipe", recipe, "--data", tmp_path, ok=False)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert message in result.output, result.output
