"""Probability calibration fitted on validation predictions, stored beside the checkpoint it calibrates.

Methods (``CALIBRATION_METHODS``):

- ``temperature``: ``softmax(log(p) / T)`` with the one temperature T > 0 that minimises the
  negative log-likelihood of the validation predictions (Guo et al. 2017, applied to
  log-probabilities so it works for networks and classical models alike). Monotone in each
  class's score, so a binary AUC is unchanged; one parameter, so it fits on a small validation split.
- ``isotonic`` (binary tasks only): the positive-class probability mapped through the
  non-decreasing step function fitted by scikit-learn's ``IsotonicRegression`` (clipped outside
  the fitted range). More flexible; it merges scores into ties, so the AUC can move a little.

A calibration lives in ``<checkpoint stem>.calibration.json`` beside the checkpoint
(``calibration_path``); ``evaluate_classifier`` applies it when present.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mammocad.evaluate.config import CALIBRATION_METHODS
from mammocad.evaluate.predictions import class_names_of, prob_column, probability_matrix
from mammocad.utils.atomic import write_json
from mammocad.utils.errors import DataError

_EPS = 1e-12  # probabilities are clipped to [eps, 1] before the log
_LOG_T_RANGE = (-4.0, 4.0)  # natural-log bounds of the temperature search: T in [0.018, 55]


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration map of (N, C) class probabilities.

    ``temperature``: T of ``temperature`` (None for isotonic). ``x``/``y``: the isotonic step
    function's knots (positive-class probability in -> out, increasing x; empty for temperature).
    ``n_fitted``: validation samples it was fitted on; ``tta``: the test-time augmentation of those
    predictions (apply it to predictions made the same way).
    """

    method: str
    temperature: float | None = None
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    n_fitted: int = 0
    tta: str = "none"

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated (N, C) probabilities (rows sum to 1) of (N, C) ``probabilities``."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if self.method == "temperature":
            return _softmax(np.log(np.clip(probs, _EPS, 1.0)) / self.temperature)
        if probs.shape[1] != 2:
            raise ValueError("an isotonic calibration maps binary probabilities only")
        positive = np.clip(np.interp(probs[:, 1], self.x, self.y), 0.0, 1.0)
        return np.stack([1.0 - positive, positive], axis=1)


def calibrate_frame(frame, calibration: Calibration | None):
    """A predictions frame with its ``prob_`` columns calibrated (``frame`` itself when ``calibration`` is None)."""
    if calibration is None:
        return frame
    names = class_names_of(frame)
    out = frame.copy()
    out[[prob_column(n) for n in names]] = calibration.apply(probability_matrix(frame, names))
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_calibration(targets: np.ndarray, probabilities: np.ndarray, method: str, *, tta: str = "none") -> Calibration:
    """Fit ``method`` on (N,) class-index ``targets`` and (N, C) validation ``probabilities``.

    ValueError for an unknown method, isotonic on more than two classes, or fewer than two
    classes present in ``targets`` (nothing to calibrate against).
    """
    from scipy.optimize import minimize_scalar

    targets = np.asarray(targets, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration {method!r}; known: {', '.join(CALIBRATION_METHODS)}")
    if len(np.unique(targets)) < 2:
        raise ValueError("calibration needs validation samples of at least two classes")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        if probs.shape[1] != 2:
            raise ValueError(f"isotonic calibration is for binary tasks; this one has {probs.shape[1]} classes "
                             f"(use temperature)")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probs[:, 1], targets)
        return Calibration("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)),
                           n_fitted=len(targets), tta=tta)
    log_p = np.log(np.clip(probs, _EPS, 1.0))
    rows = np.arange(len(targets))

    def nll(log_t: float) -> float:
        logits = log_p / np.exp(log_t)
        logits = logits - logits.max(axis=1, keepdims=True)
        return float(-(logits[rows, targets] - np.log(np.exp(logits).sum(axis=1))).mean())

    best = minimize_scalar(nll, bounds=_LOG_T_RANGE, method="bounded")
    return Calibration("temperature", temperature=float(np.exp(best.x)), n_fitted=len(targets), tta=tta)


def calibration_path(checkpoint: str | Path) -> Path:
    """Where the calibration of ``checkpoint`` lives: ``<dir>/<stem>.calibration.json``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.calibration.json")


def save_calibration(calibration: Calibration, checkpoint: str | Path) -> Path:
    """Write ``calibration`` beside ``checkpoint`` (atomically); return the file's path."""
    path = calibration_path(checkpoint)
    write_json(path, asdict(calibration))
    return path


def load_calibration(checkpoint: str | Path) -> Calibration | None:
    """The stored calibration of ``checkpoint``, None when there is none; DataError when it is unreadable."""
    path = calibration_path(checkpoint)
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        return Calibration(**{**saved, "x": tuple(saved.get("x", ())), "y": tuple(saved.get("y", ()))})
    except (OSError, ValueError, TypeError) as err:
        raise DataError(path, f"not a calibration file ({err})") from None
