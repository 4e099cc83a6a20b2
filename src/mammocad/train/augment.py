"""Training augmentation presets and the evaluation transform (torchvision.transforms.v2).

Every transform takes and returns a float tensor (1, H, W) (a batch (N, 1, H, W) works too for
the evaluation transform) of grayscale values in [0, 1], and ends by resizing to the model's
square input (``size`` x ``size`` px, bilinear with antialiasing), so a 224 px patch set can feed
InceptionV3 at 299. Presets (``Augment``):

- ``none``: resize only.
- ``simple``: random horizontal flip (p = 0.5).
- ``full``: random horizontal and vertical flips (p = 0.5 each), then one random affine map:
  rotation uniform in +-``ROTATION`` degrees, zoom (scale) uniform in ``ZOOM``, translation up
  to ``TRANSLATE`` of the side in each direction; pixels that come from outside the patch are
  0 (black, like the film background).

``intensity`` > 0 adds, before the resize, brightness and contrast factors uniform in
[1 - intensity, 1 + intensity] and a gamma uniform in log space in
[1 / (1 + intensity), 1 + intensity]; values stay clipped to [0, 1].

Random draws use torch's global RNG, so seeding it repeats an augmentation; in training,
``mammocad.train.data.EpochView`` seeds every sample's draws from (seed, epoch, sample index).
"""

from __future__ import annotations

import enum
import math

import torch
from torchvision.transforms import v2

ROTATION = 20.0  # degrees, +-
ZOOM = (0.9, 1.1)  # scale factors
TRANSLATE = (0.1, 0.1)  # fraction of width, height


class Augment(str, enum.Enum):
    """Augmentation presets (see the module docstring)."""

    NONE = "none"
    SIMPLE = "simple"
    FULL = "full"


class RandomGamma(v2.Transform):
    """``x ** gamma`` with log(gamma) uniform in [-log(max_gamma), log(max_gamma)]; x in [0, 1]."""

    def __init__(self, max_gamma: float):
        super().__init__()
        if max_gamma < 1.0:
            raise ValueError(f"max_gamma must be >= 1, got {max_gamma}")
        self.max_gamma = max_gamma

    def make_params(self, flat_inputs: list) -> dict:
        log_range = math.log(self.max_gamma)
        return {"gamma": math.exp((2.0 * torch.rand(()).item() - 1.0) * log_range)}

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        return inpt.clamp(0.0, 1.0) ** params["gamma"]


def eval_transform(size: int) -> v2.Transform:
    """Resize to ``size`` x ``size`` only: (…, 1, H, W) -> (…, 1, size, size)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return v2.Resize((size, size), antialias=True)


def train_transform(preset: Augment | str, size: int, intensity: float = 0.0) -> v2.Compose:
    """The training pipeline of ``preset`` (plus intensity jitter when ``intensity`` > 0), ending in the resize."""
    preset = Augment(preset)
    if not 0.0 <= intensity < 1.0:
        raise ValueError(f"intensity jitter must be in [0, 1), got {intensity}")
    steps: list[v2.Transform] = []
    if preset in (Augment.SIMPLE, Augment.FULL):
        steps.append(v2.RandomHorizontalFlip(0.5))
    if preset is Augment.FULL:
        steps += [v2.RandomVerticalFlip(0.5),
                  v2.RandomAffine(degrees=ROTATION, translate=TRANSLATE, scale=ZOOM,
                                  interpolation=v2.InterpolationMode.BILINEAR, fill=0.0)]
    if intensity > 0:
        steps += [v2.ColorJitter(brightness=intensity, contrast=intensity), RandomGamma(1.0 + intensity)]
    steps.append(eval_transform(size))
    return v2.Compose(steps)
