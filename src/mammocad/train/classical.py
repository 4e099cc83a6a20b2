"""Fit, save and load the classical (feature-based) models of the registry; their ``Predictor``.

``train_classifier`` dispatches here for a model whose registry entry ``is_classical``: the
train split's patches are resized to the model's input size (the ``eval_transform`` every
network sees at validation), their features (``mammocad.models.features``) are extracted in
worker processes, a chunk of patches per task, streaming (only the feature table is held), the
estimator is fitted once (no epochs), and the val split is scored for ``metrics.csv``. The run
folder has the networks' layout: ``config.yaml``, ``run.json``, ``metrics.csv`` (one row,
epoch 0) and ``checkpoints/best.ckpt`` = ``last.ckpt``, here ``MAGIC`` then a joblib pickle of
the fitted estimator, the feature names and the metadata ``load_classifier`` gives for a network.

Shape features of the lesion mask are used when every train patch of the task has a mask in
the manifest (``masks`` column); a model fitted with them refuses patches without one. They are
never used when some patches lack masks (e.g. background patches): the mere presence of a mask
would give the label away.

Like any pickle, a checkpoint runs code when loaded: load only checkpoints you made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch

from mammocad.models import get_spec
from mammocad.models.features import patch_features
from mammocad.patches.datasets import PatchDataset
from mammocad.train.augment import eval_transform, tta_views
from mammocad.train.config import TrainConfig
from mammocad.train.tasks import get_task
from mammocad.utils.atomic import atomic_path, write_csv
from mammocad.utils.config import config_dict
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import read_image
from mammocad.utils.parallel import map_items

FORMAT = "mammocad-classical/1"
MAGIC = b"MAMMOCAD-CLASSICAL-CHECKPOINT\n"  # first bytes of a classical checkpoint, before the joblib pickle
CHUNK = 32  # patches per worker task


def _chunk_features(dataset: PatchDataset, use_masks: bool, tta: str, indices: range) -> tuple[int, np.ndarray]:
    """(first index, features (views, len(indices), F)) of ``dataset[indices]``; runs in a worker."""
    import cv2

    cv2.setNumThreads(1)  # a forked worker must not use the parent's thread pools
    torch.set_num_threads(1)
    rows = []
    for index in indices:
        image, _ = dataset[index]  # (1, S, S) in [0, 1]
        masks = None
        if use_masks:
            files = dataset.frame.at[index, "masks"]
            if not files:
                raise DataError(dataset.root, f"patch {dataset.frame.at[index, 'patch_id']} has no lesion mask, "
                                              f"which this model's shape features need")
            union = np.any([read_image(dataset.root / f) > 0 for f in files], axis=0)
            masks = tta_views(torch.from_numpy(union), tta)
        rows.append([list(patch_features(view[0].numpy(), None if masks is None else masks[v].numpy()).values())
                     for v, view in enumerate(tta_views(image, tta))])
    return indices.start, np.asarray(rows, dtype=np.float64).transpose(1, 0, 2)


def dataset_features(dataset: PatchDataset, *, use_masks: bool, tta: str = "none", workers: int = 0,
                     progress: bool = False) -> np.ndarray:
    """Features of every patch of ``dataset`` (built with ``eval_transform``): float64 (views, N, F).

    ``views``: 1, or the number of ``tta`` views (``mammocad.train.augment.tta_views``).
    ``workers`` > 1: that many processes, each given a chunk of ``CHUNK`` patches at a time.
    """
    chunks = [range(start, min(start + CHUNK, len(dataset))) for start in range(0, len(dataset), CHUNK)]
    parts = dict(map_items(partial(_chunk_features, dataset, use_masks, tta), chunks, workers=workers,
                           name=lambda r: f"patches {r.start}-{r.stop - 1}", desc="features", progress=progress))
    return np.concatenate([parts[c.start] for c in chunks], axis=1)


def feature_names(use_masks: bool) -> list[str]:
    """The feature names, in column order (those of a constant 16 px patch, plus shape ones when used)."""
    flat = np.zeros((16, 16))
    return list(patch_features(flat, flat.astype(bool) if use_masks else None))


def _probabilities(estimator, features: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean over views of the estimator's class probabilities, (N, C) in class-index order."""
    probs = np.zeros((features.shape[1], num_classes))
    for view in features:
        probs[:, estimator.classes_] += estimator.predict_proba(view)
    return probs / len(features)


