"""Evaluate a lesion segmenter (a trained model or a classical baseline) on one split of a prepared folder.

``evaluate_segmenter`` streams the images of the split one at a time (prepared image, breast
mask, ground-truth lesion masks; nothing else is held in memory), predicts each, and scores the
predictions twice: as they come (``raw``) and after the false-positive control of
:mod:`mammocad.segment.postprocess` with the operating point chosen on the VALIDATION split in the
same run (``operating_point``): the paper's average Dice before and after its proposed fix.

Which images count: with ``lesion_types`` (e.g. ``("mass",)``) the images holding an
outlined lesion of those types, plus normal images (no abnormality at all; they add false
positives and FROC points); an image whose abnormalities are all of other types, or that has
a lesion of the types without an outline (mini-MIAS rows without a centre), is left out,
because its ground truth is unknown. ``lesion_types=None`` takes every type.

Output folder::

    per_image_<split>.csv        after FP control: one row per image (see ImageResult)
    per_image_<split>_raw.csv    before it
    froc_<split>.csv             the FROC curves (threshold, fp_per_image, sensitivity; raw and after)
    metrics.json                 both summaries with patient-bootstrap 95% CIs, the operating point
    froc_<split>.png             FROC curves, before and after the FP control
    overlays/<image_id>.png      prediction vs ground truth for the first ``n_overlays`` images with a lesion
    loss_curves.png              when ``training_metrics`` (a run's metrics.csv) is given

Research software, not a medical device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mammocad import DISCLAIMER
from mammocad.evaluate.metrics import nan_to_none
from mammocad.evaluate.segmentation import (
    IOU_THRESHOLD,
    ImageResult,
    evaluate_image,
    froc_curve,
    prefix_average_dice,
    summarise,
    write_image_results,
)
from mammocad.evaluate.segmentation_plots import froc_figure, loss_curves_figure, overlay_figure, save_figure
from mammocad.preprocess.prepare import load_prepared
from mammocad.segment.instances import Instances
from mammocad.segment.postprocess import OperatingPoint, choose_operating_point
from mammocad.utils.atomic import check_output_folder, write_csv, write_json
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import read_image

Predict = Callable[[np.ndarray, np.ndarray], Instances]  # (prepared image, breast mask) -> Instances


@dataclass(frozen=True)
class EvalImage:
    """One image to evaluate: its ids and the files of its prepared image, breast mask and lesion masks."""

    image_id: str
    patient_id: str
    image: Path
    breast: Path
    lesions: tuple[Path, ...]


def split_images(prepared: str | Path, split: str,
                 lesion_types: Sequence[str] | None = None) -> tuple[list[EvalImage], dict[str, int]]:
    """The images of ``split`` to evaluate (see the module docstring) and the counts of those left out, by reason."""
    prepared = Path(prepared)
    _, images, abnormalities = load_prepared(prepared)
    images = images[images["split"] == split]
    by_image = {k: g for k, g in abnormalities.groupby("image_id")}
    chosen, left_out = [], {"other_lesion_types_only": 0, "lesion_without_outline": 0}
    for row in images.itertuples():
        abn = by_image.get(row.image_id, abnormalities.iloc[:0])
        relevant = abn if lesion_types is None else abn[abn["abnormality_type"].isin(lesion_types)]
        if len(abn) and not len(relevant):
            left_out["other_lesion_types_only"] += 1
            continue
        if relevant["prepared_mask"].isna().any():
            left_out["lesion_without_outline"] += 1
            continue
        chosen.append(EvalImage(str(row.image_id), str(row.patient_id), prepared / row.prepared_image,
                                prepared / row.prepared_breast,
                                tuple(prepared / p for p in relevant["prepared_mask"])))
    return chosen, left_out


def _read(item: EvalImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, breast, lesions (M, rows, cols) bool) of one image, checked to share one shape."""
    image, breast = read_image(item.image), read_image(item.breast)
    lesions = [read_image(p) != 0 for p in item.lesions]
    for path, array in zip((item.breast, *item.lesions), (breast, *lesions)):
        if array.shape != image.shape:
            raise DataError(path, f"shape {array.shape} does not match its prepared image {image.shape}")
    return image, breast, np.stack(lesions) if lesions else np.zeros((0, *image.shape), bool)


def _predicted(predict: Predict, image: np.ndarray, breast: np.ndarray, item: EvalImage) -> Instances:
    instances = predict(image, breast)
    if instances.shape != image.shape:
        raise DataError(item.image, f"the segmenter predicted on a {instances.shape} grid for a {image.shape} image")
    return instances


