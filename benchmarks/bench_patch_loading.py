"""Per-sample cost of loading training patches in the training process (what engine_files waits for).

Two measurements on a patch set (``--patches``, a folder written by ``mammocad patches``):

- ``decode``: ``read_image`` of ``--samples`` patch PNGs as stored, and of the same pixels
  re-encoded in memory at PNG compression levels 0 and 1 (``cv2.imdecode``), ms per patch, with
  the mean encoded size (KB);
- ``sample``: the engine's training view (``EpochView`` over ``task_dataset`` with the ``full``
  augmentation and the resize to ``--input-size``): per-sample seeding, decode, augmentation,
  resize, ms per sample, best of ``--repeats`` passes over the same samples.

Prints one JSON line per measurement.

    python benchmarks/bench_patch_loading.py --patches PATCH_SET --task lesion_vs_background
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from mammocad.patches.store import read_manifest
from mammocad.train.augment import train_transform
from mammocad.train.data import EpochView, task_dataset
from mammocad.train.tasks import get_task
from mammocad.utils.imageio import read_image

from _common import machine


def ms_per_item(fn, items: list, repeats: int) -> float:
    """Best over ``repeats`` passes of the mean ms of ``fn(item)`` (one untimed call first)."""
    fn(items[0])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(items) * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=Path, required=True, help="patch set folder")
    parser.add_argument("--task", default="five_class", help="task whose train split is loaded")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    files = [args.patches / f for f in read_manifest(args.patches).query("split == 'train'")["file"]][:args.samples]
    pixels = [read_image(f) for f in files]
    decode = {"stored": ms_per_item(read_image, files, args.repeats)}
    sizes = {"stored": float(np.mean([f.stat().st_size for f in files])) / 1024}
    for level in (0, 1):
        encoded = [cv2.imencode(".png", p, [cv2.IMWRITE_PNG_COMPRESSION, level])[1] for p in pixels]
        decode[f"level{level}"] = ms_per_item(lambda buf: cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), encoded,
                                              args.repeats)
        sizes[f"level{level}"] = float(np.mean([buf.size for buf in encoded])) / 1024
    print(json.dumps({"benchmark": "patch_loading", "measurement": "decode", "patches": str(args.patches),
                      "dtype": str(pixels[0].dtype), "shape": list(pixels[0].shape),
                      "ms_per_patch": {k: round(v, 3) for k, v in decode.items()},
                      "kb_per_patch": {k: round(v, 1) for k, v in sizes.items()},
                      "samples": len(files), "machine": machine()}), flush=True)

    dataset = task_dataset(args.patches, "train", get_task(args.task), train_transform("full", args.input_size))
    view = EpochView(dataset, seed=0, rank=0, world=1, batch_size=32)
    positions = list(range(min(args.samples, len(view))))
    print(json.dumps({"benchmark": "patch_loading", "measurement": "sample", "task": args.task,
                      "augment": "full", "input_size": args.input_size,
                      "ms_per_sample": round(ms_per_item(view.__getitem__, positions, args.repeats), 3),
                      "samples": len(positions), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