class ClassicalPredictor:
    """A fitted classical model as a ``Predictor`` (see ``mammocad.train.inference``)."""

    def __init__(self, estimator, meta: dict[str, Any], use_masks: bool):
        self.estimator, self.meta, self.use_masks = estimator, meta, use_masks

    def predict(self, dataset: PatchDataset, *, batch_size: int = 64, workers: int = 0, tta: str = "none",
                precision: str = "32") -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, C) and targets (N,); ``batch_size`` and ``precision`` are the networks' (unused)."""
        features = dataset_features(dataset, use_masks=self.use_masks, tta=tta, workers=workers)
        return _probabilities(self.estimator, features, len(self.meta["class_names"])), np.asarray(
            dataset.targets, dtype=np.int64)


def is_classical_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a file starting with ``MAGIC`` (nothing is unpickled to tell)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def load_classical(path: str | Path) -> ClassicalPredictor:
    """The ``ClassicalPredictor`` of a classical checkpoint; DataError for an unreadable or foreign file."""
    path = Path(path)
    if not is_classical_checkpoint(path):
        raise DataError(path, "not a classical mammocad checkpoint")
    try:
        with open(path, "rb") as f:
            f.seek(len(MAGIC))
            saved = joblib.load(f)
    except Exception as err:  # a damaged file: joblib/pickle raise many types
        raise DataError(path, f"not a readable classical checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise DataError(path, "not a readable classical checkpoint (unknown format)")
    return ClassicalPredictor(saved["estimator"], saved["meta"], saved["use_masks"])


@dataclass(frozen=True)
class FittedClassical:
    """A fitted classical model before it is saved: the estimator, its metrics row and run facts."""

    estimator: Any
    meta: dict[str, Any]
    use_masks: bool
    metrics: dict[str, float]
    run: dict[str, Any]

    def save(self, checkpoints: Path, metrics_csv: Path) -> None:
        """``metrics.csv`` first, then ``last.ckpt`` and last of all ``best.ckpt`` (a run is done when it exists)."""
        import pandas as pd

        write_csv(metrics_csv, pd.DataFrame([self.metrics]))
        checkpoints.mkdir(parents=True, exist_ok=True)
        bundle = {"format": FORMAT, "estimator": self.estimator, "meta": self.meta, "use_masks": self.use_masks,
                  "feature_names": feature_names(self.use_masks)}
        for name in ("last", "best"):
            with atomic_path(checkpoints / f"{name}.ckpt") as tmp, open(tmp, "wb") as f:
                f.write(MAGIC)
                joblib.dump(bundle, f)


def fit_classical(config: TrainConfig, *, progress: bool = False) -> FittedClassical:
    """Fit ``config.model`` (a classical registry model) on the train split of ``config.data``.

    Feature extraction uses ``config.workers`` processes (None: one per CPU core of this
    process, at most 8). DataError, as for a network, when a split lacks a class.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    from mammocad.train.data import task_dataset

    spec = get_spec(config.model)
    task = get_task(config.task)
    size = config.model_input_size
    workers = config.workers if config.workers is not None else min(8, len(os.sched_getaffinity(0)))
    train_set = task_dataset(config.data, "train", task, eval_transform(size))
    val_set = task_dataset(config.data, "val", task, eval_transform(size))
    use_masks = bool(len(train_set.frame)) and all(len(m) > 0 for m in train_set.frame["masks"])
    estimator = spec.build_estimator(config.seed, config.class_weights)
    features = dataset_features(train_set, use_masks=use_masks, workers=workers, progress=progress)[0]
    targets = np.asarray(train_set.targets)
    estimator.fit(features, targets)
    meta = {"task": task.name, "class_names": list(task.class_names), "classes": task.classes,
            "model": config.model, "input_size": size, "input_norm": None, "epoch": 0, "config": config_dict(config)}
    val_probs, val_targets = ClassicalPredictor(estimator, meta, use_masks).predict(val_set, workers=workers)
    metrics: dict[str, float] = {"epoch": 0, "phase": 0}
    for split, probs, y in (("train", _probabilities(estimator, features[None], task.num_classes), targets),
                            ("val", val_probs, val_targets)):
        metrics[f"{split}_loss"] = float(log_loss(y, probs, labels=range(task.num_classes)))
        metrics[f"{split}_acc"] = float((probs.argmax(axis=1) == y).mean())
        metrics[f"{split}_auc"] = float(roc_auc_score(y, probs[:, 1]) if task.is_binary
                                        else roc_auc_score(y, probs, multi_class="ovr"))
    return FittedClassical(estimator, meta, use_masks, metrics, {
        "device": "cpu", "workers": workers, "input_size": size, "train_patches": len(train_set),
        "val_patches": len(val_set), "features": len(feature_names(use_masks)), "shape_features": use_masks,
        "estimator": repr(estimator)})
