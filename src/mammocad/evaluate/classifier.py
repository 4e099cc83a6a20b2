"""Evaluate a trained classifier checkpoint (or an ensemble of them) on any patch set.

``evaluate_classifier`` predicts every patch of the evaluation split (and of the validation
split, which fixes the operating threshold of binary tasks), saves the per-sample predictions
as CSV so any metric can be recomputed, and writes the metrics with bootstrap CIs (AUC,
accuracy, Brier score), the confusion matrix, the ROC curve and a reliability diagram. When the
checkpoint sits in a training run folder, the training curves (paper Figure 2) are drawn from
its ``metrics.csv`` too. Any model family of the registry (networks, classical models) is read
through ``mammocad.train.inference.load_predictor``.

Options: test-time augmentation (``tta``: each model's probabilities are the mean over the
flipped/rotated views, ``mammocad.train.augment.tta_views``); an ensemble (several checkpoints
of the same task: the mean of the members' probabilities, ``average_predictions``); calibration
(``calibration="stored"``: each member's probabilities go through the calibration stored beside
its checkpoint, when there is one, before they are averaged; ``calibrate_checkpoint`` fits one
on a validation split).

Output folder::

    predictions_<split>.csv     one row per patch: ids, target, prob_<class> ...
    metrics.json, confusion.csv, roc.png, reliability.png
    training_curves.png         when the (first) checkpoint's run metrics.csv is found
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mammocad.evaluate.calibration import (
    Calibration,
    calibrate_frame,
    fit_calibration,
    load_calibration,
    save_calibration,
)
from mammocad.evaluate.metrics import EvaluationResult, brier_score, evaluate_predictions
from mammocad.evaluate.plots import training_curves_figure, write_evaluation
from mammocad.evaluate.predictions import average_predictions, predictions_frame, write_predictions
from mammocad.patches.datasets import PatchDataset
from mammocad.train.augment import eval_transform
from mammocad.train.inference import Predictor, load_predictor
from mammocad.train.tasks import get_task
from mammocad.utils.atomic import atomic_path, check_output_folder
from mammocad.utils.errors import DataError

PASSTHROUGH = ("patient_id", "image_id", "abnormality", "label", "kind")
CALIBRATION_CHOICES = ("stored", "none")


def split_dataset(meta: dict, data: Path, split: str) -> PatchDataset | None:
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


def predict_split(predictor: Predictor, data: Path, split: str, *, batch_size: int = 64, workers: int = 0,
                  tta: str = "none", precision: str = "32") -> pd.DataFrame | None:
    """One model's predictions of the ``split`` patches of ``data`` as a predictions frame (None: no patches)."""
    meta = predictor.meta
    dataset = split_dataset(meta, data, split)
    if dataset is None:
        return None
    probs, targets = predictor.predict(dataset, batch_size=batch_size, workers=workers, tta=tta, precision=precision)
    extra = {column: dataset.frame[column].fillna("").astype(str).tolist() for column in PASSTHROUGH
             if column in dataset.frame}
    return predictions_frame(dataset.frame["patch_id"].tolist(), targets, probs, meta["class_names"], split, extra)


def calibrate_checkpoint(checkpoint: str | Path, data: str | Path, method: str, *, split: str = "val",
                         tta: str = "none", batch_size: int = 64, workers: int = 0) -> Calibration:
    """Fit a ``method`` calibration on ``checkpoint``'s (uncalibrated) predictions of the ``split`` of
    ``data`` and store it beside the checkpoint (``mammocad.evaluate.calibration``); return it.

    DataError when the split lacks patches of two classes.
    """
    predictor = load_predictor(checkpoint)
    frame = predict_split(predictor, Path(data), split, batch_size=batch_size, workers=workers, tta=tta)
    if frame is None or frame["target"].nunique() < 2:
        raise DataError(data, f"the {split!r} split needs patches of two classes of task {predictor.meta['task']} "
                              f"to fit a calibration")
    calibration = fit_calibration(frame["target"].to_numpy(), frame.filter(like="prob_").to_numpy(), method, tta=tta)
    save_calibration(calibration, checkpoint)
    return calibration


def _run_metrics(checkpoint: Path) -> Path | None:
    """The training run's metrics.csv for a checkpoint at RUN/checkpoints/*.ckpt, if present."""
    candidate = checkpoint.resolve().parent.parent / "metrics.csv"
    return candidate if candidate.is_file() else None


