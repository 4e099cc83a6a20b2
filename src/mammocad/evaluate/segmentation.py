"""Segmentation and localisation metrics of predicted lesions against ground-truth lesion masks.

Pure functions on numpy arrays and :class:`~mammocad.segment.instances.Instances`, all on one
image's pixel grid (``[row, col]``). Definitions (the paper's Table 2, and the usual CAD measures):

- ``dice(a, b) = 2 |a & b| / (|a| + |b|)`` of two binary masks; both empty: 1.0 (nothing to find,
  nothing found); exactly one empty: 0.0.
- **average Dice** of an image: Dice of the union of ALL predicted regions against the union of
  all ground-truth lesions (so every false-positive region lowers it). On an image without a
  lesion it is 1.0 when nothing is predicted and 0.0 otherwise (the ``dice`` convention; kept
  in the per-image CSV, but left out of the mean, see below).
- **max Dice** of an image: the best Dice of a SINGLE predicted region against any single
  ground-truth lesion; 0.0 when nothing is predicted; undefined (NaN) on an image without a
  lesion.
- Both Dice means are over the images WITH a lesion, as in the paper's Table 2 (its test images
  all hold a mass). Images without a lesion (mini-MIAS normals) count in the false positives
  per image and the FROC only: averaged in, their 1.0-or-0.0 Dice would reward predicting
  nothing anywhere once normals are the majority.
- A predicted region **hits** a lesion when their IoU is at least ``iou_threshold`` (default 0.1,
  the lenient overlap criterion of mammography CAD: an outline that covers a tenth of a lesion
  points the reader at it). The criterion is not one-to-one: two regions on one lesion both
  hit it, and the lesion counts once.
- **false positives** of an image: predicted regions that hit no lesion at ``iou_threshold``.
- **lesion sensitivity** at IoU t: lesions hit by some predicted region at IoU >= t, over all
  lesions, pooled over images (reported at 0.1 and 0.5).
- **FROC**: sweeping one score threshold s over all images, a prediction counts when its score
  >= s; sensitivity(s) = lesions hit (at ``iou_threshold``) by a counted prediction / lesions;
  FP(s) = counted false-positive regions / images. The curve starts at (0, 0) (nothing
  counted); sensitivity at 0.5 / 1 / 2 FP per image is interpolated linearly between its
  operating points and held at its last value beyond the last one.
- **Confidence intervals**: percentile bootstrap resampling PATIENTS with replacement (all
  images of a drawn patient enter the resample as often as the patient is drawn), because the
  images of one woman are correlated.

Each image's result (:class:`ImageResult`) keeps the scores the FROC needs, so every number of
``metrics.json`` can be recomputed from the per-image CSV.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammocad.evaluate.metrics import BootstrapCI, percentile_interval, resampling_weights
from mammocad.segment.instances import Instances
from mammocad.utils.atomic import write_csv
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import dice, mask_box

IOU_THRESHOLD = 0.1
STRICT_IOU = 0.5
FROC_FP_RATES = (0.5, 1.0, 2.0)


def iou_matrix(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, M) IoU of N predicted masks ``(N, rows, cols)`` against M ground-truth masks ``(M, rows, cols)``.

    Values in [0, 1]; a pair of empty masks has IoU 0. Intersections are counted inside each
    ground-truth lesion's box only, so the cost scales with the lesions' area, not the image's.
    """
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    if predicted.shape[1:] != truth.shape[1:]:
        raise ValueError(f"masks differ in shape: {predicted.shape[1:]} vs {truth.shape[1:]}")
    out = np.zeros((len(predicted), len(truth)))
    if not len(predicted):
        return out
    pred_area = predicted.sum(axis=(1, 2))
    for j, lesion in enumerate(truth):
        box = mask_box(lesion)
        if box is None:
            continue
        window = (slice(box.row0, box.row1), slice(box.col0, box.col1))
        inside = lesion[window]
        inter = (predicted[(slice(None), *window)] & inside).sum(axis=(1, 2))
        union = pred_area + np.count_nonzero(inside) - inter
        out[:, j] = np.divide(inter, union, out=np.zeros(len(predicted)), where=union > 0)
    return out


@dataclass(frozen=True)
class ImageResult:
    """The evaluation of one image (see the module docstring for the definitions).

    ``false_positive_scores``: scores of the predicted regions that hit no lesion.
    ``lesion_hit_scores``: per ground-truth lesion, the highest score of a predicted region that
    hits it at ``iou_threshold`` (NaN: none does); with the former, all the FROC needs.
    """

    image_id: str
    patient_id: str
    n_lesions: int
    n_predictions: int
    average_dice: float
    max_dice: float
    false_positives: int
    hits_iou_low: int   # lesions hit at iou_threshold (0.1)
    hits_iou_high: int  # lesions hit at IoU 0.5
    false_positive_scores: tuple[float, ...]
    lesion_hit_scores: tuple[float, ...]


