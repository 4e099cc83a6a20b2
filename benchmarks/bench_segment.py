"""Segmenter training and inference throughput at 512 x 512 on the CPU: fp32 vs bf16 autocast (issue 11).

For each model (Mask R-CNN ResNet-50-FPN v2, U-Net with a MobileNetV2 and a ResNet-34 encoder;
``mammocad.segment.models.build_segmenter``, weights none, the engine's defaults otherwise:
Mask R-CNN 1000 RPN proposals at inference / 2000 in training, 512 sampled RoIs per image) and
for each precision (``fp32``; ``bf16``: ``torch.autocast("cpu", torch.bfloat16)``, what the
engine's ``precision="bf16-mixed"`` runs), side by side in this process, repeats interleaved:

- ``train``: ``model.losses(images, targets)`` summed, backward, Adam step, every layer
  trainable (phase ``all``), on a fixed batch of synthetic 512 px images, each with one bright
  elliptical "mass" and its mask/box;
- ``infer``: ``model.detect(images)`` in eval mode under ``torch.inference_mode``.

``--warmup`` untimed steps, then ``--steps`` timed ones; images/s is the best repeat. The bf16
ratio is against the fp32 run of the same model, measured in the same process. ``peak_pss_mib``:
the process's peak proportional set size while that variant ran (``_common.PeakMemory``),
model and earlier allocations included. ``cpu_bf16``: whether this CPU has native bf16
arithmetic (``mammocad.train.fastpath.cpu_supports_bf16``); without it, bf16 is emulated.

    python benchmarks/bench_segment.py --steps 2 --repeats 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from _common import PeakMemory, machine
from mammocad.segment.models import build_segmenter
from mammocad.train.fastpath import cpu_supports_bf16

MODELS = {"maskrcnn_resnet50_fpn_v2": {}, "unet_mobilenet_v2": {"encoder": "mobilenet_v2"},
          "unet_resnet34": {"encoder": "resnet34"}}


def batch(size: int, count: int, seed: int) -> tuple[list[torch.Tensor], list[dict]]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    images, targets = [], []
    for _ in range(count):
        r, c = rng.integers(size // 4, 3 * size // 4, 2)
        a, b = rng.integers(size // 20, size // 8, 2)
        mask = ((rows - r) / a) ** 2 + ((cols - c) / b) ** 2 <= 1
        image = np.clip(rng.normal(0.3, 0.05, (size, size)) + 0.5 * mask, 0, 1).astype(np.float32)
        ys, xs = np.nonzero(mask)
        images.append(torch.from_numpy(image).unsqueeze(0))
        targets.append({"masks": torch.from_numpy(mask[None].astype(np.uint8)),
                        "boxes": torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32),
                        "labels": torch.ones(1, dtype=torch.int64)})
    return images, targets


def run(model, mode: str, precision: str, images, targets, warmup: int, steps: int) -> float:
    """Images/s of ``steps`` timed train or inference steps after ``warmup`` untimed ones."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step() -> None:
        if mode == "train":
            model.train()
            with autocast:
                loss = sum(v.float() for v in model.losses(images, targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            model.eval()
            with torch.inference_mode(), autocast:
                model.detect(images)

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="fp32 first (the ratios' baseline); bf16 is emulated, and very slow, on CPUs without it")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's); 1 on a machine shared with other jobs, "
                             "where spinning OpenMP threads that lose their core slow every op down")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, targets = batch(args.size, args.batch, seed=0)
    for name in args.models.split(","):
        options = MODELS[name]
        torch.manual_seed(0)
        model = build_segmenter("unet" if name.startswith("unet") else name, 2, image_size=args.size, **options)
        for mode in ("train", "infer"):
            precisions = args.precisions.split(",")
            rates: dict[str, list[float]] = {precision: [] for precision in precisions}
            peaks: dict[str, float] = {}
            for _ in range(args.repeats):
                for precision in precisions:  # interleaved, so load changes hit both alike
                    with PeakMemory() as peak:
                        rates[precision].append(run(model, mode, precision, images, targets, args.warmup, args.steps))
                    peaks[precision] = max(peaks.get(precision, 0.0), peak.mib)
            for precision in precisions:
                best = max(rates[precision])
                print(json.dumps({
                    "model": name, "mode": mode, "precision": precision, "size": args.size, "batch": args.batch,
                    "images_per_s": round(best, 3), "repeats": [round(r, 3) for r in rates[precision]],
                    "ratio_to_fp32": round(best / max(rates["fp32"]), 3), "peak_pss_mib": peaks[precision],
                    "steps": args.steps, "warmup": args.warmup, "threads": torch.get_num_threads(),
                    "cpu_bf16": cpu_supports_bf16(), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
