"""ROC curves, reliability diagrams, training curves (like the paper's Figure 2) and the evaluation files of one split.

Figures use matplotlib's object API (no pyplot state) and carry the research-software note.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score, roc_curve

from mammocad import DISCLAIMER
from mammocad.evaluate.metrics import EvaluationResult, binary_metrics
from mammocad.evaluate.predictions import probability_matrix
from mammocad.utils.atomic import atomic_path, write_csv, write_json

# Training-curve panels: metric suffix -> axis title, and the logged split prefixes -> legend label.
CURVE_METRICS = {"loss": "Loss", "acc": "Accuracy", "auc": "AUC"}
CURVE_SPLITS = {"train": "train", "val": "validation"}


def disclaimer_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure with the disclaimer in a strip along its bottom edge."""
    fig = Figure(figsize=(width, height))
    fig.set_layout_engine(ConstrainedLayoutEngine(rect=(0, 0.06, 1, 0.94)))
    fig.text(0.01, 0.015, DISCLAIMER, fontsize=7, color="0.4")
    return fig


def roc_figure(
    targets: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    title: str,
    threshold: float | None = None,
) -> Figure:
    """ROC curve(s) of (N,) ``targets`` against (N, C) ``probabilities``.

    Two classes: the ROC of class 1 (positive) with its AUC in the legend and, when ``threshold``
    is given, the operating point (1 - specificity, sensitivity) at that threshold marked.
    More classes: one one-vs-rest curve per class with its AUC; a class absent from ``targets``
    has no curve and is named in the legend as such.
    """
    targets = np.asarray(targets)
    probs = np.asarray(probabilities, dtype=np.float64)
    fig = disclaimer_figure(5.5, 5.5)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", label="chance")
    if len(class_names) == 2:
        fpr, tpr, _ = roc_curve(targets, probs[:, 1])
        auc = roc_auc_score(targets, probs[:, 1])
        ax.plot(fpr, tpr, label=f"{class_names[1]} vs {class_names[0]} (AUC = {auc:.3f})")
        if threshold is not None:
            at = binary_metrics(targets, probs[:, 1], threshold)
            ax.plot(1 - at["specificity"], at["sensitivity"], "o", color="black", label=f"threshold {threshold:.3g}")
    else:
        for k, name in enumerate(class_names):
            positive = targets == k
            if positive.all() or not positive.any():
                ax.plot([], [], " ", label=f"{name}: no ROC (only one side present)")
                continue
            fpr, tpr, _ = roc_curve(positive, probs[:, k])
            ax.plot(fpr, tpr, label=f"{name} (AUC = {roc_auc_score(positive, probs[:, k]):.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def reliability_figure(targets: Sequence[int] | np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                       title: str, bins: int = 10) -> Figure:
    """Reliability diagram: observed frequency against predicted probability, in ``bins`` equal-width bins.

    Two classes: the fraction of class-1 samples against the mean class-1 probability per bin.
    More classes: the accuracy of the arg-max against its mean confidence (top-label
    calibration). A perfectly calibrated model lies on the diagonal; the lower panel counts the
    samples per bin.
    """
    targets = np.asarray(targets)
    probs = np.asarray(probabilities, dtype=np.float64)
    if len(class_names) == 2:
        observed, scores, what = targets == 1, probs[:, 1], f"P({class_names[1]})"
    else:
        observed, scores, what = probs.argmax(axis=1) == targets, probs.max(axis=1), "confidence (top class)"
    fraction, mean_predicted = calibration_curve(observed, scores, n_bins=bins, strategy="uniform")
    fig = disclaimer_figure(5.5, 6.5)
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", label="perfectly calibrated")
    ax.plot(mean_predicted, fraction, marker="o", label="model")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title=title, ylabel="observed frequency" if len(class_names) == 2
           else "accuracy")
    ax.legend(loc="upper left", fontsize=8)
    hist.hist(scores, bins=bins, range=(0, 1), color="0.5")
    hist.set(xlabel=f"predicted {what}", ylabel="samples")
    return fig


def _curve_column(per_epoch: pd.DataFrame, split: str, metric: str) -> str | None:
    """The logged column for ``split``/``metric``: Lightning's ``<name>_epoch`` if present, else ``<name>``."""
    for column in (f"{split}_{metric}_epoch", f"{split}_{metric}"):
        if column in per_epoch.columns and per_epoch[column].notna().any():
            return column
    return None


def training_curves_figure(metrics: pd.DataFrame) -> Figure:
    """Loss / accuracy / AUC per epoch for the train and validation splits (like the paper's Figure 2).

    ``metrics`` is a Lightning ``CSVLogger`` ``metrics.csv`` as a frame: an ``epoch`` column and
    sparse metric columns (NaN where a row did not log them) named ``<split>_<metric>`` with
    split ``train``/``val`` and metric ``loss``/``acc``/``auc``, optionally with Lightning's
    ``_epoch`` suffix (preferred; ``_step`` columns are ignored). Rows are averaged per epoch,
    ignoring NaN; one panel per metric that has any values, one line per split that logged it.
    Raises ``ValueError`` when there is no ``epoch`` column or nothing to plot.
    """
    if "epoch" not in metrics.columns:
        raise ValueError("training metrics need an 'epoch' column")
    per_epoch = metrics.dropna(subset=["epoch"]).groupby("epoch").mean(numeric_only=True)
    panels = {
        metric: {
            label: column for split, label in CURVE_SPLITS.items() if (column := _curve_column(per_epoch, split, metric))
        }
        for metric in CURVE_METRICS
    }
    panels = {metric: lines for metric, lines in panels.items() if lines}
    if not panels:
        expected = [f"{split}_{metric}" for metric in CURVE_METRICS for split in CURVE_SPLITS]
        raise ValueError(f"no training-curve columns found; expected some of {expected}")
    fig = disclaimer_figure(4.0 * len(panels), 3.8)
    for ax, (metric, lines) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items()):
        for label, column in lines.items():
            values = per_epoch[column].dropna()
            ax.plot(values.index.to_numpy(), values.to_numpy(), marker="o", markersize=3, label=label)
        ax.set(title=CURVE_METRICS[metric], xlabel="epoch")
        ax.legend(fontsize=8)
    return fig


def write_evaluation(out_dir: str | Path, result: EvaluationResult, test_frame: pd.DataFrame) -> dict[str, Path]:
    """Write ``metrics.json``, ``confusion.csv``, ``roc.png`` and ``reliability.png`` for ``result``, atomically.

    ``test_frame`` holds the predictions ``result`` was computed from (for the ROC curve).
    ``confusion.csv`` has a first column ``true`` followed by one column per predicted class.
    Returns the written paths by file kind (``metrics``, ``confusion``, ``roc``, ``reliability``).
    """
    out = Path(out_dir)
    paths = {"metrics": out / "metrics.json", "confusion": out / "confusion.csv", "roc": out / "roc.png",
             "reliability": out / "reliability.png"}
    write_json(paths["metrics"], result.to_dict())
    write_csv(paths["confusion"], result.confusion.reset_index())
    targets, probs = test_frame["target"].to_numpy(), probability_matrix(test_frame, result.class_names)
    figures = {
        "roc": roc_figure(targets, probs, result.class_names, title=f"ROC ({result.task}, n = {len(test_frame)})",
                          threshold=result.threshold),
        "reliability": reliability_figure(
            targets, probs, result.class_names,
            title=f"Reliability (Brier {result.metrics['brier']:.3f}, n = {len(test_frame)})"),
    }
    for name, fig in figures.items():
        with atomic_path(paths[name]) as tmp:
            fig.savefig(tmp, dpi=100)
    return paths
