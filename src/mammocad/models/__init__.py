"""Classifiers by name (registry), their initial weights and staged fine-tuning.

Every model takes grayscale (N, 1, H, W) float in [0, 1] and returns logits (N, num_classes);
see ``classifier`` for the contract, ``registry`` to build and add models, ``weights`` for
"none" / "imagenet" / file initialisation and ``stages`` for the fine-tuning phases;
``classical`` and ``features`` for the hand-crafted-feature baselines (scikit-learn).

The names below load on first use (PEP 562), so ``import mammocad.models.norms`` or a config
module does not import torch: the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AUX_LOSS_WEIGHT": "classifier", "Backbone": "classifier", "Classifier": "classifier", "ModelSpec": "classifier",
    "INPUT_NORMS": "norms",
    "MODEL_SPECS": "registry", "build_classifier": "registry", "get_spec": "registry", "list_classifiers": "registry",
    "register_classical": "registry", "register_classifier": "registry",
    "PHASES": "stages", "conv_layers": "stages", "set_frozen_bn_eval": "stages", "set_trainable": "stages",
    "WeightsError": "weights", "WeightsUnavailable": "weights", "hub_checkpoint_path": "weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mammocad.models' has no attribute {name!r}")
    importlib.import_module("mammocad.models.backbones")  # registers the networks
    importlib.import_module("mammocad.models.classical")  # and the feature-based models
    return getattr(importlib.import_module(f"mammocad.models.{_EXPORTS[name]}"), name)