def predict_ensemble(members: list[tuple[Predictor, Calibration | None]], data: Path, split: str, **options
                     ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Predictions of ``split`` by the ``(predictor, calibration or None)`` members: the mean of their
    calibrated probabilities, and the same without calibration; None when the split has no patches.
    ``options``: those of ``predict_split``."""
    raw = [predict_split(predictor, data, split, **options) for predictor, _ in members]
    if raw[0] is None:
        return None
    calibrated = [calibrate_frame(frame, cal) for frame, (_, cal) in zip(raw, members)]
    return average_predictions(calibrated), average_predictions(raw)


def evaluate_classifier(checkpoint: str | Path | Sequence[str | Path], data: str | Path, out: str | Path, *,
                        split: str = "test", val_split: str | None = "val", batch_size: int = 64, workers: int = 0,
                        n_resamples: int = 1000, seed: int = 0, tta: str = "none",
                        calibration: str = "stored") -> EvaluationResult:
    """Evaluate ``checkpoint`` (one path, or several: their ensemble) on the ``split`` patches of ``data``.

    The binary decision threshold is chosen on ``val_split`` of the same patch set (Youden's J)
    when it has patches of the task, else 0.5; multiclass tasks use the arg-max. ``tta`` and
    ``calibration`` ("stored" or "none") as in the module docstring; ``metrics.json`` records
    the calibrations applied and the Brier score before them (``brier_uncalibrated``).
    DataError (and nothing written) when ``out`` cannot be a folder, a checkpoint is unusable,
    the members are of different tasks, the evaluation split has patches of fewer than two of
    the task's classes, or a binary task's validation split has patches of one class only (no
    threshold can be chosen on it).
    """
    paths = [Path(checkpoint)] if isinstance(checkpoint, (str, Path)) else [Path(c) for c in checkpoint]
    data, out = Path(data), Path(out)
    if calibration not in CALIBRATION_CHOICES:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATION_CHOICES)}, got {calibration!r}")
    check_output_folder(out)
    members = [(load_predictor(path), load_calibration(path) if calibration == "stored" else None) for path in paths]
    meta = members[0][0].meta
    for path, (predictor, _) in zip(paths, members):
        if predictor.meta["class_names"] != meta["class_names"] or predictor.meta["task"] != meta["task"]:
            raise DataError(path, f"is a {predictor.meta['task']} model; the ensemble's first member is "
                                  f"{meta['task']}")
    test_set = split_dataset(meta, data, split)
    if test_set is None:
        raise DataError(data, f"no {split!r} patches for task {meta['task']} "
                              f"(labels {', '.join(get_task(meta['task']).classes)})")
    _require_classes(test_set, meta, data, split, 2, "the AUC needs patches of at least two classes")
    val_set = split_dataset(meta, data, val_split) if val_split is not None and val_split != split else None
    if val_set is not None and len(meta["class_names"]) == 2:
        _require_classes(val_set, meta, data, val_split, 2,
                         "the decision threshold (Youden's J) is chosen on both classes; use another "
                         "validation split, or none (--val-split none) for the fixed threshold 0.5")
    # Everything is computed before the first file is written: a failure leaves no partial output.
    options = {"batch_size": batch_size, "workers": workers, "tta": tta}
    test_frame, raw_test = predict_ensemble(members, data, split, **options)
    val_frame = None if val_set is None else predict_ensemble(members, data, val_split, **options)[0]
    result = evaluate_predictions(test_frame, meta["class_names"], val_frame=val_frame, n_resamples=n_resamples,
                                  seed=seed)
    raw_scores = raw_test.filter(like="prob_").to_numpy()
    result.metrics.update(
        brier_uncalibrated=brier_score(raw_test["target"].to_numpy(),
                                       raw_scores[:, 1] if len(meta["class_names"]) == 2 else raw_scores),
        calibration=[None if cal is None else cal.__dict__ for _, cal in members],
        tta=tta, ensemble=[str(path) for path in paths])
    metrics_csv = _run_metrics(paths[0])
    curves = None if metrics_csv is None else training_curves_figure(pd.read_csv(metrics_csv))
    for frame in (test_frame, val_frame):
        if frame is not None:
            write_predictions(out / f"predictions_{frame['split'].iloc[0]}.csv", frame)
    write_evaluation(out, result, test_frame)
    if curves is not None:
        with atomic_path(out / "training_curves.png") as tmp:
            curves.savefig(tmp, dpi=100)
    return result
