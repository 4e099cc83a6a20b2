"""From a training checkpoint to predictions: a plain ``Classifier`` and class probabilities.

``load_classifier`` reads a checkpoint written by ``train_classifier`` (``best.ckpt`` /
``last.ckpt``) into the registry model it trained, in eval mode on the CPU, with what is needed
to use it (task, class names, input size). ``predict_probabilities`` runs a model over a
dataset of ``(image (1, H, W) float in [0, 1], target)`` samples.

``load_predictor`` is the one entry point for the layers above: it reads a checkpoint of either
model family (a network's Lightning checkpoint, or a classical model's, see
``mammocad.train.classical``) into a ``Predictor`` with the same ``meta`` and
``predict(dataset, ...)``, so evaluation and cross-validation need no model-specific code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from mammocad.models import Classifier, build_classifier
from mammocad.models.weights import load_checkpoint_state_dict, load_torch_file
from mammocad.patches.datasets import PatchDataset, make_loader
from mammocad.train.augment import tta_views
from mammocad.train.fastpath import AUTOCAST_DTYPES, resolve_precision
from mammocad.train.tasks import get_task
from mammocad.utils.errors import DataError

MODEL_PREFIX = "model."  # ClassifierModule keeps the Classifier in its ``model`` attribute


def load_classifier(checkpoint: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """The trained model of a checkpoint (eval mode, CPU) and its metadata.

    Metadata keys: ``task`` (name), ``class_names`` (list, index order; binary tasks: positive
    class at 1), ``classes`` ({patch label: class index}, the ``PatchDataset`` argument),
    ``model`` (registry name), ``input_size`` (side S the model was trained on, px: resize
    inputs to S x S), ``input_norm`` (normalisation held in the model), ``epoch`` (0-based epoch
    the checkpoint was saved after) and ``config`` (the run's TrainConfig as a flat dict).
    DataError (a ``WeightsError``) for a missing, unreadable or foreign file.
    """
    path = Path(checkpoint)
    ckpt = load_torch_file(path, "checkpoint", "checkpoint")
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if (not isinstance(hparams, dict) or not {"model", "task", "input_size", "dropout"} <= set(hparams)
            or not isinstance(ckpt.get("state_dict"), dict)):
        raise DataError(path, "not a mammocad training checkpoint (no model/task hyperparameters)")
    try:
        task = get_task(hparams["task"])
        model = build_classifier(hparams["model"], task.num_classes, dropout=hparams["dropout"])
    except ValueError as err:  # an unknown task or model: written by another version of mammocad
        raise DataError(path, f"checkpoint of an unknown task or model ({err})") from None
    state = {key[len(MODEL_PREFIX):]: value for key, value in ckpt["state_dict"].items()
             if key.startswith(MODEL_PREFIX)}
    load_checkpoint_state_dict(model, state, str(path))
    model.eval()
    return model, {"task": task.name, "class_names": list(task.class_names), "classes": task.classes,
                   "model": hparams["model"], "input_size": hparams["input_size"],
                   "input_norm": model.input_adapter.norm, "epoch": ckpt.get("epoch"),
                   "config": hparams.get("run_config")}


def predict_probabilities(model: Classifier, dataset: Dataset, *, input_size: int, batch_size: int = 64,
                          workers: int = 0, precision: str = "32", tta: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of every sample of ``dataset``, in dataset order.

    Samples are ``(image (1, S, S) float in [0, 1], target int)`` with S = ``input_size``: build
    the dataset with ``transform=eval_transform(input_size)`` (the resize validation used in
    training); any other size is refused with a ValueError. Runs in
    eval mode without gradients (the model's mode is restored afterwards), under autocast for
    ``precision`` "bf16-mixed" / "16-mixed" ("auto": the training fast path of that device).
    ``tta``: test-time augmentation (``mammocad.train.augment.tta_views``): a sample's
    probabilities are the mean of its views' softmax probabilities. Returns ``probs`` float64 (N, C), rows summing to 1, and ``targets`` int64 (N,).
    """
    device = next(model.parameters()).device
    dtype = AUTOCAST_DTYPES.get(resolve_precision(precision, device.type))
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers)
    probs, targets = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for x, y in loader:
                if tuple(x.shape[-2:]) != (input_size, input_size):
                    raise ValueError(f"the model takes {input_size}x{input_size} px inputs, the dataset gave "
                                     f"{x.shape[-2]}x{x.shape[-1]}: build it with transform=eval_transform({input_size})")
                views = [model(view).float().softmax(dim=1) for view in tta_views(x.to(device), tta)]
                probs.append(torch.stack(views).mean(dim=0).cpu())
                targets.append(torch.as_tensor(y))
    finally:
        model.train(was_training)
    return torch.cat(probs).double().numpy(), torch.cat(targets).long().numpy()


class Predictor(Protocol):
    """A trained model of any family, ready to predict patch datasets.

    ``meta``: as ``load_classifier``'s (task, class_names, classes, model, input_size, ...).
    ``predict(dataset, ...)``: class probabilities float64 (N, C) and targets int64 (N,) of a
    ``PatchDataset`` built with ``transform=eval_transform(meta["input_size"])``, in its order.
    """

    meta: dict[str, Any]

    def predict(self, dataset: PatchDataset, *, batch_size: int = 64, workers: int = 0, tta: str = "none",
                precision: str = "32") -> tuple[np.ndarray, np.ndarray]: ...


class NetworkPredictor:
    """A registry network (``Classifier``) and its checkpoint metadata as a ``Predictor``."""

    def __init__(self, model: Classifier, meta: dict[str, Any]):
        self.model, self.meta = model, meta

    def predict(self, dataset: PatchDataset, *, batch_size: int = 64, workers: int = 0, tta: str = "none",
                precision: str = "32") -> tuple[np.ndarray, np.ndarray]:
        return predict_probabilities(self.model, dataset, input_size=self.meta["input_size"], batch_size=batch_size,
                                     workers=workers, precision=precision, tta=tta)


def load_predictor(checkpoint: str | Path) -> Predictor:
    """The ``Predictor`` of a checkpoint written by ``train_classifier``, whatever the model family.

    Classical models' checkpoints start with a marker (``mammocad.train.classical.MAGIC``; only
    then is the file unpickled with joblib); anything else is read as a network's torch
    checkpoint. DataError for a missing or foreign file.
    """
    from mammocad.train.classical import is_classical_checkpoint, load_classical

    path = Path(checkpoint)
    if is_classical_checkpoint(path):
        return load_classical(path)
    return NetworkPredictor(*load_classifier(path))
