"""Time of the bootstrap confidence intervals an evaluation computes (``bootstrap_ci``).

For ``--n`` synthetic samples (informative scores, seed 6): the 95% CI of the 5-class macro
AUC, of the binary AUC and of the binary accuracy at 0.5, each with ``--resamples`` resamples,
best of ``--repeats``. Baseline, side by side: the same binary AUC interval computed the plain
way, one scikit-learn ``roc_auc_score`` per resample (its time is measured on
``--baseline-resamples`` resamples and scaled up). Prints one JSON line per metric with the
seconds per interval and the speed-up over the baseline where there is one.

This replaces the former ``tests/test_evaluate.py::test_bootstrap_is_fast`` (a wall-time
assertion, which fails on a loaded machine whatever the code does).

    python benchmarks/bench_bootstrap.py --n 1000 --resamples 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import numpy as np
from sklearn.metrics import roc_auc_score

from mammocad.evaluate.metrics import bootstrap_ci, weighted_accuracy, weighted_auc

from _common import machine


def five_class(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets (n,) and informative softmax probabilities (n, 5)."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 5, n)
    logits = rng.normal(size=(n, 5)) + 1.5 * np.eye(5)[targets]
    return targets, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets (n,) and class-1 probabilities (n,), positives one logit higher."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n)
    return targets, 1 / (1 + np.exp(-(rng.normal(size=n) + (2 * targets - 1))))


def best_seconds(fn, repeats: int) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls (one untimed call first)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sklearn_loop_auc(targets: np.ndarray, scores: np.ndarray, resamples: int, seed: int = 0) -> list[float]:
    """The plain bootstrap: draw indices, one ``roc_auc_score`` per resample that has both classes."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        index = rng.integers(0, len(targets), len(targets))
        if 0 < targets[index].sum() < len(index):
            values.append(roc_auc_score(targets[index], scores[index]))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="samples")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    y5, p5 = five_class(args.n, seed=6)
    y2, s2 = binary(args.n, seed=6)
    baseline = best_seconds(lambda: sklearn_loop_auc(y2, s2, args.baseline_resamples), args.repeats)
    baseline *= args.resamples / args.baseline_resamples
    cases = {
        "auc_5class_macro": (y5, p5, weighted_auc, None),
        "auc_binary": (y2, s2, weighted_auc, baseline),
        "accuracy_binary": (y2, s2, partial(weighted_accuracy, threshold=0.5), None),
    }
    for metric, (targets, scores, fn, reference) in cases.items():
        seconds = best_seconds(lambda: bootstrap_ci(targets, scores, fn, n_resamples=args.resamples), args.repeats)
        line = {"benchmark": "bootstrap", "metric": metric, "n": args.n, "resamples": args.resamples,
                "seconds": round(seconds, 4), "machine": machine()}
        if reference is not None:
            line.update(baseline="sklearn roc_auc_score per resample", baseline_seconds=round(reference, 4),
                        speedup=round(reference / seconds, 1))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
