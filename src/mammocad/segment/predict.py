"""From a training checkpoint to the lesions of a whole prepared image.

``load_segmenter(checkpoint)`` reads a checkpoint written by ``train_segmenter`` into a
``Segmenter`` (eval mode, CPU). ``Segmenter.predict(image)`` takes a whole PREPARED image
(2-D uint8/uint16, any size: what ``mammocad prepare`` writes to ``images/``) and returns an
:class:`~mammocad.segment.instances.Instances` on that image's pixel grid, cut the way the model
was trained:

- ``resize512`` models: the image is resized to the training side S x S with the patch sets'
  resampling (``mammocad.preprocess.steps.resize_square``), predicted, and every mask resized
  back to (rows, cols) (bilinear, kept where >= 0.5; an instance whose mask vanishes is dropped)
  and every box scaled by (cols / S, rows / S).
- ``seg`` (tile) models: S x S tiles every ``tile_stride`` px (the patch grid:
  ``mammocad.patches.segmentation.grid_starts``, last tiles flush with the edges; an image smaller
  than a tile is padded with 0 at the bottom/right), predicted in batches and merged by
  ``mammocad.segment.stitch.stitch_tiles`` (overlaps merged, duplicates removed), keeping the
  model's ``detections_per_image`` best for the whole image, as for a resized image.

Inference runs in ``torch.inference_mode`` in batches of ``batch_size`` images or tiles, under
autocast when ``precision`` (default ``auto``: the training fast path of the device,
``mammocad.train.fastpath.resolve_precision``) says bf16/fp16.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mammocad.models.weights import load_torch_file
from mammocad.patches.datasets import to_tensor
from mammocad.patches.segmentation import grid_starts
from mammocad.preprocess.steps import resize_square
from mammocad.segment.instances import Instances
from mammocad.segment.models import SegmentationModel, build_segmenter
from mammocad.train.fastpath import AUTOCAST_DTYPES, resolve_precision
from mammocad.utils.errors import DataError

MODEL_PREFIX = "model."  # SegmenterModule keeps the SegmentationModel in its ``model`` attribute
REQUIRED = {"model", "options", "input_kind", "image_size", "tile_stride", "num_classes", "input_norm"}


@dataclass
class Segmenter:
    """A trained segmenter and how to cut a whole image for it (see the module docstring)."""

    model: SegmentationModel
    input_kind: str  # "resize512" or "seg"
    image_size: int  # side S of the model's input, px
    tile_stride: int | None  # px, tiles only
    batch_size: int = 8
    precision: str = "auto"
    metadata: dict[str, Any] | None = None

    def _detect(self, inputs: list[torch.Tensor]) -> list[Instances]:
        device = next(self.model.parameters()).device
        dtype = AUTOCAST_DTYPES.get(resolve_precision(self.precision, device.type))
        out: list[Instances] = []
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for start in range(0, len(inputs), self.batch_size):
                out += self.model.detect([x.to(device) for x in inputs[start:start + self.batch_size]])
        return out

    def predict(self, image: np.ndarray) -> Instances:
        """Instances on ``image``'s (rows, cols) grid; ``image`` 2-D uint8/uint16 (or float in [0, 1])."""
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
        self.model.eval()
        pixels = to_tensor(image)[0].numpy()
        if self.input_kind == "resize512":
            return self._predict_resized(pixels)
        return self._predict_tiles(pixels)

    def _predict_resized(self, pixels: np.ndarray) -> Instances:
        rows, cols = pixels.shape
        size = self.image_size
        (found,) = self._detect([torch.from_numpy(resize_square(pixels, size)).unsqueeze(0)])
        if not len(found):
            return Instances.empty((rows, cols))
        masks = np.stack([cv2.resize(m.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR) >= 0.5
                          for m in found.masks])
        boxes = found.boxes * np.array([cols / size, rows / size] * 2, np.float32)
        return Instances(masks, found.scores, boxes, found.labels).select(masks.any(axis=(1, 2)))

    def _predict_tiles(self, pixels: np.ndarray) -> Instances:
        from mammocad.segment.stitch import stitch_tiles  # the evaluation side's merger (lazy: optional here)

        rows, cols = pixels.shape
        size = self.image_size
        padded = np.pad(pixels, ((0, max(0, size - rows)), (0, max(0, size - cols))))
        starts = [(int(r), int(c)) for r in grid_starts(padded.shape[0], size, self.tile_stride)
                  for c in grid_starts(padded.shape[1], size, self.tile_stride)]
        tiles = [torch.from_numpy(np.ascontiguousarray(padded[r:r + size, c:c + size])).unsqueeze(0) for r, c in starts]
        found = self._detect(tiles)
        merged = stitch_tiles([(r, c, inst) for (r, c), inst in zip(starts, found)], padded.shape,
                              max_instances=self.model.options.get("detections_per_image"))
        if merged.shape == (rows, cols):
            return merged
        masks = merged.masks[:, :rows, :cols]
        boxes = np.minimum(merged.boxes, np.array([cols, rows, cols, rows], np.float32))
        return Instances(masks, merged.scores, boxes, merged.labels).select(masks.any(axis=(1, 2)))


def load_segmenter(checkpoint: str | Path, *, batch_size: int = 8, precision: str = "auto") -> Segmenter:
    """The ``Segmenter`` of a ``train_segmenter`` checkpoint (eval mode, CPU).

    ``metadata``: ``model``, ``options``, ``input_kind``, ``image_size``, ``tile_stride``,
    ``num_classes``, ``input_norm``, ``epoch`` (0-based epoch the checkpoint was saved after) and ``config`` (the
    run's config as a flat dict). DataError (a ``WeightsError``) for a missing, unreadable or
    foreign file.
    """
    path = Path(checkpoint)
    ckpt = load_torch_file(path, "checkpoint", "checkpoint")
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or not REQUIRED <= set(hparams) or not isinstance(ckpt.get("state_dict"), dict):
        raise DataError(path, "not a mammocad segmenter checkpoint (no model/input_kind hyperparameters)")
    try:
        model = build_segmenter(hparams["model"], hparams["num_classes"], input_norm=hparams["input_norm"],
                                **hparams["options"])
    except ValueError as err:  # an unknown model or option: written by another version of mammocad
        raise DataError(path, f"checkpoint of an unknown segmenter ({err})") from None
    state = {key[len(MODEL_PREFIX):]: value for key, value in ckpt["state_dict"].items() if key.startswith(MODEL_PREFIX)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataError(path, f"does not fit {hparams['model']}: {' '.join(str(err).split())[:200]}") from None
    model.eval()
    metadata = {key: hparams[key] for key in ("model", "options", "input_kind", "image_size", "tile_stride",
                                              "num_classes", "input_norm")}
    return Segmenter(model, hparams["input_kind"], hparams["image_size"], hparams["tile_stride"],
                     batch_size=batch_size, precision=precision,
                     metadata={**metadata, "epoch": ckpt.get("epoch"), "config": hparams.get("run_config")})
