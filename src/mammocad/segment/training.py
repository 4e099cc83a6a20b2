"""Train a segmenter on a segmentation patch set with the classifiers' Lightning engine.

``train_segmenter(SegmentTrainConfig(...))`` trains ``config.model`` on the train split of a
``seg`` (tiles) or ``resize512`` (whole images) patch set, validates on its val split after
every epoch and writes the run folder exactly as ``mammocad.train.engine`` does for classifiers
(config.yaml, run.json, metrics.csv, checkpoints/best.ckpt and last.ckpt, tensorboard/), with
the same exact resume, staged phases, precision fast path and DDP options (see that module).

- Samples: ``SegmentationDataset`` items (image (1, S, S) in [0, 1], torchvision target dict) of
  the chosen ``lesion_type`` (class 1), jointly augmented in training (``mammocad.segment.augment``);
  with ``negatives`` off, samples without such a lesion are left out of training.
- Loss: the sum of the model's losses (Mask R-CNN: RPN objectness and box, box classifier and
  regression, mask BCE; U-Net: BCE + Dice).
- metrics.csv columns: ``epoch, phase, lr, train_loss, val_loss, val_dice``, then each loss term
  as ``train_<term>``. ``val_loss``: the same summed loss on the val split (Mask R-CNN's training
  branch with BatchNorm statistics fixed). ``val_dice``: the mean over val images of
  ``union_dice`` of the predicted instances scoring at least ``val_score_threshold``; it picks
  best.ckpt.
- The checkpoint's hyperparameters hold what inference needs (``mammocad.segment.predict``):
  the model name and options, input kind (``seg``/``resize512``), image size and tile stride.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from torchmetrics import MeanMetric

from mammocad.patches.datasets import SegmentationDataset, detection_collate
from mammocad.patches.store import patch_set_fingerprint, read_manifest
from mammocad.segment.augment import segmentation_transform
from mammocad.segment.config import LESION_TYPES, SEGMENT_PHASES_EXAMPLE, SegmentTrainConfig
from mammocad.segment.instances import Instances
from mammocad.segment.models import SEGMENTER_PHASES, build_segmenter, set_segmenter_trainable
from mammocad.train.data import EpochDataModule
from mammocad.train.engine import TrainResult, check_run_folder, fit_run
from mammocad.train.fastpath import device_type, resolve_precision, resolve_workers, uses_strided_depthwise_kernel
from mammocad.train.module import PhasedModule
from mammocad.train.schedule import parse_phases
from mammocad.train.strided_depthwise import use_fast_strided_depthwise
from mammocad.utils.config import config_dict
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import dice
from mammocad.utils.imageio import read_image

INPUT_KINDS = ("seg", "resize512")


def union_dice(predicted: Instances, truth: np.ndarray) -> float:
    """Dice of all predicted regions together against all true ones: ``2|P & T| / (|P| + |T|)``.

    ``truth``: (rows, cols) bool, the union of the true lesion masks on the prediction's grid.
    Both empty: 1.0 (nothing to find, nothing found). The paper's "average Dice" of one image.
    """
    return dice(predicted.union(), truth)


def patch_set_geometry(root: Path) -> tuple[str, int, int | None]:
    """(input kind, image side S px, tile stride px or None) of a segmentation patch set.

    From its ``patches.yaml`` (written by ``mammocad patches``); a hand-made set without one:
    the manifest's kind, the first image's side and half of it as the stride.
    """
    manifest = read_manifest(root)
    kinds = sorted(set(manifest["kind"]))
    if len(kinds) != 1 or kinds[0] not in INPUT_KINDS:
        raise DataError(root, f"not a segmentation patch set (kind {', '.join(map(str, kinds))}; a segmenter "
                              f"trains on `mammocad patches --kind seg` or `--kind resize512`)")
    kind = kinds[0]
    settings_path = root / "patches.yaml"
    settings = yaml.safe_load(settings_path.read_text()) if settings_path.is_file() else {}
    if kind == "seg" and "tile_size" in settings:
        return kind, int(settings["tile_size"]), int(settings["stride"])
    if kind == "resize512" and "size" in settings:
        return kind, int(settings["size"]), None
    rows, cols = read_image(root / manifest["file"].iloc[0]).shape
    if rows != cols:
        raise DataError(root, f"segmentation patches must be square, {manifest['file'].iloc[0]} is {rows}x{cols}")
    return kind, rows, rows // 2 if kind == "seg" else None


class SegmenterModule(PhasedModule):
    """Trains ``build_segmenter(model, num_classes, weights, input_norm, **options)`` phase by phase.

    Every argument is a checkpoint hyperparameter: ``input_kind``, ``image_size`` and
    ``tile_stride`` tell inference how to cut a whole image; ``val_score_threshold`` which
    instances the validation Dice counts; ``fast_strided_depthwise`` the CPU bf16 kernel swap
    (``mammocad.train.strided_depthwise``); ``run_config`` the run's config, for provenance.
    """

    def __init__(self, *, model: str, phases: str, options: dict[str, Any], input_kind: str, image_size: int,
                 tile_stride: int | None, num_classes: int = 2, weights: str = "none", input_norm: str = "imagenet",
                 weight_decay: float = 0.0, val_score_threshold: float = 0.5, fast_strided_depthwise: bool = False,
                 run_config: dict | None = None):
        super().__init__(parse_phases(phases, SEGMENTER_PHASES, SEGMENT_PHASES_EXAMPLE))
        self.save_hyperparameters()
        self.model = build_segmenter(model, num_classes, weights, input_norm=input_norm, **options)
        self.strided_depthwise_layers = use_fast_strided_depthwise(self.model) if fast_strided_depthwise else 0
        self.train_loss, self.val_loss, self.val_dice = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_terms = torch.nn.ModuleDict()  # one MeanMetric per loss term, made on first use
        self.apply_phase(0)

    def set_phase(self, name: str) -> None:
        set_segmenter_trainable(self.model, name)

    def training_step(self, batch: tuple[list[torch.Tensor], list[dict]], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        terms = self.model.losses(images, targets)
        loss = sum(value.float() for value in terms.values())
        self.train_loss.update(loss.detach(), len(images))
        for name, value in terms.items():
            if name not in self.train_terms:
                self.train_terms[name] = MeanMetric().to(self.device)
            self.train_terms[name].update(value.detach().float(), len(images))
        self.log("train_loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        for name, metric in self.train_terms.items():  # made after Lightning listed the metric attributes
            self.log(f"train_{name}", metric, on_step=False, on_epoch=True, metric_attribute=f"train_terms.{name}")
        return loss

    def validation_step(self, batch: tuple[list[torch.Tensor], list[dict]], batch_idx: int) -> None:
        images, targets = batch
        terms, detections = self.model.validate(images, targets)
        self.val_loss.update(sum(value.float() for value in terms.values()), len(images))
        threshold = self.hparams.val_score_threshold
        for found, target in zip(detections, targets):
            truth = target["masks"].bool().any(dim=0).cpu().numpy() if len(target["masks"]) else np.zeros(
                found.shape, bool)
            self.val_dice.update(torch.tensor(union_dice(found.select(found.scores >= threshold), truth)))
        self.log_dict({"val_loss": self.val_loss, "val_dice": self.val_dice}, on_step=False, on_epoch=True,
                      prog_bar=True)


def segmentation_split(root: Path, split: str, config: SegmentTrainConfig, transform=None) -> SegmentationDataset:
    """The ``split`` samples of the run's lesion type; DataError naming the set when there is nothing to learn."""
    dataset = SegmentationDataset(root, split, instance_classes=LESION_TYPES[config.lesion_type],
                                  negatives=config.negatives, transform=transform)
    if not len(dataset) or (split == "train" and not dataset.instance_count()):
        raise DataError(root, f"no {split!r} samples with a {config.lesion_type} lesion to learn from")
    return dataset


