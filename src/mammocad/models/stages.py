"""Staged fine-tuning: which parameters train in each phase of the paper's schedule.

Phases (``PHASES``):

- ``head``: only the new output layers (``model.heads()``: head, plus InceptionV3's aux_head).
- ``last_third``: the heads and the backbone from its last ceil(n/3) convolutional layers on.
- ``last_two_thirds``: the heads and the backbone from its last ceil(2n/3) convolutional layers
  on (the paper's "fine tuning 2").
- ``all``: everything (end to end; also the random-init baseline).

Definitions. The backbone's *convolutional layers* are its ``nn.Conv2d`` modules (depthwise and
pointwise ones each count) in the order of their first call in a training-mode forward pass
(so InceptionV3's auxiliary branch counts, after Mixed_6e; within an Inception/Xception block
the branches count in the order the block runs them). Let there be n. For a phase unfreezing
k of them, the cut is the first of the last k convs: every backbone module with parameters
whose first call comes at or after the cut's is trainable (the selected convolutions, the
BatchNorm after each, AlexNet's fc6/fc7, ...), every module called before it is frozen. The
heads always train. Modules with parameters that the trace never calls (none in the registered
backbones) stay frozen except in ``all``.

Frozen BatchNorm layers must also stop updating their running statistics: call
``set_frozen_bn_eval(model)`` after every ``model.train()``. Build the optimizer from
``[p for p in model.parameters() if p.requires_grad]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mammocad.models.classifier import Classifier

PHASES = ("head", "last_third", "last_two_thirds", "all")
_THIRDS = {"head": 0, "last_third": 1, "last_two_thirds": 2}  # thirds of the conv layers unfrozen


def _call_order(model: Classifier) -> list[nn.Module]:
    """Backbone modules that own parameters, in the order of their first call.

    Traced with forward pre-hooks on one no-grad pass of zeros (2, 3, s, s), s =
    ``spec.min_input_size``, with the backbone in training mode (to run auxiliary branches) but
    its Dropout layers in eval mode (so no random numbers are drawn). Training flags and buffers
    (BatchNorm running statistics) are restored afterwards.
    """
    backbone = model.backbone
    order: dict[nn.Module, None] = {}
    owners = [m for m in backbone.modules() if next(m.parameters(recurse=False), None) is not None]
    handles = [m.register_forward_pre_hook(lambda module, args: order.setdefault(module)) for m in owners]
    modes = [(m, m.training) for m in backbone.modules()]
    buffers = [(b, b.clone()) for b in backbone.buffers()]
    param = next(backbone.parameters())
    size = model.spec.min_input_size
    try:
        backbone.train()
        for module in backbone.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.eval()
        with torch.no_grad():
            backbone(torch.zeros(2, 3, size, size, device=param.device, dtype=param.dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    return list(order)


def conv_layers(model: Classifier) -> list[tuple[str, nn.Conv2d]]:
    """The backbone's convolutional layers as (name in ``model.backbone``, module), in call order."""
    names = {module: name for name, module in model.backbone.named_modules()}
    return [(names[m], m) for m in _call_order(model) if isinstance(m, nn.Conv2d)]


def set_trainable(model: Classifier, phase: str) -> dict[str, int]:
    """Set ``requires_grad`` for ``phase`` (see the module docstring); returns the counts.

    Keys: ``trainable_params``, ``frozen_params`` (numbers of scalar parameters),
    ``trainable_conv_layers``, ``conv_layers`` (numbers of backbone Conv2d layers).
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(PHASES)}")
    order = _call_order(model)
    convs = [m for m in order if isinstance(m, nn.Conv2d)]
    if phase == "all":
        model.requires_grad_(True)
    else:
        model.requires_grad_(False)
        unfrozen = math.ceil(len(convs) * _THIRDS[phase] / 3)
        if unfrozen:
            for module in order[order.index(convs[-unfrozen]):]:
                module.requires_grad_(True)
        for head in model.heads():
            head.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable,
            "frozen_params": sum(p.numel() for p in model.parameters()) - trainable,
            "trainable_conv_layers": sum(m.weight.requires_grad for m in convs),
            "conv_layers": len(convs)}


def set_frozen_bn_eval(model: nn.Module) -> int:
    """Put every frozen BatchNorm layer (affine parameters, none trainable) in eval mode.

    Call it after ``model.train()``: frozen layers then normalise with their stored running
    statistics and do not update them. Returns the number of layers put in eval mode.
    """
    count = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            module.eval()
            count += 1
    return count
