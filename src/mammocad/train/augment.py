"""Training augmentation presets and the evaluation transform (albumentations + OpenCV).

Every transform takes and returns a float32 tensor (1, H, W) of grayscale values in [0, 1] and
ends by resizing to the model's square input (``size`` x ``size`` px) with
``mammocad.preprocess.steps.resize_square`` (INTER_AREA along an axis that shrinks,
INTER_LINEAR along one that grows: the resampling the patches themselves were made with), so a
224 px patch set can feed InceptionV3 at 299 and training, validation and inference resample
identically. Presets (``Augment``):

- ``none``: resize only.
- ``simple``: random horizontal flip (p = 0.5).
- ``full``: random horizontal and vertical flips (p = 0.5 each), then one random affine map
  about the patch centre: rotation uniform in +-``ROTATION`` degrees, isotropic zoom (scale)
  uniform in ``ZOOM``, translation uniform in +-``TRANSLATE`` of the side along each axis;
  pixels that come from outside the patch are 0 (black, like the film background).

``intensity`` > 0 adds, before the resize, a random contrast factor ``a`` in
[1 - intensity, 1 + intensity] and brightness offset ``b`` in [-intensity, +intensity]
(``x * a + b``), then a gamma uniform in [1 / (1 + intensity), 1 + intensity]; values are
clipped to [0, 1].

Why albumentations on NumPy rather than tensor transforms: these run once per sample, on a CPU
on the same cores as the training step; OpenCV's warps cost under half of a tensor affine +
antialiased resize (≈0.5 vs ≈1.3 ms per 224 px patch resized to 299).

Test-time augmentation (``tta_views``): ``none`` (the patch itself), ``flips`` (itself, flipped
left-right, flipped up-down, both: 4 views) or ``d4`` (the 8 symmetries of the square: the 4
rotations by multiples of 90 degrees, each also flipped left-right). Predictions average the
class probabilities of the views with equal weights (``mammocad.train.inference``).

Random draws: every call draws one seed from torch's global RNG and reseeds the albumentations
pipeline with it, so seeding torch repeats an augmentation; in training,
``mammocad.train.data.EpochView`` seeds torch per sample from (seed, epoch, sample index).
"""

from __future__ import annotations


import albumentations as A
import cv2
import numpy as np
import torch

from mammocad.preprocess.steps import resize_square
from mammocad.train.config import TTA_MODES, Augment

ROTATION = 20.0  # degrees, +-
ZOOM = (0.9, 1.1)  # scale factors
TRANSLATE = 0.1  # fraction of the side, +- along each axis


class PatchTransform:
    """(1, H, W) float32 tensor in [0, 1] -> (1, size, size): optional albumentations steps, then the resize."""

    def __init__(self, size: int, steps: list[A.BasicTransform] | None = None):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.pipeline = A.Compose(steps) if steps else None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 3 or image.shape[0] != 1:
            raise ValueError(f"expected one image (1, H, W), got shape {tuple(image.shape)}")
        pixels = image[0].numpy()
        if self.pipeline is not None:
            self.pipeline.set_random_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
            pixels = np.clip(self.pipeline(image=pixels)["image"], 0.0, 1.0)
        resized = resize_square(pixels, self.size)
        return torch.from_numpy(np.ascontiguousarray(resized, dtype=np.float32)).unsqueeze(0)


def tta_views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The test-time views of a batch ``images`` (..., H, W): flips / rotations of the last two axes.

    ``mode`` is one of ``TTA_MODES`` (module docstring); the first view is always ``images``
    itself. Rotations need square images (H == W), as every model input is.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; known: {', '.join(TTA_MODES)}")
    rows, cols = images.ndim - 2, images.ndim - 1
    if mode == "none":
        return [images]
    if mode == "flips":
        return [images, images.flip(cols), images.flip(rows), images.flip((rows, cols))]
    rotations = [torch.rot90(images, k, dims=(rows, cols)) for k in range(4)]
    return rotations + [view.flip(cols) for view in rotations]


def eval_transform(size: int) -> PatchTransform:
    """Resize to ``size`` x ``size`` only: (1, H, W) -> (1, size, size)."""
    return PatchTransform(size)


def train_transform(preset: Augment | str, size: int, intensity: float = 0.0) -> PatchTransform:
    """The training pipeline of ``preset`` (plus intensity jitter when ``intensity`` > 0), ending in the resize."""
    preset = Augment(preset)
    if not 0.0 <= intensity < 1.0:
        raise ValueError(f"intensity jitter must be in [0, 1), got {intensity}")
    steps: list[A.BasicTransform] = []
    if preset in (Augment.SIMPLE, Augment.FULL):
        steps.append(A.HorizontalFlip(p=0.5))
    if preset is Augment.FULL:
        steps += [A.VerticalFlip(p=0.5),
                  A.Affine(rotate=(-ROTATION, ROTATION), scale=ZOOM, keep_ratio=True,
                           translate_percent=(-TRANSLATE, TRANSLATE), interpolation=cv2.INTER_LINEAR,
                           border_mode=cv2.BORDER_CONSTANT, fill=0.0, p=1.0)]
    if intensity > 0:
        steps += [A.RandomBrightnessContrast(brightness_limit=intensity, contrast_limit=intensity,
                                             brightness_by_max=True, p=1.0),
                  A.RandomGamma(gamma_limit=(100.0 / (1.0 + intensity), 100.0 * (1.0 + intensity)), p=1.0)]
    return PatchTransform(size, steps)
