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
from mammocad.utils.atomic import atomic_path, check_output_folder
from mammocad.utils.errors import DataError

PASSTHROUGH = ("patient_id", "image_id", "abnormality", "label", "kind")


def _split_dataset(meta: dict, data: Path, split: str) -> PatchDataset | None:
    """The patches of one split that belong to the task, or None when there is none."""
    task = get_task(meta["task"])
    dataset = PatchDataset(data, split, classes=task.classes, transform=eval_transform(meta["input_size"]))
    return dataset if len(dataset) else None


def _require_classes(dataset: PatchDataset, meta: dict, data: Path, split: str, needed: int, why: str) -> None:
    """DataError unless the split holds patches of at least ``needed`` of the task's classes."""
    names = meta["class_names"]
    present = sorted({names[t] for t in dataset.targets})
    if len(present) < needed:
        task = get_task(meta["task"])
        raise DataError(data, f"the {split!r} split holds only {'/'.join(present)} patches of task {task.name} "
                              f"(classes {', '.join(task.class_names)}): {why}")


def _predict_split(model, meta: dict, dataset: PatchDataset, split: str, batch_size: int,
                   workers: int) -> pd.DataFrame:
    """Predictions of one split as a predictions frame."""
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
    when it has patches of the task, else 0.5; multiclass tasks use the arg-max. DataError (and
    nothing written) when ``out`` cannot be a folder, the checkpoint is unusable, the evaluation
    split has patches of fewer than two of the task's classes, or a binary task's validation
    split has patches of one class only (no threshold can be chosen on it).
    """
    checkpoint, data, out = Path(checkpoint), Path(data), Path(out)
    check_output_folder(out)
    model, meta = load_classifier(checkpoint)
    test_set = _split_dataset(meta, data, split)
    if test_set is None:
        raise DataError(data, f"no {split!r} patches for task {meta['task']} "
                              f"(labels {', '.join(get_task(meta['task']).classes)})")
    _require_classes(test_set, meta, data, split, 2, "the AUC needs patches of at least two classes")
    val_set = _split_dataset(meta, data, val_split) if val_split is not None and val_split != split else None
    if val_set is not None and len(meta["class_names"]) == 2:
        _require_classes(val_set, meta, data, val_split, 2,
                         "the decision threshold (Youden's J) is chosen on both classes; use another "
                         "validation split, or none (--val-split none) for the fixed threshold 0.5")
    # Everything is computed before the first file is written: a failure leaves no partial output.
    test_frame = _predict_split(model, meta, test_set, split, batch_size, workers)
    val_frame = None if val_set is None else _predict_split(model, meta, val_set, val_split, batch_size, workers)
    result = evaluate_predictions(test_frame, meta["class_names"], val_frame=val_frame, n_resamples=n_resamples,
                                  seed=seed)
    metrics_csv = _run_metrics(checkpoint)
    curves = None if metrics_csv is None else training_curves_figure(pd.read_csv(metrics_csv))
    for frame in (test_frame, val_frame):
        if frame is not None:
            write_predictions(out / f"predictions_{frame['split'].iloc[0]}.csv", frame)
    write_evaluation(out, result, test_frame)
    if curves is not None:
        with atomic_path(out / "training_curves.png") as tmp:
            curves.savefig(tmp, dpi=100)
    return result
