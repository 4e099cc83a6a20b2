"""Classifiers by name (registry), their initial weights and staged fine-tuning.

Every model takes grayscale (N, 1, H, W) float in [0, 1] and returns logits (N, num_classes);
see ``classifier`` for the contract, ``registry`` to build and add models, ``weights`` for
"none" / "imagenet" / file initialisation and ``stages`` for the fine-tuning phases.
"""

from mammocad.models import backbones  # noqa: F401  (registers the models)
from mammocad.models.classifier import AUX_LOSS_WEIGHT, INPUT_NORMS, Backbone, Classifier, ModelSpec
from mammocad.models.registry import MODEL_SPECS, build_classifier, get_spec, list_classifiers, register_classifier
from mammocad.models.stages import PHASES, conv_layers, set_frozen_bn_eval, set_trainable
from mammocad.models.weights import WeightsError, WeightsUnavailable, hub_checkpoint_path

__all__ = [
    "AUX_LOSS_WEIGHT", "INPUT_NORMS", "MODEL_SPECS", "PHASES", "Backbone", "Classifier", "ModelSpec",
    "WeightsError", "WeightsUnavailable", "build_classifier", "conv_layers", "get_spec", "hub_checkpoint_path",
    "list_classifiers", "register_classifier", "set_frozen_bn_eval", "set_trainable",
]
