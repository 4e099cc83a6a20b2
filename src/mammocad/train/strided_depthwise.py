"""A faster backward pass for strided depthwise convolutions in bf16 on the CPU.

Why: oneDNN's bf16 kernel for the input gradient of a *strided* depthwise convolution is slow:
on the 2-core development VM (AMX-bf16), forward + backward of MobileNetV2's 96-channel 3x3
stride-2 layer at 112x112, batch 32, took 170 ms in bf16 against 36 ms in float32, and its four
stride-2 depthwise layers about a quarter of the bf16 training step. The input gradient of a
stride-s convolution is the stride-1 correlation of the gradient, spread onto the input grid
with zeros between (``g`` at every s-th row and column), with the kernel flipped. That stride-1
depthwise convolution is one of oneDNN's fast cases: computed that way, the four layers took
48 instead of 329 ms, and a bare MobileNetV2 bf16 loop went from 24.7 to 33.9 images/s together
with ``mammocad.train.allocator`` (benchmarks/RESULTS.md, bench_strided_depthwise.py).

``use_fast_strided_depthwise(model)`` swaps every eligible ``nn.Conv2d`` for a
``StridedDepthwiseConv2d`` holding the same parameter (state_dict keys and values unchanged).
Eligible: depthwise (groups == in == out channels > 1), stride > 1, dilation 1, odd kernel with
"same"-style padding ((k - 1) // 2), no bias, zero padding mode: MobileNetV2's and
EfficientNet's downsampling layers. The replacement differs from ``nn.Conv2d`` only in training
on CPU tensors with gradients on; the forward result and the weight gradient come from the same
oneDNN calls as before; the input gradient equals the standard one up to float rounding.

The zero-spread gradient lives in a scratch buffer per layer, kept between steps (zeroed once;
backward only writes the strided positions, the others stay zero): the largest in MobileNetV2
at 224 px and batch 32 is 77 MB in bf16. Double backward (``create_graph``) is not supported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _StridedDepthwiseConvFunction(torch.autograd.Function):
    """conv2d(x, weight, stride, padding, groups) with the input gradient as a stride-1 correlation."""

    @staticmethod
    def forward(ctx, x, weight, conv: "StridedDepthwiseConv2d"):
        ctx.save_for_backward(x, weight)
        ctx.conv = conv
        return F.conv2d(x, weight, None, conv.stride, conv.padding, 1, conv.groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        conv: StridedDepthwiseConv2d = ctx.conv
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            spread = conv.zero_spread_buffer(x)
            (step_r, step_c), (rows, cols) = conv.stride, grad_out.shape[-2:]
            spread[..., :step_r * rows:step_r, :step_c * cols:step_c] = grad_out
            # With padding p = (k - 1) // 2 the correlation with the flipped kernel and the same
            # padding returns exactly the input's rows x cols.
            grad_x = F.conv2d(spread, weight.flip(-1, -2), None, 1, conv.padding, 1, conv.groups)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(conv.stride), list(conv.padding), [1, 1], False, [0, 0],
                conv.groups, [False, True, False])[1]
        return grad_x, grad_weight, None


class StridedDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (depthwise, strided) whose CPU training backward uses the stride-1 kernel; see the module."""

    _spread: torch.Tensor | None = None  # scratch for the zero-spread gradient (not a buffer: never saved)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "StridedDepthwiseConv2d":
        """A replacement for ``conv`` with the same settings, sharing its weight Parameter."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, bias=False, padding_mode=conv.padding_mode,
                  device="meta")
        new.weight = conv.weight
        new.train(conv.training)
        return new

    @staticmethod
    def eligible(module: nn.Module) -> bool:
        """True for an ``nn.Conv2d`` this class computes exactly (see the module docstring)."""
        return (type(module) is nn.Conv2d and module.groups > 1
                and module.groups == module.in_channels == module.out_channels
                and any(step > 1 for step in module.stride) and module.dilation == (1, 1)
                and module.bias is None and module.padding_mode == "zeros" and isinstance(module.padding, tuple)
                and all(k % 2 == 1 and pad == (k - 1) // 2 for k, pad in zip(module.kernel_size, module.padding)))

    def zero_spread_buffer(self, like: torch.Tensor) -> torch.Tensor:
        """A zero tensor shaped like the layer input ``like`` (N, C, H, W), channels-last, reused between calls."""
        spread = self._spread
        if spread is None or spread.shape != like.shape or spread.dtype != like.dtype or spread.device != like.device:
            n, c, h, w = like.shape
            spread = torch.zeros((n, h, w, c), dtype=like.dtype, device=like.device).permute(0, 3, 1, 2)
            self._spread = spread
        return spread

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled() and x.device.type == "cpu"):
            return super().forward(x)
        weight = self.weight
        if torch.is_autocast_enabled("cpu"):
            # Do autocast's cast for conv2d here, outside the Function, so that the gradient
            # flows back through it to the float32 weight.
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            with torch.autocast("cpu", enabled=False):
                return _StridedDepthwiseConvFunction.apply(x, weight, self)
        return _StridedDepthwiseConvFunction.apply(x, weight, self)


def use_fast_strided_depthwise(model: nn.Module) -> int:
    """Replace every eligible strided depthwise ``nn.Conv2d`` in ``model`` in place; returns how many."""
    targets = [(name, module) for name, module in model.named_modules() if StridedDepthwiseConv2d.eligible(module)]
    for name, conv in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, StridedDepthwiseConv2d.from_conv(conv))
    return len(targets)
