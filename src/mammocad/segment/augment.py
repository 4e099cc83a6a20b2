"""Joint augmentation of a segmentation sample: image, instance masks and boxes move together.

A transform takes and returns a sample ``(image, target)`` of
:class:`~mammocad.patches.datasets.SegmentationDataset`: image float32 tensor (1, H, W) in
[0, 1]; target ``masks`` uint8 (N, H, W) 0/1, ``boxes`` float32 (N, 4) x0, y0, x1, y1 in pixels
(exclusive ends), ``labels`` int64 (N,). The image and every mask go through the same
albumentations geometry (``image=``, ``masks=``; masks with nearest-neighbour resampling and 0
where the warp brings in pixels from outside); the output keeps the input's size. Boxes are
then recomputed from the augmented masks (the tight box of each mask, what the datasets give
unaugmented: transforming a box itself would loosen it, a rotated box's corners lie outside
the lesion); an instance whose mask left the image entirely is dropped with its box and label.

Presets (``mammocad.train.config.Augment``, the classifiers' names):

- ``none``: the sample unchanged.
- ``simple``: horizontal flip (p = 0.5).
- ``full``: horizontal and vertical flips (p = 0.5 each); a random affine map about the centre
  (rotation +-``ROTATION`` degrees, isotropic zoom in ``ZOOM``, translation +-``TRANSLATE`` of the
  side: the classifiers' ranges); with p = ``CROP_P`` a random crop of ``CROP_SCALE`` of the area
  (aspect ``CROP_RATIO``) resized back to the full size; brightness and contrast +-``INTENSITY``
  (p = 0.5); Gaussian noise of standard deviation ``NOISE_STD`` (in [0, 1] units, p = 0.5).
  Image values are clipped to [0, 1].

Random draws: like the classifiers' transforms, each call draws one seed from torch's global
RNG, so ``mammocad.train.data.EpochView``'s per-sample seeding makes them repeatable.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch

from mammocad.train.augment import ROTATION, TRANSLATE, ZOOM
from mammocad.train.config import Augment
from mammocad.utils.geometry import mask_box

CROP_P = 0.5
CROP_SCALE = (0.5, 1.0)  # share of the image area kept by the crop
CROP_RATIO = (0.8, 1.25)  # width / height of the crop
INTENSITY = 0.1  # brightness and contrast limits
NOISE_STD = (0.01, 0.03)  # Gaussian noise standard deviation, image units


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks, none empty -> (N, 4) float32 boxes x0, y0, x1, y1 (exclusive ends)."""
    return np.array([mask_box(mask).xyxy() for mask in masks], np.float32).reshape(-1, 4)


class SegmentationTransform:
    """``(image, target) -> (image, target)``: albumentations ``steps`` applied jointly (module docstring)."""

    def __init__(self, steps: list[A.BasicTransform]):
        self.pipeline = A.Compose(steps) if steps else None

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        if self.pipeline is None:
            return image, target
        if image.ndim != 3 or image.shape[0] != 1:
            raise ValueError(f"expected one image (1, H, W), got shape {tuple(image.shape)}")
        self.pipeline.set_random_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        masks = list(target["masks"].numpy())
        out = self.pipeline(image=image[0].numpy(), masks=masks) if masks else self.pipeline(image=image[0].numpy())
        pixels = np.clip(out["image"], 0.0, 1.0).astype(np.float32)
        moved = np.asarray(out["masks"], np.uint8).reshape(-1, *pixels.shape) if masks else np.zeros(
            (0, *pixels.shape), np.uint8)
        keep = moved.any(axis=(1, 2))
        moved = moved[keep]
        return torch.from_numpy(np.ascontiguousarray(pixels)).unsqueeze(0), {
            **target,
            "masks": torch.from_numpy(np.ascontiguousarray(moved)),
            "boxes": torch.from_numpy(boxes_from_masks(moved)),
            "labels": target["labels"][torch.from_numpy(keep)],
        }


def segmentation_transform(preset: Augment | str, size: tuple[int, int]) -> SegmentationTransform:
    """The joint augmentation of ``preset`` for images of ``size`` (rows, cols) px."""
    preset = Augment(preset)
    steps: list[A.BasicTransform] = []
    if preset in (Augment.SIMPLE, Augment.FULL):
        steps.append(A.HorizontalFlip(p=0.5))
    if preset is Augment.FULL:
        steps += [
            A.VerticalFlip(p=0.5),
            A.Affine(rotate=(-ROTATION, ROTATION), scale=ZOOM, keep_ratio=True, translate_percent=(-TRANSLATE, TRANSLATE),
                     interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                     border_mode=cv2.BORDER_CONSTANT, fill=0.0, fill_mask=0, p=1.0),
            A.RandomResizedCrop(size=size, scale=CROP_SCALE, ratio=CROP_RATIO, interpolation=cv2.INTER_LINEAR,
                                mask_interpolation=cv2.INTER_NEAREST, p=CROP_P),
            A.RandomBrightnessContrast(brightness_limit=INTENSITY, contrast_limit=INTENSITY, p=0.5),
            A.GaussNoise(std_range=NOISE_STD, p=0.5),
        ]
    return SegmentationTransform(steps)
