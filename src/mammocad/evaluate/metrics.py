"""Classifier metrics: accuracy, AUC, sensitivity/specificity, confusion table, bootstrap CIs.

Conventions:

- ``targets``: (N,) integer class indices. Binary tasks have classes {0, 1} and class 1 is the
  positive one (e.g. MALIGNANT).
- binary ``positive_scores``: (N,) scores of class 1 (probabilities in [0, 1] in practice); a
  sample is called positive when ``score >= threshold``, the same convention as
  ``sklearn.metrics.roc_curve``.
- multiclass ``probabilities``: (N, C) with C >= 2; the decision is the argmax.

Point estimates come from scikit-learn. The bootstrap needs the same statistic on 1000 resamples,
where calling scikit-learn once per resample costs ~1 ms of input checks per call (5 calls per
resample for a 5-class macro AUC), so it uses ``weighted_accuracy``/``weighted_auc``: the same
statistics evaluated for many resampling-weight vectors at once. They are tested to equal
scikit-learn on resampled data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score, roc_auc_score, roc_curve

from mammocad import DISCLAIMER
from mammocad.evaluate.predictions import class_names_of, probability_matrix, validate_predictions

DEFAULT_THRESHOLD = 0.5
_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000  # weights held at once: 32 MB of float64

WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _targets(targets: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    arr = np.asarray(targets)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"targets must be a 1-D array of integer class indices, got shape {arr.shape} ({arr.dtype})")
    if not ((arr >= 0) & (arr < n_classes)).all():
        raise ValueError(f"targets must lie in [0, {n_classes})")
    return arr


def _scores(scores: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """(N,) positive scores or (N, C) probabilities as float64, checked against N targets."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim not in (1, 2) or len(arr) != n or (arr.ndim == 2 and arr.shape[1] < 2):
        raise ValueError(f"scores must have shape ({n},) or ({n}, C>=2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scores must be finite")
    return arr


def _n_classes(scores: np.ndarray) -> int:
    return 2 if scores.ndim == 1 else scores.shape[1]


def _require_both_classes(targets: np.ndarray) -> None:
    counts = np.bincount(targets, minlength=2)
    if (counts == 0).any():
        raise ValueError(f"binary metrics need both classes in targets; class {int(np.argmin(counts))} is absent")


def predicted_classes(scores: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """(N,) predicted class indices: ``scores >= threshold`` for (N,) binary positive scores,
    the argmax for (N, C) probabilities (``threshold`` unused)."""
    scores = np.asarray(scores)
    return (scores >= threshold).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)


def choose_threshold(targets: Sequence[int] | np.ndarray, positive_scores: Sequence[float] | np.ndarray) -> float:
    """The operating threshold maximising Youden's J = sensitivity + specificity - 1 on these data.

    Meant for the validation split. Candidates are the distinct finite scores (the thresholds of
    ``sklearn.metrics.roc_curve``), so the result is one of ``positive_scores``; ties in J go to the
    highest such threshold (fewest positive calls, i.e. the highest specificity among the optima).
    Raises ``ValueError`` unless both classes are present.
    """
    targets = _targets(targets, 2)
    scores = _scores(positive_scores, len(targets))
    if scores.ndim != 1:
        raise ValueError("choose_threshold needs (N,) positive-class scores")
    _require_both_classes(targets)
    fpr, tpr, thresholds = roc_curve(targets, scores, drop_intermediate=False)
    youden = (tpr - fpr)[1:]  # index 0 is sklearn's +inf threshold (nothing called positive)
    return float(thresholds[1 + int(np.argmax(youden))])  # thresholds decrease: first max = highest


