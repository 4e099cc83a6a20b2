"""Lesion localisation on real data: patient-level cross-validation on mini-MIAS (issue 11 acceptance).

mini-MIAS (``../shared/data/mini-mias-dev``, circle masks from ``Info.txt``) is prepared once into
``--work`` (default: a new temporary folder, kept and printed; prepare is incremental). The
evaluated images are those of ``mammocad.evaluate.segmenter.split_images`` for
``--lesion-types`` (default ``mass``: images with an outlined mass, plus the normal images,
which add false positives; images whose only abnormalities are other types or lack a centre
are left out). Folds: ``StratifiedGroupKFold`` over these images, grouped by patient (a
left/right pair is one woman), stratified by "holds a lesion", shuffled with ``--seed``.

Per fold, a *view* of the prepared folder (``images.csv`` / ``abnormalities.csv`` with
absolute file paths) puts the fold's women in ``test``, about ``--val-fraction`` of the others
(grouped and stratified again, ``mammocad.evaluate.crossval.validation_patients``) in ``val``
and the rest in ``train``. ``evaluate_segmenter`` chooses the false-positive control (top-k,
score threshold) on ``val`` and applies it to ``test``, exactly as ``mammocad
evaluate-segmenter`` does; every predictor runs on the same folds and validation cuts.

Predictors: the classical baselines (``--baseline``, default ``blob`` when nothing else is
asked); ``--train imagenet`` / ``--train none``: a U-Net with a MobileNetV2 encoder trained per
fold on its ``train`` women (``--input``: 256 px tiles at full resolution, sampled as the paper
does and stitched back, or whole images resized to ``--size``; lesion type mass, normals as negatives, joint ``full`` augmentation), from the ImageNet MobileNetV2 of
``../shared/weights`` or from random initialisation, its last checkpoint predicting (runs
under ``<work>/train``, resumable); ``--checkpoint``: a segmenter trained elsewhere (e.g. on
CBIS-DDSM). A baseline's predictions are cached per image (as box crops) across folds; a
trained model's per fold.

Reported per predictor and setting (``raw``: every prediction; ``after_fp_control``), as JSON
lines on stdout: the pooled out-of-fold average and max Dice, FP per image, lesion
sensitivity at IoU >= 0.1 and 0.5, FROC sensitivity at 0.5/1/2 FP per image, each with a 95%
CI from resampling PATIENTS; the per-fold operating points; seconds, images/s (and its ratio to
the first predictor's, measured in the same process) and peak PSS. Per-image CSVs of the
pooled folds go to ``<work>/localise/<predictor>/``.

Research software, not a medical device.

    python benchmarks/bench_localise_mias.py --work /tmp/mias-localise
    python benchmarks/bench_localise_mias.py --work /tmp/mias-localise --baseline blob --train imagenet --train none \
        --threads 1
    python benchmarks/bench_localise_mias.py --work /tmp/mias-localise --checkpoint runs/seg/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mammocad import DISCLAIMER
from mammocad.evaluate.crossval import patient_folds, validation_patients, write_fold_view
from mammocad.evaluate.segmentation import summarise, write_image_results
from mammocad.evaluate.segmenter import Predict, evaluate_segmenter, split_images
from mammocad.patches.store import read_manifest
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


@dataclass(frozen=True)
class Fold:
    """One fold: its index, a prepared-folder view with its splits, and its val and test patients."""

    index: int
    view: Path
    val: set[str]
    test: set[str]


def make_folds(prepared: Path, work: Path, lesion_types: tuple[str, ...] | None, folds: int, seed: int,
               val_fraction: float) -> tuple[pd.DataFrame, list[Fold]]:
    """(evaluated images, one :class:`Fold` each): patient-grouped folds, a validation cut inside each training fold.

    The views are prepared folders (``images.csv`` / ``abnormalities.csv`` with absolute paths)
    whose ``split`` puts the fold's women in ``test``, about ``val_fraction`` of the others
    (grouped, stratified by "holds a lesion": ``mammocad.evaluate.crossval``) in ``val`` and the
    rest in ``train``. Every predictor chooses its false-positive control on ``val``; a trained
    segmenter learns from ``train`` only.
    """
    items = [item for split in ("train", "val", "test") for item in split_images(prepared, split, lesion_types)[0]]
    frame = pd.DataFrame({"image_id": [i.image_id for i in items], "patient_id": [i.patient_id for i in items],
                          "target": [int(bool(i.lesions)) for i in items]})
    images = pd.read_csv(prepared / "images.csv")
    abnormalities = pd.read_csv(prepared / "abnormalities.csv")
    images = images[images["image_id"].isin(frame["image_id"])].copy()
    abnormalities = abnormalities[abnormalities["image_id"].isin(frame["image_id"])].copy()
    for column in ("prepared_image", "prepared_breast"):
        images[column] = [str(prepared / p) for p in images[column]]
    abnormalities["prepared_mask"] = [str(prepared / p) if isinstance(p, str) else p
                                      for p in abnormalities["prepared_mask"]]
    made = []
    for k, test in enumerate(patient_folds(frame, folds, seed)):
        val = validation_patients(frame[~frame["patient_id"].isin(test)], val_fraction, seed + k)
        view = work / "views" / f"fold{k}"
        view.mkdir(parents=True, exist_ok=True)
        split = np.where(images["patient_id"].isin(test), "test",
                         np.where(images["patient_id"].isin(val), "val", "train"))
        images.assign(split=split).to_csv(view / "images.csv", index=False)
        split_of = dict(zip(images["image_id"], split))
        abnormalities.assign(split=abnormalities["image_id"].map(split_of)).to_csv(view / "abnormalities.csv",
                                                                                   index=False)
        made.append(Fold(k, view, val, test))
    return frame, made


def segmentation_patches(prepared: Path, work: Path, args) -> Path:
    """The U-Net's patch set of the whole prepared folder, built once (incremental).

    ``--input resize``: ``resize512``-kind whole images at ``--size`` px; ``--input tiles``:
    ``seg``-kind ``--size`` px tiles at stride ``--size // 2`` sampled 50/25/25 (lesion, normal,
    blank) as the paper does, predicted tile by tile and stitched back at evaluation.
    """
    from mammocad.patches.build import build_patches
    from mammocad.patches.config import PatchJob, PatchKind, ResizeConfig, TileConfig

    kind, config = ((PatchKind.RESIZE512, ResizeConfig(size=args.size)) if args.input == "resize" else
                    (PatchKind.SEG, TileConfig(tile_size=args.size, stride=args.size // 2)))
    out = work / f"patches-{args.input}{args.size}"
    summary = build_patches(PatchJob(prepared=prepared, out=out, kind=kind, workers=args.workers, seed=args.seed,
                                     figure=False), config, progress=False)
    if summary.failures:
        raise SystemExit(f"{kind.value} patches failed for {len(summary.failures)} images: {summary.failures[:3]}")
    return out


def patch_view(patches: Path, frame: pd.DataFrame, fold: Fold, out: Path) -> Path:
    """The fold's view of the resize patch set: the evaluated images only, absolute paths, the fold's splits."""
    manifest = read_manifest(patches)
    manifest = manifest[manifest["image_id"].astype(str).isin(frame["image_id"])].copy()
    manifest["file"] = [str(patches / f) for f in manifest["file"]]
    manifest["masks"] = [json.dumps([str(patches / m) for m in masks]) for masks in manifest["masks"]]
    for column in ("instance_keys", "instance_labels", "boxes"):
        manifest[column] = [json.dumps(v) for v in manifest[column]]
    manifest["target"] = 0  # write_fold_view drops it
    return write_fold_view(manifest, {str(p) for p in fold.test}, {str(p) for p in fold.val}, out)


def trained_segmenter(weights: str, args, patches: Path, frame: pd.DataFrame, fold: Fold, work: Path) -> Predict:
    """Train (or resume, or reuse) the fold's U-Net on its ``train`` women; its last checkpoint's predictor.

    ``weights``: ``imagenet`` (the ImageNet MobileNetV2 of ``../shared/weights``, decoder first
    then everything: ``--phases-imagenet``) or ``none`` (random initialisation, ``--phases-none``).
    The last checkpoint, not the best by validation Dice: the validation cut holds a handful of
    masses, so picking an epoch on it picks noise (as for the demo's classifier).
    """
    from mammocad.segment.config import SegmentTrainConfig
    from mammocad.segment.predict import load_segmenter
    from mammocad.segment.training import train_segmenter

    run = work / "train" / f"unet-{weights}-{args.input}{args.size}" / f"fold{fold.index}"
    view = patch_view(patches, frame, fold, run.parent / f"view{fold.index}")
    pretrained = weights == "imagenet"
    config = SegmentTrainConfig(
        data=view, out=run, model="unet", encoder="mobilenet_v2",
        weights=str(args.imagenet_weights) if pretrained else "none",
        input_norm="minus_one_one" if pretrained else "imagenet", lesion_type="mass", negatives=True,
        phases=args.phases_imagenet if pretrained else args.phases_none, augment="full",
        batch_size=args.batch_size, workers=0, precision="32", seed=args.seed + fold.index, resume=True,
        limit_train_batches=args.batches_per_epoch, limit_val_batches=args.val_batches, early_stopping_patience=0)
    result = train_segmenter(config, progress=False)
    log({"predictor": f"unet-{weights}-{args.input}{args.size}", "fold": fold.index, "trained_epochs": result.epochs_run,
         "run": str(run)})
    segmenter = load_segmenter(result.last_checkpoint)
    return lambda image, breast: segmenter.predict(image)


def predictors(args, patches: Path | None, frame: pd.DataFrame, work: Path) -> dict[str, Callable[[Fold], Predict]]:
    """Each predictor by name: a function of the fold giving that fold's ``Predict``."""
    found: dict[str, Callable[[Fold], Predict]] = {
        f"baseline-{name}": (lambda fold, p=baseline(name): p) for name in args.baseline}
    for weights in args.train:
        found[f"unet-{weights}-{args.input}{args.size}"] = partial(trained_segmenter, weights, args, patches, frame, work=work)
    for checkpoint in args.checkpoint:
        from mammocad.segment.predict import load_segmenter  # a segmenter trained elsewhere

        segmenter = load_segmenter(checkpoint)
        found[f"checkpoint-{Path(checkpoint).stem}"] = (
            lambda fold, s=segmenter: lambda image, breast: s.predict(image))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--lesion-types", default="mass", help="comma-separated types, or all")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of each training fold's women in its validation cut")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", action="append", default=None, help="classical detector(s); default blob")
    parser.add_argument("--checkpoint", action="append", default=[], help="segmenter checkpoint(s) trained elsewhere")
    parser.add_argument("--train", action="append", default=[], choices=("imagenet", "none"),
                        help="train a U-Net (MobileNetV2 encoder) per fold from these initial weights")
    parser.add_argument("--imagenet-weights", type=Path, default=SHARED / "weights" / "mobilenet_v2_imagenet_coral.pt")
    parser.add_argument("--input", choices=("tiles", "resize"), default="tiles",
                        help="what the U-Net sees: full-resolution tiles (stitched back) or resized whole images")
    parser.add_argument("--size", type=int, default=256, help="tile side or resized image side, px")
    parser.add_argument("--phases-imagenet", default="heads:2:1e-3,all:10:3e-4")
    parser.add_argument("--phases-none", default="all:12:1e-3")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches-per-epoch", type=int, default=6,
                        help="training batches per epoch (a fresh random subset each epoch)")
    parser.add_argument("--val-batches", type=int, default=2, help="validation batches per epoch (val_dice only)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 on a shared machine)")
    args = parser.parse_args()
    args.baseline = args.baseline if args.baseline is not None else (
        [] if args.checkpoint or args.train else ["blob"])
    if not args.data.is_dir():
        raise SystemExit(f"real data not available: {args.data} is absent")
    if "imagenet" in args.train and not args.imagenet_weights.is_file():
        raise SystemExit(f"ImageNet MobileNetV2 weights not available: {args.imagenet_weights} is absent")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="mias-localise-"))
    lesion_types = None if args.lesion_types == "all" else tuple(args.lesion_types.split(","))
    prepared = prepare(args.data, work, args.workers)
    frame, folds = make_folds(prepared, work, lesion_types, args.folds, args.seed, args.val_fraction)
    patches = segmentation_patches(prepared, work, args) if args.train else None
    reference_rate = None
    for name, factory in predictors(args, patches, frame, work).items():
        caches: dict[int, CachedPredict] = {}  # one per distinct predictor: a fold's model sees its own val
        raw, after, points = [], [], []
        started = time.perf_counter()
        with PeakMemory() as peak:
            for fold in folds:
                predict = factory(fold)
                cached = caches.setdefault(id(predict), CachedPredict(predict))
                result = evaluate_segmenter(cached, fold.view, "test", work / "localise" / name / f"fold{fold.index}",
                                            val_split="val", lesion_types=lesion_types, n_resamples=10,
                                            n_overlays=2 if fold.index == 0 else 0, seed=args.seed, name=name,
                                            progress=False)
                raw += result.raw
                after += result.after
                points.append({"fold": fold.index, "top_k": result.operating_point.top_k,
                               "min_score": round(result.operating_point.min_score, 4),
                               "val_average_dice_before": round(result.operating_point.val_average_dice_before, 4),
                               "val_average_dice_after": round(result.operating_point.val_average_dice_after, 4)})
        seconds = time.perf_counter() - started
        predicted, predict_seconds = (sum(c.images for c in caches.values()), sum(c.seconds for c in caches.values()))
        rate = predicted / predict_seconds if predict_seconds else float("nan")
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