def train_segmenter(config: SegmentTrainConfig, *, progress: bool = True, callbacks=()) -> TrainResult:
    """Train (or resume) the run ``config`` describes; see the module docstring and ``train_classifier``'s.

    Errors: ``DataError`` (one line) for a patch set that is not a segmentation one or has nothing
    to learn, a used run folder or a changed resumed config; ``WeightsError`` / ``WeightsUnavailable``
    (DataErrors) for weights that cannot be had; ``ValueError`` for bad settings;
    ``KeyboardInterrupt`` after a Ctrl-C (finished epochs' checkpoints stay, for ``resume``).
    """
    root = Path(config.data)
    data_fingerprint = patch_set_fingerprint(root)
    resume_from = check_run_folder(config, data_fingerprint)
    kind, image_size, stride = patch_set_geometry(root)
    device = device_type(config.accelerator)
    workers = resolve_workers(config.workers, device, config.devices)
    precision = resolve_precision(config.precision, device)
    train_set = segmentation_split(root, "train", config, segmentation_transform(config.augment, (image_size,) * 2))
    val_set = segmentation_split(root, "val", config)
    data = EpochDataModule(train_set, val_set, batch_size=config.batch_size, workers=workers, seed=config.seed,
                           collate_fn=detection_collate)

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = SegmenterModule(model=config.model, phases=config.phases, options=config.model_options(image_size),
                             input_kind=kind, image_size=image_size, tile_stride=stride, weights=config.weights,
                             input_norm=config.input_norm, weight_decay=config.weight_decay,
                             val_score_threshold=config.val_score_threshold,
                             fast_strided_depthwise=uses_strided_depthwise_kernel(device, precision),
                             run_config=config_dict(config))
    return fit_run(config, module, data, device=device, precision=precision, resume_from=resume_from,
                   data_fingerprint=data_fingerprint, monitor="val_dice", callbacks=callbacks, progress=progress,
                   run_info={"workers": workers, "strided_depthwise_layers": module.strided_depthwise_layers,
                             "input_kind": kind, "image_size": image_size, "tile_stride": stride,
                             "train_samples": len(train_set), "val_samples": len(val_set),
                             "train_instances": train_set.instance_count()})
