"""Which fast path a run uses: mixed precision, channels-last memory format, data loader workers.

``precision="auto"`` resolves to

- ``"bf16-mixed"`` on CUDA GPUs with bfloat16 support (Ampere and newer), ``"16-mixed"`` (float16
  with loss scaling) on older CUDA GPUs;
- ``"bf16-mixed"`` on a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16, probed
  with ``torch.cpu._is_avx512_bf16_supported`` / ``torch.cpu._is_amx_tile_supported``, the
  capability checks oneDNN's bf16 kernels depend on). Measured on a 2-core AMX-capable Xeon
  (batch 32, one training step): medical_cnn at 224 px 2.4 s in float32 -> 0.6 s in bf16 with
  channels-last; mobilenet_v2 at 224 px 1.9 s -> 0.9 s with the whole CPU fast path below
  (16.5 -> 35.0 images/s, benchmarks/RESULTS.md);
- ``"32"`` (float32) everywhere else.

``channels_last=None`` (auto) turns channels-last on for CUDA and for the CPU bf16 path, where
the convolution kernels prefer it; off otherwise.

``workers=None`` (auto) resolves to 0 (patches load in the training process) when training on
the CPU: the training step already keeps every core busy with its intra-op threads, and loader
processes only pre-empt them. On the 2-core development VM, InceptionV3 at 299 px trained on
real PNG patches at 0.93-0.96 of its in-memory step rate loading in-process, against 0.87 with
2 worker processes that used just 2% of the CPU (benchmarks/RESULTS.md). With a GPU the cores
are free for loading: ``min(8, cores per device - 1)`` workers (at least 1).

Two more pieces of the CPU fast path are not options: on the CPU bf16 path the engine swaps
strided depthwise convolutions for ``StridedDepthwiseConv2d`` (``mammocad.train.strided_depthwise``:
oneDNN's bf16 input gradient for them is slow), and while training on the CPU it keeps freed
memory in the process (``mammocad.train.allocator``). Both are recorded in run.json.
"""

from __future__ import annotations

import os

import torch

from mammocad.train.config import PRECISIONS

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}  # "32": no autocast


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bfloat16 instructions (AVX512-BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def device_type(accelerator: str) -> str:
    """The device kind Lightning's ``accelerator`` means here: "cuda", "mps", "cpu", ..."""
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return "cuda" if accelerator == "gpu" else accelerator


def resolve_precision(precision: str, device: str) -> str:
    """``precision`` with "auto" replaced by the fast path of ``device`` (see the module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if device == "cpu" and cpu_supports_bf16():
        return "bf16-mixed"
    return "32"


def resolve_channels_last(channels_last: bool | None, device: str, precision: str) -> bool:
    """``channels_last``, or for None: on for CUDA and for CPU bf16, off otherwise."""
    if channels_last is not None:
        return channels_last
    return device == "cuda" or (device == "cpu" and precision == "bf16-mixed")


def uses_strided_depthwise_kernel(device: str, precision: str) -> bool:
    """Whether a run swaps in ``StridedDepthwiseConv2d``: on the CPU bf16 path only, where it was measured."""
    return device == "cpu" and precision == "bf16-mixed"


def resolve_workers(workers: int | None, device: str, devices: int) -> int:
    """``workers``, or for None: 0 on the CPU, else ``min(8, usable cores // devices - 1)``, at least 1."""
    if workers is not None:
        return workers
    if device == "cpu":
        return 0
    return max(1, min(8, len(os.sched_getaffinity(0)) // max(1, devices) - 1))
