"""Evaluation of classifiers: metrics agree with scikit-learn, thresholds, bootstrap CIs, files, figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score, roc_auc_score

from mammocad import DISCLAIMER
from mammocad.evaluate.metrics import (
    binary_metrics,
    bootstrap_ci,
    choose_threshold,
    confusion_table,
    evaluate_predictions,
    multiclass_metrics,
    weighted_accuracy,
    weighted_auc,
)
from mammocad.evaluate.plots import roc_figure, training_curves_figure, write_evaluation
from mammocad.evaluate.predictions import predictions_frame, read_predictions, write_predictions
from mammocad.utils.errors import DataError

BINARY = ("BENIGN", "MALIGNANT")
FIVE = ("BACKGROUND", "BENIGN_CALCIFICATION", "BENIGN_MASS", "MALIGNANT_CALCIFICATION", "MALIGNANT_MASS")

# Fixed small binary case with tied scores (0.4, 0.7) across classes.
Y2 = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
S2 = np.array([0.1, 0.4, 0.35, 0.7, 0.2, 0.4, 0.8, 0.7, 0.55, 0.05, 0.3, 0.6])


def _five_class(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets (n,) and informative softmax probabilities (n, 5)."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 5, n)
    logits = rng.normal(size=(n, 5)) + 1.5 * np.eye(5)[targets]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return targets, probs


def _binary(n: int, seed: int, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Targets (n,) and class-1 probabilities (n,), positives scoring higher by ``shift`` logits."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n)
    return targets, 1 / (1 + np.exp(-(rng.normal(size=n) + shift * (2 * targets - 1))))


def _frame(targets: np.ndarray, probs: np.ndarray, names: tuple[str, ...], split: str) -> pd.DataFrame:
    if probs.ndim == 1:
        probs = np.column_stack([1 - probs, probs])
    return predictions_frame([f"{split}-{i}" for i in range(len(targets))], targets, probs, names, split)


# --- metrics against scikit-learn ----------------------------------------------------------------


def test_binary_metrics_match_sklearn():
    m = binary_metrics(Y2, S2, threshold=0.4)
    predicted = (S2 >= 0.4).astype(int)
    tn, fp, fn, tp = confusion_matrix(Y2, predicted).ravel()
    assert m["accuracy"] == accuracy_score(Y2, predicted)
    assert m["auc"] == roc_auc_score(Y2, S2)
    assert m["sensitivity"] == recall_score(Y2, predicted) == tp / (tp + fn)
    assert m["specificity"] == recall_score(Y2, predicted, pos_label=0) == tn / (tn + fp)
    assert (m["threshold"], m["n"], m["n_positive"]) == (0.4, 12, 5)
    # Scores equal to the threshold are called positive (sklearn's roc_curve convention).
    assert binary_metrics(Y2, S2, threshold=0.55)["sensitivity"] == 3 / 5


def test_binary_metrics_need_both_classes():
    with pytest.raises(ValueError, match="class 1 is absent"):
        binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])


def test_multiclass_metrics_match_sklearn():
    targets, probs = _five_class(60, seed=1)
    m = multiclass_metrics(targets, probs, FIVE)
    assert m["accuracy"] == accuracy_score(targets, probs.argmax(axis=1))
    assert m["auc"] == pytest.approx(roc_auc_score(targets, probs, multi_class="ovr", average="macro"), abs=1e-12)
    for k, name in enumerate(FIVE):
        assert m["auc_per_class"][name] == roc_auc_score(targets == k, probs[:, k])
    assert m["auc_classes_absent"] == []
    assert sum(m["n_per_class"].values()) == m["n"] == 60


def test_multiclass_auc_leaves_out_absent_classes():
    targets, probs = _five_class(60, seed=2)
    keep = targets != 3
    targets, probs = targets[keep], probs[keep]
    m = multiclass_metrics(targets, probs, FIVE)
    assert m["auc_classes_absent"] == ["MALIGNANT_CALCIFICATION"]
    assert m["auc_per_class"]["MALIGNANT_CALCIFICATION"] is None
    expected = np.mean([roc_auc_score(targets == k, probs[:, k]) for k in (0, 1, 2, 4)])
    assert m["auc"] == pytest.approx(expected, abs=1e-12)
    assert m["n_per_class"]["MALIGNANT_CALCIFICATION"] == 0
    with pytest.raises(ValueError, match="at least two classes"):
        multiclass_metrics(np.zeros(4, dtype=int), probs[:4], FIVE)


def test_confusion_table_rows_true_columns_predicted():
    targets, probs = _five_class(80, seed=3)
    predicted = probs.argmax(axis=1)
    table = confusion_table(targets, predicted, FIVE)
    np.testing.assert_array_equal(table.to_numpy(), confusion_matrix(targets, predicted, labels=range(5)))
    assert list(table.index) == list(table.columns) == list(FIVE)
    assert (table.index.name, table.columns.name) == ("true", "predicted")
    # One sample, true class 0 predicted as class 2, lands in row 0, column 2.
    single = confusion_table([0], [2], FIVE)
    assert single.loc["BACKGROUND", "BENIGN_MASS"] == 1 and single.to_numpy().sum() == 1


# --- threshold -----------------------------------------------------------------------------------


def test_youden_threshold_known_answer():
    # Negatives 0.1 0.2 0.3 0.5; positives 0.4 0.6 0.7 0.8 0.9.
    # J at 0.6 = 4/5 - 0 = 0.8 (the maximum); at 0.4 = 1 - 1/4 = 0.75; at 0.5 = 4/5 - 1/4.
    targets = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7, 0.8, 0.9]
    assert choose_threshold(targets, scores) == 0.6


def test_youden_ties_go_to_the_highest_threshold():
    # J = 0.75 both at 0.6 (tpr 3/4, fpr 0) and at 0.4 (tpr 1, fpr 1/4).
    targets = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.45, 0.4, 0.6, 0.7, 0.8]
    assert choose_threshold(targets, scores) == 0.6
    with pytest.raises(ValueError, match="absent"):
        choose_threshold([1, 1], [0.2, 0.3])


# --- bootstrap -----------------------------------------------------------------------------------


def test_weighted_metrics_equal_sklearn_on_resampled_data():
    rng = np.random.default_rng(4)
    y2, s2 = _binary(300, seed=4)
    s2 = np.round(s2, 2)  # plenty of ties
    y5, p5 = _five_class(300, seed=4)
    indices = rng.integers(0, 300, (6, 300))
    weights = np.stack([np.bincount(i, minlength=300) for i in indices]).astype(float)
    np.testing.assert_allclose(
        weighted_auc(y2, s2, weights), [roc_auc_score(y2[i], s2[i]) for i in indices], atol=1e-12
    )
    np.testing.assert_allclose(
        weighted_auc(y5, p5, weights), [roc_auc_score(y5[i], p5[i], multi_class="ovr") for i in indices], atol=1e-12
    )
    np.testing.assert_allclose(
        weighted_accuracy(y2, s2, weights, threshold=0.3), [accuracy_score(y2[i], s2[i] >= 0.3) for i in indices]
    )
    np.testing.assert_allclose(
        weighted_accuracy(y5, p5, weights), [accuracy_score(y5[i], p5[i].argmax(axis=1)) for i in indices]
    )


def test_bootstrap_ci_properties():
    targets, scores = _binary(2000, seed=5)
    small = bootstrap_ci(targets[:100], scores[:100], weighted_auc, n_resamples=500, seed=0)
    large = bootstrap_ci(targets, scores, weighted_auc, n_resamples=500, seed=0)
    assert small.low < roc_auc_score(targets[:100], scores[:100]) < small.high
    assert large.low < roc_auc_score(targets, scores) < large.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)  # width shrinks ~ 1/sqrt(n)
    assert bootstrap_ci(targets[:100], scores[:100], weighted_auc, n_resamples=500, seed=0) == small
    assert bootstrap_ci(targets[:100], scores[:100], weighted_auc, n_resamples=500, seed=1) != small
    assert small.n_skipped == 0 and small.level == 0.95


def test_bootstrap_counts_resamples_lacking_a_class():
    # One positive in five: a resample misses it with probability (4/5)^5 = 0.33.
    ci = bootstrap_ci([0, 0, 0, 0, 1], [0.1, 0.5, 0.3, 0.7, 0.6], weighted_auc, n_resamples=2000, seed=0)
    assert 0.28 < ci.n_skipped / 2000 < 0.38
    assert 0 <= ci.low <= ci.high <= 1


def test_bootstrap_rejects_scalar_metric():
    with pytest.raises(ValueError, match="one value per weight row"):
        bootstrap_ci(Y2, S2, lambda t, s, w: 0.5, n_resamples=10)


# --- predictions CSV -----------------------------------------------------------------------------


def test_predictions_round_trip(tmp_path):
    targets, probs = _five_class(40, seed=7)
    frame = predictions_frame(
        [f"P_{i:05d}" for i in range(40)],
        targets,
        probs,
        FIVE,
        "test",
        extra={"image_id": ["007"] * 40, "abnormality": [None] + ["a1"] * 39},
    )
    path = write_predictions(tmp_path / "preds" / "test.csv", frame)
    back, names = read_predictions(path)
    assert names == FIVE
    prob_columns = [f"prob_{n}" for n in FIVE]
    assert list(back.columns) == ["sample_id", "split", "target", "target_name", *prob_columns, "image_id", "abnormality"]
    np.testing.assert_array_equal(back[prob_columns].to_numpy(), probs)  # exact floats
    np.testing.assert_array_equal(back["target"].to_numpy(), targets)
    assert list(back["target_name"]) == [FIVE[t] for t in targets]
    assert back["image_id"].iloc[0] == "007" and back["abnormality"].iloc[0] == ""
    recomputed = multiclass_metrics(back["target"], back[prob_columns].to_numpy(), names)
    assert recomputed == multiclass_metrics(targets, probs, FIVE)
    assert not list(tmp_path.joinpath("preds").glob(".*"))  # no temporary file left behind


def test_predictions_validation(tmp_path):
    probs = np.array([[0.3, 0.7], [0.9, 0.1]])
    with pytest.raises(ValueError, match="sum to"):
        predictions_frame(["a", "b"], [1, 0], np.array([[0.3, 0.9], [0.9, 0.1]]), BINARY, "val")
    with pytest.raises(ValueError, match="shape"):
        predictions_frame(["a", "b"], [1, 0], probs[:, :1], BINARY, "val")
    with pytest.raises(ValueError, match="lie in"):
        predictions_frame(["a", "b"], [2, 0], probs, BINARY, "val")
    with pytest.raises(ValueError, match="clashes"):
        predictions_frame(["a", "b"], [1, 0], probs, BINARY, "val", extra={"prob_X": [1, 2]})
    with pytest.raises(ValueError, match="more than once"):
        predictions_frame(["a", "a"], [1, 0], probs, BINARY, "val")
    frame = predictions_frame(["a", "b"], [1, 0], probs, BINARY, "val")
    frame.loc[0, "target_name"] = "BENIGN"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError, match="bad.csv.*target_name"):
        read_predictions(bad)


# --- evaluate_predictions ------------------------------------------------------------------------


def test_evaluate_uses_validation_threshold():
    test = _frame(*_binary(400, seed=8), BINARY, "test")
    default = evaluate_predictions(test, BINARY, n_resamples=200)
    assert (default.threshold, default.threshold_source) == (0.5, "default")

    # Validation sets where the positives score low or high: Youden's J picks a low or a high threshold.
    y_val, s_val = _binary(400, seed=9)
    low_val = _frame(y_val, s_val * 0.5, BINARY, "val")
    high_val = _frame(y_val, 0.5 + s_val * 0.5, BINARY, "val")
    low = evaluate_predictions(test, BINARY, val_frame=low_val, n_resamples=200)
    high = evaluate_predictions(test, BINARY, val_frame=high_val, n_resamples=200)
    assert low.threshold_source == high.threshold_source == "validation"
    assert low.threshold == choose_threshold(y_val, s_val * 0.5) < 0.5 < high.threshold
    assert low.metrics["sensitivity"] > default.metrics["sensitivity"] > high.metrics["sensitivity"]
    assert low.metrics["specificity"] < default.metrics["specificity"] < high.metrics["specificity"]

    targets, scores = test["target"].to_numpy(), test["prob_MALIGNANT"].to_numpy()
    expected = binary_metrics(targets, scores, low.threshold)
    assert {k: low.metrics[k] for k in expected} == expected
    assert low.metrics["auc"] == high.metrics["auc"]  # threshold-free
    np.testing.assert_array_equal(low.confusion.to_numpy(), confusion_matrix(targets, scores >= low.threshold))
    lo, hi = low.metrics["accuracy_ci"]
    assert lo <= low.metrics["accuracy"] <= hi
    assert low.metrics["bootstrap"]["n_resamples"] == 200


def test_evaluate_multiclass_and_class_mismatch():
    targets, probs = _five_class(300, seed=10)
    test = _frame(targets, probs, FIVE, "test")
    result = evaluate_predictions(test, FIVE, n_resamples=200)
    assert (result.task, result.threshold, result.threshold_source) == ("multiclass", None, "argmax")
    assert result.metrics["auc"] == pytest.approx(roc_auc_score(targets, probs, multi_class="ovr"), abs=1e-12)
    assert result.metrics["accuracy_ci"][0] < result.metrics["accuracy"] < result.metrics["accuracy_ci"][1]
    assert result.metrics["auc_ci"][0] < result.metrics["auc"] < result.metrics["auc_ci"][1]
    np.testing.assert_array_equal(result.confusion.to_numpy(), confusion_matrix(targets, probs.argmax(axis=1)))
    with pytest.raises(ValueError, match="expected"):
        evaluate_predictions(test, tuple(reversed(FIVE)))


# --- figures and files ---------------------------------------------------------------------------


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_roc_figures_render(tmp_path):
    y2, s2 = _binary(200, seed=11)
    binary = roc_figure(y2, np.column_stack([1 - s2, s2]), BINARY, "binary", threshold=0.5)
    assert f"AUC = {roc_auc_score(y2, s2):.3f}" in _texts(binary) and "threshold 0.5" in _texts(binary)
    y5, p5 = _five_class(200, seed=11)
    y5[y5 == 3] = 4  # MALIGNANT_CALCIFICATION absent: no curve, named in the legend
    five = roc_figure(y5, p5, FIVE, "five")
    text = _texts(five)
    assert "MALIGNANT_CALCIFICATION: no ROC" in text and f"AUC = {roc_auc_score(y5 == 0, p5[:, 0]):.3f}" in text
    for name, fig in (("binary", binary), ("five", five)):
        assert DISCLAIMER in _texts(fig)
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_training_curves_from_sparse_lightning_csv(tmp_path):
    # Lightning CSVLogger style: step rows log train_loss_step; the epoch-end rows log the rest.
    rows = []
    for epoch in range(3):
        rows += [{"epoch": epoch, "step": 10 * epoch + s, "train_loss_step": 2.0 - epoch - 0.1 * s} for s in range(3)]
        end = {"epoch": epoch, "step": 10 * epoch + 3}
        rows.append({**end, "val_loss": 1.5 - 0.4 * epoch, "val_acc": 0.5 + 0.1 * epoch, "val_auc": 0.6 + 0.1 * epoch})
        rows.append({**end, "train_loss_epoch": 1.9 - epoch, "train_acc_epoch": 0.55 + 0.1 * epoch})
    path = tmp_path / "metrics.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    fig = training_curves_figure(pd.read_csv(path))
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["Loss", "Accuracy", "AUC"]
    loss_lines = {line.get_label(): line for line in axes[0].get_lines()}
    np.testing.assert_allclose(loss_lines["train"].get_ydata(), [1.9, 0.9, -0.1])  # _epoch column, not _step
    np.testing.assert_allclose(loss_lines["validation"].get_ydata(), [1.5, 1.1, 0.7])
    assert [line.get_label() for line in axes[2].get_lines()] == ["validation"]  # no train AUC logged
    fig.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no training-curve columns"):
        training_curves_figure(pd.DataFrame({"epoch": [0, 1], "lr": [0.1, 0.1]}))


def test_write_evaluation(tmp_path):
    test = _frame(*_binary(150, seed=12), BINARY, "test")
    val = _frame(*_binary(150, seed=13), BINARY, "val")
    result = evaluate_predictions(test, BINARY, val_frame=val, n_resamples=100)
    paths = write_evaluation(tmp_path / "eval", result, test)
    saved = json.loads(paths["metrics"].read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert saved["metrics"]["auc"] == result.metrics["auc"]
    assert saved["threshold"] == result.threshold and saved["threshold_source"] == "validation"
    assert saved["confusion"]["counts"] == result.confusion.to_numpy().tolist()
    confusion = pd.read_csv(paths["confusion"], index_col="true")
    np.testing.assert_array_equal(confusion.to_numpy(), result.confusion.to_numpy())
    assert list(confusion.columns) == list(BINARY)
    assert paths["roc"].stat().st_size > 1000
