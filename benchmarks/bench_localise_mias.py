"""Lesion localisation on real data: patient-level cross-validation on mini-MIAS (issue 11 acceptance).

mini-MIAS (``../shared/data/mini-mias-dev``, circle masks from ``Info.txt``) is prepared once into
``--work`` (default: a new temporary folder, kept and printed; prepare is incremental). The
evaluated images are those of ``mammocad.evaluate.segmenter.split_images`` for
``--lesion-types`` (default ``mass``: images with an outlined mass, plus the normal images,
which add false positives; images whose only abnormalities are other types or lack a centre
are left out). Folds: ``StratifiedGroupKFold`` over these images, grouped by patient (a
left/right pair is one woman), stratified by "holds a lesion", shuffled with ``--seed``.

Per fold, a *view* of the prepared folder (``images.csv`` / ``abnormalities.csv`` with
absolute file paths) puts the fold's patients in ``test`` and every other patient in ``val``;
``evaluate_segmenter`` then chooses the false-positive control (top-k, score threshold) on
``val`` and applies it to ``test``, exactly as ``mammocad evaluate-segmenter`` does. Nothing is
trained on mini-MIAS: a ``--checkpoint`` is a segmenter trained elsewhere (e.g. on CBIS-DDSM);
every predictor runs on the same folds. Each image is predicted once per predictor (cached
in memory as box crops) however many folds read it.

Reported per predictor and setting (``raw``: every prediction; ``after_fp_control``), as JSON
lines on stdout: the pooled out-of-fold average and max Dice, FP per image, lesion
sensitivity at IoU >= 0.1 and 0.5, FROC sensitivity at 0.5/1/2 FP per image, each with a 95%
CI from resampling PATIENTS; the per-fold operating points; seconds, images/s (and its ratio to
the first predictor's, measured in the same process) and peak PSS. Per-image CSVs of the
pooled folds go to ``<work>/localise/<predictor>/``.

Research software, not a medical device.

    python benchmarks/bench_localise_mias.py --work /tmp/mias-localise
    python benchmarks/bench_localise_mias.py --work /tmp/mias-localise --checkpoint runs/seg/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from mammocad import DISCLAIMER
from mammocad.evaluate.segmentation import summarise, write_image_results
from mammocad.evaluate.segmenter import Predict, evaluate_segmenter, split_images
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import PrepareJob, run_prepare
from mammocad.segment.baselines import baseline
from mammocad.segment.instances import Instances
from mammocad.utils.geometry import mask_box

from _common import PeakMemory, machine

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data" / "mini-mias-dev"


def log(record: dict) -> None:
    print(json.dumps({"benchmark": "localise_mias", **record}), flush=True)


class CachedPredict:
    """``predict`` computed once per image (keyed by its pixels), its masks kept as box crops."""

    def __init__(self, predict: Predict):
        self.predict, self.cache, self.seconds, self.images = predict, {}, 0.0, 0

    def __call__(self, image: np.ndarray, breast: np.ndarray) -> Instances:
        key = hashlib.sha1(image.tobytes()).hexdigest()
        if key not in self.cache:
            started = time.perf_counter()
            found = self.predict(image, breast)
            self.seconds += time.perf_counter() - started
            self.images += 1
            boxes = [mask_box(m) for m in found.masks]
            crops = [m[b.row0:b.row1, b.col0:b.col1] if b else None for m, b in zip(found.masks, boxes)]
            self.cache[key] = (found.scores, found.boxes, found.labels, boxes, crops)  # no full-size mask kept
        scores, xyxy, labels, boxes, crops = self.cache[key]
        masks = np.zeros((len(scores), *image.shape), bool)
        for mask, box, crop in zip(masks, boxes, crops):
            if box is not None:
                mask[box.row0:box.row1, box.col0:box.col1] = crop
        return Instances(masks, scores, xyxy, labels)


def prepare(data: Path, work: Path, workers: int) -> Path:
    prepared = work / "prepared"
    summary = run_prepare(PrepareJob(source=data, out=prepared, dataset="mini-mias", workers=workers, figures=0),
                          PreprocessConfig(), progress=False)
    if summary.failures:
        raise SystemExit(f"prepare failed for {len(summary.failures)} images: {summary.failures[:3]}")
    return prepared


def fold_views(prepared: Path, work: Path, lesion_types: tuple[str, ...] | None, folds: int,
               seed: int) -> list[Path]:
    """One view folder per fold: its patients in ``test``, every other evaluated patient in ``val``."""
    items = [item for split in ("train", "val", "test") for item in split_images(prepared, split, lesion_types)[0]]
    frame = pd.DataFrame({"image_id": [i.image_id for i in items], "patient_id": [i.patient_id for i in items],
                          "lesion": [bool(i.lesions) for i in items]})
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    images = pd.read_csv(prepared / "images.csv")
    abnormalities = pd.read_csv(prepared / "abnormalities.csv")
    images = images[images["image_id"].isin(frame["image_id"])].copy()
    abnormalities = abnormalities[abnormalities["image_id"].isin(frame["image_id"])].copy()
    for column in ("prepared_image", "prepared_breast"):
        images[column] = [str(prepared / p) for p in images[column]]
    abnormalities["prepared_mask"] = [str(prepared / p) if isinstance(p, str) else p
                                      for p in abnormalities["prepared_mask"]]
    views = []
    for k, (_, test) in enumerate(splitter.split(frame, frame["lesion"], groups=frame["patient_id"])):
        test_patients = set(frame["patient_id"].iloc[test])
        view = work / "views" / f"fold{k}"
        view.mkdir(parents=True, exist_ok=True)
        split = np.where(images["patient_id"].isin(test_patients), "test", "val")
        images.assign(split=split).to_csv(view / "images.csv", index=False)
        split_of = dict(zip(images["image_id"], split))
        abnormalities.assign(split=abnormalities["image_id"].map(split_of)).to_csv(view / "abnormalities.csv",
                                                                                   index=False)
        assert not test_patients & set(images.loc[split == "val", "patient_id"]), "a patient in test and val"
        views.append(view)
    return views


def predictors(args) -> dict[str, Predict]:
    found: dict[str, Predict] = {f"baseline-{name}": baseline(name) for name in args.baseline}
    for checkpoint in args.checkpoint:
        from mammocad.segment.predict import load_segmenter  # the trained segmenters (issue 11, part A)

        segmenter = load_segmenter(checkpoint)
        found[f"checkpoint-{Path(checkpoint).stem}"] = lambda image, breast, s=segmenter: s.predict(image)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--lesion-types", default="mass", help="comma-separated types, or all")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", action="append", default=None, help="classical detector(s); default blob")
    parser.add_argument("--checkpoint", action="append", default=[], help="trained segmenter checkpoint(s)")
    args = parser.parse_args()
    args.baseline = args.baseline if args.baseline is not None else ([] if args.checkpoint else ["blob"])
    if not args.data.is_dir():
        raise SystemExit(f"real data not available: {args.data} is absent")
    work = args.work or Path(tempfile.mkdtemp(prefix="mias-localise-"))
    lesion_types = None if args.lesion_types == "all" else tuple(args.lesion_types.split(","))
    prepared = prepare(args.data, work, args.workers)
    views = fold_views(prepared, work, lesion_types, args.folds, args.seed)
    reference_rate = None
    for name, predict in predictors(args).items():
        cached = CachedPredict(predict)
        raw, after, points = [], [], []
        started = time.perf_counter()
        with PeakMemory() as peak:
            for k, view in enumerate(views):
                result = evaluate_segmenter(cached, view, "test", work / "localise" / name / f"fold{k}",
                                            val_split="val", lesion_types=lesion_types, n_resamples=10,
                                            n_overlays=2 if k == 0 else 0, seed=args.seed, name=name, progress=False)
                raw += result.raw
                after += result.after
                points.append({"fold": k, "top_k": result.operating_point.top_k,
                               "min_score": round(result.operating_point.min_score, 4),
                               "val_average_dice_before": round(result.operating_point.val_average_dice_before, 4),
                               "val_average_dice_after": round(result.operating_point.val_average_dice_after, 4)})
        seconds = time.perf_counter() - started
        rate = cached.images / cached.seconds if cached.seconds else float("nan")
        reference_rate = reference_rate or rate
        out = work / "localise" / name
        write_image_results(out / "pooled_raw.csv", raw)
        write_image_results(out / "pooled_after_fp_control.csv", after)
        for setting, results in (("raw", raw), ("after_fp_control", after)):
            summary = summarise(results, args.bootstrap, args.seed)
            log({"predictor": name, "setting": setting, "lesion_types": args.lesion_types, "folds": args.folds,
                 **{key: (round(v, 4) if isinstance(v, float) else
                          [None if x is None else round(x, 4) for x in v] if isinstance(v, list) else v)
                    for key, v in summary.items()}})
        log({"predictor": name, "operating_points": points, "seconds": round(seconds, 1),
             "predict_images_per_s": round(rate, 3), "ratio_to_first_predictor": round(rate / reference_rate, 3),
             "peak_pss_mib": peak.mib, "machine": machine(), "work": str(work), "note": DISCLAIMER})


if __name__ == "__main__":
    main()
