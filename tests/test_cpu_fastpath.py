"""The CPU fast path's own pieces: the strided depthwise convolution's backward and the allocator setting."""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import platform
import resource

import pytest
import torch
from torch import nn

from mammocad.models import build_classifier
from mammocad.train import StridedDepthwiseConv2d, keep_freed_memory, use_fast_strided_depthwise


def _grads(conv: nn.Module, x: torch.Tensor, grad_out_seed: int, autocast: bool = False):
    x = x.detach().clone().requires_grad_()
    conv.weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = conv(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_out_seed)).to(y.dtype)
    y.backward(g)
    return y.detach().float(), x.grad.float(), conv.weight.grad.clone()


@pytest.mark.parametrize("rows, cols, kernel, stride", [(15, 16, 3, 2), (16, 15, 3, 2), (17, 17, 5, 2), (12, 13, 3, 3)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_strided_depthwise_gives_conv2d_outputs_and_gradients(rows, cols, kernel, stride, memory_format):
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 6, kernel, stride, (kernel - 1) // 2, groups=6, bias=False).to(memory_format=memory_format)
    fast = StridedDepthwiseConv2d.from_conv(copy.deepcopy(reference))
    assert type(fast) is StridedDepthwiseConv2d
    for step in range(2):  # the second step reuses the scratch buffer: its zeros must have survived
        x = torch.randn(3, 6, rows, cols).contiguous(memory_format=memory_format)
        expected, got = _grads(reference, x, step), _grads(fast, x, step)
        for e, g, what in zip(expected, got, ("output", "input gradient", "weight gradient")):
            assert g.shape == e.shape, what
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5, msg=what)
    assert fast._spread is not None and fast._spread.shape == (3, 6, rows, cols)


def test_strided_depthwise_under_bf16_autocast_matches_within_bf16_rounding():
    torch.manual_seed(0)
    reference = nn.Conv2d(8, 8, 3, 2, 1, groups=8, bias=False)
    fast = StridedDepthwiseConv2d.from_conv(copy.deepcopy(reference))
    x = torch.randn(4, 8, 24, 24).contiguous(memory_format=torch.channels_last)
    (y_ref, gx_ref, gw_ref), (y, gx, gw) = _grads(reference, x, 0, autocast=True), _grads(fast, x, 0, autocast=True)
    assert gw.dtype == torch.float32  # the gradient reaches the float32 Parameter through autocast's cast
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)  # the same oneDNN forward
    torch.testing.assert_close(gw, gw_ref, atol=0, rtol=0)  # the same weight-gradient call
    torch.testing.assert_close(gx, gx_ref, atol=2e-2, rtol=2e-2)  # bf16 sums in another order


def test_use_fast_strided_depthwise_swaps_only_mobilenet_downsampling_layers():
    torch.manual_seed(0)
    model = build_classifier("mobilenet_v2", 2).eval()
    before = copy.deepcopy(model.state_dict())
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = model(x)
    assert use_fast_strided_depthwise(model) == 4  # the 3x3 stride-2 depthwise layers of MobileNetV2
    swapped = [m for m in model.modules() if isinstance(m, StridedDepthwiseConv2d)]
    assert len(swapped) == 4 and all(m.stride == (2, 2) and m.groups == m.in_channels > 1 for m in swapped)
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=0, rtol=0)
    assert use_fast_strided_depthwise(model) == 0  # already swapped
    assert use_fast_strided_depthwise(build_classifier("medical_cnn", 2)) == 0  # no depthwise layers


@pytest.mark.parametrize("conv", [
    nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=False),  # stride 1: oneDNN is fast already
    nn.Conv2d(4, 8, 3, 2, 1, groups=4, bias=False),  # not depthwise (channel multiplier 2)
    nn.Conv2d(4, 4, 3, 2, 0, groups=4, bias=False),  # padding other than (k - 1) // 2
    nn.Conv2d(4, 4, 3, 2, 1, groups=4, bias=True),
    nn.Conv2d(4, 4, 3, 2, 1, groups=4, bias=False, padding_mode="reflect"),
    nn.Conv2d(4, 4, 4, 2, 1, groups=4, bias=False),  # even kernel
])
def test_layers_the_fast_backward_does_not_compute_exactly_are_left_alone(conv):
    model = nn.Sequential(conv)
    assert use_fast_strided_depthwise(model) == 0 and model[0] is conv


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mmapped_blocks_while_holding(elements: int) -> int:
    """How many more blocks glibc serves by mmap while a float32 tensor of ``elements`` is alive."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    before = libc.mallinfo2().hblks
    tensor = torch.ones(elements)
    during = libc.mallinfo2().hblks
    del tensor
    return during - before


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc's mallopt")
def test_keep_freed_memory_serves_large_tensors_from_the_heap_and_hands_it_back_on_exit():
    # A 240 MB tensor is above any mmap threshold glibc uses: normally mapped on its own (and
    # unmapped, its pages lost, when freed). Inside the block it comes from the heap, whose freed
    # memory the process keeps; the page faults this saves per training step are measured in
    # benchmarks/bench_train.py (minor_faults_per_step).
    elements = 60_000_000
    assert _mmapped_blocks_while_holding(elements) == 1
    with keep_freed_memory() as active:
        assert active is True
        assert _mmapped_blocks_while_holding(elements) == 0
        resident_inside = _resident_bytes()
    assert resident_inside - _resident_bytes() > 0.8 * elements * 4  # the kept memory is handed back
    assert _mmapped_blocks_while_holding(2 * elements) == 1  # mmap again for what no free block fits
    with keep_freed_memory(enabled=False) as active:
        assert active is False
        # larger than every block freed so far, which glibc would otherwise reuse from the heap
        assert _mmapped_blocks_while_holding(3 * elements) == 1
