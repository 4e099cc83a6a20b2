"""Forward + backward time of MobileNetV2's stride-2 depthwise layers: nn.Conv2d vs StridedDepthwiseConv2d.

For each of the four 3x3 stride-2 depthwise layers of MobileNetV2 at 224 px (channels x input
side: 96 x 112, 144 x 56, 192 x 28, 576 x 14), batch ``--batch``, bf16 + channels-last (the
engine's CPU fast path), inside ``keep_freed_memory()`` like the engine: one training-style
call (forward, then backward of a fixed random output gradient into the input and the weight)
through ``nn.Conv2d`` and through ``StridedDepthwiseConv2d`` holding a copy of the same weight,
and for reference through ``nn.Conv2d`` in float32 (channels-last), interleaved, best of
``--repeats`` (each the mean of ``--calls`` calls after 2 warm-up calls). Prints one JSON line
per layer with the three times (ms) and the bf16 speed-up.

    python benchmarks/bench_strided_depthwise.py --batch 32 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch import nn

from mammocad.train import StridedDepthwiseConv2d, keep_freed_memory

from _common import machine

LAYERS = ((96, 112), (144, 56), (192, 28), (576, 14))  # (channels, input side) at 224 px


def time_call(conv: nn.Module, x: torch.Tensor, grad: torch.Tensor, calls: int) -> float:
    """Mean ms of forward + backward (input and weight gradients) over ``calls`` after 2 warm-ups."""
    def call() -> None:
        x.grad = None
        conv.weight.grad = None
        conv(x).backward(grad)

    for _ in range(2):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; the best counts")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per repeat")
    args = parser.parse_args()
    torch.manual_seed(0)
    with keep_freed_memory():
        for channels, side in LAYERS:
            float32 = nn.Conv2d(channels, channels, 3, 2, 1, groups=channels, bias=False)
            reference = copy.deepcopy(float32).to(torch.bfloat16)
            fast = StridedDepthwiseConv2d.from_conv(copy.deepcopy(reference))
            x32 = torch.randn(args.batch, channels, side, side).contiguous(memory_format=torch.channels_last)
            x = x32.to(torch.bfloat16).requires_grad_()
            x32.requires_grad_()
            grad = torch.randn_like(reference(x))
            calls = {"nn_conv2d": (reference, x, grad), "strided_depthwise": (fast, x, grad),
                     "nn_conv2d_float32": (float32, x32, grad.float())}
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.repeats):
                for name, (conv, inputs, out_grad) in calls.items():
                    times[name].append(time_call(conv, inputs, out_grad, args.calls))
            best = {name: min(values) for name, values in times.items()}
            print(json.dumps({
                "benchmark": "strided_depthwise", "channels": channels, "input_side": side, "batch": args.batch,
                "dtype": "bfloat16, channels-last", "ms_nn_conv2d": round(best["nn_conv2d"], 1),
                "ms_strided_depthwise": round(best["strided_depthwise"], 1),
                "ms_nn_conv2d_float32": round(best["nn_conv2d_float32"], 1),
                "speedup": round(best["nn_conv2d"] / best["strided_depthwise"], 2),
                "repeats": args.repeats, "calls": args.calls, "torch_threads": torch.get_num_threads(),
                "machine": machine(),
            }), flush=True)


if __name__ == "__main__":
    main()
