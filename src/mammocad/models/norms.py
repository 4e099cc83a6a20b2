"""Input normalisations by name: a light module, so configs and ``--help`` need no torch."""

from __future__ import annotations

# Per-channel (mean, std) applied after the grayscale channel is repeated to RGB.
INPUT_NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # torchvision's ImageNet statistics: x -> (x - mean) / std
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # Inception-style scaling of [0, 1] to [-1, 1]: (x - 0.5) / 0.5 == 2x - 1
    "minus_one_one": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