def binary_metrics(
    targets: Sequence[int] | np.ndarray,
    positive_scores: Sequence[float] | np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Binary metrics of (N,) 0/1 ``targets`` against (N,) class-1 scores.

    Returns ``accuracy``, ``sensitivity`` (recall of class 1), ``specificity`` (recall of class 0),
    all at ``threshold`` and in [0, 1]; the threshold-free ROC ``auc`` in [0, 1]; and ``threshold``,
    ``n``, ``n_positive``. Raises ``ValueError`` unless both classes are present.
    """
    targets = _targets(targets, 2)
    scores = _scores(positive_scores, len(targets))
    if scores.ndim != 1:
        raise ValueError("binary_metrics needs (N,) positive-class scores")
    _require_both_classes(targets)
    predicted = predicted_classes(scores, threshold)
    return {
        "accuracy": float(accuracy_score(targets, predicted)),
        "auc": float(roc_auc_score(targets, scores)),
        "sensitivity": float(recall_score(targets, predicted, pos_label=1)),
        "specificity": float(recall_score(targets, predicted, pos_label=0)),
        "threshold": float(threshold),
        "n": int(len(targets)),
        "n_positive": int(targets.sum()),
    }


def multiclass_metrics(
    targets: Sequence[int] | np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Multiclass metrics of (N,) ``targets`` against (N, C) ``probabilities``.

    Returns ``accuracy`` of the argmax; ``auc_per_class`` (class name -> one-vs-rest ROC AUC, or
    ``None`` for a class absent from ``targets``, where it is undefined); ``auc``, the macro mean
    of the defined per-class AUCs (equal to scikit-learn's ``roc_auc_score(multi_class="ovr",
    average="macro")`` when every class is present); ``auc_classes_absent`` (names of the classes
    left out of the macro mean); ``n`` and ``n_per_class``. Raises ``ValueError`` when fewer than
    two classes are present.
    """
    names = [str(name) for name in class_names]
    targets = _targets(targets, len(names))
    probs = _scores(probabilities, len(targets))
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise ValueError(f"probabilities must have shape ({len(targets)}, {len(names)}), got {probs.shape}")
    counts = np.bincount(targets, minlength=len(names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise ValueError("multiclass metrics need at least two classes present in targets")
    per_class = {name: None for name in names}
    per_class.update({names[k]: float(roc_auc_score(targets == k, probs[:, k])) for k in present})
    return {
        "accuracy": float(accuracy_score(targets, predicted_classes(probs))),
        "auc": float(np.mean([per_class[names[k]] for k in present])),
        "auc_per_class": per_class,
        "auc_classes_absent": [names[k] for k in np.flatnonzero(counts == 0)],
        "n": int(len(targets)),
        "n_per_class": {name: int(c) for name, c in zip(names, counts)},
    }


def confusion_table(
    targets: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """C x C counts (like the paper's Tables 13/14): rows are the true class (index named ``true``),
    columns the predicted class (named ``predicted``), both labelled with ``class_names``."""
    names = [str(name) for name in class_names]
    matrix = confusion_matrix(_targets(targets, len(names)), _targets(predicted, len(names)), labels=range(len(names)))
    return pd.DataFrame(matrix, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))


def weighted_accuracy(
    targets: np.ndarray, scores: np.ndarray, weights: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Accuracy for each row of (R, N) non-negative sample ``weights``: (R,) values in [0, 1].

    Decisions as in ``predicted_classes``. With integer weights (resampling counts) this is the
    accuracy of the data set that repeats sample i ``weights[r, i]`` times.
    """
    correct = predicted_classes(scores, threshold) == targets
    return (weights @ correct) / weights.sum(axis=1)


def weighted_brier(targets: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Brier score for each row of (R, N) non-negative sample ``weights``: (R,) values, lower is better.

    (N,) binary scores: mean squared difference between the class-1 score and the 0/1 target,
    in [0, 1] (scikit-learn's ``brier_score_loss``). (N, C) probabilities: mean over samples of
    the summed squared differences to the one-hot target, in [0, 2] (Brier's original definition).
    """
    if scores.ndim == 1:
        squared = (scores - targets) ** 2
    else:
        squared = ((scores - np.eye(scores.shape[1])[targets]) ** 2).sum(axis=1)
    return (weights @ squared) / weights.sum(axis=1)


def brier_score(targets: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """The Brier score of (N,) class-1 scores or (N, C) probabilities (see ``weighted_brier``)."""
    scores_arr = _scores(scores, len(targets))
    targets = _targets(targets, _n_classes(scores_arr))
    return float(weighted_brier(targets, scores_arr, np.ones((1, len(targets))))[0])


def _weighted_binary_auc(is_positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC (ties count one half, as in scikit-learn) for each row of (R, N) weights; (R,)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores, positive, w = scores[order], is_positive[order], weights[:, order]
    group_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    pos = np.add.reduceat(w * positive, group_starts, axis=1)  # (R, G) weight per distinct score
    neg = np.add.reduceat(w * ~positive, group_starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def weighted_auc(targets: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of (R, N) non-negative sample ``weights``: (R,) values in [0, 1].

    (N,) scores: binary AUC of class 1. (N, C) probabilities: macro mean of the one-vs-rest AUCs
    of the classes present in ``targets`` (as ``multiclass_metrics``). A row giving zero weight to
    a class that the AUC needs yields NaN. With integer weights this is the AUC of the data set
    that repeats sample i ``weights[r, i]`` times.
    """
    if scores.ndim == 1:
        return _weighted_binary_auc(targets == 1, scores, weights)
    present = np.flatnonzero(np.bincount(targets, minlength=scores.shape[1]))
    return np.mean([_weighted_binary_auc(targets == k, scores[:, k], weights) for k in present], axis=0)


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap interval: ``low <= high`` (NaN when every resample was skipped)."""

    low: float
    high: float
    level: float
    n_resamples: int
    n_skipped: int


def resampling_weights(groups: Sequence | np.ndarray | None, n: int, n_resamples: int, seed: int,
                       chunk: int | None = None) -> Iterator[np.ndarray]:
    """Count weights of a percentile bootstrap of ``n`` samples, in blocks of at most ``chunk`` (R, n) rows.

    ``groups`` None: each resample draws ``n`` samples with replacement from all ``n``
    (multinomial counts). ``groups`` ((n,) labels, e.g. patient ids): whole groups are drawn
    instead, G from the G distinct labels, each sample weighing its group's draw count (a
    cluster bootstrap). ``n_resamples`` rows in all, deterministic for a ``seed``.
    """
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if groups is None:
        codes, n_groups = np.arange(n), n
    else:
        if len(groups) != n:
            raise ValueError(f"groups must have one entry per sample ({n}), got {len(groups)}")
        codes, uniques = pd.factorize(np.asarray(groups, dtype=object))
        n_groups = len(uniques)
    rng = np.random.default_rng(seed)
    chunk = chunk or n_resamples
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=size).astype(np.float64)
        yield counts[:, codes]


def _bootstrap_values(targets: np.ndarray, n_classes: int, statistic: Callable[[np.ndarray], np.ndarray],
                      groups: Sequence | np.ndarray | None, n_resamples: int, seed: int) -> np.ndarray:
    """``statistic(weights)`` of the kept resamples: (R', N) weights -> (R',) values, concatenated."""
    n = len(targets)
    present = np.flatnonzero(np.bincount(targets, minlength=n_classes))
    one_hot = (targets[:, None] == present[None, :]).astype(np.float64)  # (N, K) present classes
    values = []
    for weights in resampling_weights(groups, n, n_resamples, seed, chunk=max(1, _BOOTSTRAP_CHUNK_ELEMENTS // max(n, 1))):
        kept = weights[((weights @ one_hot) > 0).all(axis=1)]
        if len(kept):
            result = np.asarray(statistic(kept), dtype=np.float64)
            if result.shape != (len(kept),):
                raise ValueError(f"metric_fn must return one value per weight row ({len(kept)},), got {result.shape}")
            values.append(result)
    return np.concatenate(values) if values else np.empty(0)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the finite ``values``; NaNs when there are none."""
    values = np.asarray(values, np.float64)
    kept = values[np.isfinite(values)]
    if not len(kept):
        return float("nan"), float("nan")
    low, high = np.percentile(kept, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _check_bootstrap(level: float, n_resamples: int) -> None:
    if not 0 < level < 1 or n_resamples < 1:
        raise ValueError(f"need 0 < level < 1 and n_resamples >= 1, got level={level}, n_resamples={n_resamples}")


def bootstrap_ci(
    targets: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    metric_fn: WeightedMetric,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Sequence | np.ndarray | None = None,
) -> BootstrapCI:
    """Percentile bootstrap confidence interval of a metric.

    Plain (unstratified) resampling: each resample draws N samples with replacement from all N,
    expressed as (R, N) count weights (multinomial, N draws, equal probabilities). With
    ``groups`` ((N,) labels, e.g. patient ids) whole groups are resampled instead (a cluster
    bootstrap): G groups drawn with replacement from the G distinct labels, each sample weighing
    its group's draw count, the honest interval when samples of one group are correlated (the
    patches of one woman). A resample that lacks a class present in ``targets`` is skipped and
    counted in ``n_skipped``, so every kept resample is evaluated on the same classes as the
    point estimate. The interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
    the kept resamples' metric values.

    ``targets``: (N,) class indices. ``scores``: (N,) binary positive scores or (N, C)
    probabilities. ``metric_fn(targets, scores, weights)`` maps (R, N) weights to (R,) metric
    values, e.g. ``weighted_auc`` or ``functools.partial(weighted_accuracy, threshold=t)``.
    Deterministic for a given ``seed``; metrics bootstrapped with the same seed, data and
    groups share their resamples.
    """
    _check_bootstrap(level, n_resamples)
    scores_arr = _scores(scores, len(targets))
    targets = _targets(targets, _n_classes(scores_arr))
    values = _bootstrap_values(targets, _n_classes(scores_arr), lambda w: metric_fn(targets, scores_arr, w), groups,
                               n_resamples, seed)
    low, high = percentile_interval(values, level)
    return BootstrapCI(low, high, level, n_resamples, n_resamples - len(values))


@dataclass(frozen=True)
class PairedDifference:
    """``metric(b) - metric(a)`` on the same samples, with its paired percentile bootstrap interval.

    ``fraction_above_0``: share of the kept resamples where b beat a.
    """

    difference: float
    low: float
    high: float
    fraction_above_0: float
    level: float
    n_resamples: int
    n_skipped: int


def paired_bootstrap_difference(
    targets: Sequence[int] | np.ndarray,
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    metric_fn: WeightedMetric,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Sequence | np.ndarray | None = None,
) -> PairedDifference:
    """Difference ``metric(b) - metric(a)`` of two sets of scores of the same samples, with a paired CI.

    Each resample (as ``bootstrap_ci``: samples, or whole ``groups`` when given) weighs both
    score sets the same way, so the interval reflects only how the two differ on the same
    patients. Point estimate: the difference on all samples.
    """
    _check_bootstrap(level, n_resamples)
    a, b = _scores(scores_a, len(targets)), _scores(scores_b, len(targets))
    if a.shape != b.shape:
        raise ValueError(f"the two score sets differ in shape: {a.shape} vs {b.shape}")
    targets = _targets(targets, _n_classes(a))
    ones = np.ones((1, len(targets)))
    point = float(metric_fn(targets, b, ones)[0] - metric_fn(targets, a, ones)[0])
    deltas = _bootstrap_values(targets, _n_classes(a), lambda w: metric_fn(targets, b, w) - metric_fn(targets, a, w),
                               groups, n_resamples, seed)
    low, high = percentile_interval(deltas, level)
    above = float((deltas > 0).mean()) if len(deltas) else float("nan")
    return PairedDifference(point, low, high, above, level, n_resamples, n_resamples - len(deltas))


@dataclass(frozen=True)
class EvaluationResult:
    """The evaluation of one split.

    ``task``: ``"binary"`` (two classes, class 1 positive) or ``"multiclass"``. ``metrics``: the
    dict of ``binary_metrics`` / ``multiclass_metrics`` plus ``accuracy_ci`` and ``auc_ci``
    (``[low, high]``) and ``bootstrap`` (its settings and ``n_skipped``). ``confusion``: the
    ``confusion_table`` at the decision rule used. ``threshold``: the binary operating threshold
    (``None`` for multiclass) and ``threshold_source`` where it came from: ``"validation"``
    (Youden's J on the validation split), ``"default"`` (0.5) or ``"argmax"`` (multiclass).
    """

    task: str
    class_names: tuple[str, ...]
    metrics: dict[str, Any]
    confusion: pd.DataFrame
    threshold: float | None
    threshold_source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``); the confusion matrix as rows of true classes."""
        return nan_to_none(
            {
                "task": self.task,
                "class_names": list(self.class_names),
                "threshold": self.threshold,
                "threshold_source": self.threshold_source,
                "metrics": self.metrics,
                "confusion": {
                    "rows_true_columns_predicted": list(self.class_names),
                    "counts": self.confusion.to_numpy().tolist(),
                },
                "note": DISCLAIMER,
            }
        )


def nan_to_none(obj: Any) -> Any:
    """``obj`` with every float NaN (nested in dicts/lists) replaced by None: JSON has no NaN."""
    if isinstance(obj, dict):
        return {key: nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(value) for value in obj]
    return None if isinstance(obj, float) and np.isnan(obj) else obj


def evaluate_predictions(
    test_frame: pd.DataFrame,
    class_names: Sequence[str],
    val_frame: pd.DataFrame | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate the predictions of one split (normally test) in the format of ``predictions``.

    Binary (two classes): the threshold is chosen on ``val_frame`` with ``choose_threshold``
    (Youden's J) when given, else the fixed 0.5; accuracy, sensitivity, specificity and the
    confusion table use it. Multiclass: decisions are the argmax and ``val_frame`` is only checked.
    Both frames must have exactly ``class_names`` (in this order) as their ``prob_`` columns.
    ``brier`` is the Brier score (``weighted_brier``: of the class-1 score for binary tasks).
    ``accuracy_ci``, ``auc_ci`` and ``brier_ci`` come from ``bootstrap_ci`` with ``n_resamples``
    and ``seed`` (95% level; the intervals share their resamples).
    """
    names = tuple(str(name) for name in class_names)
    for split_frame in (test_frame, val_frame):
        if split_frame is not None and validate_predictions(split_frame) != names:
            raise ValueError(f"predictions have classes {list(class_names_of(split_frame))}, expected {list(names)}")
    targets = test_frame["target"].to_numpy()
    probs = probability_matrix(test_frame, names)
    if len(names) == 2:
        task, scores = "binary", probs[:, 1]
        if val_frame is None:
            threshold, source = DEFAULT_THRESHOLD, "default"
        else:
            threshold = choose_threshold(val_frame["target"].to_numpy(), probability_matrix(val_frame, names)[:, 1])
            source = "validation"
        metrics = binary_metrics(targets, scores, threshold)
        accuracy_fn = partial(weighted_accuracy, threshold=threshold)
        predicted = predicted_classes(scores, threshold)
    else:
        task, scores, threshold, source = "multiclass", probs, None, "argmax"
        metrics = multiclass_metrics(targets, probs, names)
        accuracy_fn = weighted_accuracy
        predicted = predicted_classes(probs)
    acc_ci, auc_ci, brier_ci = (
        bootstrap_ci(targets, scores, fn, n_resamples=n_resamples, seed=seed)
        for fn in (accuracy_fn, weighted_auc, weighted_brier)
    )
    metrics.update(
        accuracy_ci=[acc_ci.low, acc_ci.high],
        auc_ci=[auc_ci.low, auc_ci.high],
        brier=brier_score(targets, scores),
        brier_ci=[brier_ci.low, brier_ci.high],
        bootstrap={
            "method": "percentile; plain resampling of samples with replacement",
            "n_resamples": n_resamples,
            "n_skipped": acc_ci.n_skipped,
            "level": acc_ci.level,
            "seed": seed,
        },
    )
    return EvaluationResult(task, names, metrics, confusion_table(targets, predicted, names), threshold, source)