def evaluate_image(predicted: Instances, truth: np.ndarray, image_id: str = "", patient_id: str = "",
                   iou_threshold: float = IOU_THRESHOLD) -> ImageResult:
    """Evaluate the instances predicted on one image against its lesions ``truth`` (M, rows, cols) bool."""
    truth = np.asarray(truth, bool)
    if truth.shape[1:] != predicted.shape:
        raise ValueError(f"prediction {predicted.shape} and ground truth {truth.shape[1:]} differ in shape")
    truth_union = truth.any(axis=0) if len(truth) else np.zeros(predicted.shape, bool)
    iou = iou_matrix(predicted.masks, truth)  # (N, M)
    hits = iou >= iou_threshold
    scores = predicted.scores.astype(np.float64)
    hit_scores = np.where(hits, scores[:, None], -np.inf).max(axis=0, initial=-np.inf)
    return ImageResult(
        image_id=image_id,
        patient_id=patient_id,
        n_lesions=len(truth),
        n_predictions=len(predicted),
        average_dice=dice(predicted.union(), truth_union),
        max_dice=(float("nan") if not len(truth) else float((2 * iou / (1 + iou)).max(initial=0.0))),
        false_positives=int((~hits.any(axis=1)).sum()),
        hits_iou_low=int(hits.any(axis=0).sum()),
        hits_iou_high=int((iou >= STRICT_IOU).any(axis=0).sum()),
        false_positive_scores=tuple(float(s) for s in scores[~hits.any(axis=1)]),
        lesion_hit_scores=tuple(float(s) if np.isfinite(s) else float("nan") for s in hit_scores),
    )


def prefix_average_dice(predicted: Instances, truth: np.ndarray) -> np.ndarray:
    """(N + 1,) average Dice of the image when only its ``m`` highest-scoring instances are kept, m = 0..N.

    Any top-k and score-threshold rule keeps such a prefix, so this is all the choice of an
    operating point needs (:func:`mammocad.segment.postprocess.choose_operating_point`).
    """
    truth_union = np.asarray(truth, bool).any(axis=0) if len(truth) else np.zeros(predicted.shape, bool)
    union = np.zeros(predicted.shape, bool)
    values = [dice(union, truth_union)]
    for mask in predicted.sorted().masks:
        union |= mask
        values.append(dice(union, truth_union))
    return np.asarray(values)


# ---- FROC --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Froc:
    """A FROC curve: operating points ordered by decreasing score threshold, starting at (0, 0).

    ``thresholds[0]`` is +inf (nothing counted); ``fp_per_image`` and ``sensitivity`` are
    non-decreasing along the curve.
    """

    thresholds: np.ndarray
    fp_per_image: np.ndarray
    sensitivity: np.ndarray

    def sensitivity_at(self, fp_rates: Sequence[float] = FROC_FP_RATES) -> dict[float, float]:
        """Sensitivity at each mean FP-per-image rate: linear between operating points, the last value beyond."""
        # Several points can share an FP rate (lesions found at no extra FP): keep the best of them.
        last_of_each = np.r_[self.fp_per_image[1:] != self.fp_per_image[:-1], True]
        return {float(x): float(np.interp(x, self.fp_per_image[last_of_each], self.sensitivity[last_of_each]))
                for x in fp_rates}


def froc_curve(results: Sequence[ImageResult], weights: np.ndarray | None = None) -> Froc:
    """The FROC curve of a set of images, optionally with a non-negative weight per image (a bootstrap draw).

    Sensitivity is NaN everywhere when the (weighted) images hold no lesion.
    """
    w = np.ones(len(results)) if weights is None else np.asarray(weights, np.float64)
    fp_scores = np.concatenate([np.asarray(r.false_positive_scores, np.float64) for r in results] or [np.empty(0)])
    fp_weight = np.repeat(w, [len(r.false_positive_scores) for r in results])
    hit_scores = np.concatenate([np.asarray(r.lesion_hit_scores, np.float64) for r in results] or [np.empty(0)])
    hit_weight = np.repeat(w, [len(r.lesion_hit_scores) for r in results])
    found = np.isfinite(hit_scores)
    lesions, images = hit_weight.sum(), w.sum()
    thresholds = np.unique(np.r_[fp_scores, hit_scores[found]])[::-1]
    # Weighted counts at or above each threshold: a cumulative sum over scores in decreasing order.
    fp_cum = _weight_at_or_above(fp_scores, fp_weight, thresholds)
    hit_cum = _weight_at_or_above(hit_scores[found], hit_weight[found], thresholds)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = np.r_[0.0, hit_cum] / lesions if lesions > 0 else np.full(len(thresholds) + 1, np.nan)
    return Froc(np.r_[np.inf, thresholds], np.r_[0.0, fp_cum] / images, sensitivity)


