"""Evaluate a trained classifier checkpoint on any patch set (the one it was trained on or another).

``evaluate_classifier`` predicts every patch of the evaluation split (and of the validation
split, which fixes the operating threshold of binary tasks), saves the per-sample predictions
as CSV so any metric can be recomputed, and writes the metrics with bootstrap CIs, the
confusion matrix and the ROC curve. When the checkpoint sits in a training run folder, the
training curves (paper Figure 2) are drawn from its ``metrics.csv`` too.

Output folder::

    predictions_<split>.csv     one row per patch: ids, target, prob_<class> ...
    metrics.json, confusion.csv, roc.png
    training_curves.png         when the run's metrics.csv is found
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mammocad.evaluate.metrics import EvaluationResult, evaluate_predictions
from mammocad.evaluate.plots import training_curves_figure, write_evaluation
from mammocad.evaluate.predictions import predictions_frame, write_predictions
from mammocad.patches.datasets import PatchDataset
from mammocad.train.augment import eval_transform
from mammocad.train.inference import load_classifier, predict_probabilities
from mammocad.train.tasks import get_task
from mammocad.utils.atomic import atomic_path
from mammocad.utils.errors import DataError

PASSTHROUGH = ("patient_id", "image_id", "abnormality", "label", "kind")


def _predict_split(model, meta: dict, data: Path, split: str, batch_size: int, workers: int) -> pd.DataFrame | None:
    """Predictions of one split as a predictions frame, or None when the split has no patch of the task."""
    task = get_task(meta["task"])
    dataset = PatchDataset(data, split, classes=task.classes, transform=eval_transform(meta["input_size"]))
    if len(dataset) == 0:
        return None
    probs, targets = predict_probabilities(model, dataset, input_size=meta["input_size"], batch_size=batch_size,
                                           workers=workers)
    extra = {column: dataset.frame[column].fillna("").astype(str).tolist() for column in PASSTHROUGH
             if column in dataset.frame}
    return predictions_frame(dataset.frame["patch_id"].tolist(), targets, probs, meta["class_names"], split, extra)


def _run_metrics(checkpoint: Path) -> Path | None:
    """The training run's metrics.csv for a checkpoint at RUN/checkpoints/*.ckpt, if present."""
    candidate = checkpoint.resolve().parent.parent / "metrics.csv"
    return candidate if candidate.is_file() else None


def evaluate_classifier(checkpoint: str | Path, data: str | Path, out: str | Path, *, split: str = "test",
                        val_split: str | None = "val", batch_size: int = 64, workers: int = 0,
                        n_resamples: int = 1000, seed: int = 0) -> EvaluationResult:
    """Evaluate ``checkpoint`` on the ``split`` patches of the patch set ``data``; write into ``out``.

    The binary decision threshold is chosen on ``val_split`` of the same patch set (Youden's J)
    when it has patches of the task, else 0.5; multiclass tasks use the arg-max. DataError when
    the evaluation split has no patch of the checkpoint's task.
    """
    checkpoint, data, out = Path(checkpoint), Path(data), Path(out)
    model, meta = load_classifier(checkpoint)
    test_frame = _predict_split(model, meta, data, split, batch_size, workers)
    if test_frame is None:
        raise DataError(data, f"no {split!r} patches for task {meta['task']} "
                              f"(labels {', '.join(get_task(meta['task']).classes)})")
    val_frame = None
    if val_split is not None and val_split != split:
        val_frame = _predict_split(model, meta, data, val_split, batch_size, workers)
    for frame in (test_frame, val_frame):
        if frame is not None:
            write_predictions(out / f"predictions_{frame['split'].iloc[0]}.csv", frame)
    result = evaluate_predictions(test_frame, meta["class_names"], val_frame=val_frame, n_resamples=n_resamples,
                                  seed=seed)
    write_evaluation(out, result, test_frame)
    metrics_csv = _run_metrics(checkpoint)
    if metrics_csv is not None:
        figure = training_curves_figure(pd.read_csv(metrics_csv))
        with atomic_path(out / "training_curves.png") as tmp:
            figure.savefig(tmp, dpi=100)
    return result