def _stream(predict: Predict, items: list[EvalImage], desc: str,
            progress: bool) -> Iterator[tuple[EvalImage, np.ndarray, np.ndarray, Instances]]:
    for item in tqdm(items, desc=desc, disable=not progress, unit="image", dynamic_ncols=True):
        image, breast, truth = _read(item)
        yield item, image, truth, _predicted(predict, image, breast, item)


def _froc_frame(curves: dict[str, Any]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"setting": name, "threshold": c.thresholds, "fp_per_image": c.fp_per_image,
                                    "sensitivity": c.sensitivity}) for name, c in curves.items()], ignore_index=True)


@dataclass(frozen=True)
class SegmentationEvaluation:
    """What ``evaluate_segmenter`` measured: ``metrics`` is the content of metrics.json."""

    metrics: dict[str, Any]
    operating_point: OperatingPoint
    raw: list[ImageResult]
    after: list[ImageResult]


def evaluate_segmenter(predict: Predict, prepared: str | Path, split: str, out: str | Path, *,
                       val_split: str | None = "val", lesion_types: Sequence[str] | None = None,
                       iou_threshold: float = IOU_THRESHOLD, n_overlays: int = 4, n_resamples: int = 1000,
                       seed: int = 0, training_metrics: str | Path | None = None, name: str = "segmenter",
                       progress: bool = True) -> SegmentationEvaluation:
    """Evaluate ``predict`` on ``split`` of the prepared folder ``prepared``; write into ``out`` (see the module docstring).

    ``predict(image, breast)`` takes the prepared image (its file's dtype) and breast mask and
    returns :class:`Instances` on the image's grid. The operating point is chosen on
    ``val_split``'s images with a lesion (None: keep every prediction). DataError when ``out``
    cannot be a folder, the split has no image to evaluate, or ``val_split`` no image with a lesion.
    """
    prepared, out = Path(prepared), Path(out)
    check_output_folder(out)
    test_items, left_out = split_images(prepared, split, lesion_types)
    if not test_items:
        raise DataError(prepared, f"no image of split {split!r} to evaluate (lesion types {lesion_types or 'all'}; "
                                  f"left out: {left_out})")
    operating_point = OperatingPoint()
    if val_split is not None:
        val_items = [item for item in split_images(prepared, val_split, lesion_types)[0] if item.lesions]
        if not val_items:
            raise DataError(prepared, f"no image with a lesion in split {val_split!r} to choose the operating point "
                                      "on; use another validation split, or none (keep every prediction)")
        operating_point = choose_operating_point(
            [(inst.scores, prefix_average_dice(inst, truth))
             for _, _, truth, inst in _stream(predict, val_items, f"{val_split} (operating point)", progress)])
    raw, after, overlays = [], [], []
    for item, image, truth, instances in _stream(predict, test_items, split, progress):
        kept = operating_point.apply(instances)
        raw.append(evaluate_image(instances, truth, item.image_id, item.patient_id, iou_threshold))
        after.append(evaluate_image(kept, truth, item.image_id, item.patient_id, iou_threshold))
        if len(truth) and len(overlays) < n_overlays:
            overlays.append(item.image_id)
            result = after[-1]
            save_figure(overlay_figure(image, truth.any(axis=0), kept.union(),
                                       f"{item.image_id}: average Dice {result.average_dice:.2f}, max Dice "
                                       f"{result.max_dice:.2f}, {result.false_positives} FP ({name})"),
                        out / "overlays" / f"{item.image_id}.png")
    curves = {"raw": froc_curve(raw), "after FP control": froc_curve(after)}
    metrics = {
        "segmenter": name,
        "split": split,
        "val_split": val_split,
        "lesion_types": list(lesion_types) if lesion_types else "all",
        "iou_threshold": iou_threshold,
        "images_left_out": left_out,
        "operating_point": {**asdict(operating_point),
                            "objective": "mean average Dice over the validation images with a lesion"},
        "raw": summarise(raw, n_resamples, seed),
        "after_fp_control": summarise(after, n_resamples, seed),
        "overlays": overlays,
        "note": DISCLAIMER,
    }
    write_image_results(out / f"per_image_{split}_raw.csv", raw)
    write_image_results(out / f"per_image_{split}.csv", after)
    write_csv(out / f"froc_{split}.csv", _froc_frame(curves))
    write_json(out / "metrics.json", nan_to_none(metrics))
    save_figure(froc_figure(curves, title=f"FROC, {split} split ({name})"), out / f"froc_{split}.png")
    if training_metrics is not None:
        save_figure(loss_curves_figure(pd.read_csv(training_metrics)), out / "loss_curves.png")
    return SegmentationEvaluation(metrics, operating_point, raw, after)
