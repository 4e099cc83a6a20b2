"""End-to-end `mammocad predict` latency per full-resolution mammogram, with the stage breakdown and peak memory.

Input: synthetic CBIS-DDSM full mammograms, 16-bit DICOM 4000x3000 (rows x cols), generated
here in a separate process (its memory is not counted). Models: a MobileNetV2 classifier bundle
at 224 px on 224 px large-context patches with random weights (the speed of a trained one is
the same), default preprocessing (full resolution, 16-bit); regions from the brightest-blob
baseline ``--baseline blob`` when ``mammocad.segment.baselines`` is installed, else from the
small brightest-blob segmenter below (said in the output). Grad-CAM and DICOM SEG are on.

Two runs side by side in this process, over the same images:

- ``floor``: read + preprocess only (what `mammocad prepare` must do anyway), the baseline;
- ``predict``: :func:`mammocad.infer.predict.predict_batch` with 1 worker (per-image latency),
  after a one-image warm-up batch (not counted) that sets up the kernels.

Printed as JSON lines: per variant the median and p95 seconds per image, for predict its
stages (read, preprocess, segment, classify, gradcam, write; median and p95 of each), the ratio
predict/floor of the medians, and the peak memory (PSS of this process and its children, MiB).

    python benchmarks/bench_predict.py --images 20
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mammocad.data.registry import load_dataset
from mammocad.infer.bundle import Bundle, write_bundle
from mammocad.infer.config import PredictConfig
from mammocad.infer.predict import STAGES, predict_batch
from mammocad.models import build_classifier
from mammocad.patches.config import LargeContextConfig
from mammocad.preprocess.config import PreprocessConfig
from mammocad.preprocess.pipeline import preprocess
from mammocad.segment.instances import Instances
from mammocad.utils.imageio import read_image

from _common import PeakMemory, machine, synthesise


class BrightestBlobs:
    """Up to ``count`` largest connected regions above the breast's 99.5th intensity percentile."""

    def __init__(self, count: int = 5, quantile: float = 99.5):
        self.count, self.quantile = count, quantile

    def predict(self, image: np.ndarray, breast: np.ndarray) -> Instances:
        inside = breast > 0
        level = np.percentile(image[inside], self.quantile) if inside.any() else image.max()
        n, labels, stats, _ = cv2.connectedComponentsWithStats(((image > level) & inside).view(np.uint8))
        largest = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:self.count]
        masks = np.stack([labels == k for k in largest]) if n > 1 else np.zeros((0, *image.shape), bool)
        x, y, w, h = (stats[largest, i] for i in range(4))
        boxes = np.stack([x, y, x + w, y + h], axis=1).astype(np.float32).reshape(-1, 4)
        scores = np.linspace(1.0, 0.5, len(masks), dtype=np.float32)
        return Instances(masks, scores, boxes, np.ones(len(masks), np.int64))


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--cols", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesise(root / "synth", patients=(args.images + 1) // 2 + 1, rows=args.rows, cols=args.cols, workers=2)
        paths = [Path(im.image_path) for im in load_dataset(root / "synth", progress=False).images][:args.images]
        torch.manual_seed(0)
        model = build_classifier("mobilenet_v2", 2)
        bundle = write_bundle(Bundle(
            kind="classifier", architecture="mobilenet_v2", options={"num_classes": 2, "dropout": 0.2,
                                                                      "input_norm": None},
            state_dict=model.state_dict(), task="benign_malignant", class_names=("BENIGN", "MALIGNANT"),
            input_size=224, preprocess=PreprocessConfig(), patch_kind="large",
            patch_config=dataclasses.asdict(LargeContextConfig()), metrics={}, threshold=0.5,
            threshold_source="default", source={"benchmark": True}), root / "classifier.mcad")
        del model

        floor = []
        with PeakMemory() as floor_memory:
            for path in paths:
                start = time.perf_counter()
                preprocess(read_image(path), config=bundle.preprocess)
                floor.append(time.perf_counter() - start)

        has_blob = importlib.util.find_spec("mammocad.segment.baselines") is not None
        config = PredictConfig(classifier=root / "classifier.mcad", out=root / "predictions", workers=1,
                               baseline="blob" if has_blob else None)
        segmenter = None if has_blob else BrightestBlobs()
        # warm-up (not counted): the first forward/backward passes set up oneDNN's kernels
        predict_batch(paths[:1], dataclasses.replace(config, out=root / "warm-up"), segmenter=segmenter,
                      progress=False)
        with PeakMemory() as predict_memory:
            start = time.perf_counter()
            summary = predict_batch(paths, config, segmenter=segmenter, progress=False)
            wall = time.perf_counter() - start
        assert not summary.failures, summary.failures
        per_image = [sum(row[f"{s}_s"] for s in STAGES) for row in summary.rows]
        common = {"machine": machine(), "images": len(paths), "input": f"synthetic 16-bit DICOM {args.rows}x{args.cols}"}
        print(json.dumps({**common, "variant": "floor (read + preprocess)", "median_s": _percentile(floor, 50),
                          "p95_s": _percentile(floor, 95), "peak_pss_mib": floor_memory.mib}))
        print(json.dumps({
            **common, "variant": "predict", "segmenter": "mammocad.segment.baselines (--baseline blob)" if has_blob
            else "benchmark BrightestBlobs (5 largest blobs above the breast's 99.5th percentile)",
            "median_s": _percentile(per_image, 50), "p95_s": _percentile(per_image, 95),
            "batch_wall_s_per_image": round(wall / len(paths), 3),
            "ratio_to_floor": round(statistics.median(per_image) / statistics.median(floor), 2),
            "regions_per_image": round(statistics.mean(row["regions"] for row in summary.rows), 2),
            "stages": {s: {"median_s": _percentile([row[f"{s}_s"] for row in summary.rows], 50),
                           "p95_s": _percentile([row[f"{s}_s"] for row in summary.rows], 95)} for s in STAGES},
            "peak_pss_mib": predict_memory.mib}))


if __name__ == "__main__":
    main()
