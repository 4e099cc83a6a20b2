"""The classifier every registry model is: grayscale input adapter -> backbone -> dropout + dense head.

Tensor contract (what the patch datasets give and the trainer expects):

- input ``x``: float (N, 1, H, W), grayscale in [0, 1]; H = W = ``spec.input_size`` normally,
  at least ``spec.min_input_size``. The model does not resize.
- ``forward(x)``: logits (N, num_classes), in train and eval mode alike.
- ``training_outputs(x)``: ``[(weight, logits (N, num_classes)), ...]``; the training loss is
  ``sum(weight * loss(logits, target))``, so the trainer needs no model-specific code
  (InceptionV3 adds its auxiliary classifier with weight ``AUX_LOSS_WEIGHT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from mammocad.models.norms import INPUT_NORMS


AUX_LOSS_WEIGHT = 0.4
"""Weight of InceptionV3's auxiliary-classifier loss in ``training_outputs`` (torchvision's recipe)."""


@dataclass(frozen=True)
class Backbone:
    """What a registered builder returns: an ImageNet architecture with its classifier removed.

    ``module`` maps (N, 3, H, W) normalised RGB to pooled features (N, num_features); an
    architecture with an auxiliary classifier returns ``(features, aux_features)`` in training
    mode, with aux_features (N, aux_features). ``replaced_keys`` are the state_dict key prefixes
    of the architecture's own classifier(s), which the new heads replace: they are skipped when
    an architecture-format state_dict (torchvision/timm, 1000 ImageNet classes) is loaded.
    """

    module: nn.Module
    num_features: int
    replaced_keys: tuple[str, ...] = ()
    aux_features: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to build it and what its input and weights expect.

    ``input_size``: side of the square input it is meant for (224; 299 for InceptionV3 and
    Xception). ``min_input_size``: smallest side that works in train and eval mode.
    ``input_norm``: key of ``INPUT_NORMS`` that its ImageNet weights expect (also used for random
    init, so "none" and "imagenet" runs see the same input). ``imagenet_url``: the torch hub URL
    of its ImageNet weights, None when there are none.

    A *classical* model (hand-crafted features -> scikit-learn estimator, see
    ``mammocad.models.classical``) has ``build_estimator(seed, balanced) -> estimator`` instead
    of ``build_backbone`` (None); it is trained by ``mammocad.train.classical``.
    """

    name: str
    build_backbone: Callable[[], Backbone] | None
    input_size: int
    min_input_size: int
    input_norm: str
    imagenet_url: str | None
    reference: str
    build_estimator: Callable[[int, bool], object] | None = None

    @property
    def supports_imagenet(self) -> bool:
        return self.imagenet_url is not None

    @property
    def is_classical(self) -> bool:
        """True for a feature-based scikit-learn model (no torch network)."""
        return self.build_estimator is not None


def norm_stats(norm: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) of a named input normalisation; ValueError naming the known ones otherwise."""
    if norm not in INPUT_NORMS:
        raise ValueError(f"unknown input normalisation {norm!r}; known: {', '.join(INPUT_NORMS)}")
    return INPUT_NORMS[norm]


class GrayscaleAdapter(nn.Module):
    """(N, 1, H, W) grayscale in [0, 1] -> (N, 3, H, W) normalised for the backbone's weights.

    The channel is repeated, not folded into an adapted first convolution: ImageNet filters then
    see the input they were trained on (a gray RGB image), every architecture keeps its stock
    first layer, and an architecture-format state_dict loads unchanged. The normalisation
    (mean, std) is held in buffers, so a checkpoint of this model carries the normalisation it
    was trained with.
    """

    def __init__(self, norm: str):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("std", torch.ones(1, 3, 1, 1))
        self.set_norm(norm)

    def set_norm(self, norm: str) -> None:
        """Switch to a named normalisation (a key of ``INPUT_NORMS``)."""
        mean, std = norm_stats(norm)
        self.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
        self.std.copy_(torch.tensor(std).view(1, 3, 1, 1))

    @property
    def norm(self) -> str:
        """Name of the current normalisation, "custom" when a loaded checkpoint set other values."""
        for name, (mean, std) in INPUT_NORMS.items():
            if torch.allclose(self.mean.flatten().cpu(), torch.tensor(mean)) and torch.allclose(
                    self.std.flatten().cpu(), torch.tensor(std)):
                return name
        return "custom"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected grayscale images (N, 1, H, W) in [0, 1], got shape {tuple(x.shape)}")
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std


class Classifier(nn.Module):
    """``input_adapter`` -> ``backbone`` -> ``head`` (Dropout(p) -> Linear(num_features, num_classes)).

    ``aux_head`` (Linear(aux_features, num_classes)) exists for backbones with an auxiliary
    classifier (InceptionV3), None otherwise. The heads are new layers (random init); the
    backbone holds the architecture's pretrained layers. ``spec`` is the registry entry.
    Build instances with ``mammocad.models.build_classifier``.
    """

    def __init__(self, spec: ModelSpec, backbone: Backbone, num_classes: int, dropout: float, input_norm: str):
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.replaced_keys = backbone.replaced_keys
        self.input_adapter = GrayscaleAdapter(input_norm)
        self.backbone = backbone.module
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.num_features, num_classes))
        self.aux_head = None if backbone.aux_features is None else nn.Linear(backbone.aux_features, num_classes)

    def heads(self) -> list[nn.Module]:
        """The new output layers: ``[head]``, plus ``aux_head`` where there is one."""
        return [self.head] if self.aux_head is None else [self.head, self.aux_head]

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.backbone(self.input_adapter(x))
        if isinstance(out, tuple):  # training mode with an auxiliary classifier: (features, aux_features)
            return out[0], out[1]
        return out, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [0, 1] -> logits (N, num_classes)."""
        return self.head(self._features(x)[0])

    def training_outputs(self, x: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
        """Weighted logits for the training loss: ``[(1.0, main)]`` or ``[(1.0, main), (0.4, aux)]``.

        Each logits tensor is (N, num_classes). The auxiliary entry is present only in training
        mode for a model with ``aux_head``; in eval mode this is ``[(1.0, forward(x))]``.
        """
        features, aux = self._features(x)
        outputs = [(1.0, self.head(features))]
        if aux is not None:
            outputs.append((AUX_LOSS_WEIGHT, self.aux_head(aux)))
        return outputs
