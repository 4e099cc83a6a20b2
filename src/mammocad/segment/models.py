"""Segmenters by name: torchvision Mask R-CNN (three backbones) and a segmentation-models-pytorch U-Net.

>>> model = build_segmenter("maskrcnn_mobilenet_v2_fpn", num_classes=2, image_size=256)
>>> model.eval().detect([torch.rand(1, 256, 256)])[0]          # one Instances per image

Every model (``SegmentationModel``) takes a list of grayscale images, each float (1, H, W) in
[0, 1]. Like the classifiers, it repeats the channel to RGB and applies the normalisation its
weights expect (``input_adapter``, a ``GrayscaleAdapter``; default ``imagenet``, the statistics
of torchvision's ImageNet and COCO weights; ``minus_one_one`` for the Coral MobileNetV2 file in
``../shared/weights``). Targets are torchvision detection dicts: ``masks`` uint8 (N, H, W) 0/1,
``boxes`` float (N, 4) x0, y0, x1, y1 (exclusive ends), ``labels`` int64 (N,) >= 1; N may be 0.

- ``losses(images, targets)``: the training losses by name (summed for the step). In eval
  mode too (validation loss): Mask R-CNN then runs its training branch with every BatchNorm
  layer in eval mode, so no statistic moves.
- ``detect(images)``: one :class:`~mammocad.segment.instances.Instances` per image, on its pixel
  grid (eval mode; the caller chooses no_grad / inference_mode).

Models (``num_classes`` counts the background, torchvision's convention: 2 = one lesion class):

- ``maskrcnn_resnet50_fpn_v2`` (Li et al. 2021's improved recipe, torchvision), ``maskrcnn_resnet101_fpn``
  (the paper's Matterport backbone), ``maskrcnn_mobilenet_v2_fpn`` (MobileNetV2 features at output
  strides 4, 8, 16, 32 (after ``features[3]``, ``[6]``, ``[13]``, ``[18]``) into a 256-channel FPN).
  Options: ``image_size`` (GeneralizedRCNNTransform's min_size = max_size: a square image of that
  side is not rescaled; 512 or 256, never torchvision's 800), ``anchor_sizes`` (px, one per FPN
  level P2-P6, aspect ratios 0.5, 1, 2; the paper's 16-256 by default), ``detections_per_image``,
  ``score_threshold``, ``nms_threshold`` (box head), ``mask_threshold`` (mask probability),
  ``rpn_proposals`` (RPN proposals kept per image before and after its NMS at inference, twice
  that in training; torchvision's 1000) and ``rois_per_image`` (proposals sampled per image to
  train the box and mask heads; torchvision's 512, Matterport's 200): the two costs of a step.
- ``unet``: ``smp.Unet(encoder)`` with one output channel (lesion vs background, so
  ``num_classes`` must be 2), trained with Dice + BCE. Options: ``encoder`` (any smp encoder;
  ImageNet weights for ``mobilenet_v2``, ``resnet18/34/50/101``), ``image_size``,
  ``probability_threshold``, ``component_score`` (``mean`` or ``max``), ``min_area``,
  ``detections_per_image``, ``score_threshold``: see :func:`instances_from_probability`.

Weights (``build_segmenter(weights=...)``): ``none``; ``coco`` (Mask R-CNN R50-FPN v2 only,
torchvision's COCO file from the torch hub cache, downloaded when absent; offline a
``WeightsUnavailable`` names the file and where to put it; the class-specific predictors keep
their random init); ``imagenet`` (the backbone / encoder: torchvision's ImageNet classifier file
of ResNet-50/101/34/18 or MobileNetV2, same cache rule); or a PATH: a state_dict of this very
model (keys ``net.``..., e.g. from another run) loaded whole, or an architecture-format classifier
state_dict (torchvision layout, e.g. ``mobilenet_v2_imagenet_coral.pt``) loaded into the backbone.

Staged training (``SEGMENTER_PHASES``; Matterport Mask R-CNN's ``layers`` argument):

- ``heads``: everything that is not the ImageNet backbone: Mask R-CNN's FPN, RPN and box / mask
  heads (Matterport's "heads" = ``fpn_*``, ``rpn_*``, ``mrcnn_*``); the U-Net's decoder and
  segmentation head.
- ``stage4+``: the heads plus the backbone layers at output stride 16 and 32 (Matterport's "4+",
  ResNet stages conv4_x and conv5_x = torchvision ``layer3`` and ``layer4``; MobileNetV2 ``features[7:]``,
  its blocks from the first stride-16 one on; for the U-Net the modules smp's ``encoder.get_stages()``
  lists for strides 16 and 32, the same layers for these encoders).
- ``all``: every parameter.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_V2_Weights, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from mammocad.models.classifier import GrayscaleAdapter
from mammocad.models.weights import WeightsError, imagenet_checkpoint, load_module_state_dict, read_state_dict
from mammocad.segment.instances import Instances
from mammocad.utils.geometry import mask_box

DEFAULT_ANCHOR_SIZES = (16, 32, 64, 128, 256)  # px, one per FPN level P2..P6 (the paper's)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
SEGMENTER_PHASES = ("heads", "stage4+", "all")
COCO_URL = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url
IMAGENET_URLS = {
    "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1.url, "resnet34": tvm.ResNet34_Weights.IMAGENET1K_V1.url,
    "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1.url, "resnet101": tvm.ResNet101_Weights.IMAGENET1K_V1.url,
    "mobilenet_v2": tvm.MobileNet_V2_Weights.IMAGENET1K_V1.url,
}
"""torchvision ImageNet classifier files, by architecture (smp's resnet / mobilenet_v2 encoders share their layout)."""
CLASSIFIER_KEYS = ("fc.", "classifier.")  # the ImageNet classifiers' own heads, never loaded


@dataclass(frozen=True)
class BackboneWeights:
    """Where an architecture-format ImageNet state_dict goes: ``module``, after removing ``strip`` from its keys."""

    module: nn.Module
    architecture: str  # key of IMAGENET_URLS
    strip: str = ""


class SegmentationModel(nn.Module):
    """What every registered segmenter is (see the module docstring for inputs, targets and outputs)."""

    def __init__(self, name: str, num_classes: int, input_norm: str, options: dict[str, Any]):
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.options = dict(options)
        self.input_adapter = GrayscaleAdapter(input_norm)

    def rgb(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """(1, H, W) grayscale in [0, 1] -> (3, H, W) normalised, per image."""
        return [self.input_adapter(image.unsqueeze(0))[0] for image in images]

    def losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def detect(self, images: list[torch.Tensor]) -> list[Instances]:
        raise NotImplementedError

    def validate(self, images: list[torch.Tensor], targets: list[dict]) -> tuple[dict[str, torch.Tensor],
                                                                                 list[Instances]]:
        """``(losses(images, targets), detect(images))`` in eval mode; a model may share work between them."""
        return self.losses(images, targets), self.detect(images)

    def head_modules(self) -> list[nn.Module]:
        """The layers the ``heads`` phase trains."""
        raise NotImplementedError

    def stage4_modules(self) -> list[nn.Module]:
        """The backbone layers at output stride 16 and 32 (added by ``stage4+``)."""
        raise NotImplementedError

    def backbone_weights(self) -> BackboneWeights:
        raise NotImplementedError


@contextlib.contextmanager
def _training_branch_with_fixed_statistics(module: nn.Module) -> Iterator[None]:
    """``module`` in training mode, but every BatchNorm in eval mode; the previous modes restored."""
    modes = [(m, m.training) for m in module.modules()]
    module.train()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


class MaskRCNNModel(SegmentationModel):
    """A torchvision ``MaskRCNN`` (``net``) behind the grayscale adapter; ``body`` is its ImageNet backbone."""

    def __init__(self, name: str, num_classes: int, input_norm: str, options: dict[str, Any], net: MaskRCNN,
                 stage4: list[nn.Module], weights: BackboneWeights):
        super().__init__(name, num_classes, input_norm, options)
        self.net = net
        self._stage4 = stage4
        self._weights = weights

    def losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        if self.training:
            return self.net(self.rgb(images), targets)
        with _training_branch_with_fixed_statistics(self.net):
            return self.net(self.rgb(images), targets)

    def detect(self, images: list[torch.Tensor]) -> list[Instances]:
        threshold = self.options["mask_threshold"]
        out = []
        for found in self.net(self.rgb(images)):
            masks = (found["masks"][:, 0] >= threshold).cpu().numpy()
            keep = masks.any(axis=(1, 2))  # a mask below the threshold everywhere: no region
            out.append(Instances(masks, found["scores"].float().cpu().numpy(), found["boxes"].float().cpu().numpy(),
                                 found["labels"].cpu().numpy().astype(np.int64)).select(keep))
        return out

    def head_modules(self) -> list[nn.Module]:
        return [self.net.backbone.fpn, self.net.rpn, self.net.roi_heads]

    def stage4_modules(self) -> list[nn.Module]:
        return self._stage4

    def backbone_weights(self) -> BackboneWeights:
        return self._weights


def _anchor_generator(sizes: tuple[int, ...]) -> AnchorGenerator:
    if len(sizes) != 5 or any(s <= 0 for s in sizes):
        raise ValueError(f"anchor_sizes: 5 positive sizes in px, one per FPN level (P2-P6), got {sizes}")
    return AnchorGenerator(sizes=tuple((int(s),) for s in sizes), aspect_ratios=(ASPECT_RATIOS,) * len(sizes))


def _maskrcnn_options(image_size: int = 512, anchor_sizes: tuple[int, ...] = DEFAULT_ANCHOR_SIZES,
                      detections_per_image: int = 100, score_threshold: float = 0.05, nms_threshold: float = 0.5,
                      mask_threshold: float = 0.5, rpn_proposals: int = 1000, rois_per_image: int = 512,
                      ) -> dict[str, Any]:
    """The Mask R-CNN options with their defaults (torchvision's, except image size and anchors)."""
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 px, got {image_size}")
    if rpn_proposals < 1 or rois_per_image < 1:
        raise ValueError(f"rpn_proposals and rois_per_image must be >= 1, got {rpn_proposals}, {rois_per_image}")
    if detections_per_image < 1 or not 0 <= score_threshold < 1 or not 0 < nms_threshold <= 1 or not 0 < mask_threshold < 1:
        raise ValueError("detections_per_image >= 1, score_threshold in [0, 1), nms_threshold in (0, 1], "
                         "mask_threshold in (0, 1) required")
    _anchor_generator(tuple(anchor_sizes))
    return {"image_size": int(image_size), "anchor_sizes": tuple(int(s) for s in anchor_sizes),
            "detections_per_image": int(detections_per_image), "score_threshold": float(score_threshold),
            "nms_threshold": float(nms_threshold), "mask_threshold": float(mask_threshold),
            "rpn_proposals": int(rpn_proposals), "rois_per_image": int(rois_per_image)}


def _torchvision_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    # The grayscale adapter normalises; the transform's own normalisation is the identity.
    return {"min_size": options["image_size"], "max_size": options["image_size"],
            "image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0],
            "box_detections_per_img": options["detections_per_image"],
            "box_score_thresh": options["score_threshold"], "box_nms_thresh": options["nms_threshold"],
            "box_batch_size_per_image": options["rois_per_image"],
            **{f"rpn_{stage}_nms_top_n_{mode}": options["rpn_proposals"] * (2 if mode == "train" else 1)
               for stage in ("pre", "post") for mode in ("train", "test")}}


def _finish_maskrcnn(name: str, num_classes: int, input_norm: str, options: dict, net: MaskRCNN,
                     stage4: list[nn.Module], weights: BackboneWeights) -> MaskRCNNModel:
    net.rpn.anchor_generator = _anchor_generator(options["anchor_sizes"])  # 3 anchors a location, as the head's
    return MaskRCNNModel(name, num_classes, input_norm, options, net, stage4, weights)


def maskrcnn_resnet50_fpn_v2_model(num_classes: int, input_norm: str, **options: Any) -> MaskRCNNModel:
    options = _maskrcnn_options(**options)
    net = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes,
                                   **_torchvision_kwargs(options))
    body = net.backbone.body
    return _finish_maskrcnn("maskrcnn_resnet50_fpn_v2", num_classes, input_norm, options, net,
                            [body.layer3, body.layer4], BackboneWeights(body, "resnet50"))


def maskrcnn_resnet101_fpn_model(num_classes: int, input_norm: str, **options: Any) -> MaskRCNNModel:
    options = _maskrcnn_options(**options)
    backbone = resnet_fpn_backbone(backbone_name="resnet101", weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=5)
    net = MaskRCNN(backbone, num_classes, **_torchvision_kwargs(options))
    body = net.backbone.body
    return _finish_maskrcnn("maskrcnn_resnet101_fpn", num_classes, input_norm, options, net,
                            [body.layer3, body.layer4], BackboneWeights(body, "resnet101"))


MOBILENET_V2_LEVELS = {"3": "0", "6": "1", "13": "2", "18": "3"}  # features index -> FPN level (strides 4-32)
MOBILENET_V2_STAGE4 = 7  # features[7] is the first block at output stride 16


def maskrcnn_mobilenet_v2_fpn_model(num_classes: int, input_norm: str, **options: Any) -> MaskRCNNModel:
    options = _maskrcnn_options(**options)
    features = tvm.mobilenet_v2(weights=None).features
    backbone = BackboneWithFPN(features, return_layers=MOBILENET_V2_LEVELS, in_channels_list=[24, 32, 96, 1280],
                               out_channels=256, extra_blocks=LastLevelMaxPool())
    net = MaskRCNN(backbone, num_classes, **_torchvision_kwargs(options))
    body = net.backbone.body
    stage4 = [module for index, module in body.named_children() if int(index) >= MOBILENET_V2_STAGE4]
    return _finish_maskrcnn("maskrcnn_mobilenet_v2_fpn", num_classes, input_norm, options, net, stage4,
                            BackboneWeights(body, "mobilenet_v2", strip="features."))


def instances_from_probability(probability: np.ndarray, *, threshold: float = 0.5, score: str = "mean",
                               min_area: int = 1, max_instances: int = 100, score_threshold: float = 0.0,
                               label: int = 1) -> Instances:
    """Lesion instances of a probability map: the 8-connected components of ``probability >= threshold``.

    ``probability``: (rows, cols) float in [0, 1]. Each component of at least ``min_area`` px is
    one instance (mask on the same grid, box (x0, y0, x1, y1) exclusive, ``label``) scored with
    the ``mean`` or ``max`` probability inside it; instances scoring below ``score_threshold``
    are dropped and at most ``max_instances`` are kept, highest score first.
    """
    if score not in ("mean", "max"):
        raise ValueError(f"score must be 'mean' or 'max', got {score!r}")
    count, components = cv2.connectedComponents((probability >= threshold).astype(np.uint8), connectivity=8)
    flat, values = components.ravel(), probability.ravel().astype(np.float64)
    areas = np.bincount(flat, minlength=count)
    if score == "mean":
        scores = np.bincount(flat, weights=values, minlength=count) / np.maximum(areas, 1)
    else:
        scores = np.zeros(count)
        np.maximum.at(scores, flat, values)
    ids = [i for i in range(1, count) if areas[i] >= min_area and scores[i] >= score_threshold]
    ids = sorted(ids, key=lambda i: -scores[i])[:max_instances]
    if not ids:
        return Instances.empty(probability.shape)
    masks = np.stack([components == i for i in ids])
    boxes = np.array([mask_box(m).xyxy() for m in masks], np.float32)
    return Instances(masks, scores[ids].astype(np.float32), boxes, np.full(len(ids), label, np.int64))


class UNetModel(SegmentationModel):
    """``smp.Unet`` (``net``) with one lesion-probability channel; input padded to a multiple of 32 px."""

    def __init__(self, num_classes: int, input_norm: str, *, encoder: str = "mobilenet_v2", image_size: int = 512,
                 probability_threshold: float = 0.5, component_score: str = "mean", min_area: int = 1,
                 detections_per_image: int = 100, score_threshold: float = 0.0):
        import segmentation_models_pytorch as smp  # slow to import: only when a U-Net is built

        if num_classes != 2:
            raise ValueError(f"unet segments one lesion class: num_classes must be 2 (with background), got {num_classes}")
        if component_score not in ("mean", "max"):
            raise ValueError(f"component_score must be 'mean' or 'max', got {component_score!r}")
        options = {"encoder": encoder, "image_size": int(image_size), "probability_threshold": float(probability_threshold),
                   "component_score": component_score, "min_area": int(min_area),
                   "detections_per_image": int(detections_per_image), "score_threshold": float(score_threshold)}
        super().__init__("unet", num_classes, input_norm, options)
        try:
            self.net = smp.Unet(encoder, encoder_weights=None, in_channels=3, classes=1)
        except (KeyError, ValueError) as err:
            raise ValueError(f"unknown U-Net encoder {encoder!r} ({err})") from None
        self.dice = smp.losses.DiceLoss(mode="binary", from_logits=True)

    def logits(self, images: list[torch.Tensor]) -> torch.Tensor:
        """(N, 1, H, W) lesion logits of equally sized images."""
        x = torch.stack(self.rgb(images))
        rows, cols = x.shape[-2:]
        pad_rows, pad_cols = -rows % 32, -cols % 32
        return self.net(F.pad(x, (0, pad_cols, 0, pad_rows)))[..., :rows, :cols]

    def _losses(self, logits: torch.Tensor, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        logits = logits.float()
        truth = torch.stack([t["masks"].any(dim=0) if len(t["masks"]) else
                             torch.zeros(image.shape[-2:], dtype=torch.bool, device=image.device)
                             for t, image in zip(targets, images)]).unsqueeze(1).float()
        return {"loss_bce": F.binary_cross_entropy_with_logits(logits, truth), "loss_dice": self.dice(logits, truth)}

    def _instances(self, logits: torch.Tensor) -> list[Instances]:
        o = self.options
        probability = logits.float().sigmoid()[:, 0].cpu().numpy()
        return [instances_from_probability(p, threshold=o["probability_threshold"], score=o["component_score"],
                                           min_area=o["min_area"], max_instances=o["detections_per_image"],
                                           score_threshold=o["score_threshold"]) for p in probability]

    def losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        return self._losses(self.logits(images), images, targets)

    def detect(self, images: list[torch.Tensor]) -> list[Instances]:
        return self._instances(self.logits(images))

    def validate(self, images: list[torch.Tensor], targets: list[dict]) -> tuple[dict[str, torch.Tensor],
                                                                                 list[Instances]]:
        logits = self.logits(images)  # one forward pass for both
        return self._losses(logits, images, targets), self._instances(logits)

    def head_modules(self) -> list[nn.Module]:
        return [self.net.decoder, self.net.segmentation_head]

    def stage4_modules(self) -> list[nn.Module]:
        stages = self.net.encoder.get_stages()
        return [module for stride in (16, 32) for module in stages.get(stride, [])]

    def backbone_weights(self) -> BackboneWeights:
        return BackboneWeights(self.net.encoder, self.options["encoder"])


SEGMENTERS: dict[str, Callable[..., SegmentationModel]] = {
    "maskrcnn_resnet50_fpn_v2": maskrcnn_resnet50_fpn_v2_model,
    "maskrcnn_resnet101_fpn": maskrcnn_resnet101_fpn_model,
    "maskrcnn_mobilenet_v2_fpn": maskrcnn_mobilenet_v2_fpn_model,
    "unet": UNetModel,
}


def list_segmenters() -> list[str]:
    return sorted(SEGMENTERS)


def check_segmenter(name: str) -> None:
    """ValueError listing the registered names when ``name`` is not one."""
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {name!r}; available: {', '.join(list_segmenters())}")


def build_segmenter(name: str, num_classes: int = 2, weights: str | os.PathLike = "none", *,
                    input_norm: str = "imagenet", **options: Any) -> SegmentationModel:
    """Build the registered segmenter ``name`` (see the module docstring for options and weights).

    ValueError for an unknown name, option or value; WeightsError (a one-line DataError) for
    weights that cannot be had or do not fit.
    """
    check_segmenter(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes counts the background: an integer >= 2, got {num_classes!r}")
    try:
        model = SEGMENTERS[name](num_classes, input_norm, **options)
    except TypeError as err:  # an option this model does not have
        raise ValueError(f"{name}: {err}") from None
    load_segmenter_weights(model, weights)
    return model


COCO_PREDICTOR_KEYS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")  # 91 COCO classes


def load_segmenter_weights(model: SegmentationModel, weights: str | os.PathLike) -> None:
    """Initialise ``model`` in place: "none", "coco", "imagenet" or a state_dict file (module docstring)."""
    if weights == "none":
        return
    if weights == "coco":
        if model.name != "maskrcnn_resnet50_fpn_v2":
            raise WeightsError(f"COCO weights exist for maskrcnn_resnet50_fpn_v2 only, not {model.name}; "
                               f"use weights none, imagenet or a state_dict file")
        path = imagenet_checkpoint(model.name, COCO_URL, what="COCO")
        load_module_state_dict(model.net, read_state_dict(path), skip=COCO_PREDICTOR_KEYS, name=model.name,
                               source=str(path), part="model")
        return
    target = model.backbone_weights()
    if weights == "imagenet":
        if target.architecture not in IMAGENET_URLS:
            raise WeightsError(f"no ImageNet weights for encoder {target.architecture!r}; with ImageNet weights: "
                               f"{', '.join(IMAGENET_URLS)}")
        path = imagenet_checkpoint(model.name, IMAGENET_URLS[target.architecture])
        state, source = read_state_dict(path), str(path)
    else:
        state, source = read_state_dict(weights), str(weights)
        if any(key.startswith("net.") for key in state):  # this model's own state_dict
            load_module_state_dict(model, state, skip=(), name=model.name, source=source, part="model")
            return
    stripped = {key.removeprefix(target.strip): value for key, value in state.items()}
    load_module_state_dict(target.module, stripped, skip=CLASSIFIER_KEYS, name=f"{model.name} backbone",
                           source=source, part="backbone")


def set_segmenter_trainable(model: SegmentationModel, phase: str) -> dict[str, int]:
    """Set ``requires_grad`` for ``phase`` (``SEGMENTER_PHASES``, defined in the module docstring).

    Returns ``trainable_params`` and ``frozen_params`` (numbers of scalar parameters). Call
    ``mammocad.models.set_frozen_bn_eval(model)`` after every ``model.train()``.
    """
    if phase not in SEGMENTER_PHASES:
        raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(SEGMENTER_PHASES)}")
    model.requires_grad_(phase == "all")
    if phase != "all":
        for module in model.head_modules() + (model.stage4_modules() if phase == "stage4+" else []):
            module.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable, "frozen_params": sum(p.numel() for p in model.parameters()) - trainable}
