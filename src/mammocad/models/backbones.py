"""The registered models: the paper's MobileNetV2 and InceptionV3, and its baselines.

Each builder returns a randomly initialised ``Backbone``: the stock torchvision/timm
architecture with its classifier replaced by ``nn.Identity`` (and its own dropout before it, where
it has one, since the new head brings a configurable one), so an architecture-format state_dict
loads into it unchanged apart from the classifier keys listed in ``replaced_keys``.

Normalisation: torchvision's GoogLeNet and InceptionV3 ImageNet weights (ported from TensorFlow)
expect [-1, 1] input; torchvision feeds them ImageNet mean/std input and converts it back with
``transform_input=True``. Here ``transform_input=False`` and the input adapter scales to [-1, 1]
directly: the same network input, with the normalisation in one place. timm's legacy Xception
weights expect [-1, 1] too (its pretrained config: mean = std = 0.5).
"""

from __future__ import annotations

import torch
import torchvision.models as tvm
from torch import nn

from mammocad.models.classifier import Backbone
from mammocad.models.registry import register_classifier

# timm's pretrained_cfg["url"] of legacy_xception (kept here so timm is imported only to build one).
XCEPTION_URL = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth"


def _remove(model: nn.Module, *names: str) -> nn.Module:
    """Replace the named submodules of ``model`` (its classifier, its dropout) by ``nn.Identity``."""
    for name in names:
        setattr(model, name, nn.Identity())
    return model


@register_classifier("mobilenet_v2", input_size=224, min_input_size=1, input_norm="imagenet",
                     imagenet_url=tvm.MobileNet_V2_Weights.IMAGENET1K_V1.url,
                     reference="Sandler et al. 2018 (torchvision); the paper's model")
def mobilenet_v2() -> Backbone:
    """MobileNetV2 1.0: (N, 3, H, W) -> (N, 1280). ``classifier`` (Dropout 0.2 + Linear) removed."""
    model = _remove(tvm.mobilenet_v2(weights=None), "classifier")
    return Backbone(model, model.last_channel, replaced_keys=("classifier.",))


@register_classifier("inception_v3", input_size=299, min_input_size=299, input_norm="minus_one_one",
                     imagenet_url=tvm.Inception_V3_Weights.IMAGENET1K_V1.url,
                     reference="Szegedy et al. 2016 (torchvision); the paper's model")
def inception_v3() -> Backbone:
    """InceptionV3: (N, 3, H, W) -> (N, 2048); in training mode also aux features (N, 768).

    The auxiliary classifier's convolutions stay (ImageNet-initialised), its final Linear is
    replaced by the model's ``aux_head``. ``min_input_size`` is 299 because the auxiliary branch
    (5x5 average pool, stride 3, then a 5x5 convolution on the 17x17 Mixed_6e map) needs it in
    training mode; eval mode alone would work from 75.
    """
    model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=True)
    _remove(model, "dropout", "fc")
    _remove(model.AuxLogits, "fc")
    return Backbone(model, 2048, replaced_keys=("fc.", "AuxLogits.fc."), aux_features=768)


@register_classifier("alexnet", input_size=224, min_input_size=63, input_norm="imagenet",
                     imagenet_url=tvm.AlexNet_Weights.IMAGENET1K_V1.url,
                     reference="Krizhevsky et al. 2012 (torchvision); baseline of Levy & Jain 2016")
def alexnet() -> Backbone:
    """AlexNet: (N, 3, H, W) -> fc7 features (N, 4096). Only the last Linear (fc8) is replaced.

    fc6 and fc7 (with their Dropout 0.5) stay in the backbone, ImageNet-initialised.
    """
    model = tvm.alexnet(weights=None)
    model.classifier[6] = nn.Identity()
    return Backbone(model, 4096, replaced_keys=("classifier.6.",))


@register_classifier("googlenet", input_size=224, min_input_size=15, input_norm="minus_one_one",
                     imagenet_url=tvm.GoogLeNet_Weights.IMAGENET1K_V1.url,
                     reference="Szegedy et al. 2015 (torchvision, with BatchNorm); baseline of Levy & Jain 2016")
def googlenet() -> Backbone:
    """GoogLeNet: (N, 3, H, W) -> (N, 1024), auxiliary classifiers disabled.

    The two auxiliary classifiers were added to get gradient into the middle of a 22-layer
    network trained from scratch without BatchNorm; torchvision's GoogLeNet has BatchNorm, and
    its ImageNet weights are fine-tuned here, so they are left out (their ImageNet keys
    ``aux1.``/``aux2.`` are skipped on load) and the model trains on the main loss only.
    """
    model = tvm.googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=True)
    _remove(model, "dropout", "fc")
    return Backbone(model, 1024, replaced_keys=("fc.", "aux1.", "aux2."))


@register_classifier("xception", input_size=299, min_input_size=7, input_norm="minus_one_one",
                     imagenet_url=XCEPTION_URL,
                     reference="Chollet 2017, the original Xception (timm legacy_xception); baseline of Das et al.")
def xception() -> Backbone:
    """Xception (timm ``legacy_xception``, the original architecture): (N, 3, H, W) -> (N, 2048)."""
    import timm  # imported here: loading timm is slow and only this model needs it

    model = timm.create_model("legacy_xception", pretrained=False, num_classes=0)
    return Backbone(model, model.num_features, replaced_keys=("fc.",))


class MedicalCNN(nn.Module):
    """Small CNN trained from scratch, in the spirit of Lai's MedicalCNN baseline.

    Five blocks Conv3x3 (no bias) -> BatchNorm -> ReLU -> MaxPool 2x2 with ``widths`` channels,
    then global average pooling: (N, 3, H, W) -> (N, widths[-1]); H, W >= 32. The 3 input
    channels are the repeated grayscale channel, as for every registry model.
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip((3, *widths[:-1]), widths):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


@register_classifier("medical_cnn", input_size=224, min_input_size=32, input_norm="minus_one_one",
                     reference="small from-scratch CNN after Lai's MedicalCNN (no ImageNet weights)")
def medical_cnn() -> Backbone:
    """``MedicalCNN``: (N, 3, H, W) -> (N, 256)."""
    model = MedicalCNN()
    return Backbone(model, model.num_features)