def _weight_at_or_above(scores: np.ndarray, weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each (decreasing) threshold, the total weight of the scores >= it."""
    order = np.argsort(-scores, kind="stable")
    cumulative = np.r_[0.0, np.cumsum(weights[order])]
    count = np.searchsorted(-scores[order], -thresholds, side="right")  # scores >= t
    return cumulative[count]


# ---- summary with patient-level CIs ------------------------------------------------------------------
def percentile_ci(values: np.ndarray, level: float = 0.95) -> BootstrapCI:
    """Percentile interval of (R,) bootstrap values; NaN values (undefined resamples) are skipped and counted."""
    values = np.asarray(values, np.float64)
    low, high = percentile_interval(values, level)
    return BootstrapCI(low, high, level, len(values), int((~np.isfinite(values)).sum()))


def summarise(results: Sequence[ImageResult], n_resamples: int = 1000, seed: int = 0,
              fp_rates: Sequence[float] = FROC_FP_RATES) -> dict[str, Any]:
    """Means over images, pooled sensitivities and FROC points, each with a patient-bootstrap 95% CI.

    ``average_dice`` and ``max_dice``: means over the images with a lesion;
    ``false_positives_per_image``; ``sensitivity_iou_0.1`` / ``sensitivity_iou_0.5``: pooled over
    lesions; ``froc_sensitivity_at_<x>_fp``. CIs as ``<name>_ci = [low, high]`` (``None`` when
    undefined), from the same patient resamples for every measure (``metrics.resampling_weights``).
    """
    if not results:
        raise ValueError("no images to summarise")
    column = {name: np.array([getattr(r, name) for r in results], np.float64)
              for name in ("average_dice", "max_dice", "false_positives", "hits_iou_low", "hits_iou_high",
                           "n_lesions")}
    has_lesion = column["n_lesions"] > 0
    ratios = {  # name: (numerator, denominator) per image; the measure is their weighted sums' ratio
        "average_dice": (np.where(has_lesion, column["average_dice"], 0.0), has_lesion.astype(np.float64)),
        "max_dice": (np.where(has_lesion, column["max_dice"], 0.0), has_lesion.astype(np.float64)),
        "false_positives_per_image": (column["false_positives"], np.ones(len(results))),
        f"sensitivity_iou_{IOU_THRESHOLD}": (column["hits_iou_low"], column["n_lesions"]),
        f"sensitivity_iou_{STRICT_IOU}": (column["hits_iou_high"], column["n_lesions"]),
    }
    patients = [r.patient_id for r in results]
    weights = np.vstack([np.ones(len(results)), *resampling_weights(patients, len(results), n_resamples, seed)])
    values: dict[str, np.ndarray] = {}  # row 0: the point estimate, then one value per resample
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, (numerator, denominator) in ratios.items():
            values[name] = (weights @ numerator) / (weights @ denominator)
    froc = np.array([list(froc_curve(results, row).sensitivity_at(fp_rates).values()) for row in weights])
    for k, x in enumerate(fp_rates):
        values[f"froc_sensitivity_at_{x:g}_fp"] = froc[:, k]
    summary: dict[str, Any] = {}
    for name, per_row in values.items():
        ci = percentile_ci(per_row[1:])
        summary[name] = _finite_or_none(per_row[0])
        summary[f"{name}_ci"] = [_finite_or_none(ci.low), _finite_or_none(ci.high)]
    summary.update(n_images=len(results), n_images_with_lesion=int(has_lesion.sum()),
                   n_lesions=int(column["n_lesions"].sum()), n_patients=len(set(patients)),
                   n_predictions=int(sum(r.n_predictions for r in results)),
                   bootstrap={"method": "percentile; patients resampled with replacement", "n_resamples": n_resamples,
                              "seed": seed, "level": 0.95})
    return summary


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# ---- per-image CSV -----------------------------------------------------------------------------------
_LIST_COLUMNS = ("false_positive_scores", "lesion_hit_scores")


def write_image_results(path: str | Path, results: Sequence[ImageResult]) -> Path:
    """Write one row per image, atomically; the score lists as JSON (NaN as null)."""
    rows = []
    for r in results:
        row = asdict(r)
        for name in _LIST_COLUMNS:
            row[name] = json.dumps([None if np.isnan(v) else v for v in row[name]])
        rows.append(row)
    write_csv(path, pd.DataFrame(rows, columns=list(ImageResult.__dataclass_fields__)))
    return Path(path)


def read_image_results(path: str | Path) -> list[ImageResult]:
    """Read a per-image CSV written by :func:`write_image_results`; DataError naming the file on any problem."""
    try:
        frame = pd.read_csv(path, dtype={"image_id": str, "patient_id": str}, keep_default_na=False)
        return [ImageResult(**{**row, **{name: tuple(np.nan if v is None else float(v) for v in json.loads(row[name]))
                                         for name in _LIST_COLUMNS},
                               "max_dice": float(row["max_dice"]) if row["max_dice"] != "" else np.nan})
                for row in frame.to_dict("records")]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"not a per-image segmentation results CSV: {err}") from err
