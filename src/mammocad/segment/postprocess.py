"""False-positive control, the paper's proposed fix for its low average Dice: keep few, confident regions.

A segmenter returns every region it finds; each extra region on healthy tissue lowers the
image's average Dice (all regions together against the lesions). :func:`keep_confident` keeps
the ``top_k`` highest-scoring instances among those scoring at least ``min_score``: always the
m highest-scoring ones for some m. :func:`choose_operating_point` picks ``top_k`` and
``min_score`` on the VALIDATION split, maximising the mean average Dice over its images
with a lesion (the paper's measure), so that the test split never influences them. Images
without a lesion are left out of the choice: with their Dice convention (1.0 when nothing is
kept, else 0.0) a majority of normal images makes "keep nothing" win, as it did on mini-MIAS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mammocad.segment.instances import Instances

TOP_K_CANDIDATES = (1, 2, 3, 5, 10, None)  # None: no limit on the count


@dataclass(frozen=True)
class OperatingPoint:
    """Keep at most ``top_k`` instances (None: any number) scoring at least ``min_score`` (in [0, 1]).

    ``val_average_dice_before`` / ``_after``: mean average Dice on the validation images with
    every instance kept / with this rule (NaN when it was not chosen on validation data).
    """

    top_k: int | None = None
    min_score: float = 0.0
    val_average_dice_before: float = float("nan")
    val_average_dice_after: float = float("nan")
    n_val_images: int = 0

    def apply(self, instances: Instances) -> Instances:
        return keep_confident(instances, self.top_k, self.min_score)


def keep_confident(instances: Instances, top_k: int | None = None, min_score: float = 0.0) -> Instances:
    """The ``top_k`` highest-scoring instances (all when None) among those scoring >= ``min_score``, highest first."""
    ranked = instances.sorted()
    keep = int(np.count_nonzero(ranked.scores >= min_score))
    return ranked.select(np.arange(keep if top_k is None else min(top_k, keep)))


def choose_operating_point(val_images: Sequence[tuple[np.ndarray, np.ndarray]],
                           top_k_candidates: Sequence[int | None] = TOP_K_CANDIDATES) -> OperatingPoint:
    """The (top_k, min_score) maximising the mean average Dice over validation images with a lesion.

    ``val_images``: per validation image with a lesion, ``(scores, prefix_dice)``: its instances' scores and
    the (N + 1,) average Dice with its m highest-scoring instances kept, m = 0..N
    (:func:`mammocad.evaluate.segmentation.prefix_average_dice`). Candidate thresholds are 0 and
    every validation score; ties go to the rule keeping the fewest regions (the first ``top_k``
    candidate, then the highest threshold). With no validation image, the rule keeps everything.
    """
    if not val_images:
        return OperatingPoint()
    scores = [np.sort(np.asarray(s, np.float64))[::-1] for s, _ in val_images]
    prefix = [np.asarray(p, np.float64) for _, p in val_images]
    for s, p in zip(scores, prefix):
        if len(p) != len(s) + 1:
            raise ValueError(f"prefix Dice needs N + 1 = {len(s) + 1} values, got {len(p)}")
    thresholds = np.unique(np.r_[0.0, np.concatenate(scores)])[::-1]  # highest first
    before = float(np.mean([p[-1] for p in prefix]))
    # (images, thresholds): how many instances of each image score >= each threshold
    above = np.array([np.searchsorted(-s, -thresholds, side="right") for s in scores])
    best: tuple[float, int | None, float] | None = None
    for top_k in top_k_candidates:
        kept = above if top_k is None else np.minimum(above, top_k)
        means = np.mean([p[m] for p, m in zip(prefix, kept)], axis=0)  # (thresholds,)
        at = int(np.argmax(means))  # first maximum: the highest threshold among the best
        if best is None or means[at] > best[0] + 1e-12:
            best = (float(means[at]), top_k, float(thresholds[at]))
    mean, top_k, threshold = best
    return OperatingPoint(top_k, threshold, before, mean, len(val_images))
