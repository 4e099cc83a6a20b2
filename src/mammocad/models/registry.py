"""Models by name: ``@register_classifier`` is the one place to add a model (timm-style registry).

>>> model = build_classifier("mobilenet_v2", num_classes=2).eval()
>>> model(torch.rand(8, 1, 224, 224)).shape      # grayscale in [0, 1] -> logits
torch.Size([8, 2])
"""

from __future__ import annotations

import os
from typing import Callable

from mammocad.models.classifier import Backbone, Classifier, ModelSpec, norm_stats
from mammocad.models.weights import load_weights

MODEL_SPECS: dict[str, ModelSpec] = {}


def register_classifier(name: str, *, input_size: int, min_input_size: int, input_norm: str,
                        imagenet_url: str | None = None, reference: str = "",
                        ) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    """Decorator registering ``build_backbone() -> Backbone`` (random init) under ``name``.

    See ``ModelSpec`` for the fields. Registering a name twice is a ValueError.
    """
    norm_stats(input_norm)  # validates the name

    def decorator(build_backbone: Callable[[], Backbone]) -> Callable[[], Backbone]:
        if name in MODEL_SPECS:
            raise ValueError(f"classifier {name!r} is already registered")
        MODEL_SPECS[name] = ModelSpec(name=name, build_backbone=build_backbone, input_size=input_size,
                                      min_input_size=min_input_size, input_norm=input_norm,
                                      imagenet_url=imagenet_url, reference=reference)
        return build_backbone

    return decorator


def register_classical(name: str, *, input_size: int, reference: str = "",
                       ) -> Callable[[Callable[[int, bool], object]], Callable[[int, bool], object]]:
    """Decorator registering ``build_estimator(seed, balanced) -> scikit-learn estimator`` under ``name``.

    A classical model reads hand-crafted features of the patch resized to ``input_size`` px
    (``mammocad.models.features``); ``balanced``: weight the classes by inverse frequency.
    """

    def decorator(build_estimator: Callable[[int, bool], object]) -> Callable[[int, bool], object]:
        if name in MODEL_SPECS:
            raise ValueError(f"classifier {name!r} is already registered")
        MODEL_SPECS[name] = ModelSpec(name=name, build_backbone=None, input_size=input_size, min_input_size=16,
                                      input_norm="imagenet", imagenet_url=None, reference=reference,
                                      build_estimator=build_estimator)
        return build_estimator

    return decorator


def list_classifiers() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODEL_SPECS)


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; ValueError listing the available names when unknown."""
    if name not in MODEL_SPECS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_classifiers())}")
    return MODEL_SPECS[name]


def build_classifier(name: str, num_classes: int, weights: str | os.PathLike = "none", dropout: float = 0.2,
                     input_norm: str | None = None) -> Classifier:
    """Build a registered model with a new ``num_classes`` head (see ``Classifier`` for shapes).

    ``weights``: "none" (random init), "imagenet" (the architecture's ImageNet weights from the
    torch hub cache, downloaded when absent; ``WeightsUnavailable`` says where to put the file
    when offline) or the path of a state_dict file (see ``mammocad.models.weights.load_weights``).
    The new heads are always randomly initialised, except when a checkpoint of this registry's
    own models is loaded.

    ``dropout``: probability of the Dropout right before the final dense layer.

    ``input_norm``: "imagenet" (mean/std) or "minus_one_one" (2x - 1), the normalisation applied
    after the grayscale channel is repeated to RGB. Default: ``spec.input_norm``, the one the
    architecture's ImageNet weights expect (torchvision/timm-format files of it expect the same),
    or, for a checkpoint of this registry's own models, the one stored in it. Pass it for a file
    trained otherwise, e.g. "minus_one_one" for the Coral MobileNetV2 file.
    """
    spec = get_spec(name)
    if spec.is_classical:
        raise ValueError(f"{name!r} is a classical (feature-based) model, not a network: "
                         f"train it with mammocad.train.train_classifier")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    model = Classifier(spec, spec.build_backbone(), num_classes, dropout, input_norm or spec.input_norm)
    load_weights(model, weights)
    if input_norm is not None:
        model.input_adapter.set_norm(input_norm)
    return model
